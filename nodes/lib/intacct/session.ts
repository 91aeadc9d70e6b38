/**
 * The Intacct API session as a kit {@link AuthSource} (reference sage-intacct.md §3). The kit's `XmlSessionSource`
 * fixes the expiry at login; Intacct's timeout slides forward with every call, so this source also takes the
 * `sessiontimestamp`/`sessiontimeout` pair of every later answer ({@link IntacctSessionSource.slide}).
 * Rules kept:
 * - remaining lifetime = `sessiontimeout − sessiontimestamp` of the same answer (the server's clock, never compared
 *   with ours), counted down on the local clock from the moment the answer arrived;
 * - valid while more than `renewBeforeMs` (default 5 min, capped at half the lifetime) is left; log in again only then,
 *   when there is no session, or after an authentication failure (the manager invalidates it: never sent again);
 * - the session is keyed by endpoint + sender id + company id + user id + location id ({@link sessionKey});
 * - a session can be handed in at start (`initial`) and is handed out when it changes (`onSession`: after a login,
 *   when the expiry moved by more than a minute, and `undefined` when it failed), so the owner can keep it across a
 *   restart (sessions are scarce: a crash should not open a second one while the first is alive).
 */
import { AuthSource } from "../auth/source";

/** Proactive renewal margin, ms (reference §3: log in again with less than 5 minutes left). */
export const RENEW_BEFORE_MS = 300_000;

/** An open API session. `sessionId` is a secret: never logged, never in an error. */
export interface IntacctSession {
  sessionId: string;
  /** Endpoint URL the session is bound to (`getAPISession` → `data/api/endpoint`). */
  endpoint: string;
  /** Location (entity) of the session; "" = top level. */
  locationId: string;
  /** Local clock (ms since the epoch) at which the server says the session times out. */
  expiresAt: number;
  /** Longest lifetime the server gave it, ms (caps the renewal margin at half of it). */
  lifetimeMs?: number;
}

/** Remaining lifetime in ms from one answer's `sessiontimestamp` / `sessiontimeout` (both ISO); undefined if absent. */
export function remainingMs(sessionTimestamp?: string, sessionTimeout?: string): number | undefined {
  if (!sessionTimestamp || !sessionTimeout) return undefined;
  const d = Date.parse(sessionTimeout) - Date.parse(sessionTimestamp);
  return Number.isFinite(d) ? Math.max(0, d) : undefined;
}

/** The cache key of a session: tenants and users never share one. */
export function sessionKey(p: { endpoint: string; senderId: string; companyId: string; userId: string; locationId?: string }): string {
  return JSON.stringify([p.endpoint, p.senderId, p.companyId, p.userId, p.locationId ?? ""]);
}

/** Options of {@link IntacctSessionSource}. */
export interface IntacctSessionSourceOptions {
  /** Sends `getAPISession` alone with the login credentials. @throws IntacctAuthError, HttpError, RateLimitedError … */
  login: (signal?: AbortSignal) => Promise<{ session: Omit<IntacctSession, "expiresAt">; remainingMs?: number }>;
  /** Cache key (see {@link sessionKey}). */
  key: string;
  /** Renewal margin, ms; default {@link RENEW_BEFORE_MS}. */
  renewBeforeMs?: number;
  /** Local clock, ms since the epoch. */
  now?: () => number;
  /** A session kept from an earlier run (used while valid; a failure discards it like any other). */
  initial?: IntacctSession;
  /** Told the session to keep (see module doc); must not throw. */
  onSession?: (s: IntacctSession | undefined) => void | Promise<void>;
}

/** See module doc. */
export class IntacctSessionSource implements AuthSource {
  readonly kind = "intacct-session";
  readonly key: string;
  private readonly opts: IntacctSessionSourceOptions;
  private readonly now: () => number;
  private current?: IntacctSession;
  private lifetimeMs = 0;
  /** How many times `getAPISession` succeeded (logins per session lifetime, for tests and benchmarks). */
  logins = 0;

  private savedExpiry = 0;

  constructor(opts: IntacctSessionSourceOptions) {
    this.opts = opts;
    this.key = opts.key;
    this.now = opts.now ?? Date.now;
    const s = opts.initial;
    if (s && typeof s.sessionId === "string" && s.sessionId && typeof s.endpoint === "string" && Number.isFinite(s.expiresAt)) {
      this.current = { ...s };
      this.lifetimeMs = s.lifetimeMs ?? 0;
      this.savedExpiry = s.expiresAt;
    }
  }

  /** Hand the session to `onSession`; resolves when it has been kept (never rejects: keeping is best effort). */
  private async save(s: IntacctSession | undefined): Promise<void> {
    this.savedExpiry = s?.expiresAt ?? 0;
    try {
      await this.opts.onSession?.(s ? { ...s, lifetimeMs: this.lifetimeMs } : undefined);
    } catch {
      // keeping the session is best effort
    }
  }

  /** The session in use; undefined before the first login or after an authentication failure. */
  get session(): IntacctSession | undefined {
    return this.current;
  }

  valid(now: number): boolean {
    if (!this.current) return false;
    const margin = Math.min(this.opts.renewBeforeMs ?? RENEW_BEFORE_MS, this.lifetimeMs / 2);
    return now < this.current.expiresAt - margin;
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    const { session, remainingMs: left } = await this.opts.login(signal);
    this.current = { ...session, expiresAt: Number.POSITIVE_INFINITY };
    this.logins++;
    this.lifetimeMs = 0;
    this.slide(left);
    // Kept before first use, so a crash right after this request reuses the session instead of opening another.
    await this.save(this.current);
  }

  /**
   * Move the expiry after an answer that used the session: `remaining` ms from now (undefined: the answer said
   * nothing, the session stays valid until a failure tells otherwise).
   */
  slide(remaining: number | undefined): void {
    if (!this.current || remaining === undefined) return;
    this.current.expiresAt = this.now() + remaining;
    this.lifetimeMs = Math.max(this.lifetimeMs, remaining);
    if (Math.abs(this.current.expiresAt - this.savedExpiry) > 60_000) void this.save(this.current);
  }

  /** Forget the session (it failed or is about to expire): it is never sent again, nor kept. */
  invalidate(): void {
    const had = this.current !== undefined;
    this.current = undefined;
    if (had) void this.save(undefined);
  }

  headers(): Record<string, string> {
    return {};
  }

  /** Drop the session from memory (close); what was handed to `onSession` stays kept. */
  clear(): void {
    this.current = undefined;
  }
}
