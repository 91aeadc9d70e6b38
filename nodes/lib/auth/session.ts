/**
 * Session sources: a login call opens a server session, a logout call ends it.
 * - {@link CookieSessionSource}: the session is a set of cookies (Acumatica `POST /entity/auth/login`, SAP Business One
 *   Service Layer `POST /b1s/v2/Login` with `B1SESSION` and `ROUTEID` cookies). The vendor supplies the login and
 *   logout requests; the source keeps the {@link CookieJar} (Path and Domain honoured, or Path ignored for a server
 *   whose session cookie has none, `cookiesByName`) and sends its cookies.
 * - {@link XmlSessionSource}: the session is an id returned in the login answer together with the endpoint to use
 *   and an expiry (Sage Intacct `getAPISession` → `<sessionid>`, `<endpoint>`, `<sessiontimeout>`); the vendor puts
 *   the id into its XML envelope itself ({@link XmlSessionSource.session}).
 * Sessions are scarce (they count against licences): every login is matched by a logout on close.
 */
import { HttpResponse } from "../http";
import { CookieJar } from "./cookie-jar";
import { AuthSource } from "./source";

/** Send one request through the owner's HTTP client; the source adds nothing to it. */
export type SessionSend = (signal?: AbortSignal) => Promise<HttpResponse>;

/** Options of {@link CookieSessionSource}. */
export interface CookieSessionOptions {
  /** URL of the login request (cookies set by its answer are scoped by it). */
  loginUrl: string;
  /** Sends the login request (credentials in the body, never logged). */
  login: SessionSend;
  /**
   * Checks the login answer: returns normally when the session is open, throws the vendor's typed error when it was
   * refused (the jar is cleared first).
   */
  checkLogin: (res: HttpResponse) => void;
  /** URL of the logout request. */
  logoutUrl: string;
  /** Sends the logout request with the given `Cookie` header. */
  logout: (cookie: string, signal: AbortSignal) => Promise<HttpResponse>;
  /** Clock in ms since the epoch (cookie expiry; tests); default `Date.now`. */
  now?: () => number;
  /**
   * Send the session's cookies by name to every path of the server, ignoring their Path (cookie-jar.ts `ignorePath`):
   * SAP Business One's `B1SESSION` comes without a usable Path (reference sap-business-one.md §2). Default false.
   */
  cookiesByName?: boolean;
}

/** A cookie session (see module doc). Valid from a successful login until a 401 or {@link clear}. */
export class CookieSessionSource implements AuthSource {
  readonly kind = "cookie-session";
  readonly jar: CookieJar;
  private readonly opts: CookieSessionOptions;
  private signedIn = false;

  constructor(opts: CookieSessionOptions) {
    this.opts = opts;
    this.jar = new CookieJar(opts.now, { ignorePath: opts.cookiesByName });
  }

  /** True after a successful login, until the session is invalidated. */
  get isSignedIn(): boolean {
    return this.signedIn;
  }

  valid(): boolean {
    return this.signedIn;
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    this.jar.clear();
    const res = await this.opts.login(signal);
    this.jar.absorb(this.opts.loginUrl, res.headers["set-cookie"]);
    try {
      this.opts.checkLogin(res);
    } catch (err) {
      this.jar.clear();
      throw err;
    }
    this.signedIn = true;
  }

  invalidate(): void {
    this.signedIn = false;
  }

  headers(url: string): Record<string, string> {
    const cookie = this.jar.header(url);
    return cookie ? { Cookie: cookie } : {};
  }

  absorb(url: string, res: HttpResponse): void {
    this.jar.absorb(url, res.headers["set-cookie"]);
  }

  /** Logout whenever a session or any cookie is held (a half-open session still counts on the server). */
  async signOut(signal: AbortSignal): Promise<boolean> {
    if (!this.signedIn && this.jar.size === 0) return false;
    const res = await this.opts.logout(this.jar.header(this.opts.logoutUrl), signal);
    return res.status >= 200 && res.status < 300;
  }

  clear(): void {
    this.jar.clear();
    this.signedIn = false;
  }
}

/** What an XML-session login call returns. */
export interface XmlSession {
  /** Session id to put into each request envelope (a secret: never logged). */
  sessionId: string;
  /** Endpoint URL the session is bound to (Intacct answers with its own `<endpoint>`). */
  endpoint: string;
  /** Expiry, ms since the epoch on the local clock (`Infinity`: the server said nothing, valid until a failure). */
  expiresAt: number;
  /** Longest lifetime the server gave the session, ms (kept with it; caps the renewal margin at half of it). */
  lifetimeMs?: number;
}

/** Options of {@link XmlSessionSource}. */
export interface XmlSessionOptions<S extends XmlSession = XmlSession> {
  /** Opens a session (e.g. Intacct `getAPISession` with the company and user credentials). @throws vendor errors */
  login: (signal?: AbortSignal) => Promise<S>;
  /** Ends a session (e.g. Intacct `logout` with the session id); resolves true when confirmed. Optional. */
  logout?: (session: S, signal: AbortSignal) => Promise<boolean>;
  /** Renew this long before expiry, ms; default 60000, capped at half the session's longest lifetime. */
  refreshSkewMs?: number;
  /** Clock in ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
  /** A session kept from an earlier run (used while valid; a failure discards it like any other). */
  initial?: S;
  /**
   * Told the session to keep, so the owner can reuse it after a restart (sessions are scarce: a crash should not open
   * a second one while the first is alive): after a login (awaited before first use), when {@link XmlSessionSource.slide}
   * moved the expiry by more than a minute, and `undefined` when the session failed. Must not throw.
   */
  onSession?: (s: S | undefined) => void | Promise<void>;
}

/**
 * A session id + endpoint + expiry (see module doc). Carries no header: the vendor writes the id into the body.
 * A server whose timeout slides forward with every call (Sage Intacct) reports the remaining lifetime in its answers:
 * {@link slide} moves the expiry, counted on the local clock from the moment the answer arrived.
 */
export class XmlSessionSource<S extends XmlSession = XmlSession> implements AuthSource {
  readonly kind: string = "xml-session";
  private readonly opts: XmlSessionOptions<S>;
  private readonly now: () => number;
  private current?: S;
  private lifetimeMs = 0;
  private savedExpiry = 0;
  /** How many logins succeeded (sessions opened, for tests and benchmarks). */
  logins = 0;

  constructor(opts: XmlSessionOptions<S>) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
    const s = opts.initial;
    if (s && typeof s.sessionId === "string" && s.sessionId && typeof s.endpoint === "string" && Number.isFinite(s.expiresAt)) {
      this.current = { ...s };
      this.lifetimeMs = s.lifetimeMs ?? 0;
      this.savedExpiry = s.expiresAt;
    }
  }

  /** The session in use; undefined before the first login or after an authentication failure. */
  get session(): S | undefined {
    return this.current;
  }

  /** Valid while more than the renewal margin (`refreshSkewMs`, at most half the longest lifetime) is left. */
  valid(now: number): boolean {
    if (!this.current) return false;
    const margin = Math.min(this.opts.refreshSkewMs ?? 60_000, this.lifetimeMs / 2);
    return now < this.current.expiresAt - margin;
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    const s = await this.opts.login(signal);
    this.current = { ...s };
    this.logins++;
    this.lifetimeMs = Number.isFinite(s.expiresAt) ? Math.max(0, s.expiresAt - this.now()) : 0;
    // Kept before first use, so a crash right after this request reuses the session instead of opening another.
    await this.save(this.current);
  }

  /**
   * Move the expiry after an answer that used the session: `remainingMs` from now (undefined: the answer said
   * nothing, the expiry stays).
   */
  slide(remainingMs: number | undefined): void {
    if (!this.current || remainingMs === undefined) return;
    this.current.expiresAt = this.now() + remainingMs;
    this.lifetimeMs = Math.max(this.lifetimeMs, remainingMs);
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

  async signOut(signal: AbortSignal): Promise<boolean> {
    if (!this.current || !this.opts.logout) return false;
    return this.opts.logout(this.current, signal);
  }

  /** Drop the session from memory (close); what was handed to `onSession` stays kept. */
  clear(): void {
    this.current = undefined;
  }

  /** Hand the session to `onSession`; resolves when it has been kept (never rejects: keeping is best effort). */
  private async save(s: S | undefined): Promise<void> {
    if (!this.opts.onSession) return;
    this.savedExpiry = s?.expiresAt ?? 0;
    try {
      await this.opts.onSession(s ? { ...s, lifetimeMs: this.lifetimeMs } : undefined);
    } catch {
      // keeping the session is best effort
    }
  }
}
