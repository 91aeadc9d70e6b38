/**
 * The Business Central API v2.0 client, built on the family kit: the Entra ID token source (auth.ts) under the kit's
 * single-flight {@link AuthManager}, one {@link HttpClient} pool, one rate {@link Budget} (≤ 5 concurrent calls, ≤ 1,200
 * per minute, so no 5-minute window exceeds BC's 6,000 per user), OData v4 next-link paging (kit pages.ts) and the
 * OData v4 time literal (kit conditions.ts).
 *
 * Vendor documents (reference business-central.md): §2 URL routing (`{apiHost}/v2.0/{tenant}/{environment}/api/v2.0`,
 * company scope `companies({id})`, GUID keys unquoted, subscription ids quoted), §4 querying and server-driven paging
 * (`Prefer: odata.maxpagesize`, `@odata.nextLink` followed verbatim, never `$skip`), §5 ETags (`If-Match` header, the
 * `@odata.etag` stripped from bodies, 409/412 alike), §6 errors, §7 throttling (429 without `Retry-After` → backoff;
 * 502/503 with it → wait it), §8 webhook subscriptions (create/renew with handshake, `If-Match` on PATCH/DELETE,
 * `webhookSupportedResources`, notifications resolved against the API root, `collection` re-queried).
 */
import { AuthManager } from "../auth/renewal";
import type { AuthState } from "../auth/source";
import { Budget, pacedRequest } from "../budget";
import { ErpAction, ErpEventMsg } from "../envelope";
import { ErpError, MlcError, ValidationError } from "../errors";
import { HttpClient, HttpClientOptions, HttpMethod, HttpResponse, HttpTlsOptions } from "../http";
import { odataV4Time } from "../poll/conditions";
import { nextLinkPages } from "../poll/pages";
import { backoffDelay, DEFAULT_RETRY_POLICY, parseRetryAfter, sleep } from "../retry";
import { EntraCertificate, EntraTokenSource, checkTenant } from "./auth";
import { BcScope, bcError, bcEvent, decodeRecord, isGuid } from "./values";

/**
 * How far before a filter-less `collection` notification's `lastModifiedDateTime` (its last change) the first change
 * of its batch can lie, ms: BC's 36 h retry horizon, during which undelivered changes pile into one batch, plus an
 * hour for the 30 s batch window and the job queue (reference §8.4, §8.5).
 */
export const BC_COLLECTION_SPAN_MS = 37 * 3600_000;

/** Business Central's public API host. */
export const BC_API_HOST = "https://api.businesscentral.dynamics.com";
/** Page size asked with `Prefer: odata.maxpagesize` (reference §4 poll recipe). */
export const BC_PAGE_SIZE = 500;
/** Fields BC computes itself: never sent in a PATCH body (reference §5). */
const READ_ONLY = ["@odata.etag", "@odata.context", "id", "lastModifiedDateTime"];

/** Options of {@link BcClient}. */
export interface BcClientOptions {
  /** Tenant GUID or domain. */
  tenant: string;
  /** Environment name, e.g. "Production" or "Sandbox". */
  environment: string;
  /** Company id (GUID); required by every company-scoped call. */
  companyId?: string;
  clientId: string;
  clientSecret?: string;
  certificate?: EntraCertificate;
  /** Entra authority host, https origin; default `https://login.microsoftonline.com`. */
  authorityHost?: string;
  /** BC API host; default {@link BC_API_HOST}. */
  apiHost?: string;
  /** Page size for `Prefer: odata.maxpagesize` (1…20000); default {@link BC_PAGE_SIZE}. */
  pageSize?: number;
  /** TLS trust for this client (CA bundle / pin). */
  tls?: HttpTlsOptions;
  /** More HttpClient settings (timeouts). */
  http?: Omit<HttpClientOptions, "tls">;
  /** Budget limits override (tests, benchmarks). */
  budget?: { maxConcurrent?: number; perMinute?: number };
  /** Told when sign-in pauses after a refusal and when it works again (kit AuthManager `onState`). */
  onAuthState?: (s: AuthState) => void;
  /** Attempts for an idempotent request answered 502/503/504 (Retry-After honoured); default 4. */
  maxAttempts?: number;
  /** Clock for token expiry, ms since the epoch (tests, benchmarks); default `Date.now`. */
  now?: () => number;
}

/** List options (OData v4 query options ml-connector uses, reference §4). Texts are unencoded. */
export interface BcListOptions {
  filter?: string;
  select?: string;
  expand?: string;
  orderby?: string;
  top?: number;
  /** Send `Data-Access-Intent: ReadOnly` (read replica; polling). */
  readOnly?: boolean;
}

/** A BC webhook subscription as the API returns it (reference §8.1). */
export interface BcSubscription {
  "@odata.etag"?: string;
  subscriptionId: string;
  notificationUrl: string;
  resource: string;
  clientState?: string;
  /** ISO 8601. */
  expirationDateTime: string;
  [k: string]: unknown;
}

/** One item of a notification POST (reference §8.4). */
export interface BcNotification {
  subscriptionId: string;
  clientState?: string;
  expirationDateTime?: string;
  resource: string;
  changeType: "created" | "updated" | "deleted" | "collection";
  lastModifiedDateTime?: string;
}

/** The client; one per config node. */
export class BcClient {
  readonly http: HttpClient;
  readonly auth: AuthManager<EntraTokenSource>;
  readonly budget: Budget;
  /** `{apiHost}/v2.0/{tenant}/{environment}` (notification resources resolve against it). */
  readonly environmentUrl: string;
  /** `{environmentUrl}/api/v2.0`. */
  readonly apiRoot: string;
  readonly tenant: string;
  readonly environment: string;
  companyId?: string;
  /** Requests sent to BC (budget starts, for benchmarks: calls per alert). */
  calls = 0;
  private readonly pageSize: number;
  private readonly maxAttempts: number;

  /** @throws ValidationError `bad_config` for a bad tenant, environment, company id, host or missing credential */
  constructor(o: BcClientOptions) {
    this.tenant = checkTenant(o.tenant);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(o.environment ?? "")) throw new ValidationError("Environment must be a BC environment name such as Production", { code: "bad_config" });
    if (o.companyId && !isGuid(o.companyId)) throw new ValidationError("Company id must be a GUID", { code: "bad_config" });
    this.environment = o.environment;
    this.companyId = o.companyId;
    const host = (o.apiHost || BC_API_HOST).replace(/\/+$/, "");
    if (!/^https?:\/\/[^/?#]+$/i.test(host)) throw new ValidationError("API host must be an origin such as https://api.businesscentral.dynamics.com", { code: "bad_config" });
    this.environmentUrl = `${host}/v2.0/${encodeURIComponent(this.tenant)}/${this.environment}`;
    this.apiRoot = `${this.environmentUrl}/api/v2.0`;
    this.pageSize = Math.min(20_000, Math.max(1, Math.floor(o.pageSize ?? BC_PAGE_SIZE)));
    this.maxAttempts = o.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts;
    this.http = new HttpClient({ ...o.http, tls: o.tls });
    const source = new EntraTokenSource({ http: this.http, tenant: this.tenant, clientId: o.clientId, clientSecret: o.clientSecret, certificate: o.certificate, authorityHost: o.authorityHost, now: o.now });
    this.auth = new AuthManager(source, { onState: o.onAuthState, now: o.now });
    this.budget = new Budget({ maxConcurrent: o.budget?.maxConcurrent ?? 5, limits: { perMinute: o.budget?.perMinute ?? 1200 } });
  }

  /** Scope of events (tenant, environment, company). @throws ValidationError when no company is set */
  get scope(): BcScope {
    return { tenant: this.tenant, environment: this.environment, companyId: this.company() };
  }

  private company(): string {
    if (!this.companyId) throw new ValidationError("No company selected", { code: "bad_config" });
    return this.companyId;
  }

  /** `…/companies({company})/{entitySet}[({id})]`. @throws ValidationError for a bad entity set or id */
  entityUrl(entitySet: string, id?: string): string {
    if (!/^[A-Za-z][A-Za-z0-9]*(?:\([0-9a-f-]{36}\)\/[A-Za-z][A-Za-z0-9]*)?$/.test(entitySet)) throw new ValidationError(`Not an API v2.0 entity set: ${entitySet.slice(0, 60)}`, { code: "bad_entity" });
    if (id !== undefined && !isGuid(id)) throw new ValidationError(`Record id must be a GUID, got "${String(id).slice(0, 60)}"`, { code: "bad_id" });
    return `${this.apiRoot}/companies(${this.company()})/${entitySet}${id ? `(${id})` : ""}`;
  }

  /**
   * One authenticated BC request through the budget: 401 → new token and one replay (kit AuthManager); 429 and 503
   * with Retry-After → re-queued by the budget; an idempotent request answered 502/503/504 is sent again up to
   * `maxAttempts` times after its `Retry-After` (else backoff with jitter).
   * @returns the final answer, whatever its status (callers map non-2xx with {@link bcError})
   * @throws AuthError / AuthCooldownError from sign-in; RateLimitedError after the budget's re-queue time; TimeoutError
   */
  async send(method: HttpMethod, url: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Promise<HttpResponse> {
    const idempotent = method !== "POST";
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    for (let attempt = 0; ; attempt++) {
      const { res } = await this.auth.call(() => {
        this.calls++;
        const headers = { Accept: "application/json", ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...opts.headers };
        // built when the request leaves the budget's queue: the token current then, not one renewed while it waited
        return pacedRequest(this.budget, this.http, () => ({ method, url, headers: { ...headers, ...this.auth.headers(url) }, body, idempotent }));
      });
      const again = idempotent && [502, 503, 504].includes(res.status) && attempt + 1 < this.maxAttempts;
      if (!again) return res;
      await sleep(backoffDelay(attempt, DEFAULT_RETRY_POLICY, parseRetryAfter(res.headers["retry-after"])));
    }
  }

  /** GET a URL and parse JSON. @throws {@link bcError} for non-2xx; ErpError `unexpected_response` for a non-JSON body */
  async getJson(url: string, headers?: Record<string, string>, recordId?: string): Promise<Record<string, unknown>> {
    const res = await this.send("GET", url, { headers });
    if (res.status < 200 || res.status >= 300) throw bcError(res, url, recordId);
    try {
      return JSON.parse(res.body) as Record<string, unknown>;
    } catch {
      throw new ErpError("Business Central answered with a body that is not JSON", { code: "unexpected_response", status: res.status });
    }
  }

  /** `GET …/companies` → `[{ id, name, displayName, systemVersion, businessProfileId }]` (unscoped; no company needed). */
  async companies(): Promise<Array<Record<string, unknown>>> {
    const rows: Array<Record<string, unknown>> = [];
    for await (const r of this.pages(`${this.apiRoot}/companies`)) rows.push(r);
    return rows;
  }

  /**
   * One record: `GET …/{entitySet}({id})` with `$select`/`$expand`, enum members decoded ({@link decodeRecord}).
   * @throws ErpError `not_found` (404) and as {@link getJson}
   */
  async get(entitySet: string, id: string, o: Pick<BcListOptions, "select" | "expand"> = {}): Promise<Record<string, unknown>> {
    return decodeRecord(await this.getJson(withQuery(this.entityUrl(entitySet, id), o), undefined, id));
  }

  /** Every row of a listing (enums decoded), following `@odata.nextLink` verbatim (no `$skip`), `Prefer: odata.maxpagesize`. */
  async *list(entitySet: string, o: BcListOptions = {}): AsyncGenerator<Record<string, unknown>> {
    for await (const row of this.pages(withQuery(this.entityUrl(entitySet), o), o.readOnly)) yield decodeRecord(row);
  }

  /** Every row from `firstUrl` on (a listing or a `collection` notification's URL). @throws as {@link getJson}; ErpError `paging_loop` */
  async *pages(firstUrl: string, readOnly = true): AsyncGenerator<Record<string, unknown>> {
    const headers: Record<string, string> = { Prefer: `odata.maxpagesize=${this.pageSize}`, ...(readOnly ? { "Data-Access-Intent": "ReadOnly" } : {}) };
    for await (const row of nextLinkPages(firstUrl, (url) => this.getJson(url, headers))) yield row as Record<string, unknown>;
  }

  /**
   * `PATCH …/{entitySet}({id})` with `If-Match: <etag>` (or `*`) and only the changed fields (read-only fields and
   * `@odata.etag` stripped). @returns the updated record with its new `@odata.etag`
   * @throws ErpError `etag_mismatch` (409/412: someone changed it first), `not_found`, `bad_request`; as {@link send}
   */
  async update(entitySet: string, id: string, changes: Record<string, unknown>, etag: string): Promise<Record<string, unknown>> {
    if (!etag) throw new ValidationError("An ETag (or *) is required to update a Business Central record", { code: "missing_etag" });
    const body: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(changes ?? {})) if (!READ_ONLY.includes(k) && !k.startsWith("@odata.")) body[k] = v;
    const url = this.entityUrl(entitySet, id);
    const res = await this.send("PATCH", url, { body, headers: { "If-Match": etag } });
    if (res.status !== 200) throw bcError(res, url, id);
    return JSON.parse(res.body) as Record<string, unknown>;
  }

  /** Entity sets the environment can notify about, e.g. `salesInvoices` (from `webhookSupportedResources`, reference §8.3). */
  async webhookResources(): Promise<Set<string>> {
    const filter = encodeURIComponent("resource eq 'v2.0*'");
    const url = `${this.environmentUrl}/api/microsoft/runtime/beta/companies(${this.company()})/webhookSupportedResources?$filter=${filter}`;
    const out = new Set<string>();
    for await (const r of this.pages(url)) if (typeof r.resource === "string" && r.resource.startsWith("v2.0/")) out.add(r.resource.slice(5));
    return out;
  }

  /** Subscription `resource` text for an entity set: `/api/v2.0/companies({id})/{entitySet}`. */
  subscriptionResource(entitySet: string): string {
    return this.entityUrl(entitySet).slice(this.environmentUrl.length);
  }

  /**
   * `POST …/subscriptions`; BC calls `notificationUrl?validationToken=…` before it answers 201 (the receiver must be
   * answering already). `clientState` ≤ 250 characters (reference §8.1).
   * @throws ValidationError for a longer clientState; {@link bcError} for non-201 (e.g. a failed handshake)
   */
  async subscribe(entitySet: string, notificationUrl: string, clientState: string): Promise<BcSubscription> {
    if (clientState.length > 250) throw new ValidationError("clientState must be at most 250 characters", { code: "bad_config" });
    const url = `${this.apiRoot}/subscriptions`;
    const res = await this.send("POST", url, { body: { notificationUrl, resource: this.subscriptionResource(entitySet), clientState } });
    if (res.status !== 201) throw bcError(res, url);
    return JSON.parse(res.body) as BcSubscription;
  }

  /** `PATCH …/subscriptions('{id}')` with `If-Match` (repeats the handshake; new expiry now + 3 days). @throws {@link bcError}: ErpError `not_found` when it expired (re-create it) */
  async renew(sub: BcSubscription): Promise<BcSubscription> {
    const url = this.subscriptionUrl(sub.subscriptionId);
    const body = { notificationUrl: sub.notificationUrl, resource: sub.resource, clientState: sub.clientState };
    const res = await this.send("PATCH", url, { body, headers: { "If-Match": sub["@odata.etag"] ?? "*" } });
    if (res.status !== 200) throw bcError(res, url);
    return JSON.parse(res.body) as BcSubscription;
  }

  /** `DELETE …/subscriptions('{id}')` with `If-Match`. @returns false when it was already gone (404) @throws {@link bcError} otherwise */
  async unsubscribe(sub: Pick<BcSubscription, "subscriptionId" | "@odata.etag">): Promise<boolean> {
    const url = this.subscriptionUrl(sub.subscriptionId);
    const res = await this.send("DELETE", url, { headers: { "If-Match": sub["@odata.etag"] ?? "*" } });
    if (res.status === 404) return false;
    if (res.status !== 204 && res.status !== 200) throw bcError(res, url);
    return true;
  }

  /** `GET …/subscriptions` → every subscription of the app in this environment. */
  async subscriptions(): Promise<BcSubscription[]> {
    const out: BcSubscription[] = [];
    for await (const r of this.pages(`${this.apiRoot}/subscriptions`, false)) out.push(r as BcSubscription);
    return out;
  }

  private subscriptionUrl(id: string): string {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new ValidationError("Not a subscription id", { code: "bad_id" });
    return `${this.apiRoot}/subscriptions('${id}')`;
  }

  /**
   * A notification's `resource` as an absolute URL inside this environment (reference §8.4: with or without a leading
   * slash, `api/v2.0/…` or relative to the API root). @throws ErpError `bad_notification` for a URL elsewhere
   */
  resolveResource(resource: string): string {
    const r = String(resource ?? "");
    let url: string;
    if (/^https?:\/\//i.test(r)) url = r;
    else if (/^\/?api\//.test(r)) url = `${this.environmentUrl}/${r.replace(/^\//, "")}`;
    else url = `${this.apiRoot}/${r.replace(/^\//, "")}`;
    if (!url.startsWith(`${this.apiRoot}/`)) throw new ErpError("Notification resource is outside this environment's API", { code: "bad_notification" });
    return url;
  }

  /**
   * The records one notification stands for, as events: `created`/`updated` → GET the record (notifications carry no
   * data); `deleted` → an event with only the id; `collection` → every row of its URL, all pages. BC sends a
   * filter-less collection URL when its batch held a deletion: then only rows changed since
   * {@link BC_COLLECTION_SPAN_MS} before the notification's time are read (older rows cannot be in the batch; the whole
   * set would replay every record as a change), `action` "updated"; deleted records are not reported.
   * @throws as {@link getJson}; a record that vanished (404) before it was read yields nothing
   */
  async *changes(n: BcNotification): AsyncGenerator<ErpEventMsg> {
    let url = this.resolveResource(n.resource);
    const entitySet = /\/companies\([0-9a-f-]{36}\)\/([A-Za-z]+)/i.exec(url)?.[1] ?? "unknown";
    if (n.changeType === "collection") {
      const last = Date.parse(n.lastModifiedDateTime ?? "");
      if (!url.includes("?") && Number.isFinite(last)) url = withQuery(url, { filter: odataV4Time("lastModifiedDateTime", "gt", last - BC_COLLECTION_SPAN_MS) });
      for await (const row of this.pages(url)) yield bcEvent(this.scope, entitySet, row, "updated");
      return;
    }
    const id = /\(([0-9a-f-]{36})\)$/i.exec(new URL(url).pathname)?.[1];
    if (!id) throw new ErpError("Notification resource names no record", { code: "bad_notification" });
    if (n.changeType === "deleted") {
      yield bcEvent(this.scope, entitySet, { id }, "deleted", n.lastModifiedDateTime);
      return;
    }
    let row: Record<string, unknown>;
    try {
      row = await this.getJson(url, { "Data-Access-Intent": "ReadOnly" }, id);
    } catch (err) {
      if (err instanceof MlcError && err.code === "not_found") return;
      throw err;
    }
    yield bcEvent(this.scope, entitySet, row, n.changeType as ErpAction);
  }

  /** Poll reader for the kit's Poller: rows of `filter` (from the WatermarkWindow) oldest first, as events. */
  async *pollRead(entitySet: string, filter: string, o: Pick<BcListOptions, "select" | "expand"> = {}): AsyncGenerator<ErpEventMsg> {
    for await (const row of this.list(entitySet, { ...o, filter, orderby: "lastModifiedDateTime asc", readOnly: true })) yield bcEvent(this.scope, entitySet, row, "updated");
  }

  /** Stop signing in, drop the token, close the pool and the budget. Never rejects. */
  async close(): Promise<void> {
    this.auth.close();
    this.auth.source.clear();
    this.budget.close();
    await this.http.close().catch(() => undefined);
  }
}

/** The OData v4 time condition BC takes (`lastModifiedDateTime gt 2024-03-01T09:14:22.517Z`, unquoted). */
export const bcTime = odataV4Time;

/** `url` with `$filter/$select/$expand/$orderby/$top` appended (encoded). */
export function withQuery(url: string, o: BcListOptions): string {
  const q: string[] = [];
  if (o.filter) q.push(`$filter=${encodeURIComponent(o.filter)}`);
  if (o.select) q.push(`$select=${encodeURIComponent(o.select)}`);
  if (o.expand) q.push(`$expand=${encodeURIComponent(o.expand)}`);
  if (o.orderby) q.push(`$orderby=${encodeURIComponent(o.orderby)}`);
  if (o.top !== undefined) q.push(`$top=${Math.max(1, Math.floor(o.top))}`);
  return q.length ? `${url}${url.includes("?") ? "&" : "?"}${q.join("&")}` : url;
}
