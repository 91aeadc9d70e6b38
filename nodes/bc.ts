/**
 * Node set "bc" (Microsoft Dynamics 365 Business Central): connection config and fetch/update node. The trigger
 * (webhook subscriptions with polling fallback) waits for the family kit's trigger skeleton (nodes/shared/trigger.ts).
 */
import type { RedAPI } from "./shared/types";
import { registerBcConfig } from "./bc/config";
import { registerBcFetch } from "./bc/fetch";

export = function (RED: RedAPI): void {
  registerBcConfig(RED);
  registerBcFetch(RED);
};
