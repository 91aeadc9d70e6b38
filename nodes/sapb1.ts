/** Node set "sapb1": SAP Business One Service Layer connection config, polling trigger and fetch/update node. */
import type { RedAPI } from "./shared/types";
import { registerSapB1Config } from "./sapb1/config";
import { registerSapB1Fetch } from "./sapb1/fetch";
import { registerSapB1Trigger } from "./sapb1/trigger";

export = function (RED: RedAPI): void {
  registerSapB1Config(RED);
  registerSapB1Trigger(RED);
  registerSapB1Fetch(RED);
};
