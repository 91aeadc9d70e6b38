/**
 * The Service Layer session on the kit's cookie session (nodes/lib/auth/session.ts): `POST /b1s/vN/Login` with
 * `{"CompanyDB","UserName","Password"}` → `B1SESSION` and `ROUTEID` cookies, `POST /b1s/vN/Logout` → 204
 * (reference sap-business-one.md §2, SLGUIDE §3.1).
 *
 * What differs from a generic cookie session (reference "Traps"):
 * - `B1SESSION`'s Set-Cookie has no Path and a trailing `;`. The kit's jar (undici's parser) reads it, but path rules
 *   would scope it to the Login URL's directory; so every request of the session sends the cookies the Login answer
 *   set, by name, whatever its path ({@link SapB1SessionSource.headers}): both cookies, exactly as set.
 * - A Login answer without `B1SESSION` is refused (ErpError `unexpected_response`), never used half.
 * - `SessionTimeout` (minutes) is kept for diagnostics; renewal is on HTTP 401 only (see answers.ts `isSessionGone`),
 *   never on a timer, so no second Login is sent while the session is alive.
 * - The session can outlive the process (reference §2: "a fresh Login … while that session is still alive and not
 *   logged out, is a client bug"; a `kill -9` cannot log out): after each Login, and whenever a later answer changes
 *   a cookie, the cookies are handed to `onSession` ({@link KeptSapB1Session}) before the session is used, and a
 *   session handed in as `initial` is used without a Login until the server answers 401. A logout hands out
 *   `undefined`.
 * - Several Node-RED instances on one Redis (`shared`, nodes/lib/auth/shared-secret.ts): one session per connection.
 *   A Login runs under the connection's Redis lock after re-reading the shared session (one another instance logged
 *   in with is used as is, no Login), and the new cookies are stored there (encrypted) before use. Each instance
 *   counts as a holder while its client lives; on close only the last holder logs out ({@link SapB1SessionSource.end}).
 *   When Redis is unreachable the instance keeps using its session, logs in on its own when it has none, and does
 *   not log out on close (that could end the session the others use; it times out on the server).
 */
import { CookieSessionOptions, CookieSessionSource } from "../auth/session";
import type { TokenFile } from "../auth/token-file";
import type { SharedSecret } from "../auth/shared-secret";
import { ErpError } from "../errors";
import { encodeParts } from "../ids";
import { HttpResponse } from "../http";
import { failError } from "./answers";

/** The session cookie name (a credential: never logged, never on `msg`). */
export const SESSION_COOKIE = "B1SESSION";
/** The load-balancer stickiness cookie name. */
export const ROUTE_COOKIE = "ROUTEID";

/** A session kept across restarts: the `Cookie` header of the session (`B1SESSION=…; ROUTEID=…`; a secret). */
export interface KeptSapB1Session {
  cookie: string;
}

/** Options of {@link SapB1SessionSource}. */
export interface SapB1SessionOptions extends CookieSessionOptions {
  /** A session kept from an earlier run: used (no Login) until the server answers 401. Ignored without B1SESSION. */
  initial?: KeptSapB1Session;
  /** Told the session to keep after a Login or a cookie change, `undefined` after a logout. Awaited after a Login; must not throw. */
  onSession?: (s: KeptSapB1Session | undefined) => void | Promise<void>;
  /** The session shared by the instances of one Redis (module doc); absent: this instance's own session. */
  shared?: SharedSecret<KeptSapB1Session>;
}

/** A cookie session whose cookies go by name to every request of the session (see module doc). */
export class SapB1SessionSource extends CookieSessionSource {
  private readonly loginUrl: string;
  private readonly onSession?: SapB1SessionOptions["onSession"];
  private readonly shared?: SharedSecret<KeptSapB1Session>;
  /** True while a session handed in as `initial` is in use (no Login of ours yet). */
  private restored = false;
  /** The Cookie header last handed to `onSession`. */
  private kept = "";
  /** `SessionTimeout` of the last Login answer, minutes (undefined before a Login or when not sent). */
  sessionTimeoutMin: number | undefined;
  /** `Version` of the last Login answer (e.g. "1000250"). */
  serverVersion: string | undefined;
  /** Logins answered 200 since the client started (for status and benchmarks). */
  logins: number;

  constructor(opts: SapB1SessionOptions) {
    const self: { source?: SapB1SessionSource } = {};
    super({ ...opts, checkLogin: (res) => (self.source as SapB1SessionSource).checkAnswer(res, opts.checkLogin) });
    self.source = this;
    this.loginUrl = opts.loginUrl;
    this.onSession = opts.onSession;
    this.shared = opts.shared;
    void this.shared?.join().catch(() => undefined); // retried at the next Login
    this.logins = 0;
    this.sessionTimeoutMin = undefined;
    this.serverVersion = undefined;
    if (opts.initial) this.restore(opts.initial.cookie);
  }

  /**
   * Restored cookies (`name=value` pairs) with the attributes the Login sets (reference §2: `B1SESSION` without Path,
   * `ROUTEID` with `path=/b1s`), so a later Set-Cookie replaces them; used only when B1SESSION is among them.
   */
  private restore(cookie: unknown): void {
    if (typeof cookie !== "string") return;
    for (const pair of cookie.split(";")) {
      const i = pair.indexOf("=");
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (i > 0 && /^[A-Za-z0-9_.-]+$/.test(name) && /^[^\s;,]+$/.test(value)) this.jar.absorb(this.loginUrl, name === SESSION_COOKIE ? `${name}=${value}` : `${name}=${value}; Path=/b1s`);
    }
    if (this.jar.names().includes(SESSION_COOKIE)) {
      this.restored = true;
      this.kept = this.jar.header(this.loginUrl);
    } else this.jar.clear();
  }

  override get isSignedIn(): boolean {
    return this.restored || super.isSignedIn;
  }

  override valid(): boolean {
    return this.restored || super.valid();
  }

  override invalidate(): void {
    this.restored = false;
    super.invalidate();
  }

  override clear(): void {
    this.restored = false;
    super.clear();
  }

  /** Login, then hand the new session out to be kept before anything uses it. */
  override async acquire(signal?: AbortSignal): Promise<void> {
    const shared = this.shared;
    if (!shared) return this.login(signal);
    let tried = false;
    try {
      await shared.exclusive(async () => {
        const latest = await shared.read();
        await shared.join().catch(() => undefined);
        // another instance's Login (compared by B1SESSION value: the cookie text may list the cookies in another order)
        if (latest?.cookie && b1Session(latest.cookie) !== b1Session(this.kept) && this.adopt(latest.cookie)) return;
        tried = true;
        await this.login(signal);
      });
    } catch (err) {
      // Redis unreachable before our Login: sign in on our own, as a single instance does
      if (tried || (err as { code?: unknown })?.code !== "store_unavailable") throw err;
      await this.login(signal);
    }
  }

  /**
   * Close: log out and forget the kept session, unless another instance still holds the shared session (then only
   * this instance's holder row goes). Redis unreachable: no logout (it could end the session the other instances use);
   * the session stays kept for our next start, or times out on the server. @throws what logout or the store throws
   */
  async end(signal: AbortSignal): Promise<void> {
    const own = async (): Promise<void> => {
      if (await this.signOut(signal)) await this.forgetKept();
    };
    const shared = this.shared;
    if (!shared) return own();
    try {
      await shared.leave(async () => {
        const latest = await shared.read();
        if (latest?.cookie && b1Session(latest.cookie) !== b1Session(this.kept)) this.adopt(latest.cookie); // the session is another's Login
        await own();
      });
    } catch (err) {
      if ((err as { code?: unknown })?.code !== "store_unavailable") throw err;
    }
  }

  /** Use the session another instance stored; @returns whether it holds a B1SESSION. */
  private adopt(cookie: string): boolean {
    this.jar.clear();
    this.restore(cookie);
    return this.restored;
  }

  private async login(signal?: AbortSignal): Promise<void> {
    this.restored = false;
    await super.acquire(signal);
    await this.keep();
  }

  /** After a logout the kept session is worthless: hand out `undefined` (awaited; never rejects). */
  async forgetKept(): Promise<void> {
    this.kept = "";
    try {
      await this.onSession?.(undefined);
    } catch {
      // keeping is best effort
    }
  }

  private async keep(): Promise<void> {
    const cookie = this.jar.header(this.loginUrl);
    if ((!this.onSession && !this.shared) || !cookie || cookie === this.kept) return;
    this.kept = cookie;
    try {
      await this.shared?.write({ cookie }); // before use: the other instances take this one instead of logging in
    } catch {
      // Redis unreachable: the others log in on their own (their Login is then a second session)
    }
    try {
      await this.onSession?.({ cookie });
    } catch {
      // keeping is best effort: a crash before the next Login then leaves one session to time out
    }
  }

  /** `Cookie: B1SESSION=…; ROUTEID=…` for any URL of this server (the cookies of the Login answer). */
  override headers(): Record<string, string> {
    return super.headers(this.loginUrl);
  }

  /** Take cookies a later answer sets (e.g. a new ROUTEID), scoped like the Login's. */
  override absorb(_url: string, res: HttpResponse): void {
    super.absorb(this.loginUrl, res);
    if (res.headers["set-cookie"] && this.valid()) void this.keep();
  }

  private checkAnswer(res: HttpResponse, vendorCheck: (res: HttpResponse) => void): void {
    vendorCheck(res);
    if (!this.jar.names().includes(SESSION_COOKIE)) {
      throw new ErpError("SAP Business One Login answered without a B1SESSION cookie", { code: "unexpected_response", status: res.status });
    }
    this.logins++;
    try {
      const body = JSON.parse(res.body) as { SessionTimeout?: unknown; Version?: unknown };
      this.sessionTimeoutMin = typeof body.SessionTimeout === "number" ? body.SessionTimeout : undefined;
      this.serverVersion = typeof body.Version === "string" ? body.Version : undefined;
    } catch {
      this.sessionTimeoutMin = undefined;
    }
  }
}

/** The B1SESSION value in a `Cookie` header text ("" when absent). */
function b1Session(cookie: string): string {
  return new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([^;\\s]*)`).exec(cookie)?.[1] ?? "";
}

/** Login answer check: 200 (SLGUIDE §3.1); anything else → the mapped error (401 → AuthError `login_failed`). */
export function checkLoginAnswer(res: HttpResponse): void {
  if (res.status === 200) return;
  throw failError(res, { op: "Login" });
}

/**
 * What a kept session is bound to (the TokenFile binding): a session saved for another server, version, company or
 * user is not used. @param parts URL, version, CompanyDB, user name (trimmed here)
 */
export function sessionIdentity(parts: readonly unknown[]): string {
  return encodeParts(["sapb1", ...parts.map((p) => String(p ?? "").trim())]);
}

/** The session an earlier run kept in `file`, or undefined (none, another connection's, unreadable). Never throws. */
export function readKeptSession(file: Pick<TokenFile, "read">): KeptSapB1Session | undefined {
  try {
    const text = file.read();
    const v = text ? (JSON.parse(text) as Partial<KeptSapB1Session>) : undefined;
    return v && typeof v.cookie === "string" && v.cookie ? { cookie: v.cookie } : undefined;
  } catch {
    return undefined;
  }
}
