/**
 * Reading a Sage Intacct XML gateway answer (reference sage-intacct.md §1 and §4): HTTP 200 does not mean success.
 * Three levels are checked in order: control (`response/control/status`, errors in `response/errormessage`),
 * authentication (`operation/authentication/status`, errors in `operation/errormessage`) and each function result
 * (`operation/result/status`, errors in `result/errormessage`). Errors carry `errorno`, `description`,
 * `description2`, `correction`; the message joins the non-empty parts with HTML tags removed.
 */
import { AuthError, ErpError, HttpError, RateLimitedError } from "../errors";
import { HttpResponse, safeUrl } from "../http";
import { parseRetryAfter } from "../retry";
import { XmlRefusedError, asArray, parseXml, textOf } from "./xml";

/** One `<error>` of an `<errormessage>`. */
export interface IntacctErrorEntry {
  errorno: string;
  description: string;
  description2: string;
  correction: string;
}

/** Where an Intacct error was reported. */
export type IntacctErrorLevel = "control" | "authentication" | "result";

/**
 * An error reported by the gateway. `vendorCode` is the first `errorno` (e.g. `XL03000006`, `GW-0010`), `level`
 * the envelope level, `errors` every entry. Retryable when a correction says "try again later" or the gateway is
 * rate limiting.
 */
export class IntacctError extends ErpError {
  readonly level: IntacctErrorLevel;
  readonly errors: IntacctErrorEntry[];
  constructor(level: IntacctErrorLevel, errors: IntacctErrorEntry[], opts: { code?: string; status?: number; controlId?: string } = {}) {
    const text = errors.map(errorText).filter(Boolean).join("; ") || "no error detail";
    super(`Intacct ${level} failure${opts.controlId ? ` (${opts.controlId})` : ""}: ${text}`, {
      code: opts.code ?? `intacct_${level}`,
      status: opts.status,
      vendorCode: errors[0]?.errorno || undefined,
      retryable: errors.some((e) => /try again later/i.test(e.correction) || /try again later/i.test(e.description2)),
    });
    this.level = level;
    this.errors = errors;
  }
}

/** Intacct's sign-in refusals (authentication level, or control level for the sender). Not retried per call. */
export class IntacctAuthError extends AuthError {
  readonly level: IntacctErrorLevel;
  readonly errors: IntacctErrorEntry[];
  constructor(level: IntacctErrorLevel, errors: IntacctErrorEntry[], code: string, status?: number) {
    const text = errors.map(errorText).filter(Boolean).join("; ") || "no error detail";
    super(`Intacct ${level === "control" ? "sender" : "sign-in"} refused: ${text}`, { code, status, vendorCode: errors[0]?.errorno || undefined });
    this.level = level;
    this.errors = errors;
  }
}

function stripHtml(s: string): string {
  return s.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
}

function errorText(e: IntacctErrorEntry): string {
  const parts = [e.errorno, e.description, e.description2, e.correction].map(stripHtml).filter(Boolean);
  return [...new Set(parts)].join(" ");
}

/** Entries of an `<errormessage>` element (parsed). */
export function errorEntries(errormessage: unknown): IntacctErrorEntry[] {
  const em = errormessage as Record<string, unknown> | undefined;
  return asArray(em?.error as Record<string, unknown> | Record<string, unknown>[] | undefined).map((e) => ({
    errorno: textOf(e?.errorno),
    description: textOf(e?.description),
    description2: textOf(e?.description2),
    correction: textOf(e?.correction),
  }));
}

/** One function result: its status, controlid, function name, `<data>` element and errors. */
export interface IntacctResult {
  status: string;
  function: string;
  controlId: string;
  data?: Record<string, unknown>;
  errors: IntacctErrorEntry[];
}

/** The parsed answer: control and authentication levels passed; results not yet checked. */
export interface IntacctAnswer {
  /** `authentication/sessiontimestamp` and `sessiontimeout` (ISO with offset, server clock) when present. */
  sessionTimestamp?: string;
  sessionTimeout?: string;
  results: IntacctResult[];
}

/** Marker for an authentication-level failure on a request that used a session id (expired or invalid session). */
export class IntacctSessionFailure extends IntacctAuthError {}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * Check the HTTP layer: 429 → RateLimitedError (`GW-0010`, Retry-After honoured when sent); an XML body is read
 * whatever the status (a 4xx with XML is a normal answer, SDK rule); a non-XML body (an HTML page, even with a 200)
 * or a non-2xx answer that is not readable XML → HttpError (`http_<status>`, retryable for 5xx but 524).
 * @returns the parsed document
 * @throws RateLimitedError, HttpError, XmlRefusedError (`xml_doctype` even on a 200)
 */
export function readDocument(res: HttpResponse, url: string): Record<string, unknown> {
  if (res.status === 429) {
    throw new RateLimitedError(`Intacct rate limit (429 GW-0010) at ${safeUrl(url)}`, { status: 429, vendorCode: "GW-0010", retryAfterMs: parseRetryAfter(res.headers["retry-after"]) });
  }
  const looksXml = /^\s*</.test(res.body) && !/^\s*<(!doctype\s+html|html)/i.test(res.body);
  const ok = res.status >= 200 && res.status < 300;
  if (ok && looksXml) return parseXml(res.body);
  if (looksXml) {
    try {
      return parseXml(res.body);
    } catch (err) {
      if (err instanceof XmlRefusedError && err.code === "xml_doctype") throw err;
    }
  }
  // an HTML page (Cloudflare) or any other non-XML body, whatever the status: never handed to the XML parser
  const retryable = res.status >= 500 && res.status !== 524;
  throw new HttpError(`Intacct gateway answered HTTP ${res.status}${looksXml ? "" : " (not XML)"}`, res.status, { retryable });
}

/**
 * Read the envelope levels of a parsed answer.
 * @param usedSession true when the request authenticated with a session id (an authentication failure then means
 *   the session expired or is invalid: {@link IntacctSessionFailure})
 * @throws IntacctAuthError control-level sender refusal (`sender_refused`) or sign-in refusal (`auth_failed`);
 *   IntacctSessionFailure; IntacctError `intacct_control` for other control failures; ErpError `unexpected_response`
 */
export function readEnvelope(doc: Record<string, unknown>, usedSession: boolean, status?: number): IntacctAnswer {
  const response = obj(doc.response);
  const control = obj(response?.control);
  if (!response || !control) throw new ErpError("Intacct answer has no <response><control>", { code: "unexpected_response", status });
  if (textOf(control.status) !== "success") {
    const errors = errorEntries(response.errormessage);
    if (errors.some((e) => /XL03000006|XMLGW_JPP0002/.test(e.errorno))) throw new IntacctAuthError("control", errors, "sender_refused", status);
    throw new IntacctError("control", errors, { status });
  }
  const operation = obj(response.operation);
  if (!operation) throw new ErpError("Intacct answer has no <operation>", { code: "unexpected_response", status });
  const auth = obj(operation.authentication);
  if (textOf(auth?.status) !== "success") {
    const errors = errorEntries(operation.errormessage);
    if (usedSession) throw new IntacctSessionFailure("authentication", errors, "session_invalid", status);
    throw new IntacctAuthError("authentication", errors, "auth_failed", status);
  }
  const results = asArray(operation.result as Record<string, unknown> | Record<string, unknown>[] | undefined).map((r) => ({
    status: textOf(r.status),
    function: textOf(r.function),
    controlId: textOf(r.controlid),
    data: obj(r.data),
    errors: errorEntries(r.errormessage),
  }));
  return { sessionTimestamp: textOf(auth?.sessiontimestamp) || undefined, sessionTimeout: textOf(auth?.sessiontimeout) || undefined, results };
}

/**
 * The result of the function sent with `controlId`; any status but `success` is a failure.
 * @throws IntacctError `intacct_result` (vendorCode = errorno) for a failed function; ErpError `unexpected_response`
 *   when no result echoes the control id
 */
export function resultFor(answer: IntacctAnswer, controlId: string): IntacctResult {
  const r = answer.results.find((x) => x.controlId === controlId);
  if (!r) throw new ErpError(`Intacct answer has no result for function ${controlId}`, { code: "unexpected_response" });
  if (r.status !== "success") throw new IntacctError("result", r.errors, { controlId: `${r.function || "function"} ${controlId}` });
  return r;
}
