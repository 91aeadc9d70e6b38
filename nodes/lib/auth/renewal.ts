/**
 * Single-flight renewal over one {@link AuthSource}, the part every ERP client shares:
 * - one sign-in at a time: concurrent callers await the same promise;
 * - a generation counter, incremented by each successful renewal, so a 401 tells whether someone already renewed
 *   since the caller's request went out (then it just replays) or whether it must renew itself;
 * - an unexpected 401 renews once and replays once ({@link AuthManager.call});
 * - a refused sign-in (a refusal as decided by `isRefusal`, e.g. wrong password or a licence limit) is not retried
 *   per call: for `cooldownMs` every call fails at once with {@link AuthCooldownError}, since each attempt counts
 *   towards a tenant's lockout threshold and licence;
 * - after {@link AuthManager.close} nothing signs in again.
 */
import { AuthError, MlcError } from "../errors";
import { HttpResponse } from "../http";
import { AuthCooldownError, AuthSource, AuthState } from "./source";

/** Default pause after a refused sign-in, ms (5 min). */
export const DEFAULT_AUTH_COOLDOWN_MS = 300_000;

/** Options of {@link AuthManager}. */
export interface AuthManagerOptions {
  /** Pause after a refused sign-in, ms; default 300000; 0 disables. */
  cooldownMs?: number;
  /** Which errors are refusals that start the pause; default: every AuthError. */
  isRefusal?: (err: unknown) => boolean;
  /** Told when a pause starts (`blocked: true`) and when a later sign-in succeeds (`blocked: false`). Errors ignored. */
  onState?: (s: AuthState) => void;
  /** The error thrown once closed (vendor wording); default an AuthError `client_closed`. */
  closedError?: () => MlcError;
  /** Clock in ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
}

/** Result of {@link AuthManager.call}. */
export interface AuthedResponse {
  res: HttpResponse;
  /** True when the request met a 401, the credential was renewed and the request sent again. */
  replayed: boolean;
}

/** Owns the renewal of one {@link AuthSource}. Any number of concurrent callers. */
export class AuthManager<S extends AuthSource = AuthSource> {
  readonly source: S;
  private readonly cooldownMs: number;
  private readonly isRefusal: (err: unknown) => boolean;
  private readonly onState?: (s: AuthState) => void;
  private readonly closedError: () => MlcError;
  private readonly now: () => number;
  private generation = 0;
  private renewing?: Promise<void>;
  private closed = false;
  private refusal?: { error: MlcError; until: number };

  constructor(source: S, opts: AuthManagerOptions = {}) {
    this.source = source;
    this.cooldownMs = opts.cooldownMs ?? DEFAULT_AUTH_COOLDOWN_MS;
    this.isRefusal = opts.isRefusal ?? ((e) => e instanceof AuthError);
    this.onState = opts.onState;
    this.closedError = opts.closedError ?? (() => new AuthError("Client is closed", { code: "client_closed" }));
    this.now = opts.now ?? Date.now;
  }

  /** Generation of the credential in use (incremented by every successful renewal). */
  get currentGeneration(): number {
    return this.generation;
  }

  /** The renewal in progress, if any (close waits for it). */
  get pending(): Promise<void> | undefined {
    return this.renewing;
  }

  /** Ensure a usable credential; returns the generation it belongs to. @throws as {@link renew} */
  async ensure(): Promise<number> {
    if (this.renewing) await this.renewing;
    if (!this.source.valid(this.now())) await this.renew(this.generation);
    return this.generation;
  }

  /**
   * Single-flight renewal. `seenGen` is the generation the caller used: if a renewal finished since, the caller just
   * replays with the new credential; if one is running, the caller awaits it; otherwise this call starts it.
   * @throws the source's errors; AuthCooldownError during a pause; the closed error after {@link close}
   */
  renew(seenGen: number): Promise<void> {
    if (this.renewing) return this.renewing;
    if (this.generation !== seenGen && this.source.valid(this.now())) return Promise.resolve();
    if (this.closed) return Promise.reject(this.closedError());
    const refusal = this.refusal;
    if (refusal && this.now() < refusal.until) return Promise.reject(new AuthCooldownError(refusal.error, refusal.until));
    // the current credential is known bad (401) or about to expire: nobody may use it any more
    this.source.invalidate();
    const p = this.runRenewal();
    this.renewing = p;
    return p;
  }

  private async runRenewal(): Promise<void> {
    try {
      await this.source.acquire();
      this.generation++;
      if (this.refusal) {
        this.refusal = undefined;
        this.report({ blocked: false });
      }
    } catch (err) {
      if (this.cooldownMs > 0 && !this.closed && err instanceof MlcError && this.isRefusal(err)) {
        const until = this.now() + this.cooldownMs;
        this.refusal = { error: err, until };
        this.report({ blocked: true, until, error: err });
      }
      throw err;
    } finally {
      this.renewing = undefined;
    }
  }

  /**
   * Authenticated call: ensure a credential, `send` with {@link headers}, and on a 401 renew once and send once more.
   * @param send sends the request; it must read the credential headers at call time (they change on renewal)
   * @throws as {@link renew}, and whatever `send` throws
   */
  async call(send: () => Promise<HttpResponse>): Promise<AuthedResponse> {
    const gen = await this.ensure();
    const first = await send();
    if (first.status !== 401 || this.closed) return { res: first, replayed: false };
    await this.renew(gen);
    return { res: await send(), replayed: true };
  }

  /** Headers carrying the current credential for `url`. */
  headers(url: string): Record<string, string> {
    return this.source.headers(url);
  }

  /** The current pause after a refusal, if any: `{ blocked: true, until, error }`, else `{ blocked: false }`. */
  state(): AuthState {
    const r = this.refusal;
    return r && this.now() < r.until ? { blocked: true, until: r.until, error: r.error } : { blocked: false };
  }

  /** True after {@link close}. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Stop signing in (idempotent); the owner signs out and clears the source. */
  close(): void {
    this.closed = true;
  }

  private report(s: AuthState): void {
    try {
      this.onState?.(s);
    } catch {
      // the owner's display must not break sign-in
    }
  }
}
