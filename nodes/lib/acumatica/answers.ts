/**
 * Acumatica answers → the package's typed errors (reference §6 error shapes, §8 sign-in): messages say what to check,
 * and never carry a token, cookie, password, request body, vendor stack trace or server path.
 * Used by {@link AcumaticaClient} (client.ts); no I/O.
 */
import { AuthError, ErpError, HttpError, MlcError, RateLimitedError } from "../errors";
import { HttpResponse } from "../http";
import { OAuthGrant } from "../auth/oauth";
import { isRecord as isObj, parseJsonBody as parseJson } from "../auth/source";
import { parseRetryAfter } from "../retry";

/** What error messages name: the instance, endpoint, tenant and sign-in mode. */
export interface AcumaticaTarget {
  instanceUrl: string;
  endpointName: string;
  endpointVersion: string;
  tenant: string;
  mode: "oauth" | "cookie";
}

/** The operation an answer belongs to. */
export interface FailContext {
  /** Short description of the operation for messages, e.g. "GET Bill". */
  op: string;
  entity?: string;
  recordId?: string;
  idempotent: boolean;
}

/** Looks like a server path, a source file or a stack frame: never surfaced. */
export function hasPathLikeText(s: string): boolean {
  return /[A-Za-z]:\\|\\\\|\.(cs|dll|aspx|ashx|config|vb)\b|\bat [\w.`<>]+\(|\bline \d+\b|(^|[\s'"(])\/(?:[\w.-]+\/){2,}/i.test(s);
}

/** Vendor text made safe for an error message: one line, paths scrubbed, bounded length. */
export function safeText(s: unknown, max = 400): string | undefined {
  if (typeof s !== "string") return undefined;
  let t = s.replace(/\s+/g, " ").trim();
  t = t.replace(/[A-Za-z]:\\[^\s'"]*/g, "<path>").replace(/\\\\[^\s'"]+/g, "<path>");
  if (t.length > max) t = `${t.slice(0, max - 1)}…`;
  return t || undefined;
}

/** Safe message and exception type out of an Acumatica `HttpError` body (reference §6). */
export function describeHttpError(body: string): { text?: string; exceptionType?: string } {
  const parsed = parseJson(body);
  if (!isObj(parsed)) return {};
  const message = safeText(parsed.message);
  const rawEx = typeof parsed.exceptionMessage === "string" ? parsed.exceptionMessage : undefined;
  const ex = rawEx && !hasPathLikeText(rawEx) ? safeText(rawEx) : undefined;
  let text = message;
  if (ex && ex !== message) {
    if (!message) text = ex;
    else if (ex.startsWith(message)) text = ex;
    else if (!message.includes(ex)) text = `${message} (${ex})`;
  }
  const messageDetail = safeText(parsed.messageDetail);
  if (!text && messageDetail && !hasPathLikeText(messageDetail)) text = messageDetail;
  const exceptionType = typeof parsed.exceptionType === "string" && /^[\w.`]+$/.test(parsed.exceptionType) ? parsed.exceptionType : undefined;
  return { text, exceptionType };
}

/** A refused or failed `POST /identity/connect/token` → typed error (RFC 6749 §5.2 codes, reference §8). */
export function tokenError(t: AcumaticaTarget, res: HttpResponse, grant: OAuthGrant): MlcError {
  const parsed = parseJson(res.body);
  const obj = isObj(parsed) ? parsed : {};
  const error = typeof obj.error === "string" ? obj.error : undefined;
  const description = typeof obj.error_description === "string" && !hasPathLikeText(obj.error_description) ? safeText(obj.error_description, 200) : undefined;
  const grantText = grant === "refresh_token" ? "OAuth token refresh" : "OAuth sign-in";
  if (/API Login Limit/i.test(res.body)) return loginLimitError(res.status);
  if (res.status === 429) {
    return new RateLimitedError(`Acumatica rate limit hit on ${grantText} (HTTP 429, after retries)`, { retryAfterMs: parseRetryAfter(res.headers["retry-after"]) });
  }
  const detail = description ? ` (${description})` : "";
  switch (error) {
    case "invalid_client":
      return new AuthError(
        `Acumatica refused the OAuth client (invalid_client)${detail}: check the client secret and that the client ID is the full <generated ID>@<Tenant> form exactly as shown on Connected Applications (SM303010)`,
        { status: res.status, vendorCode: error },
      );
    case "invalid_grant":
      return new AuthError(
        grant === "refresh_token"
          ? `Acumatica refused the refresh token (invalid_grant)${detail}: it expired or was revoked; sign in again`
          : `Acumatica refused the OAuth sign-in (invalid_grant)${detail}: check the user name and password and that the user may use this connected application`,
        { status: res.status, vendorCode: error },
      );
    case "invalid_scope":
      return new AuthError(`Acumatica refused the OAuth scope (invalid_scope)${detail}: request only scopes enabled for the application on Connected Applications (SM303010), normally "api offline_access"`, {
        status: res.status,
        vendorCode: error,
      });
    case undefined:
      break;
    default:
      return new AuthError(`Acumatica refused the ${grantText} (${safeText(error, 60)})${detail}`, { status: res.status, vendorCode: safeText(error, 60) });
  }
  if (res.status >= 500) return new HttpError(`Acumatica token endpoint failed (HTTP ${res.status}) on ${grantText}`, res.status, { retryable: false });
  if (res.status === 404) {
    return new ErpError(`Acumatica token endpoint not found at ${t.instanceUrl}/identity/connect/token (HTTP 404): check the instance URL (including any virtual directory)`, {
      code: "endpoint_mismatch",
      status: 404,
    });
  }
  return new AuthError(`Acumatica refused the ${grantText} (HTTP ${res.status})`, { status: res.status });
}

/** Throws the typed error of a refused cookie sign-in; returns when the session is open (200/204). */
export function checkCookieLogin(t: AcumaticaTarget, res: HttpResponse): void {
  if (res.status === 204 || res.status === 200) return;
  if (/API Login Limit/i.test(res.body)) throw loginLimitError(res.status);
  if (/Invalid credentials/i.test(res.body)) {
    throw new AuthError(`Acumatica sign-in refused: invalid credentials (check user name, password and tenant "${t.tenant}")`, { status: res.status, vendorCode: "invalid_credentials" });
  }
  if (res.status === 429) throw new RateLimitedError("Acumatica rate limit hit on sign-in (HTTP 429, after retries)", { retryAfterMs: parseRetryAfter(res.headers["retry-after"]) });
  const { text } = describeHttpError(res.body);
  if (res.status === 404) {
    throw new ErpError(`Acumatica sign-in endpoint not found at ${t.instanceUrl}/entity/auth/login (HTTP 404): check the instance URL (including any virtual directory)`, {
      code: "endpoint_mismatch",
      status: 404,
    });
  }
  if (res.status >= 500) throw new HttpError(`Acumatica sign-in failed (HTTP ${res.status})${text ? `: ${text}` : ""}`, res.status, { retryable: false });
  throw new AuthError(`Acumatica sign-in refused (HTTP ${res.status})${text ? `: ${text}` : ""}`, { status: res.status });
}

/** "API Login Limit": every licensed API user slot is taken. */
export function loginLimitError(status: number): ErpError {
  return new ErpError(
    "Acumatica refused the sign-in: API Login Limit reached — every licensed API user slot (concurrent API sessions and OAuth grants, see License Monitoring Console SM604000) is taken. " +
      "Sessions were leaked by clients that did not sign out (they expire only after the idle timeout) or the licence has too few API users.",
    { code: "api_login_limit", status, vendorCode: "API Login Limit", retryable: false },
  );
}

/** Map a non-success answer to a typed error (reference §6). */
export function failError(t: AcumaticaTarget, res: HttpResponse, ctx: FailContext): MlcError {
  const { text, exceptionType } = describeHttpError(res.body);
  const suffix = text ? `: ${text}` : "";
  const where = `${ctx.op}${ctx.recordId ? ` ${ctx.recordId}` : ""}`;
  const status = res.status;
  if (status === 401) {
    return new AuthError(
      `Acumatica answered 401 on ${where}${suffix}${t.mode === "oauth" ? " — check that the connected application grants the \"api\" scope and the user's access rights" : ""}`,
      { status, vendorCode: exceptionType },
    );
  }
  if (status === 403) return new AuthError(`Acumatica denied ${where} (HTTP 403)${suffix}: the user lacks access rights`, { status, code: "forbidden", vendorCode: exceptionType });
  if (status === 404) {
    const msg = text ?? "";
    const endpointMissing =
      (/\bendpoint\b/i.test(msg) && /(not found|does not exist|cannot be found|is not defined)/i.test(msg) && !/\bentity\b/i.test(msg)) || /No HTTP resource was found/i.test(msg);
    if (endpointMissing) {
      return new ErpError(
        `Acumatica has no web-service endpoint "${t.endpointName}" version ${t.endpointVersion} at ${t.instanceUrl} (HTTP 404 on ${ctx.op}). ` +
          "Check the endpoint name and version on Web Service Endpoints (SM207060) and the config node, and the instance URL.",
        { code: "endpoint_mismatch", status, vendorCode: exceptionType },
      );
    }
    if (ctx.entity && /\bentity\b/i.test(msg) && /(not found|does not exist|cannot be found)/i.test(msg) && !/No entity satisfies/i.test(msg)) {
      return new ErpError(`Acumatica endpoint ${t.endpointName}/${t.endpointVersion} has no entity "${ctx.entity}" (HTTP 404)${suffix}`, { code: "unknown_entity", status, vendorCode: exceptionType });
    }
    return new ErpError(`Acumatica found no record for ${where} (HTTP 404)${suffix}`, { code: "not_found", status, recordId: ctx.recordId, vendorCode: exceptionType });
  }
  if (status === 429) {
    return new RateLimitedError(`Acumatica licence rate/concurrency limit hit on ${where} (HTTP 429, after retries)${suffix}`, {
      retryAfterMs: parseRetryAfter(res.headers["retry-after"]),
      vendorCode: exceptionType,
    });
  }
  if (status >= 500) return new HttpError(`Acumatica server error on ${where} (HTTP ${status})${suffix}`, status, { vendorCode: exceptionType, retryable: ctx.idempotent });
  if (status === 400) return new ErpError(`Acumatica rejected ${where} as a bad request (HTTP 400)${suffix}`, { code: "bad_request", status, recordId: ctx.recordId, vendorCode: exceptionType });
  return new ErpError(`Acumatica answered HTTP ${status} on ${where}${suffix}`, { code: `http_${status}`, status, recordId: ctx.recordId, vendorCode: exceptionType });
}
