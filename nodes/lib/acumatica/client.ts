/**
 * Acumatica contract-based REST API client, owned by one `mlc-acumatica-config` node.
 *
 * - Sign-in: OAuth 2.0 resource-owner password grant + refresh grant on `POST {instance}/identity/connect/token`
 *   (preferred), or the legacy cookie session `POST /entity/auth/login` … `POST /entity/auth/logout`.
 *   One sign-in at a time (single-flight): concurrent callers await the same promise. Tokens are refreshed ~60 s
 *   before `expires_in`; on an unexpected 401 the client refreshes / signs in once and replays the request once.
 * - Every entity URL pins the endpoint: `{instance}/entity/{EndpointName}/{EndpointVersion}/{Entity}`.
 * - Transport is the package's {@link HttpClient} (keep-alive pool, timeouts, safe retries); every entity call goes
 *   through the kit's {@link Budget} (nodes/lib/budget): at most `maxConcurrent` calls in flight per connection, and a
 *   429 (licence "Max concurrent API requests" / "Max API requests per minute", reference §2.3; no `Retry-After`) is
 *   re-queued with full-jitter exponential backoff and the concurrency halved, not dropped after a few quick tries.
 *   Apart from that and the one replay after re-authentication, this module never retries on its own.
 * - Error text never contains tokens, cookies, passwords, request bodies, vendor stack traces or server paths.
 *
 * Acumatica documents followed (MYOB Acumatica Integration Development Guide, `https://help.myob.com.au/advanced/Docs/
 * Published/IntegrationDevelopmentGuide/<page>`): `OAuthOIDC_ResourceOwner_AccessToken.html`,
 * `OAuthOIDC_GettingStarted_RefreshToken.html`, `OAuthOIDC_GettingStarted_SignOut.html`,
 * `OAuthOIDC_Registration_SlidingExpiration.html`, `IntegrationDev_RESTExample_Basic_Login.html`,
 * `IntegrationDev_RESTExample_Basic_Logout.html`, `IntegrationDev_RESTExample_Parameter_filter.html`,
 * `…_Parameter_expand.html`, `…_Parameter_custom.html`, `IS__con_License_Restrictions_API_Users.html`;
 * official C# client `Acumatica/AcumaticaRESTAPIClientForCSharp` (`AuthApi.cs`, `ApiClient.cs`,
 * `ApiClientExtensions.cs` for `If-Match`/`If-None-Match`).
 */
import { AuthError, ErpError, RateLimitedError, ValidationError } from "../errors";
import { HttpClient, HttpClientOptions, HttpMethod, HttpResponse } from "../http";
import { PasswordGrantSource, type SharedGrant } from "../auth/oauth";
import type { SharedSecret } from "../auth/shared-secret";
import { AuthManager } from "../auth/renewal";
import { topSkipPages } from "../poll/pages";
import { CookieSessionSource } from "../auth/session";
import { AuthSource, AuthState } from "../auth/source";
import { closeWithin } from "../auth/close";
import { Budget, isRefusal } from "../budget";
import { parseRetryAfter } from "../retry";
import { AcumaticaTarget, FailContext, checkCookieLogin, describeHttpError, failError, hasPathLikeText, safeText, tokenError } from "./answers";
import { PlainRecord, unwrapValues, wrapValues } from "./values";

/** Default web-service endpoint name (Web Service Endpoints, SM207060). */
export const DEFAULT_ENDPOINT_NAME = "Default";
/** The error every call throws once the client is closed. */
function closedError(): ErpError {
  return new ErpError("Acumatica client is closed (its config node was stopped or redeployed)", { code: "client_closed" });
}

/** Default endpoint version pinned in every URL. */
export const DEFAULT_ENDPOINT_VERSION = "24.200.001";
/** Default OAuth scope: `api` for the REST API, `offline_access` for a refresh token (one server session per grant). */
export const DEFAULT_OAUTH_SCOPE = "api offline_access";
/** How long before the access token's expiry it is refreshed, ms (reference §8: ~60 s). */
export const DEFAULT_REFRESH_SKEW_MS = 60_000;
/** How long a refused sign-in is remembered before signing in again, ms (5 min). */
export const DEFAULT_AUTH_COOLDOWN_MS = 300_000;
/** Upper bound of {@link AcumaticaClient.close}, ms: below Node-RED's 15 s close timeout. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
/** Entity calls in flight at once per connection (the licence may cap concurrent API requests, reference §2.3). */
export const DEFAULT_MAX_CONCURRENT = 5;
/** How long an entity call refused with 429 keeps being re-queued before RateLimitedError reaches the caller, ms. */
export const DEFAULT_MAX_REQUEUE_MS = 300_000;
/** How many times {@link AcumaticaClient.listAll} restarts a listing whose rows moved between pages. */
export const LIST_ALL_MAX_PASSES = 5;

/**
 * Key fields per entity of the Default endpoint, in URL key order (`GET /Bill/{Type}/{ReferenceNbr}`), from the
 * Default/24.200.001 OpenAPI schemas (reference §5). Entities not listed are addressed by their `id` GUID.
 */
export const ENTITY_KEY_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Bill: ["Type", "ReferenceNbr"],
  Check: ["Type", "ReferenceNbr"],
  Payment: ["Type", "ReferenceNbr"],
  Invoice: ["Type", "ReferenceNbr"],
  SalesInvoice: ["Type", "ReferenceNbr"],
  Vendor: ["VendorID"],
  Customer: ["CustomerID"],
  Employee: ["EmployeeID"],
};

/**
 * OAuth 2.0 resource-owner password credentials (MYOB-IDG `OAuthOIDC_ResourceOwner_AccessToken.html`).
 * `clientId` is the full `<generated ID>@<Tenant>` string from Connected Applications (SM303010).
 */
export interface AcumaticaOAuthAuth {
  mode: "oauth";
  /** Full client ID, e.g. `3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd`. A bare ID is rejected. */
  clientId: string;
  clientSecret: string;
  username: string;
  password: string;
  /** Space-separated scopes; default `"api offline_access"`. */
  scope?: string;
}

/** Legacy cookie session (MYOB-IDG `IntegrationDev_RESTExample_Basic_Login.html`). */
export interface AcumaticaCookieAuth {
  mode: "cookie";
  username: string;
  password: string;
  /** Branch ID to sign in to (optional). */
  branch?: string;
  /** Locale, e.g. "en-US" (optional). */
  locale?: string;
}

/** How the client signs in: `mode: "oauth"` (preferred, reference §8.1) or `mode: "cookie"` (legacy session). */
export type AcumaticaAuth = AcumaticaOAuthAuth | AcumaticaCookieAuth;

/** Options of {@link AcumaticaClient}. */
export interface AcumaticaClientOptions {
  /** Instance URL, e.g. `https://acme.acumatica.com` or `https://host/MyInstance` (virtual directory kept). */
  instanceUrl: string;
  /** Tenant login name (SM203520); sent as `tenant` on cookie sign-in. For OAuth the client ID's `@Tenant` applies. */
  tenant: string;
  /** Web-service endpoint name; default "Default". */
  endpointName?: string;
  /** Endpoint version `\d+.\d+.\d+`; default "24.200.001". */
  endpointVersion?: string;
  auth: AcumaticaAuth;
  /** Transport options (timeouts in ms, pool size, retry policy). */
  http?: HttpClientOptions;
  /**
   * Called with every refresh token the server returns (password grant and each refresh) and awaited before the new
   * access token is used, so the owner can persist it durably first (reference §8.3: the server rotates refresh
   * tokens; an unsaved one is lost with the process). Errors thrown or rejected by the callback are ignored.
   */
  onTokens?: (t: { refreshToken: string }) => unknown;
  /**
   * Called (and awaited, within the close bound) after {@link AcumaticaClient.close} ended the grant or session on
   * the server: a persisted refresh token is now useless and can be forgotten. Not called when the sign-out failed, so
   * a persisted token can still reuse the grant after a restart. Errors are ignored.
   */
  onSignedOut?: () => void | Promise<void>;
  /**
   * A refresh token saved by an earlier process (see `onTokens`): the first sign-in tries the refresh grant with it,
   * reusing that grant's server session, and falls back to the password grant when it is refused (`invalid_grant`).
   */
  refreshToken?: string;
  /** The OAuth grant shared by several instances on one Redis (lib/auth/oauth.ts): one grant, signed out by the last. */
  sharedGrant?: SharedSecret<SharedGrant>;
  /**
   * How long a refused sign-in (AuthError: wrong password, client or scope; ErpError `api_login_limit`) is remembered,
   * ms; default 300000. Meanwhile every call fails at once with {@link AuthCooldownError} instead of signing in again
   * (each attempt counts towards the tenant's lockout threshold and the licence). 0 disables.
   */
  authCooldownMs?: number;
  /** Called when a refused sign-in starts a cool-down (`blocked: true`) and when a later sign-in succeeds (`blocked: false`). */
  onAuthState?: (s: AuthState) => void;
  /** Upper bound of {@link AcumaticaClient.close} (sign-out included), ms; default 10000 (Node-RED allows 15 s). */
  closeTimeoutMs?: number;
  /** Refresh the access token this long before it expires, ms; default 60000 (capped at half the token lifetime). */
  refreshSkewMs?: number;
  /**
   * Entity calls in flight at once, default 5 (halved after a 429, grown back by successes). A 429 is re-queued for up
   * to `maxRequeueMs` (default 300000) with full-jitter backoff before RateLimitedError reaches the caller.
   */
  budget?: { maxConcurrent?: number; maxRequeueMs?: number };
  /** Clock in ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
}

/** Sign-in state reported through `onAuthState` (nodes/lib/auth/source.ts). */
export type { AuthState } from "../auth/source";
/** Thrown by every call while sign-in is paused after a refusal (nodes/lib/auth/source.ts). */
export { AuthCooldownError } from "../auth/source";

/** Query options shared by reads and writes (reference §4). Lists may be given as arrays or comma-separated text. */
export interface QueryShapeOptions {
  /** `$select`, e.g. `["ReferenceNbr", "MainContact/Phone1"]`. */
  select?: string | string[];
  /** `$expand`, e.g. `"MainContact"` (linked/detail entities are not returned without it). */
  expand?: string | string[];
  /** `$custom`, e.g. `"Document.UsrField"`. */
  custom?: string | string[];
}

/** Options of {@link AcumaticaClient.list}. */
export interface ListOptions extends QueryShapeOptions {
  /** OData `$filter` text (values are URL-encoded by the client; build date literals with {@link datetimeOffsetLiteral}). */
  filter?: string;
  /** `$top`: maximum rows (for {@link AcumaticaClient.listAll}: maximum rows over all pages). */
  top?: number;
  /** `$skip`: rows to skip (for {@link AcumaticaClient.listAll}: starting offset). */
  skip?: number;
}

/** Options of {@link AcumaticaClient.get}. */
export type GetOptions = QueryShapeOptions;

/** Options of {@link AcumaticaClient.put}. */
export interface PutOptions extends QueryShapeOptions {
  /** "upsert" (default, no precondition), "insert" (`If-None-Match: *`), "update" (`If-Match: *`). */
  mode?: "upsert" | "insert" | "update";
}

/** Result of {@link AcumaticaClient.testConnection}. */
export interface ConnectionTestResult {
  ok: true;
  /** Endpoint name used. */
  endpoint: string;
  /** Endpoint version used. */
  version: string;
}

/** Diagnostic snapshot of the client's sign-in state (no secrets: cookie names only, never values). */
export interface AcumaticaSessionInfo {
  mode: "oauth" | "cookie";
  signedIn: boolean;
  /** Names of the cookies held (cookie mode). */
  cookieNames: string[];
  /** Access-token expiry, ms since the epoch (OAuth). */
  accessTokenExpiresAt?: number;
  hasRefreshToken: boolean;
  closed: boolean;
}

const ENDPOINT_VERSION_RE = /^\d+\.\d+\.\d+$/;
const ENDPOINT_NAME_RE = /^[A-Za-z0-9_.-]+$/;
const ENTITY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CLIENT_ID_RE = /^[^@\s]+@[^@\s]+$/;

// ---------------------------------------------------------------------------------------------------------------------
// OData date-time literal
// ---------------------------------------------------------------------------------------------------------------------

const ISO_IN_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Build an OData `datetimeoffset'…'` literal in Acumatica's format `yyyy-MM-ddTHH:mm:ss.fffK`
 * (MYOB-IDG `IntegrationDev_RESTExample_Parameter_filter.html`), e.g.
 * `datetimeOffsetLiteral("2025-03-10T14:22:31.117Z")` → `datetimeoffset'2025-03-10T14:22:31.117+00:00'`.
 *
 * The wall-clock time and the offset of the input are kept (`…+02:00` stays `+02:00`); `Z` becomes `+00:00`;
 * fractions beyond ms are truncated. A date alone means midnight UTC. The literal is returned unencoded: the client
 * URL-encodes the whole `$filter` (`+` → `%2B`, `:` → `%3A`).
 * @param iso ISO 8601 date or date-time with offset
 * @throws ValidationError when the text is not a valid ISO date-time, or a date-time has no offset (ambiguous:
 *   Acumatica would read it in the instance time zone)
 */
export function datetimeOffsetLiteral(iso: string): string {
  const m = typeof iso === "string" ? ISO_IN_RE.exec(iso.trim()) : null;
  if (!m) throw new ValidationError(`Not an ISO 8601 date-time: ${JSON.stringify(String(iso)).slice(0, 60)}`);
  const [, y, mo, d, h, mi, s = "00", frac = "", off] = m;
  if (h !== undefined && off === undefined) {
    throw new ValidationError(`Date-time ${iso} has no UTC offset; add "Z" or "+hh:mm" (Acumatica would otherwise read it in the instance time zone)`);
  }
  const hh = h ?? "00";
  const mm = mi ?? "00";
  const probe = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(hh), Number(mm), Number(s)));
  if (
    probe.getUTCFullYear() !== Number(y) ||
    probe.getUTCMonth() !== Number(mo) - 1 ||
    probe.getUTCDate() !== Number(d) ||
    probe.getUTCHours() !== Number(hh) ||
    probe.getUTCMinutes() !== Number(mm) ||
    probe.getUTCSeconds() !== Number(s)
  ) {
    throw new ValidationError(`Not a valid date-time: ${iso}`);
  }
  let offset = "+00:00";
  if (off && off.toUpperCase() !== "Z") {
    const digits = off.slice(1).replace(":", "");
    const oh = digits.slice(0, 2);
    const om = digits.slice(2, 4) || "00";
    if (Number(oh) > 14 || Number(om) > 59) throw new ValidationError(`Not a valid UTC offset: ${off}`);
    offset = `${off[0]}${oh}:${om}`;
  }
  const fff = (frac + "000").slice(0, 3);
  return `datetimeoffset'${y}-${mo}-${d}T${hh}:${mm}:${s}.${fff}${offset}'`;
}

// ---------------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------------

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function joinList(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  const s = (Array.isArray(v) ? v : [v])
    .map((x) => String(x).trim())
    .filter(Boolean)
    .join(",");
  return s || undefined;
}

/** `?$k=v&…` with every value percent-encoded (`+` → `%2B`, `:` → `%3A`, space → `%20`). */
function queryString(params: [string, string | undefined][]): string {
  const parts = params.filter((p): p is [string, string] => p[1] !== undefined && p[1] !== "").map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

function nonNegInt(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 0 || v > 2_147_483_647) throw new ValidationError(`${name} must be a non-negative integer, got ${String(v)}`);
  return v;
}

function keyText(v: unknown): string | undefined {
  if (typeof v === "string" && v.trim() !== "") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** What identifies a row of a listing: its session `id` GUID, else the whole row (canonical JSON). */
function rowIdentity(r: PlainRecord): string {
  if (typeof r.id === "string" && r.id) return `id:${r.id}`;
  const canon = (v: unknown): string =>
    Array.isArray(v)
      ? `[${v.map(canon).join(",")}]`
      : isObj(v)
        ? `{${Object.keys(v)
            .sort()
            .map((k) => `${JSON.stringify(k)}:${canon(v[k])}`)
            .join(",")}}`
        : (JSON.stringify(v) ?? "null");
  return `row:${canon(r)}`;
}

/** Record key `Type/ReferenceNbr` (or `id`) of a plain record, when it has one; used as `recordId` in errors. */
export function recordKeyOf(entity: string, record: PlainRecord | undefined): string | undefined {
  if (!record) return undefined;
  const fields = ENTITY_KEY_FIELDS[entity];
  if (fields) {
    const vals = fields.map((f) => keyText(record[f]));
    if (vals.every((v) => v !== undefined)) return vals.join("/");
  }
  return keyText(record.id);
}

interface CallSpec {
  method: HttpMethod;
  url: string;
  body?: string;
  headers?: Record<string, string>;
  idempotent?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------------
// the client
// ---------------------------------------------------------------------------------------------------------------------

/**
 * One Acumatica connection (one sign-in: token grant or cookie session) shared by every node that uses the same
 * config node. Create once, call {@link close} when the config node closes (always signs out).
 *
 * Thread-safety: any number of concurrent calls; sign-in, refresh and re-login happen once for all of them.
 */
export class AcumaticaClient {
  /** Endpoint name in every URL. */
  readonly endpointName: string;
  /** Endpoint version in every URL. */
  readonly endpointVersion: string;
  /** Tenant the client signs in to. */
  readonly tenant: string;
  /** Instance URL without trailing slash (virtual directory kept). */
  readonly instanceUrl: string;

  private readonly auth: AcumaticaAuth;
  private readonly http: HttpClient;
  /** Concurrency cap and 429 re-queue of entity calls (sign-in and sign-out requests bypass it). */
  private readonly budget: Budget;
  private readonly onSignedOut?: () => void | Promise<void>;
  private readonly closeTimeoutMs: number;
  private readonly now: () => number;
  private readonly entityBase: string;
  /** Single-flight renewal over the OAuth grant or the cookie session (nodes/lib/auth). */
  private readonly authMgr: AuthManager;
  private readonly oauth?: PasswordGrantSource;
  private readonly session?: CookieSessionSource;
  private closed = false;
  private closing?: Promise<void>;

  /**
   * @throws ValidationError when the instance URL does not parse (http/https only), the endpoint name/version are
   *   malformed (version must match `\d+.\d+.\d+`), credentials are missing, or the OAuth client ID is not the full
   *   `<generated ID>@<Tenant>` form (MYOB-IDG `OAuthOIDC_ResourceOwner_AccessToken.html`).
   */
  constructor(opts: AcumaticaClientOptions) {
    if (!opts || typeof opts !== "object") throw new ValidationError("Acumatica client options are required");
    let url: URL;
    try {
      url = new URL(String(opts.instanceUrl ?? "").trim());
    } catch {
      throw new ValidationError("Acumatica instance URL is not a valid URL (expected e.g. https://acme.acumatica.com or https://host/InstanceName)");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new ValidationError("Acumatica instance URL must start with https:// (or http://)");
    if (url.username || url.password) throw new ValidationError("Acumatica instance URL must not contain user credentials");
    if (url.search || url.hash) throw new ValidationError("Acumatica instance URL must not contain a query string or fragment");
    this.instanceUrl = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;

    this.endpointName = (opts.endpointName ?? "").trim() || DEFAULT_ENDPOINT_NAME;
    this.endpointVersion = (opts.endpointVersion ?? "").trim() || DEFAULT_ENDPOINT_VERSION;
    if (!ENDPOINT_NAME_RE.test(this.endpointName)) throw new ValidationError(`Acumatica endpoint name "${this.endpointName}" may contain only letters, digits, "_", "-" and "."`);
    if (!ENDPOINT_VERSION_RE.test(this.endpointVersion)) {
      throw new ValidationError(`Acumatica endpoint version "${this.endpointVersion}" must look like 24.200.001 (see Web Service Endpoints, SM207060)`);
    }

    const auth = opts.auth;
    if (!auth || (auth.mode !== "oauth" && auth.mode !== "cookie")) throw new ValidationError('Acumatica auth.mode must be "oauth" or "cookie"');
    if (!auth.username || !auth.password) throw new ValidationError("Acumatica user name and password are required");
    if (auth.mode === "oauth") {
      const clientId = String(auth.clientId ?? "").trim();
      if (!CLIENT_ID_RE.test(clientId)) {
        throw new ValidationError(
          "Acumatica OAuth client ID must be the full form <generated ID>@<Tenant> exactly as shown on Connected Applications (SM303010), " +
            "e.g. 3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd; a bare ID is not a valid client ID",
        );
      }
      if (!auth.clientSecret) throw new ValidationError("Acumatica OAuth client secret is required");
      this.auth = { ...auth, clientId, scope: (auth.scope ?? "").trim() || DEFAULT_OAUTH_SCOPE };
      this.tenant = String(opts.tenant ?? "").trim() || clientId.slice(clientId.indexOf("@") + 1);
    } else {
      this.auth = { ...auth };
      this.tenant = String(opts.tenant ?? "").trim();
      if (!this.tenant) throw new ValidationError("Acumatica tenant (login name of the tenant, SM203520) is required for cookie sign-in");
    }

    this.entityBase = `${this.instanceUrl}/entity/${encodeURIComponent(this.endpointName)}/${this.endpointVersion}`;
    this.onSignedOut = opts.onSignedOut;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
    this.http = new HttpClient(opts.http);
    this.budget = new Budget({
      maxConcurrent: opts.budget?.maxConcurrent ?? DEFAULT_MAX_CONCURRENT,
      maxRequeueMs: opts.budget?.maxRequeueMs ?? DEFAULT_MAX_REQUEUE_MS,
      closedMessage: "Acumatica client is closed (its config node was stopped or redeployed)",
    });
    if (this.auth.mode === "oauth") this.oauth = this.oauthSource(this.auth, opts);
    else this.session = this.cookieSource(this.auth);
    this.authMgr = new AuthManager((this.oauth ?? this.session) as AuthSource, {
      cooldownMs: opts.authCooldownMs ?? DEFAULT_AUTH_COOLDOWN_MS,
      isRefusal: (err) => err instanceof AuthError || (err instanceof ErpError && err.code === "api_login_limit"),
      onState: opts.onAuthState,
      closedError: closedError,
      now: this.now,
    });
  }

  // ------------------------------------------------------------------------------------------------------------- reads

  /**
   * `GET /{Entity}?$filter&$select&$expand&$custom&$top&$skip` → unwrapped records (reference §4; the API answers a
   * bare JSON array, no envelope, no next link).
   * @param entity entity name of the endpoint, e.g. "Bill"
   * @throws ValidationError bad entity name / top / skip; ErpError `endpoint_mismatch`, `unknown_entity`,
   *   `bad_request` (e.g. a bad `$filter`); AuthError; RateLimitedError (429 after retries); HttpError (5xx);
   *   TimeoutError
   */
  async list(entity: string, opts: ListOptions = {}): Promise<PlainRecord[]> {
    this.checkEntity(entity);
    const url = `${this.entityBase}/${entity}${queryString([
      ["$filter", opts.filter?.trim() || undefined],
      ["$select", joinList(opts.select)],
      ["$expand", joinList(opts.expand)],
      ["$custom", joinList(opts.custom)],
      ["$skip", nonNegInt("skip", opts.skip)?.toString()],
      ["$top", nonNegInt("top", opts.top)?.toString()],
    ])}`;
    const ctx: FailContext = { op: `list ${entity}`, entity, idempotent: true };
    const res = await this.call({ method: "GET", url }, ctx);
    if (res.status !== 200) throw failError(this.target(), res, ctx);
    const data = parseJson(res.body);
    if (!Array.isArray(data)) throw new ErpError(`Acumatica answered list ${entity} with something other than a JSON array`, { code: "unexpected_response", status: res.status });
    return data.map((r) => unwrapValues(r));
  }

  /**
   * Every record matching `opts`, page by page (`$top`/`$skip`; there is no next link, reference §4) until a page
   * comes back shorter than asked. Records are yielded one at a time.
   *
   * Rows that move between pages are caught: every page after the first re-reads the last row of the page before
   * (`$skip` one lower, `$top` one higher) and checks that it is still there. When records leave or join the result
   * while it is being paged (a record modified past the filter's upper bound, a late commit), that row is elsewhere
   * and the listing starts again from the first page, so no row is skipped; records already yielded (same `id` and
   * `LastModifiedDateTime`) are not yielded again. After {@link LIST_ALL_MAX_PASSES} passes that all moved, it gives up.
   * Ordering across pages is not documented by Acumatica: incremental reads still dedupe (see events.ts PollWindow).
   * @param opts `top` caps the total number of records, `skip` is the starting offset
   * @param pageSize new rows per request, 1…10000 (default 100)
   * @throws as {@link list}; ErpError `unstable_paging` (retryable) when the rows kept moving in every pass
   */
  async *listAll(entity: string, opts: ListOptions = {}, pageSize = 100): AsyncGenerator<PlainRecord, void, undefined> {
    yield* topSkipPages((top, skip) => this.list(entity, { ...opts, top, skip }), {
      pageSize,
      skip: nonNegInt("skip", opts.skip),
      cap: nonNegInt("top", opts.top),
      identity: rowIdentity,
      versionKey: (r) => `${rowIdentity(r)}|${keyText(r.LastModifiedDateTime) ?? ""}`,
      maxPasses: LIST_ALL_MAX_PASSES,
      unstable: (pass) =>
        new ErpError(`Acumatica ${entity} rows kept moving between pages in ${pass} passes (records changing while they are listed); try again later`, {
          code: "unstable_paging",
          retryable: true,
        }),
    });
  }

  /**
   * `GET /{Entity}/{key1}/{key2}` (keys in key order) or `GET /{Entity}/{id}` (session GUID).
   * @param keysOrId an array of key values, or one string: a GUID, a single key, or keys joined by "/" (the
   *   `msg.erp.id` form, e.g. "Bill/000123"); each segment is percent-encoded
   * @returns the unwrapped record, or `null` when Acumatica answers 404 "not found"
   * @throws ValidationError empty keys; ErpError `endpoint_mismatch` / `unknown_entity` (a 404 that is not
   *   "record not found"), `bad_request` (wrong number of keys); AuthError; RateLimitedError; HttpError; TimeoutError
   */
  async get(entity: string, keysOrId: string | string[], opts: GetOptions = {}): Promise<PlainRecord | null> {
    this.checkEntity(entity);
    const segs = (Array.isArray(keysOrId) ? keysOrId.map((k) => String(k)) : String(keysOrId ?? "").split("/")).map((s) => s.trim());
    if (segs.length === 0 || segs.some((s) => s === "")) throw new ValidationError(`Acumatica ${entity} key is empty or has an empty part: ${JSON.stringify(keysOrId)}`);
    const url = `${this.entityBase}/${entity}/${segs.map(encodeURIComponent).join("/")}${queryString([
      ["$select", joinList(opts.select)],
      ["$expand", joinList(opts.expand)],
      ["$custom", joinList(opts.custom)],
    ])}`;
    const recordId = segs.join("/");
    const ctx: FailContext = { op: `get ${entity}`, entity, recordId, idempotent: true };
    const res = await this.call({ method: "GET", url }, ctx);
    if (res.status === 404) {
      const err = failError(this.target(), res, ctx);
      if (err.code === "not_found") return null;
      throw err;
    }
    if (res.status !== 200) throw failError(this.target(), res, ctx);
    const data = parseJson(res.body);
    if (!isObj(data)) throw new ErpError(`Acumatica answered get ${entity} with something other than an entity object`, { code: "unexpected_response", status: res.status, recordId });
    return unwrapValues(data);
  }

  // ------------------------------------------------------------------------------------------------------------ writes

  /**
   * `PUT /{Entity}` with the record wrapped into value objects ({@link wrapValues}: nested objects and arrays
   * recursively, `note` wrapped, `id` bare). `mode: "insert"` sends `If-None-Match: *`, `"update"` sends
   * `If-Match: *` (official C# client `ApiClientExtensions.ComposePutHeaders`).
   * An insert is sent as non-idempotent: if the connection breaks after sending, a TimeoutError with
   * `outcomeUnknown` is thrown rather than a blind repeat (which would answer 412).
   * @returns the record as saved, unwrapped
   * @throws ErpError `precondition_failed` (412), `validation_failed` (422: message lists the field-level and entity
   *   `error` texts; `recordId` = the record key), `endpoint_mismatch`, `bad_request`; AuthError; RateLimitedError;
   *   HttpError (5xx); TimeoutError
   */
  async put(entity: string, record: PlainRecord, opts: PutOptions = {}): Promise<PlainRecord> {
    this.checkEntity(entity);
    if (!isObj(record)) throw new ValidationError(`Acumatica ${entity} record must be an object`);
    const mode = opts.mode ?? "upsert";
    if (mode !== "upsert" && mode !== "insert" && mode !== "update") throw new ValidationError(`put mode must be upsert, insert or update, got ${String(mode)}`);
    const headers: Record<string, string> = {};
    if (mode === "insert") headers["If-None-Match"] = "*";
    if (mode === "update") headers["If-Match"] = "*";
    const url = `${this.entityBase}/${entity}${queryString([
      ["$select", joinList(opts.select)],
      ["$expand", joinList(opts.expand)],
      ["$custom", joinList(opts.custom)],
    ])}`;
    const recordId = recordKeyOf(entity, record);
    const ctx: FailContext = { op: `${mode} ${entity}`, entity, recordId, idempotent: mode !== "insert" };
    const res = await this.call({ method: "PUT", url, body: JSON.stringify(wrapValues(record)), headers, idempotent: mode !== "insert" }, ctx);
    if (res.status === 200 || res.status === 201) {
      const data = parseJson(res.body);
      return isObj(data) ? unwrapValues(data) : {};
    }
    if (res.status === 204) return {};
    if (res.status === 412) {
      const { text } = describeHttpError(res.body);
      const what =
        mode === "insert"
          ? `the ${entity} record already exists (insert only, If-None-Match: *)`
          : mode === "update"
            ? `the ${entity} record does not exist (update only, If-Match: *)`
            : `a precondition failed`;
      throw new ErpError(`Acumatica refused to ${mode} ${entity}${recordId ? ` ${recordId}` : ""}: ${what}${text ? ` — ${text}` : ""}`, {
        code: "precondition_failed",
        status: 412,
        recordId,
      });
    }
    if (res.status === 422) throw this.validationError(res, entity, mode, recordId);
    throw failError(this.target(), res, ctx);
  }

  // ------------------------------------------------------------------------------------------------------- connection

  /**
   * Harmless connectivity check: signs in (if needed) and reads `GET /Vendor?$top=1&$select=VendorID`.
   * @returns `{ ok: true, endpoint, version }`
   * @throws AuthError (credentials/client refused), ErpError `endpoint_mismatch` / `api_login_limit`,
   *   RateLimitedError, HttpError, TimeoutError — the same errors a real call would raise
   */
  async testConnection(): Promise<ConnectionTestResult> {
    await this.list("Vendor", { top: 1, select: "VendorID" });
    return { ok: true, endpoint: this.endpointName, version: this.endpointVersion };
  }

  /** The current sign-in pause after a refusal, if any: `{ blocked: true, until, error }`, else `{ blocked: false }`. */
  authState(): AuthState {
    return this.authMgr.state();
  }

  /** Diagnostic snapshot (no secret values). */
  sessionInfo(): AcumaticaSessionInfo {
    const info: AcumaticaSessionInfo = {
      mode: this.auth.mode,
      signedIn: this.oauth ? this.oauth.hasAccessToken : (this.session?.isSignedIn ?? false),
      cookieNames: this.session ? this.session.jar.names() : [],
      hasRefreshToken: this.oauth?.hasRefreshToken ?? false,
      closed: this.closed,
    };
    if (this.oauth?.hasAccessToken) info.accessTokenExpiresAt = this.oauth.expiresAt;
    return info;
  }

  /**
   * Sign out and close the connection pool. Idempotent; never throws; resolves within `closeTimeoutMs` (default
   * 10 s, below Node-RED's 15 s close timeout): at the deadline the sign-out requests are aborted.
   * - cookie mode: `POST /entity/auth/logout` whenever a session (or any session cookie) is held
   *   (MYOB-IDG `IntegrationDev_RESTExample_Basic_Logout.html`: leaked sessions count against the licence and cannot
   *   be force-closed).
   * - OAuth: when a grant is held, `POST /entity/auth/logout` with the Bearer token ends the server session
   *   (MYOB-IDG `OAuthOIDC_GettingStarted_SignOut.html`: the licence counts API users); an expired access token is
   *   refreshed first when a refresh token exists. When the server confirmed the sign-out, `onSignedOut` is awaited
   *   (the persisted refresh token is useless now); when it did not, the persisted token is kept so that the next
   *   start can still reuse the grant.
   * Waits for a sign-in in progress (within the bound) before signing out; a sign-in still unanswered at the deadline
   * is abandoned (its session, if the server opened one, is left to expire). After close every call throws ErpError
   * `client_closed`, and nothing signs in again.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.authMgr.close();
    this.budget.close();
    this.closing = closeWithin(this.closeTimeoutMs, {
      pending: this.authMgr.pending,
      signOut: (signal) => this.signOutOnce(signal),
      forget: () => this.authMgr.source.clear(),
      release: () => this.http.close(),
    });
    return this.closing;
  }

  // ------------------------------------------------------------------------------------------------ request plumbing

  private checkEntity(entity: string): void {
    if (this.closed) throw closedError();
    if (typeof entity !== "string" || !ENTITY_RE.test(entity)) throw new ValidationError(`Not a valid Acumatica entity name: ${JSON.stringify(entity)}`);
  }

  /**
   * One entity call through the budget. The credential is read when the call gets its slot, after any sign-in in
   * progress, so a call that waited never carries a token or cookie renewed meanwhile. A 429 (or 503 with
   * `Retry-After`) goes back to the budget as RateLimitedError, which re-queues it; 502/503/504 of an idempotent call
   * are still retried by the HttpClient.
   */
  private async send(spec: CallSpec): Promise<HttpResponse> {
    const res = await this.budget.run(undefined, async () => {
      const pending = this.authMgr.pending;
      if (pending) await pending.catch(() => undefined);
      const headers: Record<string, string> = { Accept: "application/json", ...(spec.headers ?? {}), ...this.authMgr.headers(spec.url) };
      if (spec.body !== undefined) headers["Content-Type"] = "application/json";
      const r = await this.http.request({ method: spec.method, url: spec.url, headers, body: spec.body, idempotent: spec.idempotent, isFinal: isRefusal });
      if (isRefusal(r)) {
        this.session?.absorb(spec.url, r);
        const { text } = describeHttpError(r.body);
        throw new RateLimitedError(`Acumatica licence rate/concurrency limit hit (HTTP ${r.status}, not processed)${text ? `: ${text}` : ""}`, {
          status: r.status,
          retryAfterMs: parseRetryAfter(r.headers["retry-after"]),
        });
      }
      return r;
    });
    this.session?.absorb(spec.url, res);
    return res;
  }

  /** Authenticated call: sign in if needed, send, and on 401 renew once and replay once (nodes/lib/auth/renewal.ts). */
  private async call(spec: CallSpec, ctx: FailContext): Promise<HttpResponse> {
    const { res, replayed } = await this.authMgr.call(() => this.send(spec));
    // the caller maps a second 401; make the message say a renewal was already tried
    if (replayed && res.status === 401) ctx.op = `${ctx.op} (after signing in again)`;
    return res;
  }

  // ------------------------------------------------------------------------------------------------------------ OAuth

  /** The password + refresh grant on `POST {instance}/identity/connect/token` (MYOB-IDG `OAuthOIDC_*`). */
  private oauthSource(auth: AcumaticaOAuthAuth, opts: AcumaticaClientOptions): PasswordGrantSource {
    const onTokens = opts.onTokens;
    return new PasswordGrantSource({
      http: this.http,
      tokenUrl: `${this.instanceUrl}/identity/connect/token`,
      clientId: auth.clientId,
      clientSecret: auth.clientSecret,
      username: auth.username,
      password: auth.password,
      scope: auth.scope ?? DEFAULT_OAUTH_SCOPE,
      refreshToken: typeof opts.refreshToken === "string" && opts.refreshToken ? opts.refreshToken : undefined,
      // persisted before the new access token is used; a failure to persist is the owner's to report
      onRefreshToken: onTokens ? (refreshToken) => onTokens({ refreshToken }) : undefined,
      shared: opts.sharedGrant,
      refreshSkewMs: opts.refreshSkewMs ?? DEFAULT_REFRESH_SKEW_MS,
      mapError: (res, grant) => tokenError(this.target(), res, grant),
      now: this.now,
    });
  }

  // ----------------------------------------------------------------------------------------------------------- cookie

  /** The legacy cookie session `POST /entity/auth/login` … `POST /entity/auth/logout` (MYOB-IDG `…_Basic_Login.html`). */
  private cookieSource(auth: AcumaticaCookieAuth): CookieSessionSource {
    const payload: Record<string, string> = { name: auth.username, password: auth.password, tenant: this.tenant };
    if (auth.branch) payload.branch = auth.branch;
    if (auth.locale) payload.locale = auth.locale;
    const loginUrl = `${this.instanceUrl}/entity/auth/login`;
    const logoutUrl = `${this.instanceUrl}/entity/auth/logout`;
    return new CookieSessionSource({
      loginUrl,
      login: () =>
        this.http.request({ method: "POST", url: loginUrl, headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(payload), idempotent: false }),
      checkLogin: (res) => checkCookieLogin(this.target(), res),
      logoutUrl,
      logout: (cookie, signal) =>
        this.http.request({ method: "POST", url: logoutUrl, headers: { Accept: "application/json", Cookie: cookie }, idempotent: true, timeoutMs: this.closeTimeoutMs, signal }),
      now: this.now,
    });
  }

  /** What error messages name (answers.ts). */
  private target(): AcumaticaTarget {
    return { instanceUrl: this.instanceUrl, endpointName: this.endpointName, endpointVersion: this.endpointVersion, tenant: this.tenant, mode: this.auth.mode };
  }

  /**
   * Close's sign-out. With a grant shared by several instances (one Redis), only the last holder signs out (with the
   * newest shared tokens); Redis unreachable: no sign-out (it could end the grant the others use; it expires).
   */
  private async signOutOnce(signal: AbortSignal): Promise<void> {
    const own = async (): Promise<void> => {
      if (await this.signOut(signal)) await this.onSignedOut?.();
    };
    const shared = this.oauth?.shared;
    if (!shared) return own();
    try {
      await shared.leave(async () => {
        const latest = await shared.read();
        if (latest) this.oauth?.adopt(latest);
        await own();
      });
    } catch (err) {
      if ((err as { code?: unknown })?.code !== "store_unavailable") throw err;
    }
  }

  /** Ends the session or grant on the server; true when the server confirmed it (2xx). */
  private async signOut(signal: AbortSignal): Promise<boolean> {
    if (this.session) return this.session.signOut(signal);
    const oauth = this.oauth;
    if (!oauth || (!oauth.hasAccessToken && !oauth.hasRefreshToken)) return false;
    if (oauth.expired(this.now())) {
      if (!oauth.hasRefreshToken) return false;
      await oauth.refresh(signal);
    }
    const res = await this.http.request({
      method: "POST",
      url: `${this.instanceUrl}/entity/auth/logout`,
      headers: { Accept: "application/json", ...oauth.headers() },
      idempotent: true,
      timeoutMs: this.closeTimeoutMs,
      signal,
    });
    return res.status >= 200 && res.status < 300;
  }
  // ------------------------------------------------------------------------------------------------------- errors

  /** 422: the body is the entity with `error` on offending field objects and an entity-level `error` (reference §6). */
  private validationError(res: HttpResponse, entity: string, mode: string, requestKey: string | undefined): ErpError {
    const parsed = parseJson(res.body);
    const fieldErrors: string[] = [];
    let entityError: string | undefined;
    const walk = (node: unknown, path: string): void => {
      if (Array.isArray(node)) {
        node.forEach((row, i) => walk(row, `${path}[${i}]`));
        return;
      }
      if (!isObj(node)) return;
      for (const [k, v] of Object.entries(node)) {
        if (k === "_links" || k === "custom") continue;
        if (k === "error" && typeof v === "string") {
          if (path === "") entityError = safeText(v, 600);
          else if (!hasPathLikeText(v)) fieldErrors.push(`${path}: ${safeText(v, 200)}`);
          continue;
        }
        if (isObj(v) && typeof v.error === "string" && !("id" in v)) {
          if (!hasPathLikeText(v.error)) fieldErrors.push(`${path ? `${path}.` : ""}${k}: ${safeText(v.error, 200)}`);
          continue;
        }
        walk(v, path ? `${path}.${k}` : k);
      }
    };
    walk(parsed, "");
    if (entityError && hasPathLikeText(entityError)) entityError = undefined;
    if (!entityError && !fieldErrors.length) entityError = describeHttpError(res.body).text;
    const fieldsNotInEntityError = fieldErrors.filter((f) => !entityError || !entityError.includes(f.slice(f.indexOf(": ") + 2)));
    const parts = [...fieldsNotInEntityError, ...(entityError ? [entityError] : [])];
    const recordId = requestKey ?? (isObj(parsed) ? recordKeyOf(entity, unwrapValues(parsed)) : undefined);
    return new ErpError(`Acumatica rejected ${mode} of ${entity}${recordId ? ` ${recordId}` : ""} (HTTP 422): ${parts.join(" | ") || "validation failed"}`, {
      code: "validation_failed",
      status: 422,
      recordId,
    });
  }
}
