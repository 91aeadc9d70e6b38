/** Node set "exact": Exact Online connection config, trigger (webhooks or polling, on the kit's trigger skeleton) and fetch/enrich node. */
import type { RedAPI } from "./shared/types";
import { registerExactConfig } from "./exact/config";
import { registerExactFetch } from "./exact/fetch";
import { registerExactTrigger } from "./exact/trigger";

export = function (RED: RedAPI): void {
  registerExactConfig(RED);
  registerExactTrigger(RED);
  registerExactFetch(RED);
};
