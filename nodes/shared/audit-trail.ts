/**
 * The audit trails of a runtime, shared by every `mlc-audit` node and by the Twilio send and status nodes: one
 * in-memory {@link AuditTrail} per (global context, store, trail) kept in a module-level cache, so it survives
 * redeploys and is rebuilt lazily from the context store when the bounds change or the global context is
 * re-created. Records live in GLOBAL context so audit nodes on different tabs share one trail.
 */
import { AuditTrail } from "../lib/audit";
import { ValidationError } from "../lib/errors";
import { FAILED_STATUSES } from "../lib/twilio/status";
import { contextBackend, StoreInfo } from "./context";
import { reportUnavailable } from "./refusals";
import type { ContextScope, RedAPI, RedNode } from "./types";

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
export function acquireTrail(node: RedNode, store: StoreInfo, name: string, maxRecords: number, ttlMs: number): { get: () => Promise<AuditTrail>; replaced: boolean } {
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
 * @returns false when the trail could not be written (answer 503 so the callback is retried); the failure goes to
 *   Catch (node.error with a msg: the node has no input message) at most once a minute per node and error code
 */
export async function auditCallback(RED: RedAPI, node: RedNode, c: CallbackStatus): Promise<boolean> {
  const trail = sharedAuditTrail(node, "default");
  if (!trail) return true;
  try {
    const t = await trail;
    const errorCode = c.errorCode !== undefined && Number.isFinite(c.errorCode) && c.errorCode > 0 ? c.errorCode : undefined;
    if (await t.hasSid(c.sid)) await t.applyStatus({ sid: c.sid, status: c.status, errorCode });
    else if (c.jobId) {
      const channel = c.kind === "call" ? "voice" : c.to.startsWith("whatsapp:") ? "whatsapp" : "sms";
      const error = errorCode !== undefined && FAILED_STATUSES.has(c.status) ? { code: `twilio_${errorCode}`, message: `Twilio error ${errorCode}` } : undefined;
      await t.record({ jobId: c.jobId, sid: c.sid, channel, to: c.to, status: c.status, ...(error ? { error } : {}) });
    }
    return true;
  } catch (err) {
    reportUnavailable(RED, node, err, { topic: "twilio/status/audit", sid: c.sid, status: c.status, ...(c.jobId ? { jobId: c.jobId } : {}) });
    return false;
  }
}
