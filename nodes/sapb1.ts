/** Node set "sapb1": SAP Business One Service Layer connection config and fetch/update node (the trigger follows the kit's trigger skeleton). */
import type { RedAPI } from "./shared/types";
import { registerSapB1Config } from "./sapb1/config";
import { registerSapB1Fetch } from "./sapb1/fetch";

export = function (RED: RedAPI): void {
  registerSapB1Config(RED);
  registerSapB1Fetch(RED);
};
