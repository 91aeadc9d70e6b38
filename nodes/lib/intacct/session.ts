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
 *   restart (sessions are scarce: a crash should not open a second one while the first is alive);
 * - several Node-RED instances on one Redis (`shared`, nodes/lib/auth/shared-secret.ts) use one session per
 *   connection: a sign-in runs under the connection's Redis lock after re-reading the shared session, and takes one
 *   another instance opened while it has more than the renewal margin left (by that instance's count-down, kept with
 *   it) and has not failed here; a new session is stored there before use, and again when its expiry moves. Redis
 *   unreachable: the instance signs in on its own, as a single one does.
 */
import type { SharedSecret } from "../auth/shared-secret";
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
  /** The session shared by the instances of one Redis (module doc); absent: this instance's own session. */
  shared?: SharedSecret<IntacctSession>;
}

/** See module doc: the kit's XML session with Intacct's login answer, margin and cache key. */
export class IntacctSessionSource extends XmlSessionSource<IntacctSession> {
  override readonly kind = "intacct-session";
  readonly key: string;

  /** Session ids that failed here: never taken from the shared store again. */
  private readonly failedIds = new Set<string>();
  private adopted = false;
  private readonly shared?: SharedSecret<IntacctSession>;

  constructor(opts: IntacctSessionSourceOptions) {
    const now = opts.now ?? Date.now;
    const margin = opts.renewBeforeMs ?? RENEW_BEFORE_MS;
    const signIn = async (signal?: AbortSignal): Promise<IntacctSession> => {
      const { session, remainingMs: left } = await opts.login(signal);
      // no timeout in the answer: valid until a failure says otherwise
      return { ...session, expiresAt: left === undefined ? Number.POSITIVE_INFINITY : now() + left };
    };
    const shared = opts.shared;
    const self: { source?: IntacctSessionSource } = {}; // `this` cannot be named before super()
    super({
      login: shared ? (signal) => (self.source as IntacctSessionSource).signInShared(shared, signIn, margin, now, signal) : signIn,
      refreshSkewMs: margin,
      now,
      initial: opts.initial,
      onSession: (s) => {
        // an expiry moved: stored only over the same session (never over a newer one another instance stored); a
        // failed session is not removed either, for the same reason
        if (s && shared) void shared.read().then((latest) => (!latest || latest.sessionId === s.sessionId ? shared.write(s) : undefined)).catch(() => undefined);
        return opts.onSession?.(s);
      },
    });
    this.key = opts.key;
    this.shared = shared;
    self.source = this;
  }

  /**
   * Whether Redis holds another session than `sessionId` that has not failed here: another instance renewed after
   * ours failed there, so ours is not sent again; the caller renews, which takes it. Never throws (Redis down: false).
   */
  async sharedMoved(sessionId: string): Promise<boolean> {
    const latest = this.shared ? await this.shared.read().catch(() => undefined) : undefined;
    return !!latest?.sessionId && latest.sessionId !== sessionId && !this.failedIds.has(latest.sessionId);
  }

  /** The session with this id failed (authentication failure): it is never sent again, nor taken from Redis. */
  failed(sessionId: string): void {
    this.failedIds.add(sessionId);
  }

  override async acquire(signal?: AbortSignal): Promise<void> {
    this.adopted = false;
    await super.acquire(signal);
    if (this.adopted) this.logins--; // another instance's session: not a sign-in of ours
  }

  /** Under the connection's Redis lock: the shared session when usable (module doc), else a new one stored there first. */
  private async signInShared(shared: SharedSecret<IntacctSession>, signIn: (signal?: AbortSignal) => Promise<IntacctSession>, margin: number, now: () => number, signal?: AbortSignal): Promise<IntacctSession> {
    let tried = false;
    try {
      return await shared.exclusive(async () => {
        const latest = await shared.read();
        const expiresAt = typeof latest?.expiresAt === "number" ? latest.expiresAt : Number.POSITIVE_INFINITY; // JSON keeps no Infinity
        const left = Math.min(margin, (latest?.lifetimeMs ?? Number.POSITIVE_INFINITY) / 2);
        if (latest?.sessionId && !this.failedIds.has(latest.sessionId) && expiresAt - now() > left) {
          this.adopted = true;
          return { ...latest, expiresAt };
        }
        tried = true;
        const s = await signIn(signal);
        await shared.write(s).catch(() => undefined); // before use: the other instances take this one
        return s;
      });
    } catch (err) {
      // Redis unreachable before our sign-in: sign in on our own, as a single instance does
      if (tried || (err as { code?: unknown })?.code !== "store_unavailable") throw err;
      return signIn(signal);
    }
  }
}
