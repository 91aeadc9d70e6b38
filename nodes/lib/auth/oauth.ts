/**
 * OAuth 2.0 token sources (RFC 6749): the resource-owner password grant with the refresh grant (§4.3, §6), and the
 * client credentials grant (§4.4). Tokens are requested with a form body `POST` to the token endpoint (never
 * logged, never repeated blindly: the request is sent as non-idempotent) and carried as `Authorization: Bearer`
 * (RFC 6750 §2.1).
 *
 * Rotating single-use refresh tokens (RFC 6749 §6 "the authorization server MAY issue a new refresh token", which
 * Acumatica does on every refresh): the newest refresh token is handed to `onRefreshToken` and awaited BEFORE the new
 * access token is stored, so a crash after the first use of the access token always finds the token that still
 * works on disk (nodes/lib/auth/token-file.ts is the persistence the Acumatica config node uses).
 *
 * Several Node-RED instances on one Redis (`shared`, nodes/lib/auth/shared-secret.ts; Acumatica counts each grant as a
 * licensed API user): one grant per connection. {@link PasswordGrantSource.acquire} runs under the connection's lock,
 * first re-reads the grant the last holder stored (a live access token from another instance is used as is, a newer
 * refresh token replaces ours), and stores the new tokens there (encrypted) before they are used and before the lock
 * is released. Redis unreachable before our token request: the source signs in on its own, as a single instance.
 *
 * The vendor maps refusals to its own wording through `mapError`; the default maps RFC 6749 §5.2 `error` codes to
 * AuthError (`vendorCode` = the OAuth error) and other answers to HttpError.
 */
import { AuthError, HttpError, MlcError, RateLimitedError } from "../errors";
import { HttpClient, HttpResponse } from "../http";
import { parseRetryAfter } from "../retry";
import { AuthSource, isRecord, parseJsonBody } from "./source";
import type { SharedSecret } from "./shared-secret";

/** A grant as shared across instances: the newest refresh token and the access token in use (ms since the epoch). */
export interface SharedGrant {
  refreshToken?: string;
  accessToken?: string;
  expiresAt?: number;
  refreshAt?: number;
}

/** Default refresh skew, ms: the access token is renewed this long before `expires_in` ends (capped at half its life). */
export const DEFAULT_REFRESH_SKEW_MS = 60_000;
/** Lifetime assumed when a token answer has no `expires_in`, s. */
export const DEFAULT_TOKEN_TTL_S = 3600;

/** Grant being requested, for error wording. */
export type OAuthGrant = "password" | "refresh_token" | "client_credentials";

/** Options shared by the OAuth sources. */
export interface OAuthCommonOptions {
  /** The owner's HTTP client (its pool, timeouts and 429 handling). */
  http: HttpClient;
  /** Token endpoint URL, e.g. `https://acme.acumatica.com/identity/connect/token`. */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes (omitted from the request when empty). */
  scope?: string;
  /** Renew this long before expiry, ms; default 60000, capped at half the token lifetime. */
  refreshSkewMs?: number;
  /** Map a non-200 token answer to a typed error (vendor wording); default {@link defaultTokenError}. */
  mapError?: (res: HttpResponse, grant: OAuthGrant) => MlcError;
  /** Clock in ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
}

/** RFC 6749 §5.2 error answer → AuthError / RateLimitedError / HttpError, without secrets. */
export function defaultTokenError(res: HttpResponse, grant: OAuthGrant): MlcError {
  const body = parseJsonBody(res.body);
  const error = isRecord(body) && typeof body.error === "string" ? body.error.slice(0, 60) : undefined;
  if (res.status === 429) return new RateLimitedError(`Token endpoint rate limit hit on ${grant} grant (HTTP 429, after retries)`, { retryAfterMs: parseRetryAfter(res.headers["retry-after"]) });
  if (error) return new AuthError(`Token endpoint refused the ${grant} grant (${error})`, { status: res.status, vendorCode: error });
  if (res.status >= 500) return new HttpError(`Token endpoint failed (HTTP ${res.status}) on ${grant} grant`, res.status, { retryable: false });
  return new AuthError(`Token endpoint refused the ${grant} grant (HTTP ${res.status})`, { status: res.status });
}

/** Base: holds one access token, requests tokens, and carries them as Bearer. */
abstract class OAuthSourceBase implements AuthSource {
  abstract readonly kind: string;
  protected readonly opts: OAuthCommonOptions;
  protected readonly now: () => number;
  protected accessToken?: string;
  /** When the token is renewed (ms since the epoch). */
  protected refreshAt = 0;
  /** When the token expires (ms since the epoch). */
  expiresAt = 0;

  constructor(opts: OAuthCommonOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  abstract acquire(signal?: AbortSignal): Promise<void>;

  valid(now: number): boolean {
    return this.accessToken !== undefined && now < this.refreshAt;
  }

  /** True while an access token is held (even one inside the refresh skew). */
  get hasAccessToken(): boolean {
    return this.accessToken !== undefined;
  }

  /** True when the access token is past its expiry (or none is held). */
  expired(now: number): boolean {
    return !this.accessToken || now >= this.expiresAt;
  }

  invalidate(): void {
    this.accessToken = undefined;
  }

  headers(): Record<string, string> {
    return this.accessToken ? { Authorization: `Bearer ${this.accessToken}` } : {};
  }

  clear(): void {
    this.accessToken = undefined;
  }

  /**
   * `POST tokenUrl` with the form (client id and secret added) and store the answer. `beforeUse` is awaited with the
   * parsed answer before the access token is stored (rotation persistence).
   * @throws the mapped error for any answer but 200 with an `access_token`; TimeoutError from the transport
   */
  protected async requestToken(form: Record<string, string>, signal: AbortSignal | undefined, beforeUse?: (answer: Record<string, unknown>) => Promise<void>): Promise<void> {
    const grant = form.grant_type as OAuthGrant;
    const fields: Record<string, string> = { ...form, client_id: this.opts.clientId, client_secret: this.opts.clientSecret };
    const res = await this.opts.http.request({
      method: "POST",
      url: this.opts.tokenUrl,
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(fields).toString(),
      idempotent: false,
      signal,
    });
    const answer = parseJsonBody(res.body);
    if (res.status !== 200 || !isRecord(answer) || typeof answer.access_token !== "string" || !answer.access_token) {
      throw (this.opts.mapError ?? defaultTokenError)(res, grant);
    }
    if (beforeUse) await beforeUse(answer);
    const ttlMs = (expiresInSeconds(answer.expires_in) ?? DEFAULT_TOKEN_TTL_S) * 1000;
    const now = this.now();
    this.accessToken = answer.access_token;
    this.expiresAt = now + ttlMs;
    this.refreshAt = now + ttlMs - Math.min(this.opts.refreshSkewMs ?? DEFAULT_REFRESH_SKEW_MS, ttlMs / 2);
  }
}

/**
 * Seconds from a token answer's `expires_in` (RFC 6749 §5.1: a number of seconds), also when the server sends it as a
 * JSON string of digits ("600": Exact Online, some Microsoft endpoints).
 * @returns undefined when absent, not a positive whole or decimal number of seconds
 */
export function expiresInSeconds(v: unknown): number | undefined {
  const n = typeof v === "number" ? v : typeof v === "string" && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Options of {@link PasswordGrantSource}. */
export interface PasswordGrantOptions extends OAuthCommonOptions {
  username: string;
  password: string;
  /** A refresh token saved by an earlier process: the first sign-in refreshes that grant instead of opening a new one. */
  refreshToken?: string;
  /**
   * Called with every refresh token the server returns and awaited before the new access token is used. Its errors
   * are ignored here (reporting a failed save is the owner's job).
   */
  onRefreshToken?: (refreshToken: string) => unknown;
  /** Whether an error from the refresh grant means "start a new grant with the password"; default AuthError `invalid_grant`. */
  isDeadRefreshToken?: (err: unknown) => boolean;
  /** The grant shared by the instances of one Redis (module doc); absent: this instance's own grant. */
  shared?: SharedSecret<SharedGrant>;
}

/**
 * Resource-owner password grant + refresh grant (RFC 6749 §4.3, §6). {@link acquire} refreshes when a refresh token
 * is held and falls back to the password grant when the refresh token is dead (expired, revoked, already rotated).
 */
export class PasswordGrantSource extends OAuthSourceBase {
  readonly kind = "oauth-password";
  private refreshToken?: string;
  private readonly pw: PasswordGrantOptions;

  constructor(opts: PasswordGrantOptions) {
    super(opts);
    this.pw = opts;
    if (opts.refreshToken) this.refreshToken = opts.refreshToken;
    void opts.shared?.join().catch(() => undefined); // counts as a holder while it lives; retried at each sign-in
  }

  /** True while a refresh token is held. */
  get hasRefreshToken(): boolean {
    return this.refreshToken !== undefined;
  }

  /** The access token last refused (a 401), so a shared copy of it is not taken again. */
  private refused?: string;

  /** The shared grant (several instances on one Redis), if any. */
  get shared(): SharedSecret<SharedGrant> | undefined {
    return this.pw.shared;
  }

  override invalidate(): void {
    if (this.accessToken) this.refused = this.accessToken;
    super.invalidate();
  }

  /**
   * Sign in: with `shared`, under the connection's lock after taking a newer grant another instance stored (module
   * doc); otherwise refresh when a refresh token is held, else (or when it is dead) the password grant.
   * @throws the token request's errors; MlcError `auth_busy` when the lock stayed taken
   */
  async acquire(signal?: AbortSignal): Promise<void> {
    const shared = this.pw.shared;
    if (!shared) return this.acquireOwn(signal);
    let tried = false;
    try {
      await shared.exclusive(async () => {
        const latest = await shared.read();
        await shared.join().catch(() => undefined);
        if (latest && this.adopt(latest)) return;
        tried = true;
        await this.acquireOwn(signal);
        const g: SharedGrant = { refreshToken: this.refreshToken, accessToken: this.accessToken, expiresAt: this.expiresAt, refreshAt: this.refreshAt };
        await shared.write(g).catch(() => undefined); // unreachable now: the others sign in on their own
      });
    } catch (err) {
      if (tried || (err as { code?: unknown })?.code !== "store_unavailable") throw err;
      await this.acquireOwn(signal);
    }
  }

  /**
   * Take the grant another instance stored: its refresh token when newer than ours, its access token when live and not
   * the one refused. @returns whether a usable access token is now held
   */
  adopt(g: SharedGrant): boolean {
    if (g.refreshToken && g.refreshToken !== this.refreshToken) {
      this.refreshToken = g.refreshToken;
      const rt = g.refreshToken;
      void Promise.resolve()
        .then(() => this.pw.onRefreshToken?.(rt)) // our token file follows, for a restart while Redis is down
        .catch(() => undefined);
    }
    const now = this.now();
    if (!g.accessToken || g.accessToken === this.refused || g.refreshAt === undefined || g.expiresAt === undefined || now >= g.refreshAt) return false;
    this.accessToken = g.accessToken;
    this.expiresAt = g.expiresAt;
    this.refreshAt = g.refreshAt;
    return true;
  }

  private async acquireOwn(signal?: AbortSignal): Promise<void> {
    if (this.refreshToken) {
      try {
        await this.refresh(signal);
        return;
      } catch (err) {
        const dead = this.pw.isDeadRefreshToken ?? ((e: unknown) => e instanceof AuthError && e.vendorCode === "invalid_grant");
        if (!dead(err)) throw err;
        this.refreshToken = undefined;
      }
    }
    const form: Record<string, string> = { grant_type: "password", username: this.pw.username, password: this.pw.password };
    if (this.pw.scope) form.scope = this.pw.scope;
    await this.requestToken(form, signal, (a) => this.keepRefreshToken(a));
  }

  /** Refresh grant with the held refresh token. @throws as the token request; AuthError when none is held */
  async refresh(signal?: AbortSignal): Promise<void> {
    if (!this.refreshToken) throw new AuthError("No refresh token held", { code: "no_refresh_token" });
    await this.requestToken({ grant_type: "refresh_token", refresh_token: this.refreshToken }, signal, (a) => this.keepRefreshToken(a));
  }

  private async keepRefreshToken(answer: Record<string, unknown>): Promise<void> {
    const rt = answer.refresh_token;
    if (typeof rt !== "string" || !rt) return;
    // always keep the newest one: a rotated refresh token is single-use
    this.refreshToken = rt;
    await Promise.resolve()
      .then(() => this.pw.onRefreshToken?.(rt))
      .catch(() => undefined);
  }

  override clear(): void {
    super.clear();
    this.refreshToken = undefined;
  }
}

/** Client credentials grant (RFC 6749 §4.4): no user, no refresh token; a new token is requested when due. */
export class ClientCredentialsSource extends OAuthSourceBase {
  readonly kind = "oauth-client-credentials";

  async acquire(signal?: AbortSignal): Promise<void> {
    const form: Record<string, string> = { grant_type: "client_credentials" };
    if (this.opts.scope) form.scope = this.opts.scope;
    await this.requestToken(form, signal);
  }
}
