/**
 * Exact Online's error answers → the package's typed errors (reference `exact-online.md` §6), and the local guard
 * against Exact's error throttle (§5: more than 10 answers 400/401/403/404 per app + user + company + endpoint in
 * an hour block the app for an hour).
 *
 * Error body: `{"error":{"code":"","message":{"lang":"","value":"<text>"}}}`, plus an optional `Reason` header
 * (`BlockedUser`, `NoDivisionAccess`, …). A 401 may be an HTML "Object moved" page, never assumed to be JSON.
 */
import { AuthError, ErpError, HttpError, MlcError } from "../errors";
import { HttpResponse } from "../http";
import { isRecord, parseJsonBody } from "../auth/source";

/** `error.message.value` of an Exact error body (≤ 200 characters), else undefined. */
export function exactErrorText(body: string): string | undefined {
  const b = parseJsonBody(body);
  const e = isRecord(b) ? b.error : undefined;
  const m = isRecord(e) ? e.message : undefined;
  const v = isRecord(m) ? m.value : typeof m === "string" ? m : undefined;
  return typeof v === "string" && v ? v.slice(0, 200) : undefined;
}

/**
 * A non-2xx API answer → typed error: 401 AuthError `unauthorized`; 403 AuthError `forbidden` (vendorCode = the
 * `Reason` header); 404 ErpError `not_found`; 400 ErpError `bad_request` (`query_syntax` for OData errors);
 * 5xx HttpError (retryable 502/503/504); else ErpError. Messages carry Exact's text, never a token.
 * @param what short description of the call, e.g. "GET salesinvoice/SalesInvoices"
 */
export function exactApiError(res: HttpResponse, what: string, recordId?: string): MlcError {
  const reasonH = res.headers.reason;
  const reason = (Array.isArray(reasonH) ? reasonH[0] : reasonH)?.slice(0, 60);
  const text = exactErrorText(res.body);
  const suffix = [text, reason].filter(Boolean).join(" — ");
  const msg = `Exact ${what}: HTTP ${res.status}${suffix ? ` (${suffix})` : ""}`;
  if (res.status === 401) return new AuthError(msg, { status: 401, code: "unauthorized" });
  if (res.status === 403) return new AuthError(msg, { status: 403, code: "forbidden", vendorCode: reason });
  if (res.status === 404) return new ErpError(msg, { status: 404, code: "not_found", recordId });
  if (res.status === 400) return new ErpError(msg, { status: 400, code: /query syntax|\$select/i.test(text ?? "") ? "query_syntax" : "bad_request", recordId, vendorCode: text });
  if (res.status >= 500) return new HttpError(msg, res.status);
  return new ErpError(msg, { status: res.status, recordId });
}

/** Statuses Exact counts towards its error throttle. */
export const THROTTLED_STATUSES: ReadonlySet<number> = new Set([400, 401, 403, 404]);

/**
 * Counts error answers per endpoint over a sliding hour and refuses locally before Exact would block the app:
 * with the default limit of 8 (Exact blocks after 10) a ninth call to an endpoint that failed 8 times within the
 * hour throws ErpError `error_budget` without leaving.
 */
export class ErrorBudget {
  private readonly hits = new Map<string, number[]>();
  constructor(
    private readonly limit = 8,
    private readonly windowMs = 3_600_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** @throws ErpError `error_budget` while `endpoint` has used its errors for the hour */
  check(endpoint: string): void {
    const list = this.prune(endpoint);
    if (list.length >= this.limit) {
      const until = new Date(list[0] + this.windowMs).toISOString();
      throw new ErpError(`Exact ${endpoint}: ${list.length} errors in the last hour; not calling again until ${until} (Exact blocks the app after 10)`, { code: "error_budget", retryable: false });
    }
  }

  /** Record the answer's status for `endpoint` (only 400/401/403/404 count). */
  note(endpoint: string, status: number): void {
    if (!THROTTLED_STATUSES.has(status)) return;
    const list = this.prune(endpoint);
    list.push(this.now());
    this.hits.set(endpoint, list);
  }

  /** Errors counted for `endpoint` within the hour. */
  count(endpoint: string): number {
    return this.prune(endpoint).length;
  }

  private prune(endpoint: string): number[] {
    const since = this.now() - this.windowMs;
    const list = (this.hits.get(endpoint) ?? []).filter((t) => t > since);
    if (list.length) this.hits.set(endpoint, list);
    else this.hits.delete(endpoint);
    return list;
  }
}
