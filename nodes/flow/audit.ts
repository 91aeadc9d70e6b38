/**
 * `mlc-audit`: records every notification send and its Twilio status callbacks in an {@link AuditTrail}
 * kept in GLOBAL context (so audit nodes on different tabs, e.g. one after the SMS node and one after
 * the status-callback node, share one trail), answers look-ups and lists failed sends for replay.
 *
 * One in-memory AuditTrail per (global context, store, trail) is shared by every audit node of the
 * process through a module-level cache; it survives redeploys and is rebuilt lazily from the context
 * store when the bounds change or the global context is re-created.
 */
import { AuditTrail, AuditRecord, SendInput, isValidTrailName, shortSid, DEFAULT_MAX_RECORDS } from "../lib/audit";
import { ValidationError } from "../lib/errors";
import { FAILED_STATUSES, isFinalStatus } from "../lib/twilio/status";
import { contextBackend, resolveStore, StoreInfo, warnIfLossy } from "../shared/context";
import { Status, errorStatusKey, num, onInput, registerNode, statusTemplate, t } from "../shared/node";
import type { ContextScope, NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";

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

/** Operations of `mlc-audit`. */
export const AUDIT_OPERATIONS = ["auto", "record", "status", "get", "failed"] as const;
export type AuditOperation = (typeof AUDIT_OPERATIONS)[number];

interface CachedTrail {
  /** Bounds the trail was built with ("maxRecords/ttlMs"). */
  bounds: string;
  trail: Promise<AuditTrail>;
}

/**
 * Shared trails: global context object → "store|trail" → trail. Keyed by the global context object so a
 * re-created global context (Node-RED `clear`, test runtimes) gets a freshly loaded trail.
 */
const trails = new WeakMap<object, Map<string, CachedTrail>>();

/**
 * The shared trail for (node's global context, store, trail name), created or rebuilt when missing or
 * when `bounds` differ from those it was built with (the most recently started node's bounds apply).
 * @returns whether an existing trail with other bounds was replaced
 */
function acquireTrail(node: RedNode, store: StoreInfo, name: string, maxRecords: number, ttlMs: number): { get: () => Promise<AuditTrail>; replaced: boolean } {
  const global: ContextScope = node.context().global;
  let byKey = trails.get(global);
  if (!byKey) {
    byKey = new Map();
    trails.set(global, byKey);
  }
  const cacheKey = `${store.name ?? ""}|${name}`;
  const bounds = `${maxRecords}/${ttlMs}`;
  const cached = byKey.get(cacheKey);
  let replaced = false;
  if (!cached || cached.bounds !== bounds) {
    replaced = cached !== undefined;
    const previous = cached?.trail;
    const make = (): AuditTrail => new AuditTrail(contextBackend(node, "global", store.name), { name, maxRecords, ttlMs });
    // Let the previous trail finish its queued writes before the new one reads the store.
    const trail = previous ? previous.then((p) => p.idle(), () => undefined).then(make) : Promise.resolve(make());
    byKey.set(cacheKey, { bounds, trail });
  }
  const map = byKey;
  return {
    replaced,
    get: async () => {
      const entry = map.get(cacheKey);
      if (!entry) throw new ValidationError("Audit trail not available", { code: "internal" });
      const trail = await entry.trail;
      await trail.ready;
      return trail;
    },
  };
}

/**
 * The trail named `name` that an mlc-audit node of this runtime uses (any store), for send nodes that write their
 * record before the create (claim before send) and for the status endpoint (audit before the callback's 200).
 * @returns undefined when no mlc-audit node uses a trail of that name
 */
export function sharedAuditTrail(node: RedNode, name: string): Promise<AuditTrail> | undefined {
  const byKey = trails.get(node.context().global);
  if (!byKey) return undefined;
  for (const [key, cached] of byKey) {
    if (key.slice(key.indexOf("|") + 1) === name) return cached.trail.then(async (t) => {
      await t.ready;
      return t;
    });
  }
  return undefined;
}

/** A status callback as the status endpoint accepted it (signature checked). */
export interface CallbackStatus {
  sid: string;
  status: string;
  kind: "message" | "call";
  /** The jobId carried in the callback URL ("" when none). */
  jobId: string;
  /** Raw recipient (masked before it is stored). */
  to: string;
  errorCode?: number;
}

/**
 * Apply a status callback to the shared trail "default" (when an mlc-audit node uses it) before the endpoint answers
 * Twilio, so an acknowledged callback is never lost to a crash: the record of the sid, else the open record of
 * the jobId and recipient that the send node wrote before the create. Idempotent: the ordering rules of
 * lib/audit.ts make a duplicate or late status a no-op, and the flow's own mlc-audit node may apply it again.
 * @returns false when the trail could not be written (answer 503 so the callback is retried); errors are logged
 */
export async function auditCallback(node: RedNode, c: CallbackStatus): Promise<boolean> {
  const trail = sharedAuditTrail(node, "default");
  if (!trail) return true;
  try {
    const t = await trail;
    const errorCode = c.errorCode !== undefined && Number.isFinite(c.errorCode) && c.errorCode > 0 ? c.errorCode : undefined;
    if (await t.findBySid(c.sid)) await t.applyStatus({ sid: c.sid, status: c.status, errorCode });
    else if (c.jobId) {
      const channel = c.kind === "call" ? "voice" : c.to.startsWith("whatsapp:") ? "whatsapp" : "sms";
      const error = errorCode !== undefined && FAILED_STATUSES.has(c.status) ? { code: `twilio_${errorCode}`, message: `Twilio error ${errorCode}` } : undefined;
      await t.recordSend({ jobId: c.jobId, sid: c.sid, channel, to: c.to, status: c.status, ...(error ? { error } : {}) });
    }
    return true;
  } catch (err) {
    node.error(err instanceof Error ? err : new Error(String(err)));
    return false;
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function s(v: unknown): string | undefined {
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
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
 * Register `mlc-audit`. Errors reach Catch via done(err): ValidationError "unknown_store" /
 * "invalid_trail" on every input when the configuration is refused at start, "invalid_operation" for an
 * unknown `msg.operation`, "missing_twilio" when a record/status message lacks what it needs,
 * "invalid_query" for a `get` without a jobId/sid/recordId.
 */
export function registerAudit(RED: RedAPI): void {
  registerNode<AuditProps>(RED, "mlc-audit", (node, config) => {
    const operation: AuditOperation = (AUDIT_OPERATIONS as readonly string[]).includes(String(config.operation)) ? (config.operation as AuditOperation) : "auto";
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

    const foundText = statusTemplate(RED, "mlc-audit.status.found", "__n__ found");
    const failedText = statusTemplate(RED, "mlc-audit.status.failed", "__n__ failed");
    onInput(RED, node, async (msg: NodeMessage, { send, status }) => {
      if (startError || !getTrail) throw startError ?? new ValidationError("Audit trail not available", { code: "internal" });
      const trail = await getTrail();
      const requested = msg.operation === undefined || msg.operation === "" ? operation : String(msg.operation);
      if (!(AUDIT_OPERATIONS as readonly string[]).includes(requested)) {
        throw new ValidationError(`Unknown audit operation "${requested.slice(0, 20)}" (use ${AUDIT_OPERATIONS.join(", ")})`, { code: "invalid_operation" });
      }
      const op = requested as AuditOperation;
      const twilio = obj(msg.twilio);
      const erp = obj(msg.erp);
      const error = obj(msg.error);
      const sid = s(twilio?.sid);

      const sendInput = (): SendInput => {
        const jobId = s(twilio?.jobId) ?? s(erp?.jobId) ?? s(msg.jobId);
        const input: SendInput = {
          jobId,
          sid,
          channel: s(twilio?.channel),
          to: s(twilio?.to),
          erp: erp as SendInput["erp"],
          status: s(twilio?.status) ?? (error ? "failed" : ""),
        };
        if (error) {
          const details = obj(msg.errorDetails);
          input.error = { code: s(error.code) ?? s(details?.code) ?? (twilio?.errorCode !== undefined ? `twilio_${String(twilio.errorCode)}` : "error"), message: s(details?.message) ?? s(error.message)?.replace(/^[A-Za-z]*Error: /, "") ?? "" };
        } else if (twilio?.errorCode !== undefined && FAILED_STATUSES.has(String(twilio.status))) {
          input.error = { code: `twilio_${String(twilio.errorCode)}`, message: `Twilio error ${String(twilio.errorCode)}` };
        }
        if (!input.jobId && !input.sid) {
          throw new ValidationError("Audit needs msg.twilio.jobId, msg.erp.jobId or msg.twilio.sid to record a send", { code: "missing_twilio" });
        }
        if (!input.status) throw new ValidationError("Audit needs msg.twilio.status to record a send", { code: "missing_twilio" });
        return input;
      };

      const applyStatus = async (): Promise<void> => {
        const statusValue = s(twilio?.status);
        const jobId = s(twilio?.jobId) ?? s(erp?.jobId);
        if (!statusValue || (!sid && !jobId)) {
          throw new ValidationError("Audit status update needs msg.twilio.status and msg.twilio.sid (or a jobId)", { code: "missing_twilio" });
        }
        const errorCode = typeof twilio?.errorCode === "number" || typeof twilio?.errorCode === "string" ? twilio.errorCode : undefined;
        const res = await trail.applyStatus({ sid, jobId, status: statusValue, errorCode, erp: erp as SendInput["erp"] });
        msg.audit = res.record;
        msg.auditChanged = res.changed;
        if (res.record) status(recordStatus(res.record));
        else status(Status.warn("mlc-audit.status.unknown"));
      };

      const record = async (): Promise<void> => {
        const r = await trail.recordSend(sendInput());
        msg.audit = r;
        msg.auditChanged = true;
        status(recordStatus(r));
      };

      switch (op) {
        case "auto": {
          if (error) {
            // From a Catch node. Never throw here: the error would come back through the same Catch.
            const source = obj(error.source);
            const recordable = source?.id !== node.id && (sid || s(twilio?.jobId) || s(erp?.jobId) || s(msg.jobId));
            if (recordable) await record();
            else {
              msg.audit = undefined;
              msg.auditChanged = false;
              status(Status.warn("mlc-audit.status.notRecorded"));
            }
          } else if (sid && (await trail.findBySid(sid))) await applyStatus();
          else if (twilio) await record();
          else throw new ValidationError("Audit (auto) needs msg.twilio (from a Twilio node) or msg.error (from a Catch node)", { code: "missing_twilio" });
          break;
        }
        case "record":
          await record();
          break;
        case "status":
          await applyStatus();
          break;
        case "get": {
          msg.payload = await lookup(trail, msg.payload);
          status(Status.ok(foundText({ n: (msg.payload as unknown[]).length })));
          break;
        }
        case "failed": {
          const failed = await trail.listFailed();
          msg.payload = failed;
          status((failed.length ? Status.warn : Status.ok)(failedText({ n: failed.length })));
          break;
        }
      }
      send(msg);
    });
  });
}

/**
 * Records matching a `get` query: a string (sid, recordId or jobId), or `{sid}` | `{recordId}` | `{jobId}`.
 * @throws ValidationError code "invalid_query" for anything else
 */
async function lookup(trail: AuditTrail, query: unknown): Promise<AuditRecord[]> {
  const q = obj(query);
  if (q) {
    const sid = s(q.sid);
    const recordId = s(q.recordId);
    const jobId = s(q.jobId);
    if (sid) return [await trail.findBySid(sid)].filter((r): r is AuditRecord => r !== undefined);
    if (recordId) return [await trail.get(recordId)].filter((r): r is AuditRecord => r !== undefined);
    if (jobId) return trail.findByJobId(jobId);
  } else {
    const text = s(query);
    if (text) {
      const bySid = await trail.findBySid(text);
      if (bySid) return [bySid];
      const byId = await trail.get(text);
      if (byId) return [byId];
      return trail.findByJobId(text);
    }
  }
  throw new ValidationError("Audit get needs msg.payload = a jobId or sid, or {jobId} | {sid} | {recordId}", { code: "invalid_query" });
}
