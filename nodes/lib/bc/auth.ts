/**
 * Business Central sign-in: OAuth 2.0 client credentials against Microsoft Entra ID through Microsoft's own
 * `@azure/msal-node` (`ConfidentialClientApplication.acquireTokenByClientCredential`), as an {@link AuthSource} of the
 * family kit, so the kit's single-flight renewal, 401 replay and refusal cool-down (nodes/lib/auth/renewal.ts) apply.
 *
 * Vendor documents (reference business-central.md §1): Entra `v2-oauth2-client-creds-grant-flow.md` (form body
 * `grant_type=client_credentials`, `scope=https://api.businesscentral.dynamics.com/.default`, secret or certificate
 * assertion), `access-tokens.md` (lifetime 60–90 min: `expires_in` is read, never 3600 assumed; no refresh token),
 * BCDOCS `automation-apis-using-s2s-authentication.md`.
 *
 * MSAL's network calls go through the owner's {@link HttpClient} (its pool, timeouts and per-client TLS), and the
 * authority's OpenID metadata is given to MSAL from the authority host and tenant, so signing in costs exactly one
 * token request (no instance discovery, no metadata fetch) on the public cloud and on national clouds
 * (`https://login.microsoftonline.us`, `https://login.chinacloudapi.cn`) alike.
 */
import { ConfidentialClientApplication, type Configuration, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from "@azure/msal-node";
import { AuthError, HttpError, MlcError, RateLimitedError, ValidationError } from "../errors";
import { HttpClient } from "../http";
import { parseRetryAfter } from "../retry";
import { AuthSource } from "../auth/source";

/** Entra ID authority host of the public cloud. */
export const ENTRA_PUBLIC_HOST = "https://login.microsoftonline.com";
/** The one scope Business Central's API accepts for this flow (reference §1 "Scope"). */
export const BC_SCOPE = "https://api.businesscentral.dynamics.com/.default";
/** Renew this long before `expires_in` ends, ms (capped at half the lifetime). */
export const BC_REFRESH_SKEW_MS = 300_000;

/** A certificate credential (Entra "certificate credentials"): the PEM private key and the certificate's SHA-256 thumbprint (hex). */
export interface EntraCertificate {
  thumbprintSha256: string;
  privateKey: string;
  /** PEM certificate chain to send as `x5c` (subject name/issuer authentication); optional. */
  x5c?: string;
}

/** Options of {@link EntraTokenSource}. */
export interface EntraTokenOptions {
  /** The owner's HTTP client; MSAL's requests go through it. */
  http: HttpClient;
  /** Tenant GUID or domain (`contoso.onmicrosoft.com`); never `common`/`organizations`. */
  tenant: string;
  clientId: string;
  /** Client secret; give this or `certificate`. */
  clientSecret?: string;
  certificate?: EntraCertificate;
  /** Authority host, https origin; default {@link ENTRA_PUBLIC_HOST}. */
  authorityHost?: string;
  /** Scope; default {@link BC_SCOPE}. */
  scope?: string;
  /** Renew this long before expiry, ms; default {@link BC_REFRESH_SKEW_MS}, capped at half the lifetime. */
  refreshSkewMs?: number;
  /** Clock, ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
}

const TENANT_RE = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9][a-z0-9.-]*\.[a-z]{2,})$/i;

/**
 * Check a tenant id. @throws ValidationError `bad_config` for `common`, `organizations`, `consumers` or anything that
 * is neither a GUID nor a domain name
 */
export function checkTenant(tenant: string): string {
  const t = String(tenant ?? "").trim();
  if (!TENANT_RE.test(t)) throw new ValidationError(`Tenant must be the tenant GUID or its domain (contoso.onmicrosoft.com), got "${t.slice(0, 60)}"`, { code: "bad_config" });
  return t;
}

/** An Entra error answer (`{"error","error_description","error_codes"}`) → typed error, secrets never included. */
export function entraError(status: number, body: unknown, retryAfter?: string): MlcError {
  const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const error = typeof b.error === "string" ? b.error.slice(0, 60) : undefined;
  const aadsts = typeof b.error_description === "string" ? /AADSTS\d+/.exec(b.error_description)?.[0] : undefined;
  if (status === 429) return new RateLimitedError("Entra ID token endpoint rate limit (HTTP 429)", { retryAfterMs: parseRetryAfter(retryAfter) });
  if (status >= 500) return new HttpError(`Entra ID token endpoint failed (HTTP ${status})`, status);
  const what = [error, aadsts].filter(Boolean).join(", ");
  return new AuthError(`Entra ID refused the client credentials grant (${what || `HTTP ${status}`})`, { status, vendorCode: aadsts ?? error });
}

/** MSAL's network module over our HttpClient (bodies parsed as JSON, like MSAL's own client). */
class HttpClientNetwork implements INetworkModule {
  /** The last token-endpoint answer that was not a 200, for typed errors (MSAL's own error text is vaguer). */
  lastFailure?: { status: number; body: unknown; retryAfter?: string };
  constructor(private readonly http: HttpClient) {}

  sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>("GET", url, options);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>("POST", url, options);
  }

  private async send<T>(method: "GET" | "POST", url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const res = await this.http.request({ method, url, headers: options?.headers, body: options?.body, idempotent: method === "GET" });
    let body: unknown = {};
    try {
      body = res.body ? JSON.parse(res.body) : {};
    } catch {
      body = {};
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
    if (res.status !== 200) this.lastFailure = { status: res.status, body, retryAfter: headers["retry-after"] };
    return { status: res.status, headers, body: body as T };
  }
}

/** The OpenID metadata MSAL would fetch, built from the host and tenant (Entra v2.0 endpoint layout). */
function authorityMetadata(host: string, tenant: string): string {
  return JSON.stringify({
    token_endpoint: `${host}/${tenant}/oauth2/v2.0/token`,
    authorization_endpoint: `${host}/${tenant}/oauth2/v2.0/authorize`,
    end_session_endpoint: `${host}/${tenant}/oauth2/v2.0/logout`,
    issuer: `${host}/${tenant}/v2.0`,
    jwks_uri: `${host}/${tenant}/discovery/v2.0/keys`,
  });
}

function cloudMetadata(host: string, tenant: string): string {
  const h = new URL(host).host;
  return JSON.stringify({
    tenant_discovery_endpoint: `${host}/${tenant}/v2.0/.well-known/openid-configuration`,
    "api-version": "1.1",
    metadata: [{ preferred_network: h, preferred_cache: h, aliases: [h] }],
  });
}

/**
 * MSAL configuration for one app registration.
 * @throws ValidationError `bad_config`: bad tenant, a host that is not an https origin, neither secret nor certificate
 */
export function msalConfiguration(o: EntraTokenOptions, network: INetworkModule): Configuration {
  const tenant = checkTenant(o.tenant);
  const host = (o.authorityHost || ENTRA_PUBLIC_HOST).replace(/\/+$/, "");
  if (!/^https:\/\/[^/?#]+$/i.test(host)) throw new ValidationError("Authority host must be an https origin such as https://login.microsoftonline.com", { code: "bad_config" });
  if (!o.clientId) throw new ValidationError("Client ID is required", { code: "bad_config" });
  if (!o.clientSecret && !o.certificate) throw new ValidationError("A client secret or a certificate is required", { code: "bad_config" });
  const auth: Configuration["auth"] = {
    clientId: o.clientId,
    authority: `${host}/${tenant}`,
    knownAuthorities: [new URL(host).host],
    authorityMetadata: authorityMetadata(host, tenant),
    cloudDiscoveryMetadata: cloudMetadata(host, tenant),
  };
  if (o.certificate) auth.clientCertificate = { thumbprintSha256: o.certificate.thumbprintSha256, privateKey: o.certificate.privateKey, x5c: o.certificate.x5c };
  else auth.clientSecret = o.clientSecret;
  return { auth, system: { networkClient: network } };
}

/**
 * One Entra ID app token for Business Central. `acquire` asks MSAL, which answers from its token cache while the
 * token is fresh and otherwise POSTs the token endpoint once; after {@link invalidate} (a 401 from BC) the cache is
 * skipped so a new token is requested.
 */
export class EntraTokenSource implements AuthSource {
  readonly kind = "entra-client-credentials";
  private readonly app: ConfidentialClientApplication;
  private readonly network: HttpClientNetwork;
  private readonly scope: string;
  private readonly skewMs: number;
  private readonly now: () => number;
  private token?: string;
  private refreshAt = 0;
  private skipCache = false;
  /** Expiry of the held token, ms since the epoch (0 when none). */
  expiresAt = 0;
  /** Token requests that reached the token endpoint (for benchmarks: logins per hour). */
  requests = 0;

  /** @throws ValidationError `bad_config` as {@link msalConfiguration} */
  constructor(o: EntraTokenOptions) {
    this.network = new HttpClientNetwork(o.http);
    this.app = new ConfidentialClientApplication(msalConfiguration(o, this.network));
    this.scope = o.scope ?? BC_SCOPE;
    this.skewMs = o.refreshSkewMs ?? BC_REFRESH_SKEW_MS;
    this.now = o.now ?? Date.now;
  }

  valid(now: number): boolean {
    return this.token !== undefined && now < this.refreshAt;
  }

  /** @throws AuthError for a refusal (`vendorCode` the AADSTS code), RateLimitedError, HttpError 5xx, TimeoutError */
  async acquire(): Promise<void> {
    const before = this.now();
    const dueForRenewal = this.expiresAt > 0 && before >= this.refreshAt;
    const forceRefresh = this.skipCache || dueForRenewal;
    this.network.lastFailure = undefined;
    let result;
    try {
      result = await this.app.acquireTokenByClientCredential({ scopes: [this.scope], skipCache: forceRefresh });
    } catch (err) {
      throw this.mapFailure(err);
    }
    if (!result?.accessToken) throw new AuthError("Entra ID answered without an access token", { code: "auth_failed" });
    if (result.fromCache !== true) this.requests++;
    this.skipCache = false;
    // MSAL dates the expiry on the wall clock; the lifetime left is placed on this source's clock
    const ttl = result.expiresOn ? Math.max(0, result.expiresOn.getTime() - Date.now()) : 3_600_000;
    const expiresAt = before + ttl;
    this.token = result.accessToken;
    this.expiresAt = expiresAt;
    this.refreshAt = expiresAt - Math.min(this.skewMs, ttl / 2);
  }

  private mapFailure(err: unknown): MlcError {
    if (err instanceof MlcError) return err;
    const f = this.network.lastFailure;
    if (f) return entraError(f.status, f.body, f.retryAfter);
    const e = err as { errorCode?: string };
    return new AuthError(`Entra ID sign-in failed (${String(e?.errorCode ?? "msal_error").slice(0, 60)})`, { code: "auth_failed", vendorCode: e?.errorCode });
  }

  invalidate(): void {
    this.token = undefined;
    this.skipCache = true;
  }

  headers(): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  clear(): void {
    this.token = undefined;
    this.expiresAt = 0;
    // MSAL's in-memory cache dies with this object; the next acquire (if any) must not reuse it
    this.skipCache = true;
  }
}
