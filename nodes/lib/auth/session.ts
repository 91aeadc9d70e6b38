/**
 * Session sources: a login call opens a server session, a logout call ends it.
 * - {@link CookieSessionSource}: the session is a set of cookies (Acumatica `POST /entity/auth/login`, SAP Business One
 *   Service Layer `POST /b1s/v2/Login` with `B1SESSION` and `ROUTEID` cookies). The vendor supplies the login and
 *   logout requests; the source keeps the {@link CookieJar} (Path and Domain honoured) and sends its cookies.
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
}

/** A cookie session (see module doc). Valid from a successful login until a 401 or {@link clear}. */
export class CookieSessionSource implements AuthSource {
  readonly kind = "cookie-session";
  readonly jar: CookieJar;
  private readonly opts: CookieSessionOptions;
  private signedIn = false;

  constructor(opts: CookieSessionOptions) {
    this.opts = opts;
    this.jar = new CookieJar(opts.now);
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
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

/** Options of {@link XmlSessionSource}. */
export interface XmlSessionOptions {
  /** Opens a session (e.g. Intacct `getAPISession` with the company and user credentials). @throws vendor errors */
  login: (signal?: AbortSignal) => Promise<XmlSession>;
  /** Ends a session (e.g. Intacct `logout` with the session id); resolves true when confirmed. Optional. */
  logout?: (session: XmlSession, signal: AbortSignal) => Promise<boolean>;
  /** Renew this long before expiry, ms; default 60000, capped at half the session lifetime. */
  refreshSkewMs?: number;
  /** Clock in ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
}

/** A session id + endpoint + expiry (see module doc). Carries no header: the vendor writes the id into the body. */
export class XmlSessionSource implements AuthSource {
  readonly kind = "xml-session";
  private readonly opts: XmlSessionOptions;
  private current?: XmlSession;
  private renewAt = 0;

  constructor(opts: XmlSessionOptions) {
    this.opts = opts;
  }

  /** The session in use; undefined before the first login or after a 401. */
  get session(): XmlSession | undefined {
    return this.current;
  }

  valid(now: number): boolean {
    return this.current !== undefined && now < this.renewAt;
  }

  async acquire(signal?: AbortSignal): Promise<void> {
    const s = await this.opts.login(signal);
    const now = (this.opts.now ?? Date.now)();
    const life = Math.max(0, s.expiresAt - now);
    this.current = s;
    this.renewAt = s.expiresAt - Math.min(this.opts.refreshSkewMs ?? 60_000, life / 2);
  }

  invalidate(): void {
    this.current = undefined;
  }

  headers(): Record<string, string> {
    return {};
  }

  async signOut(signal: AbortSignal): Promise<boolean> {
    if (!this.current || !this.opts.logout) return false;
    return this.opts.logout(this.current, signal);
  }

  clear(): void {
    this.current = undefined;
  }
}
