/**
 * What an `mlc-audit` message asks of an {@link AuditTrail}, read from the message's plain properties
 * (`msg.twilio`, `msg.erp`, `msg.error`, `msg.errorDetails`, `msg.operation`, `msg.payload`). Pure: no Node-RED;
 * the adapter (nodes/flow/audit.ts) calls these and shapes the reply.
 */
import { AuditRecord, AuditTrail, SendInput, StatusInput } from "./audit";
import { ValidationError } from "./errors";
import { FAILED_STATUSES } from "./twilio/status";

/** Operations of `mlc-audit`. */
export const AUDIT_OPERATIONS = ["auto", "record", "status", "get", "failed"] as const;
export type AuditOperation = (typeof AUDIT_OPERATIONS)[number];

/** A message as the audit node reads it (any object; unknown shapes are ignored). */
export type AuditMessage = Record<string, unknown>;

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** A non-empty trimmed string, or a finite number as text; else undefined. */
function s(v: unknown): string | undefined {
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** The configured operation, "auto" for anything unknown. */
export function configuredOperation(v: unknown): AuditOperation {
  return (AUDIT_OPERATIONS as readonly string[]).includes(String(v)) ? (v as AuditOperation) : "auto";
}

/**
 * The operation a message asks for: `msg.operation`, else the node's.
 * @throws ValidationError code "invalid_operation" for an unknown `msg.operation`
 */
export function requestedOperation(msg: AuditMessage, fallback: AuditOperation): AuditOperation {
  const requested = msg.operation === undefined || msg.operation === "" ? fallback : String(msg.operation);
  if (!(AUDIT_OPERATIONS as readonly string[]).includes(requested)) {
    throw new ValidationError(`Unknown audit operation "${requested.slice(0, 20)}" (use ${AUDIT_OPERATIONS.join(", ")})`, { code: "invalid_operation" });
  }
  return requested as AuditOperation;
}

/** `msg.twilio.sid`, when the message carries one. */
export function sidOf(msg: AuditMessage): string | undefined {
  return s(obj(msg.twilio)?.sid);
}

/**
 * What `auto` does with a message: "catch" for one from a Catch node (`msg.error`), "status" when the trail knows
 * its sid (`knownSid` is asked only then), "record" for one from a Twilio node.
 * @throws ValidationError code "missing_twilio" when it carries neither `msg.twilio` nor `msg.error`
 */
export async function autoAction(msg: AuditMessage, knownSid: (sid: string) => Promise<boolean>): Promise<"catch" | "status" | "record"> {
  if (obj(msg.error)) return "catch";
  const sid = sidOf(msg);
  if (sid && (await knownSid(sid))) return "status";
  if (obj(msg.twilio)) return "record";
  throw new ValidationError("Audit (auto) needs msg.twilio (from a Twilio node) or msg.error (from a Catch node)", { code: "missing_twilio" });
}

/**
 * Whether an error message from a Catch node can be recorded: it names a send (sid or jobId) and was not raised by
 * the audit node `selfId` itself (recording that would loop through the same Catch).
 */
export function catchRecordable(msg: AuditMessage, selfId: string): boolean {
  const twilio = obj(msg.twilio);
  const erp = obj(msg.erp);
  const source = obj(obj(msg.error)?.source);
  return source?.id !== selfId && Boolean(s(twilio?.sid) || s(twilio?.jobId) || s(erp?.jobId) || s(msg.jobId));
}

/**
 * The send a message records: jobId (`msg.twilio.jobId`, `msg.erp.jobId`, `msg.jobId`), sid, channel, recipient,
 * ERP reference, status ("failed" for an error without one) and error (from `msg.error`/`msg.errorDetails`, or the
 * Twilio error code of a failed status).
 * @throws ValidationError code "missing_twilio" without a jobId or sid, or without a status
 */
export function sendInputOf(msg: AuditMessage): SendInput {
  const twilio = obj(msg.twilio);
  const erp = obj(msg.erp);
  const error = obj(msg.error);
  const input: SendInput = {
    jobId: s(twilio?.jobId) ?? s(erp?.jobId) ?? s(msg.jobId),
    sid: s(twilio?.sid),
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
}

/**
 * The status update a message applies: `msg.twilio.status` for `msg.twilio.sid` (or the jobId), with its error code.
 * @throws ValidationError code "missing_twilio" without a status, or without a sid and a jobId
 */
export function statusInputOf(msg: AuditMessage): StatusInput {
  const twilio = obj(msg.twilio);
  const erp = obj(msg.erp);
  const sid = s(twilio?.sid);
  const status = s(twilio?.status);
  const jobId = s(twilio?.jobId) ?? s(erp?.jobId);
  if (!status || (!sid && !jobId)) {
    throw new ValidationError("Audit status update needs msg.twilio.status and msg.twilio.sid (or a jobId)", { code: "missing_twilio" });
  }
  const errorCode = typeof twilio?.errorCode === "number" || typeof twilio?.errorCode === "string" ? twilio.errorCode : undefined;
  return { sid, jobId, status, errorCode, erp: erp as StatusInput["erp"] };
}

/**
 * Records matching a `get` query: a string (sid, recordId or jobId), or `{sid}` | `{recordId}` | `{jobId}`.
 * @throws ValidationError code "invalid_query" for anything else
 */
export async function lookup(trail: AuditTrail, query: unknown): Promise<AuditRecord[]> {
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
