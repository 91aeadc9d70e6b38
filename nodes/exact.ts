/** Node set "exact": Exact Online connection config and fetch/enrich node (the trigger follows the kit's trigger skeleton). */
import type { RedAPI } from "./shared/types";
import { registerExactConfig } from "./exact/config";
import { registerExactFetch } from "./exact/fetch";

export = function (RED: RedAPI): void {
  registerExactConfig(RED);
  registerExactFetch(RED);
};
