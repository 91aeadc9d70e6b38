/**
 * Node set "flow": `mlc-dedupe` (first-time / duplicate routing by a hashed key), `mlc-audit`
 * (notification audit trail fed by Twilio nodes, status callbacks and Catch nodes) and `mlc-route`
 * (recipient and channel per event: SMS, call, e-mail or no contact).
 */
import type { RedAPI } from "./shared/types";
import { registerDedupe } from "./flow/dedupe";
import { registerAudit } from "./flow/audit";
import { registerRoute } from "./flow/route";

export = function (RED: RedAPI): void {
  registerDedupe(RED);
  registerAudit(RED);
  registerRoute(RED);
};
