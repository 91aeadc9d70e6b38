/**
 * Node set "flow": `mlc-dedupe` (first-time / duplicate routing by a hashed key) and `mlc-audit`
 * (notification audit trail fed by Twilio nodes, status callbacks and Catch nodes).
 */
import type { RedAPI } from "./shared/types";
import { registerDedupe } from "./flow/dedupe";
import { registerAudit } from "./flow/audit";

export = function (RED: RedAPI): void {
  registerDedupe(RED);
  registerAudit(RED);
};
