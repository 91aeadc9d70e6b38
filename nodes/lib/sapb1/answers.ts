/**
 * SAP Business One Service Layer answers → typed errors (reference sap-business-one.md §3 "Error envelopes", SLGUIDE
 * §3.1.1, §5.2.3; B1SLayer `Models/SLResponseError.cs`).
 *
 * Both envelopes are read:
 * - v1 (OData v3): `{"error":{"code":-10,"message":{"lang":"en-us","value":"…"}}}` (code a number, message an object);
 * - v2 (OData v4): `{"error":{"code":"-2039","message":"…"}}` (code a string, message a string).
 * Messages never carry a cookie, a session id or a password: only the status, the vendor code and the vendor text
 * (cut to 300 characters).
 */
import { AuthError, ErpError, HttpError, MlcError, RateLimitedError } from "../errors";
import { HttpResponse } from "../http";
import { parseRetryAfter } from "../retry";

/** The vendor error of an answer: `code` as sent (number in v1, string in v2), `message` as plain text. */
export interface SapB1ErrorBody {
  code?: string | number;
  message?: string;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Text of a vendor message without control characters, at most `max` characters. */
function clean(text: string, max = 300): string {
  const t = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/**
 * Read either error envelope from a body text.
 * @returns the vendor code and message; `{}` when the body is not an SL error envelope
 */
export function parseSapB1Error(body: string): SapB1ErrorBody {
  let parsed: unknown;
  try {
    parsed = body ? JSON.parse(body) : undefined;
  } catch {
    return {};
  }
  const err = isObj(parsed) ? parsed.error : undefined;
  if (!isObj(err)) return {};
  const out: SapB1ErrorBody = {};
  if (typeof err.code === "number" || (typeof err.code === "string" && err.code !== "")) out.code = err.code;
  const m = err.message;
  if (typeof m === "string") out.message = clean(m);
  else if (isObj(m) && typeof m.value === "string") out.message = clean(m.value);
  return out;
}

/** The vendor code as a number when it is numeric (`301`, `"-2039"` → -2039), else undefined. */
export function numericCode(code: string | number | undefined): number | undefined {
  if (typeof code === "number") return code;
  if (typeof code === "string" && /^-?\d+$/.test(code.trim())) return Number(code.trim());
  return undefined;
}

/**
 * Whether an answer says the session is gone and one re-login + replay is due:
 * - HTTP 401, whatever the code (reference §2: "key re-login on HTTP 401, not on the code"; 301 is the documented one);
 * - HTTP 400 whose text says the *session* timed out or is invalid (issue 12: a seed's "-5002 timeout" is a business
 *   error unless its text is about the session). A `-5002` about anything else (document cancelled, duplicate key,
 *   a transaction timeout) is never a re-login trigger (reference "Traps").
 */
export function isSessionGone(res: Pick<HttpResponse, "status" | "body">): boolean {
  if (res.status === 401) return true;
  if (res.status !== 400) return false;
  const text = parseSapB1Error(res.body).message ?? "";
  return /\b(invalid session|session (?:already )?(?:timed? ?out|timeout|expired|has expired))\b/i.test(text);
}

/** What the error message names: e.g. `GET Invoices(812)`. */
export interface FailContext {
  /** The operation as a user reads it, without query string or credentials. */
  op: string;
  /** Record concerned, e.g. "Invoices(812)". */
  recordId?: string;
}

/**
 * Map a non-2xx answer to a typed error (reference §3 table):
 * - 401 → AuthError `session_invalid` (after one re-login and replay), or `login_failed` for a refused Login;
 * - 403 → AuthError `forbidden`; 404 → ErpError `not_found`; 412 → ErpError `etag_mismatch`;
 * - 400 → ErpError `bad_request` (`-1000` invalid query / unknown property), `business_error` (`-10`, `-5002`, …),
 *   `not_supported` (`-5006`); never retryable;
 * - 429, 503 with Retry-After → RateLimitedError; 5xx → HttpError (502/503/504 retryable).
 */
export function failError(res: HttpResponse, ctx: FailContext): MlcError {
  const { code, message } = parseSapB1Error(res.body);
  const vendor = code !== undefined ? ` [${code}]` : "";
  const text = `SAP Business One ${ctx.op} failed (HTTP ${res.status})${vendor}${message ? `: ${message}` : ""}`;
  const n = numericCode(code);
  const base = { status: res.status, vendorCode: code, recordId: ctx.recordId };
  if (res.status === 401) return new AuthError(text, { status: 401, vendorCode: code, code: ctx.op.startsWith("Login") ? "login_failed" : "session_invalid" });
  if (res.status === 403) return new AuthError(text, { status: 403, vendorCode: code, code: "forbidden" });
  if (res.status === 404) return new ErpError(text, { ...base, code: "not_found" });
  if (res.status === 412) return new ErpError(text, { ...base, code: "etag_mismatch" });
  if (res.status === 429 || (res.status === 503 && parseRetryAfter(res.headers["retry-after"]) !== undefined))
    return new RateLimitedError(text, { status: res.status, vendorCode: code, retryAfterMs: parseRetryAfter(res.headers["retry-after"]) });
  if (res.status === 400) {
    const kind = n === -1000 ? "bad_request" : n === -5006 ? "not_supported" : "business_error";
    return new ErpError(text, { ...base, code: kind });
  }
  if (res.status >= 500) return new HttpError(text, res.status, { vendorCode: code });
  return new ErpError(text, { ...base, code: `http_${res.status}` });
}
