/**
 * `mlc-audit`: records every notification send and its Twilio status callbacks in an {@link AuditTrail}
 * kept in GLOBAL context (so audit nodes on different tabs, e.g. one after the SMS node and one after
 * the status-callback node, share one trail), answers look-ups and lists failed sends for replay.
 *
 * The trail is shared through nodes/shared/audit-trail.ts; what a message asks for is read by
 * lib/audit-message.ts. This adapter reads the configuration, runs the operation and shapes the reply.
 */
import { AuditRecord, AuditTrail, isValidTrailName, shortSid, DEFAULT_MAX_RECORDS } from "../lib/audit";
import { AuditMessage, AuditOperation, autoAction, catchRecordable, configuredOperation, lookup, requestedOperation, sendInputOf, statusInputOf } from "../lib/audit-message";
import { ValidationError } from "../lib/errors";
import { FAILED_STATUSES, isFinalStatus } from "../lib/twilio/status";
import { acquireTrail } from "../shared/audit-trail";
import { resolveStore, StoreInfo, warnIfLossy } from "../shared/context";
import { Status, errorStatusKey, num, onInput, registerNode, statusTemplate, t } from "../shared/node";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";

export { AUDIT_OPERATIONS } from "../lib/audit-message";
export type { AuditOperation } from "../lib/audit-message";

/** Editor properties of `mlc-audit`. */
export interface AuditProps extends Record<string, unknown> {
  name?: string;
  /** auto | record | status | get | failed; default auto. `msg.operation` overrides it. */
  operation?: string;
  /** Trail name, [A-Za-z0-9_]{1,32}; default "default". */
  trail?: string;
  /** Context store name; "" = the default store. */
  store?: string;
  /** Maximum number of records in the trail; default 10000. */
  maxRecords?: number | string;
  /** Record lifetime in days; 0 = no expiry; default 30. */
  ttl?: number | string;
}

/** Status text for a record: "delivered SM…1234". */
function recordText(r: AuditRecord): string {
  return r.sid ? `${r.status} ${shortSid(r.sid)}` : r.status;
}

function recordStatus(r: AuditRecord): NodeStatus {
  const text = recordText(r);
  if (FAILED_STATUSES.has(r.status) || r.error) return Status.warn(text);
  return isFinalStatus(r.status) ? Status.ok(text) : Status.busy(text);
}

/**
 * Open the node's trail at start. A refused configuration is shown (red status, node.error) and kept.
 * @returns the trail getter, or the start error
 */
function startTrail(RED: RedAPI, node: RedNode, config: AuditProps): { getTrail?: () => Promise<AuditTrail>; startError?: () => Error | undefined } {
  const trailName = typeof config.trail === "string" && config.trail.trim() !== "" ? config.trail.trim() : "default";
  const maxRecords = Math.floor(num(config.maxRecords, DEFAULT_MAX_RECORDS, 1));
  const ttlMs = Math.round(num(config.ttl, 30, 0) * 86_400_000);
  let startError: Error | undefined;
  let info: StoreInfo = { name: undefined, memoryOnly: true };
  let getTrail: (() => Promise<AuditTrail>) | undefined;
  const refuse = (err: unknown): void => {
    startError = err instanceof Error ? err : new Error(String(err));
    node.status(Status.error(errorStatusKey(err)));
    node.error(startError);
  };
  try {
    if (!isValidTrailName(trailName)) {
      throw new ValidationError(`Audit trail name must match [A-Za-z0-9_]{1,32}: "${trailName.slice(0, 40)}"`, { code: "invalid_trail" });
    }
    info = resolveStore(RED, config.store);
    const acquired = acquireTrail(node, info, trailName, maxRecords, ttlMs);
    getTrail = acquired.get;
    if (acquired.replaced) {
      node.warn(t(RED, "mlc-audit.warn.bounds", { trail: trailName }, `Audit trail "${trailName}" rebuilt with this node's bounds; every audit node of a trail should use the same bounds`));
    }
    // Surface a store that cannot be read now rather than at the first message (and never as an unhandled rejection).
    getTrail().catch(refuse);
  } catch (err) {
    refuse(err);
  }
  if (!startError) {
    node.status(info.memoryOnly ? Status.warn("mlc-audit.status.memoryOnly") : Status.idle("mlc-audit.status.ready"));
    warnIfLossy(RED, node, info);
  }
  return { getTrail, startError: () => startError };
}

/**
 * Register `mlc-audit`. Errors reach Catch via done(err): ValidationError "unknown_store" /
 * "invalid_trail" on every input when the configuration is refused at start, "invalid_operation" for an
 * unknown `msg.operation`, "missing_twilio" when a record/status message lacks what it needs,
 * "invalid_query" for a `get` without a jobId/sid/recordId.
 */
export function registerAudit(RED: RedAPI): void {
  registerNode<AuditProps>(RED, "mlc-audit", (node, config) => {
    const operation = configuredOperation(config.operation);
    const { getTrail, startError } = startTrail(RED, node, config);
    const foundText = statusTemplate(RED, "mlc-audit.status.found", "__n__ found");
    const failedText = statusTemplate(RED, "mlc-audit.status.failed", "__n__ failed");
    onInput(RED, node, async (msg: NodeMessage, { send, status }) => {
      const refused = startError?.();
      if (refused || !getTrail) throw refused ?? new ValidationError("Audit trail not available", { code: "internal" });
      const trail = await getTrail();
      const m = msg as AuditMessage;
      const record = async (): Promise<void> => {
        const r = await trail.recordSend(sendInputOf(m));
        msg.audit = r;
        msg.auditChanged = true;
        status(recordStatus(r));
      };
      const applyStatus = async (): Promise<void> => {
        const res = await trail.applyStatus(statusInputOf(m));
        msg.audit = res.record;
        msg.auditChanged = res.changed;
        status(res.record ? recordStatus(res.record) : Status.warn("mlc-audit.status.unknown"));
      };
      const op: AuditOperation = requestedOperation(m, operation);
      if (op === "auto") {
        const action = await autoAction(m, (sid) => trail.hasSid(sid));
        // From a Catch node. Never throw here: the error would come back through the same Catch.
        if (action === "catch" && !catchRecordable(m, node.id)) {
          msg.audit = undefined;
          msg.auditChanged = false;
          status(Status.warn("mlc-audit.status.notRecorded"));
        } else if (action === "status") await applyStatus();
        else await record();
      } else if (op === "record") await record();
      else if (op === "status") await applyStatus();
      else if (op === "get") {
        msg.payload = await lookup(trail, msg.payload);
        status(Status.ok(foundText({ n: (msg.payload as unknown[]).length })));
      } else {
        const failed = await trail.listFailed();
        msg.payload = failed;
        status((failed.length ? Status.warn : Status.ok)(failedText({ n: failed.length })));
      }
      send(msg);
    });
  });
}
