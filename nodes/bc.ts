/** Node set "bc" (Microsoft Dynamics 365 Business Central): connection config, trigger (webhooks, polling fallback), fetch/update. */
import type { RedAPI } from "./shared/types";
import { registerBcConfig } from "./bc/config";
import { registerBcFetch } from "./bc/fetch";
import { registerBcTrigger } from "./bc/trigger";

export = function (RED: RedAPI): void {
  registerBcConfig(RED);
  registerBcTrigger(RED);
  registerBcFetch(RED);
};
