/**
 * Exact Online REST client (reference `exact-online.md`; Exact's REST reference `HlpRestAPIResources.aspx`), built on
 * the family kit: the token source of tokens.ts under the kit's single-flight AuthManager (one refresh in flight, one
 * 401 replay, a pause after a refusal), the kit's Budget fed by Exact's `X-RateLimit-*` headers (one key per
 * division; a 429 waits for the minutely or daily reset, it is never dropped or blind-retried), the kit's OData v2
 * paging (`d.results`, `__next`), and one undici pool per client with optional TLS trust.
 *
 * Every request sends `Accept: application/json` (Exact's default is Atom XML), goes to the same regional host as
 * the token requests, addresses records as `(guid'…')`, lists with an explicit `$select` (never `*`), and is sent
 * one at a time (Exact: "requests per division should be sequential"). Error answers are counted per endpoint so
 * the client stops calling an endpoint before Exact's 10-errors-per-hour block (answers.ts).
 */
import { AuthManager } from "../auth/renewal";
import { AuthState } from "../auth/source";
import { Budget, BudgetOptions, EXACT_ONLINE_RATE_HEADERS, pacedRequest } from "../budget";
import { ErpError, ValidationError } from "../errors";
import { HttpClient, HttpClientOptions, HttpMethod, HttpResponse } from "../http";
import { nextLinkPages, odataPage } from "../poll/pages";
import { ErrorBudget, exactApiError, exactErrorText } from "./answers";
import { ExactTokenSource, ExactTokens } from "./tokens";
import type { SharedSecret } from "../auth/shared-secret";
import { guidKey, isGuid } from "./values";

/** Regional hosts (reference §1); the OAuth and API calls of one connection use the same host. */
export const EXACT_HOSTS: Readonly<Record<string, string>> = Object.freeze({
  nl: "https://start.exactonline.nl",
  be: "https://start.exactonline.be",
  de: "https://start.exactonline.de",
  uk: "https://start.exactonline.co.uk",
  us: "https://start.exactonline.com",
  es: "https://start.exactonline.es",
  fr: "https://start.exactonline.fr",
});

/**
 * The base URL of a connection: `override` (e.g. a simulator, trailing slashes removed) when set, else the region's host.
 * @throws ValidationError for an unknown region or an override that is not an http(s) URL
 */
export function exactBaseUrl(region: string, override?: string): string {
  if (override && override.trim()) {
    const u = override.trim().replace(/\/+$/, "");
    if (!/^https?:\/\/[^/\s]+$/i.test(u)) throw new ValidationError("Exact base URL must be an origin like https://start.exactonline.nl", { code: "invalid_config" });
    return u;
  }
  const host = EXACT_HOSTS[(region || "nl").toLowerCase()];
  if (!host) throw new ValidationError(`Unknown Exact region "${region}"`, { code: "invalid_config" });
  return host;
}

/** Options of {@link ExactClient}. */
export interface ExactClientOptions {
  /** Region key of {@link EXACT_HOSTS}; default "nl". */
  region?: string;
  /** Origin override (simulator, proxy); wins over `region`. */
  baseUrl?: string;
  clientId: string;
  clientSecret: string;
  redirectUri?: string;
  /** Division (company) number; default: `CurrentDivision` of `/api/v1/current/Me`. */
  division?: number;
  /** Saved tokens, and the persistence of new ones (awaited before use), see tokens.ts. */
  tokens?: ExactTokens;
  onTokens?: (t: ExactTokens) => Promise<void> | void;
  /** Token sets shared across instances (one Redis): single-flight refresh under its lock, see tokens.ts. */
  shared?: SharedSecret<ExactTokens>;
  onSaveError?: (err: unknown) => void;
  /** Told when sign-in pauses after a refusal and when it resumes. */
  onAuthState?: (s: AuthState) => void;
  /** HTTP pool options (timeouts, TLS trust). */
  http?: HttpClientOptions;
  /** Budget overrides (tests: clocks and timers); the limits default to Exact's 60/min and 5000/day per division. */
  budget?: Partial<BudgetOptions>;
  /** Error answers per endpoint and hour before the client stops calling it; default 8 (Exact blocks after 10). */
  errorLimit?: number;
  /** Pause after a refused sign-in, ms; default 300000. */
  authCooldownMs?: number;
  /** Clock, ms since the epoch (tests). */
  now?: () => number;
}

/** OData query options of a listing; `select` is required (Exact: never `$select=*`). */
export interface ExactListQuery {
  select: string[];
  /** OData v2 filter text, e.g. `Modified gt datetime'2025-03-01T00:00:00'` (see values.ts exactLiteral). */
  filter?: string;
  orderby?: string;
  /** Rows in total (paging stops there); Exact sends at most 60 per page. */
  top?: number;
}

/** A webhook subscription as listed. */
export interface ExactSubscription {
  ID: string;
  CallbackURL: string;
  Topic: string;
}

/** Build `?$a=…&$b=…` with `%20` for spaces (OData), keeping `$`, `'`, `(` and `)` readable. */
function odataQuery(params: [string, string | undefined][]): string {
  const parts = params.filter(([, v]) => v !== undefined && v !== "").map(([k, v]) => `${k}=${encodeURIComponent(v as string).replace(/%24/g, "$")}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

/** Checked `service/Entity` path, e.g. `salesinvoice/SalesInvoices`. @throws ValidationError */
function entityPath(path: string): string {
  const p = String(path ?? "").trim().replace(/^\/+|\/+$/g, "");
  if (!/^[A-Za-z]+(\/[A-Za-z]+)+$/.test(p)) throw new ValidationError(`Exact entity path must look like "salesinvoice/SalesInvoices", got "${p.slice(0, 60)}"`, { code: "invalid_input" });
  return p;
}

/** One Exact Online connection (one per config node). */
export class ExactClient {
  readonly baseUrl: string;
  readonly tokens: ExactTokenSource;
  readonly auth: AuthManager<ExactTokenSource>;
  readonly budget: Budget;
  readonly errors: ErrorBudget;
  private readonly http: HttpClient;
  private division?: number;
  private divisionP?: Promise<number>;

  /** @throws ValidationError for a bad region or base URL */
  constructor(opts: ExactClientOptions) {
    this.baseUrl = exactBaseUrl(opts.region ?? "nl", opts.baseUrl);
    this.http = new HttpClient(opts.http);
    this.tokens = new ExactTokenSource({
      http: this.http,
      baseUrl: this.baseUrl,
      clientId: opts.clientId,
      clientSecret: opts.clientSecret,
      redirectUri: opts.redirectUri,
      tokens: opts.tokens,
      onTokens: opts.onTokens,
      shared: opts.shared,
      onSaveError: opts.onSaveError,
      now: opts.now,
    });
    this.auth = new AuthManager(this.tokens, { onState: opts.onAuthState, now: opts.now, cooldownMs: opts.authCooldownMs });
    this.budget = new Budget({
      maxConcurrent: 1,
      scope: "key",
      keyLimits: () => ({ perMinute: 60, perDay: 5000 }),
      rateHeaders: EXACT_ONLINE_RATE_HEADERS,
      closedMessage: "Exact client is closed",
      ...opts.budget,
    });
    this.errors = new ErrorBudget(opts.errorLimit ?? 8, 3_600_000, opts.now);
    if (opts.division !== undefined && Number.isInteger(opts.division) && opts.division > 0) this.division = opts.division;
  }

  /**
   * One authenticated, budgeted request. Non-2xx answers are returned (the caller maps them); 429s wait in the budget.
   * @param endpoint the error-throttle key, e.g. `salesinvoice/SalesInvoices`
   * @throws ErpError `error_budget`; AuthError/AuthCooldownError from sign-in; RateLimitedError after 10 min of 429s;
   *   TimeoutError; MlcError "closed"
   */
  async send(method: HttpMethod, url: string, endpoint: string, division: string, body?: unknown): Promise<HttpResponse> {
    this.errors.check(endpoint);
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method === "POST") headers.Prefer = "return=representation";
    const text = body === undefined ? undefined : JSON.stringify(body);
    // the request is built when it leaves the budget's queue: the token current then, not one refreshed while it waited
    const { res } = await this.auth.call(() =>
      pacedRequest(this.budget, this.http, () => ({ method, url, headers: { ...headers, ...this.auth.headers(url) }, body: text, idempotent: method !== "POST" }), division),
    );
    this.errors.note(endpoint, res.status);
    return res;
  }

  private async json(url: string, endpoint: string, division: string, what: string, recordId?: string): Promise<unknown> {
    const res = await this.send("GET", url, endpoint, division);
    if (res.status !== 200) throw exactApiError(res, what, recordId);
    try {
      return JSON.parse(res.body);
    } catch {
      throw new ErpError(`Exact ${what}: answer is not JSON`, { code: "unexpected_response", status: res.status });
    }
  }

  /** The signed-in user (`GET /api/v1/current/Me`): `{ CurrentDivision, FullName, UserName, … }`. @throws as {@link send} */
  async me(): Promise<Record<string, unknown>> {
    const url = `${this.baseUrl}/api/v1/current/Me${odataQuery([["$select", "CurrentDivision,FullName,UserName,Email"]])}`;
    const { rows } = odataPage(await this.json(url, "current/Me", String(this.division ?? "me"), "GET current/Me"));
    const me = rows[0];
    if (typeof me !== "object" || me === null) throw new ErpError("Exact current/Me returned no user", { code: "unexpected_response" });
    return me as Record<string, unknown>;
  }

  /** The division in use: the configured one, else `CurrentDivision` of {@link me} (read once). @throws as {@link me} */
  async currentDivision(): Promise<number> {
    if (this.division !== undefined) return this.division;
    this.divisionP ??= this.me().then((me) => {
      const d = Number(me.CurrentDivision);
      if (!Number.isInteger(d) || d <= 0) throw new ErpError("Exact current/Me has no CurrentDivision", { code: "unexpected_response" });
      this.division = d;
      return d;
    });
    try {
      return await this.divisionP;
    } finally {
      this.divisionP = undefined;
    }
  }

  private async url(path: string, division?: number): Promise<{ url: string; div: string; endpoint: string }> {
    const endpoint = entityPath(path);
    const div = String(division ?? (await this.currentDivision()));
    return { url: `${this.baseUrl}/api/v1/${div}/${endpoint}`, div, endpoint };
  }

  /**
   * One record by its GUID: `GET …/{path}(guid'…')` → the raw OData object (`/Date()/` values unconverted, see values.ts).
   * @returns undefined when Exact answers 404
   * @throws ValidationError for a malformed id or path; as {@link send}; mapped errors for other statuses
   */
  async get(path: string, id: string, select?: string[], division?: number): Promise<Record<string, unknown> | undefined> {
    if (!isGuid(id)) throw new ValidationError(`Exact record id must be a GUID, got "${String(id).slice(0, 40)}"`, { code: "invalid_input", recordId: String(id).slice(0, 40) });
    const { url, div, endpoint } = await this.url(path, division);
    const res = await this.send("GET", `${url}${guidKey(id)}${odataQuery([["$select", select?.join(",")]])}`, endpoint, div);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw exactApiError(res, `GET ${endpoint}`, id);
    const d = (JSON.parse(res.body) as { d?: unknown }).d;
    if (typeof d !== "object" || d === null) throw new ErpError(`Exact GET ${endpoint}: no "d" object`, { code: "unexpected_response", recordId: id });
    return ((d as { results?: unknown[] }).results?.[0] ?? d) as Record<string, unknown>;
  }

  /**
   * Every row of a listing, following `__next` (60 rows per page); `__next` must stay on this client's host.
   * @throws ValidationError for a missing or `*` select; ErpError `foreign_next_link`; as {@link send}
   */
  async *list(path: string, q: ExactListQuery, division?: number): AsyncGenerator<Record<string, unknown>, void, undefined> {
    if (!q.select?.length || q.select.some((f) => !/^[A-Za-z][A-Za-z0-9_/]*$/.test(f))) {
      throw new ValidationError("Exact listings need an explicit $select of field names (never *)", { code: "invalid_input" });
    }
    const { url, div, endpoint } = await this.url(path, division);
    const first = `${url}${odataQuery([["$select", q.select.join(",")], ["$filter", q.filter], ["$orderby", q.orderby], ["$top", q.top ? String(q.top) : undefined]])}`;
    const origin = new URL(this.baseUrl).origin;
    let n = 0;
    for await (const row of nextLinkPages(first, (u) => {
      if (new URL(u).origin !== origin) throw new ErpError("Exact __next link points at another host; not following it", { code: "foreign_next_link" });
      return this.json(u, endpoint, div, `GET ${endpoint}`);
    })) {
      yield row as Record<string, unknown>;
      if (q.top && ++n >= q.top) return;
    }
  }

  /**
   * The record a webhook names (`ExactOnlineEndpoint`): only URLs on this client's host under `/api/v1/{division}/`.
   * @returns undefined after a delete (404)
   * @throws ValidationError `foreign_endpoint` for any other URL (the token is never sent elsewhere); as {@link get}
   */
  async getByEndpoint(endpointUrl: string, select?: string[]): Promise<Record<string, unknown> | undefined> {
    let u: URL;
    try {
      u = new URL(endpointUrl);
    } catch {
      throw new ValidationError("Exact webhook endpoint is not a URL", { code: "foreign_endpoint" });
    }
    const m = /^\/api\/v1\/(\d+)\/([A-Za-z]+\/[A-Za-z]+)\(guid'([0-9a-fA-F-]{36})'\)$/.exec(decodeURIComponent(u.pathname));
    if (u.origin !== new URL(this.baseUrl).origin || !m) throw new ValidationError("Exact webhook endpoint is not a record on this connection's host", { code: "foreign_endpoint" });
    return this.get(m[2], m[3], select, Number(m[1]));
  }

  /** This app's webhook subscriptions in the division. @throws as {@link list} */
  async subscriptions(division?: number): Promise<ExactSubscription[]> {
    const out: ExactSubscription[] = [];
    for await (const r of this.list("webhooks/WebhookSubscriptions", { select: ["ID", "CallbackURL", "Topic"] }, division)) out.push(r as unknown as ExactSubscription);
    return out;
  }

  /**
   * Make sure `topic` is delivered to `callbackUrl`: list first and POST only when missing (Exact has no update; a
   * duplicate is an error). The callback must already answer Exact's empty validation POST with 2xx.
   * @returns the existing or created subscription
   * @throws ErpError with Exact's text (e.g. "Invalid: Post to callback URL endpoint returns 500"); as {@link send}
   */
  async subscribe(topic: string, callbackUrl: string, division?: number): Promise<ExactSubscription> {
    const find = async () => (await this.subscriptions(division)).find((s) => s.Topic === topic && s.CallbackURL === callbackUrl);
    const existing = await find();
    if (existing) return existing;
    const { url, div, endpoint } = await this.url("webhooks/WebhookSubscriptions", division);
    const res = await this.send("POST", url, endpoint, div, { CallbackURL: callbackUrl, Topic: topic });
    if (res.status === 201 || res.status === 200) {
      const d = (JSON.parse(res.body || "{}") as { d?: ExactSubscription }).d;
      if (d?.ID) return d;
      const made = await find();
      if (made) return made;
    }
    if (res.status === 500 && /already exists/i.test(exactErrorText(res.body) ?? "")) {
      const made = await find();
      if (made) return made;
    }
    throw exactApiError(res, `POST ${endpoint} (${topic})`);
  }

  /** Delete one subscription; true when deleted, false when it was already gone (404). @throws as {@link send} */
  async unsubscribe(id: string, division?: number): Promise<boolean> {
    if (!isGuid(id)) throw new ValidationError("Exact subscription id must be a GUID", { code: "invalid_input" });
    const { url, div, endpoint } = await this.url("webhooks/WebhookSubscriptions", division);
    const res = await this.send("DELETE", `${url}${guidKey(id)}`, endpoint, div);
    if (res.status === 404) return false;
    if (res.status >= 300) throw exactApiError(res, `DELETE ${endpoint}`, id);
    return true;
  }

  /** What Exact's own counters still allow for the division, e.g. `{ minutely: 58, daily: 4766 }` (after a call). */
  rateRemaining(division?: number): Record<string, number> {
    return this.budget.remaining(String(division ?? this.division ?? "me"));
  }

  /** Stop: no more sign-ins, queued requests rejected, pool closed. Never rejects. */
  async close(): Promise<void> {
    this.auth.close();
    this.budget.close();
    await this.auth.pending?.catch(() => undefined);
    await this.http.close().catch(() => undefined);
  }
}
