/**
 * What every way of signing in to an ERP looks like to the rest of the package: an {@link AuthSource} holds one
 * credential (an access token, a session cookie set, a session id) and knows how to get a new one; the
 * single-flight {@link AuthManager} (renewal.ts) decides when, so that concurrent calls share one sign-in.
 */
import { MlcError } from "../errors";
import { HttpResponse } from "../http";

/** One credential holder. Implementations: OAuth grants (oauth.ts), cookie and XML sessions (session.ts). */
export interface AuthSource {
  /** Short name for diagnostics, e.g. "oauth-password", "cookie-session". */
  readonly kind: string;
  /** True while the held credential may be used (present and not inside the refresh skew of its expiry). */
  valid(now: number): boolean;
  /**
   * Obtain a new credential (sign in, refresh a grant, log in). Called by the manager only, one at a time.
   * @throws the vendor's typed errors (AuthError for a refusal; RateLimitedError, HttpError, TimeoutError otherwise)
   */
  acquire(signal?: AbortSignal): Promise<void>;
  /** Forget the held credential (it met a 401 or is about to expire); a refresh token, if any, is kept. */
  invalidate(): void;
  /** Headers that carry the credential on a request to `url` (empty when none is held). */
  headers(url: string): Record<string, string>;
  /** Take what a response sets (session cookies); optional. */
  absorb?(url: string, res: HttpResponse): void;
  /**
   * End the grant or session on the server. Resolves true when the server confirmed it (2xx), false when there was
   * nothing to end; throws or rejects on a failure (the caller treats sign-out as best effort).
   */
  signOut?(signal: AbortSignal): Promise<boolean>;
  /** Drop every credential held, refresh tokens included (after close). */
  clear(): void;
}

/** Sign-in state reported by {@link AuthManager} through `onState`. */
export interface AuthState {
  /** True while sign-in is paused after a refusal. */
  blocked: boolean;
  /** Until when, ms since the epoch (blocked only). */
  until?: number;
  /** The refusal (blocked only); its message holds no secret. */
  error?: MlcError;
}

/**
 * Thrown by every call while sign-in is paused after a refusal. `code` is the refusal's code (`auth_failed`,
 * `api_login_limit`, …), `until` the end of the pause (ms since the epoch), `cause` the refusal itself.
 */
export class AuthCooldownError extends MlcError {
  readonly until: number;
  constructor(refusal: MlcError, until: number) {
    super(`${refusal.message} — not signing in again until ${new Date(until).toISOString()} (sign-in paused after a refusal, so a wrong password cannot lock the user out)`, {
      code: refusal.code,
      status: refusal.status,
      vendorCode: refusal.vendorCode,
      retryable: false,
      cause: refusal,
    });
    this.until = until;
  }
}

/** Parse a JSON body; undefined when empty or not JSON. */
export function parseJsonBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A plain object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
