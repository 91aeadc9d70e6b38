/**
 * Exact Online's OAuth 2.0 token source: the authorization-code grant (RFC 6749 §4.1) for the first sign-in and the
 * refresh grant (§6) afterwards, with Exact's own rules (reference `exact-online.md` §2; Exact KB
 * "oauth-eol-oauth-devstep2/3"):
 * - token requests are `application/x-www-form-urlencoded` to `{host}/api/oauth2/token`, the same regional host as
 *   the API; the authorization code is URL-decoded (`%21` → `!`) and exchanged with the exact registered `redirect_uri`;
 * - `expires_in` is a JSON string ("600") or a number; `token_type` is compared case-insensitively;
 * - access tokens live 600 s and a new one may be requested only ≥ 570 s after the previous one was issued (earlier:
 *   401 "Access Token not expired", which counts towards Exact's error throttle), so the source never asks earlier;
 * - refresh tokens rotate and are single-use: the new tokens are handed to `onTokens` and awaited BEFORE the new
 *   access token is used (the config node persists them, see nodes/lib/auth/token-file.ts), and only the newest
 *   refresh token is ever presented;
 * - a refused refresh (400, "Old refresh token used", or a chain ended by another sign-in) is an AuthError
 *   `reauthorize` (no automatic retry: the AuthManager's cool-down stops retry storms);
 * - a lost token answer (the request left, no answer): the old refresh token stays valid 10 minutes unless the new
 *   one was used, so one retry is allowed no earlier than 570 s after the lost request; before that the source
 *   throws MlcError `refresh_pending` (retryable) without calling Exact.
 *
 * Renewal is single-flight through the kit's AuthManager (nodes/lib/auth/renewal.ts) within a process and, with
 * `shared` (several Node-RED instances on one Redis), across processes: the refresh runs under the connection's lock
 * (nodes/lib/auth/shared-secret.ts), first re-reads the token set the last holder stored (a valid access token from
 * another instance is used as is, a newer refresh token replaces ours), and stores the new set in the shared store
 * BEFORE the new access token is used and before the lock is released, so no instance ever presents a used refresh
 * token. When the shared store is unreachable the refresh fails retryably (refreshing without the lock could present a
 * token another instance already rotated).
 */
import { AuthError, HttpError, MlcError, RateLimitedError, TimeoutError } from "../errors";
import { HttpClient, HttpResponse } from "../http";
import { AuthSource, isRecord, parseJsonBody } from "../auth/source";
import type { SharedSecret } from "../auth/shared-secret";

/** Access token lifetime Exact documents, s. */
export const EXACT_TOKEN_TTL_S = 600;
/** Earliest age of the current access token at which Exact accepts a token request, ms (9 min 30 s). */
export const EXACT_MIN_REFRESH_AGE_MS = 570_000;

/** The token state that must survive a crash (persisted through `onTokens`, encrypted by the owner). */
export interface ExactTokens {
  refreshToken: string;
  /** Current access token, if one is known (so a restart inside its life does not ask for a new one too early). */
  accessToken?: string;
  /** When the current access token was issued, ms since the epoch. */
  issuedAt?: number;
  /** When it expires, ms since the epoch. */
  expiresAt?: number;
}

/** Options of {@link ExactTokenSource}. */
export interface ExactTokenOptions {
  http: HttpClient;
  /** Regional host, e.g. `https://start.exactonline.nl` (no trailing slash). */
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** Redirect URI registered for the app (needed for the code exchange only). */
  redirectUri?: string;
  /** Tokens saved earlier (credentials or token file). */
  tokens?: ExactTokens;
  /** Awaited with every new token set before its access token is used. A rejection is passed to `onSaveError`. */
  onTokens?: (t: ExactTokens) => Promise<void> | void;
  /** Token sets shared by the instances of one Redis: refresh under its lock, stored there before use (module doc). */
  shared?: SharedSecret<ExactTokens>;
  /** Told when `onTokens` (or the shared write) failed (the chain is kept in memory; only crash safety is lost). */
  onSaveError?: (err: unknown) => void;
  /** Renew this long before expiry, ms; default 30000 (renewal at 570 s of a 600 s token). */
  refreshSkewMs?: number;
  /** Clock, ms since the epoch (tests); default Date.now. */
  now?: () => number;
}

/** Seconds from `expires_in` as Exact sends it (string or number); undefined when unusable. */
export function parseExpiresIn(v: unknown): number | undefined {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * A token endpoint answer that is not a token → typed error, without any token in the message.
 * 400 → AuthError `reauthorize` (code reused/expired, old or revoked refresh token); 401 → AuthError
 * `refresh_too_early` (or a bad client); 429 → RateLimitedError; 5xx → HttpError; else AuthError.
 */
export function exactTokenError(res: HttpResponse, grant: string): MlcError {
  const body = parseJsonBody(res.body);
  const vendor = isRecord(body) && typeof body.error === "string" ? body.error.slice(0, 60) : undefined;
  const detail = isRecord(body) && typeof body.error_description === "string" ? `: ${body.error_description.slice(0, 80)}` : "";
  if (res.status === 429) return new RateLimitedError(`Exact token endpoint rate limit (HTTP 429) on ${grant}`, { status: 429 });
  if (res.status >= 500) return new HttpError(`Exact token endpoint failed (HTTP ${res.status}) on ${grant}`, res.status, { retryable: false });
  if (res.status === 400) {
    return new AuthError(`Exact refused the ${grant} grant (HTTP 400${vendor ? `, ${vendor}` : ""}${detail}): the grant is no longer valid — re-authorise the connection`, { status: 400, vendorCode: vendor, code: "reauthorize" });
  }
  if (res.status === 401) return new AuthError(`Exact refused the ${grant} grant (HTTP 401${detail}): token requested too early or client not accepted`, { status: 401, vendorCode: vendor, code: "refresh_too_early" });
  return new AuthError(`Exact refused the ${grant} grant (HTTP ${res.status})`, { status: res.status, vendorCode: vendor });
}

/** The Exact OAuth token source (see module doc). Used through one AuthManager per config node. */
export class ExactTokenSource implements AuthSource {
  readonly kind = "exact-oauth";
  private readonly opts: ExactTokenOptions;
  private readonly now: () => number;
  private tokens?: ExactTokens;
  /** When a token request left without an answer (ms), while the outcome is unknown. */
  private lostAt?: number;

  constructor(opts: ExactTokenOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    if (opts.tokens?.refreshToken) this.tokens = { ...opts.tokens };
  }

  /** True when a refresh token is held (the connection is authorised). */
  get authorised(): boolean {
    return !!this.tokens?.refreshToken;
  }

  /** When the current access token expires (ms since the epoch), if one is held. */
  get expiresAt(): number | undefined {
    return this.tokens?.accessToken ? this.tokens.expiresAt : undefined;
  }

  valid(now: number): boolean {
    const t = this.tokens;
    if (!t?.accessToken || t.expiresAt === undefined) return false;
    return now < t.expiresAt - (this.opts.refreshSkewMs ?? 30_000);
  }

  invalidate(): void {
    if (this.tokens) this.tokens = { ...this.tokens, accessToken: undefined };
  }

  headers(): Record<string, string> {
    const at = this.tokens?.accessToken;
    return at ? { Authorization: `Bearer ${at}` } : {};
  }

  clear(): void {
    this.tokens = undefined;
  }

  /**
   * The URL to send the user to for the first authorisation (`GET {host}/api/oauth2/auth`).
   * @param state opaque anti-CSRF value echoed to the redirect
   */
  authorizeUrl(redirectUri: string, state: string, forceLogin = false): string {
    const q = new URLSearchParams({ client_id: this.opts.clientId, redirect_uri: redirectUri, response_type: "code", force_login: forceLogin ? "1" : "0", state });
    return `${this.opts.baseUrl}/api/oauth2/auth?${q.toString()}`;
  }

  /**
   * Exchange an authorization code (valid 3 min, single use) for the first tokens and persist them.
   * @param code as received on the redirect; URL-decoded here when still encoded
   * @throws AuthError `reauthorize` (code reused, expired, or redirect URI differs), as {@link exactTokenError}
   */
  async exchangeCode(code: string, redirectUri = this.opts.redirectUri ?? ""): Promise<void> {
    const plain = /%[0-9A-Fa-f]{2}/.test(code) ? decodeURIComponent(code) : code;
    await this.tokenRequest({ grant_type: "authorization_code", code: plain, redirect_uri: redirectUri });
  }

  /**
   * Refresh with the newest refresh token (called by the AuthManager only, one at a time).
   * @throws AuthError `reauthorize` when no refresh token is held or Exact refuses it; AuthError `token_revoked` when
   *   the access token was refused before 570 s (another sign-in ended the chain); MlcError `refresh_pending` while a
   *   lost request's 570 s run; TimeoutError for a lost answer; as {@link exactTokenError}
   */
  async acquire(signal?: AbortSignal): Promise<void> {
    const shared = this.opts.shared;
    if (!shared) return this.refresh(signal);
    await shared.exclusive(async () => {
      const latest = await shared.read();
      if (latest?.refreshToken && (latest.refreshToken !== this.tokens?.refreshToken || (latest.issuedAt ?? 0) > (this.tokens?.issuedAt ?? 0))) {
        // another instance refreshed (or authorised) since we last looked: its set is the newest
        this.tokens = { ...latest };
        this.lostAt = undefined;
        if (this.valid(this.now())) return;
      }
      await this.refresh(signal);
    });
  }

  private async refresh(signal?: AbortSignal): Promise<void> {
    const t = this.tokens;
    if (!t?.refreshToken) throw new AuthError("Exact connection is not authorised: authorise it in the config node", { code: "reauthorize" });
    const now = this.now();
    if (this.lostAt !== undefined && now < this.lostAt + EXACT_MIN_REFRESH_AGE_MS) {
      throw new MlcError(`Exact token answer was lost; retrying no earlier than ${new Date(this.lostAt + EXACT_MIN_REFRESH_AGE_MS).toISOString()}`, { code: "refresh_pending", retryable: true });
    }
    if (this.lostAt === undefined && t.issuedAt !== undefined && now < t.issuedAt + EXACT_MIN_REFRESH_AGE_MS) {
      // only a 401 on a young token gets here: asking now would be refused as too early and count as an error
      throw new AuthError("Exact refused the access token before its expiry (another sign-in with this app and user ends ours): re-authorise the connection if this persists", { code: "token_revoked", status: 401 });
    }
    await this.tokenRequest({ grant_type: "refresh_token", refresh_token: t.refreshToken }, signal);
  }

  private async tokenRequest(form: Record<string, string>, signal?: AbortSignal): Promise<void> {
    const sentAt = this.now();
    let res: HttpResponse;
    try {
      res = await this.opts.http.request({
        method: "POST",
        url: `${this.opts.baseUrl}/api/oauth2/token`,
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams({ ...form, client_id: this.opts.clientId, client_secret: this.opts.clientSecret }).toString(),
        idempotent: false,
        signal,
      });
    } catch (err) {
      if (err instanceof TimeoutError && err.outcomeUnknown && form.grant_type === "refresh_token") this.lostAt = sentAt;
      throw err;
    }
    this.lostAt = undefined;
    const a = parseJsonBody(res.body);
    const ttl = isRecord(a) ? parseExpiresIn(a.expires_in) : undefined;
    const okType = isRecord(a) && (a.token_type === undefined || String(a.token_type).toLowerCase() === "bearer");
    if (res.status !== 200 || !isRecord(a) || typeof a.access_token !== "string" || !a.access_token || !okType) throw exactTokenError(res, form.grant_type);
    const issuedAt = this.now();
    const next: ExactTokens = {
      refreshToken: typeof a.refresh_token === "string" && a.refresh_token ? a.refresh_token : (this.tokens?.refreshToken ?? ""),
      accessToken: a.access_token,
      issuedAt,
      expiresAt: issuedAt + (ttl ?? EXACT_TOKEN_TTL_S) * 1000,
    };
    // the newest refresh token is the only one that works from now on: keep it before anything can fail
    this.tokens = { ...next, accessToken: undefined };
    try {
      await this.opts.shared?.write({ ...next });
    } catch (err) {
      this.opts.onSaveError?.(err);
    }
    try {
      await this.opts.onTokens?.({ ...next });
    } catch (err) {
      this.opts.onSaveError?.(err);
    }
    this.tokens = next;
  }
}
