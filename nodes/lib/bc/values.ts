/**
 * Business Central wire values (reference business-central.md §3, §4, §6): enum members XML-escaped on the wire
 * (`In_x0020_Review`, `_x0020_`), OData v4 literals for `$filter` (DateTimeOffset, Date and GUID unquoted; strings
 * quoted), the error envelope `{"error":{"code","message"}}`, and a record turned into the package's event envelope.
 */
import { ErpAction, ErpEventMsg, eventTopic } from "../envelope";
import { AuthError, ErpError, HttpError, MlcError, RateLimitedError } from "../errors";
import { HttpResponse, safeUrl } from "../http";
import { deriveJobId } from "../ids";
import { zonedIso } from "../poll/modified-time";
import { parseRetryAfter } from "../retry";
import { escapeODataString } from "../odata";

/** Enum-valued fields of the v2.0 entities ml-connector reads (BCDOCS resources pages); their values are decoded. */
export const BC_ENUM_FIELDS: readonly string[] = ["status", "blocked", "type", "disputeStatus", "documentType", "changeType"];

/**
 * Decode XmlConvert escapes of an enum member: `In_x0020_Review` → `In Review`, `_x0020_` → `" "` (the docs' own
 * `" "` passes unchanged). Non-strings are returned as they are.
 */
export function decodeEnum<T>(v: T): T | string {
  if (typeof v !== "string") return v;
  return v.replace(/_x([0-9A-Fa-f]{4})_/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** A copy of `row` with the {@link BC_ENUM_FIELDS} decoded (other fields, `@odata.etag` included, unchanged). */
export function decodeRecord(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...row };
  for (const f of BC_ENUM_FIELDS) if (typeof out[f] === "string") out[f] = decodeEnum(out[f]);
  return out;
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a GUID (`7d0e5b11-22aa-4c3b-8d9e-0f1a2b3c4d5e`). */
export function isGuid(v: unknown): v is string {
  return typeof v === "string" && GUID_RE.test(v);
}

/**
 * An OData v4 literal for `$filter` (OData v4.01 URL Conventions §5.1.1.14; reference §4): a `Date` or epoch-ms with
 * `kind: "datetime"` → `2024-03-01T09:14:22.517Z` unquoted; a GUID → unquoted; a number/boolean → bare; any other
 * text → `'…'` with quotes doubled. Never `datetime'…'`/`guid'…'` (OData v2/v3 prefixes BC refuses).
 */
export function bcLiteral(v: unknown, kind?: "datetime" | "date" | "string"): string {
  if (kind === "datetime" || v instanceof Date) return new Date(v instanceof Date ? v.getTime() : (v as number | string)).toISOString();
  if (kind === "date") return new Date(v as string | number).toISOString().slice(0, 10);
  if (kind !== "string" && isGuid(v)) return v;
  if (kind !== "string" && (typeof v === "number" || typeof v === "boolean")) return String(v);
  return `'${escapeODataString(v)}'`;
}

/** The BC error envelope of a response: `{ code, message }` (message without the correlation id), when present. */
export function bcErrorBody(body: string): { code?: string; message?: string; correlationId?: string } {
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    const message = typeof e?.message === "string" ? e.message : undefined;
    const correlationId = message ? /CorrelationId:\s*([0-9a-f-]{36})/i.exec(message)?.[1] : undefined;
    return {
      code: typeof e?.code === "string" ? e.code.slice(0, 80) : undefined,
      message: message?.replace(/\s*CorrelationId:.*$/s, "").slice(0, 300),
      correlationId,
    };
  } catch {
    return {};
  }
}

/**
 * A non-2xx BC answer → typed error (reference §6 table). 401 → AuthError `auth_failed`; 403 → AuthError
 * `forbidden`; 404 → ErpError `not_found`; 409/412 → ErpError `etag_mismatch` ("changed by someone else");
 * 429 → RateLimitedError; 413 → ErpError `too_large`; 5xx → HttpError (502/503/504 retryable); other 4xx → ErpError
 * `bad_request` with the vendor code. Messages carry the BC code and text, never a token.
 */
export function bcError(res: HttpResponse, url: string, recordId?: string): MlcError {
  const { code, message } = bcErrorBody(res.body);
  const where = safeUrl(url);
  const text = `Business Central answered HTTP ${res.status}${code ? ` ${code}` : ""}${message ? `: ${message}` : ""} (${where})`;
  const s = res.status;
  if (s === 401) return new AuthError(text, { status: s, vendorCode: code });
  if (s === 403) return new AuthError(text, { status: s, vendorCode: code, code: "forbidden" });
  if (s === 429) return new RateLimitedError(text, { status: s, vendorCode: code, retryAfterMs: parseRetryAfter(res.headers["retry-after"]) });
  if (s >= 500) return new HttpError(text, s, { vendorCode: code });
  const kind = s === 404 ? "not_found" : s === 409 || s === 412 ? "etag_mismatch" : s === 413 ? "too_large" : "bad_request";
  return new ErpError(text, { code: kind, status: s, vendorCode: code, recordId });
}

/** Where an event came from: tenant, environment and company id. */
export interface BcScope {
  tenant: string;
  environment: string;
  companyId: string;
}

/**
 * A BC record → the event envelope (`msg.topic` `bc/<entitySet>/<action>`, `msg.erp`, `msg.payload` with enums
 * decoded). `jobId` is derived from (tenant/environment/company, entity set, id, `lastModifiedDateTime`).
 * @throws ErpError `unexpected_response` when the row has no `id` or no zoned `lastModifiedDateTime` (and the action
 *   is not "deleted", which may carry the notification time instead)
 */
export function bcEvent(scope: BcScope, entitySet: string, row: Record<string, unknown>, action: ErpAction, modifiedAt?: string): ErpEventMsg {
  const id = typeof row.id === "string" ? row.id : undefined;
  const at = zonedIso(row.lastModifiedDateTime) ?? zonedIso(modifiedAt);
  if (!id || !at) throw new ErpError(`Business Central ${entitySet} record without id or lastModifiedDateTime`, { code: "unexpected_response", recordId: id });
  const tenant = `${scope.tenant}/${scope.environment}/${scope.companyId}`;
  const base = { system: "bc" as const, tenant, entity: entitySet, id, action, modifiedAt: at };
  const erp = { ...base, ...(typeof row.number === "string" ? { number: row.number } : {}), jobId: deriveJobId({ ...base, version: at }) };
  return { topic: eventTopic(erp), payload: decodeRecord(row), erp };
}
