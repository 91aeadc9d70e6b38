/**
 * A small cookie jar for one API session: cookies are parsed by undici's `getSetCookies` (undici is already the
 * package's HTTP client, so no second dependency for what it parses anyway), and stored and sent by the rules of
 * RFC 6265 §5.3 / §5.4 that matter to an API client:
 * - Domain: without a `Domain` attribute a cookie is host-only (sent to that exact host); with one it is sent to the
 *   domain and its subdomains (§5.1.3 domain-match), and refused when the response host does not domain-match it.
 * - Path: without a `Path` attribute the default path is the request path's directory (§5.1.4); a cookie is sent
 *   when the request path path-matches it (`/a` matches `/a`, `/a/`, `/a/b`, not `/ab`).
 * - `Secure` cookies go only over https; `Max-Age` wins over `Expires`; an expired cookie deletes the stored one.
 * - One cookie per (name, domain, path); sent longest path first.
 * - Option `ignorePath` ({@link CookieJarOptions}): every cookie is stored under path "/" (one per name and domain)
 *   and sent to every path of its host, for servers whose session cookie comes without a usable Path: SAP Business
 *   One's `B1SESSION` has no Path and a trailing `;` (reference sap-business-one.md §2: "store cookies by name; do
 *   not rely on jar path rules"), so RFC path rules would scope it to the Login URL's directory.
 * Public suffixes are not checked (the jar talks to one configured server, not the web). Values never appear in
 * {@link CookieJar.names} or errors.
 */
import { Headers, getSetCookies } from "undici";

interface StoredCookie {
  name: string;
  value: string;
  /** Lower-case host (host-only) or domain (without a leading dot). */
  domain: string;
  hostOnly: boolean;
  path: string;
  secure: boolean;
  /** ms since the epoch; Infinity for a session cookie. */
  expiresAt: number;
}

/** `Set-Cookie` header values as undici/node:http hand them over (string or array). */
export type SetCookieHeader = string | string[] | undefined;

function defaultPath(requestPath: string): string {
  if (!requestPath.startsWith("/")) return "/";
  const i = requestPath.lastIndexOf("/");
  return i <= 0 ? "/" : requestPath.slice(0, i);
}

/** RFC 6265 §5.1.4 path-match. */
export function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}

/** RFC 6265 §5.1.3 domain-match (host is lower case; an IP address matches only itself). */
export function domainMatches(host: string, domain: string): boolean {
  if (host === domain) return true;
  if (/^[\d.]+$/.test(host) || host.includes(":")) return false;
  return host.endsWith(`.${domain}`);
}

/** Options of {@link CookieJar}. */
export interface CookieJarOptions {
  /** Store every cookie by name and domain and send it to every path (see module doc); default false (RFC 6265). */
  ignorePath?: boolean;
}

/** Cookies of one session, keyed by (name, domain, path). */
export class CookieJar {
  private readonly cookies = new Map<string, StoredCookie>();
  private readonly now: () => number;
  private readonly ignorePath: boolean;

  /** @param now clock in ms since the epoch (tests); default `Date.now` */
  constructor(now: () => number = Date.now, opts: CookieJarOptions = {}) {
    this.now = now;
    this.ignorePath = opts.ignorePath === true;
  }

  /**
   * Store the cookies a response to `url` sets (`Set-Cookie` header values). Cookies whose `Domain` does not
   * domain-match the response host are ignored (RFC 6265 §5.3 step 6); an empty value, `Max-Age` ≤ 0 or a past
   * `Expires` deletes the cookie.
   * @param url absolute URL of the request that got the response
   */
  absorb(url: string, setCookie: SetCookieHeader): void {
    if (!setCookie) return;
    const u = new URL(url);
    const host = u.hostname.toLowerCase().replace(/^\[|\]$/g, "");
    const headers = new Headers();
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) headers.append("set-cookie", line);
    const now = this.now();
    for (const c of getSetCookies(headers)) {
      if (!c.name) continue;
      let domain = host;
      let hostOnly = true;
      if (c.domain) {
        const d = c.domain.toLowerCase().replace(/^\./, "");
        if (!domainMatches(host, d)) continue;
        domain = d;
        hostOnly = false;
      }
      const path = this.ignorePath ? "/" : c.path && c.path.startsWith("/") ? c.path : defaultPath(u.pathname);
      let expiresAt = Number.POSITIVE_INFINITY;
      if (c.maxAge !== undefined) expiresAt = c.maxAge <= 0 ? 0 : now + c.maxAge * 1000;
      else if (c.expires !== undefined) expiresAt = c.expires instanceof Date ? c.expires.getTime() : Number(c.expires);
      const key = `${c.name}\u0000${domain}\u0000${path}`;
      if (c.value === "" || expiresAt <= now) {
        this.cookies.delete(key);
        continue;
      }
      this.cookies.set(key, { name: c.name, value: c.value, domain, hostOnly, path, secure: c.secure === true, expiresAt });
    }
  }

  /** `Cookie` header value for a request to `url` ("" when no cookie applies). */
  header(url: string): string {
    const u = new URL(url);
    const host = u.hostname.toLowerCase().replace(/^\[|\]$/g, "");
    const now = this.now();
    const out: StoredCookie[] = [];
    for (const [key, c] of this.cookies) {
      if (c.expiresAt <= now) {
        this.cookies.delete(key);
        continue;
      }
      if (c.hostOnly ? host !== c.domain : !domainMatches(host, c.domain)) continue;
      if (!pathMatches(u.pathname || "/", c.path)) continue;
      if (c.secure && u.protocol !== "https:") continue;
      out.push(c);
    }
    out.sort((a, b) => b.path.length - a.path.length);
    return out.map((c) => `${c.name}=${c.value}`).join("; ");
  }

  /** Names of the cookies held (no values), for diagnostics. */
  names(): string[] {
    const now = this.now();
    return [...new Set([...this.cookies.values()].filter((c) => c.expiresAt > now).map((c) => c.name))];
  }

  /** Number of cookies held. */
  get size(): number {
    return this.cookies.size;
  }

  clear(): void {
    this.cookies.clear();
  }
}
