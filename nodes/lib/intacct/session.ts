/**
 * The Intacct API session on the kit's {@link XmlSessionSource} (reference sage-intacct.md §3). Intacct's timeout
 * slides forward with every call, so the client hands the `sessiontimestamp`/`sessiontimeout` pair of every later
 * answer to the kit's `slide`.
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
import { XmlSession, XmlSessionSource } from "../auth/session";

/** Proactive renewal margin, ms (reference §3: log in again with less than 5 minutes left). */
export const RENEW_BEFORE_MS = 300_000;

/**
 * An open API session (the kit's {@link XmlSession}: id, endpoint from `getAPISession` → `data/api/endpoint`, local
 * expiry, longest lifetime) with its location. `sessionId` is a secret: never logged, never in an error.
 */
export interface IntacctSession extends XmlSession {
  /** Location (entity) of the session; "" = top level. */
  locationId: string;
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

/** See module doc: the kit's XML session with Intacct's login answer, margin and cache key. */
export class IntacctSessionSource extends XmlSessionSource<IntacctSession> {
  override readonly kind = "intacct-session";
  readonly key: string;

  constructor(opts: IntacctSessionSourceOptions) {
    const now = opts.now ?? Date.now;
    super({
      login: async (signal) => {
        const { session, remainingMs: left } = await opts.login(signal);
        // no timeout in the answer: valid until a failure says otherwise
        return { ...session, expiresAt: left === undefined ? Number.POSITIVE_INFINITY : now() + left };
      },
      refreshSkewMs: opts.renewBeforeMs ?? RENEW_BEFORE_MS,
      now,
      initial: opts.initial,
      onSession: opts.onSession,
    });
    this.key = opts.key;
  }
}
