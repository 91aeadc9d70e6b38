/**
 * SAP Business One Service Layer client on the family kit (reference sap-business-one.md; SLGUIDE = SAP "Working with
 * SAP Business One Service Layer"):
 * - one cookie session per client (session.ts on nodes/lib/auth), logged in on first use, reused, renewed once
 *   (single-flight, nodes/lib/auth/renewal.ts) when an answer says the session is gone (answers.ts `isSessionGone`),
 *   the request replayed once; logged out on {@link SapB1Client.close}; handed to the owner to keep across a restart
 *   or `kill -9` (`session` / `onSession`), so a crash does not leave a second live session behind;
 * - every data request through the kit's budget (nodes/lib/budget, a concurrency cap: a session is served by one
 *   Service Layer node) on the kit's HttpClient, with per-connection TLS trust (CA or SHA-256 pin, never
 *   process-wide: Service Layer ships a self-signed certificate);
 * - OData paging: `odata.nextLink` (v1) and `@odata.nextLink` (v2), relative links resolved against the service root
 *   (`/b1s/vN/`), links starting with `/` against the host, links to another origin refused; page size asked with
 *   `Prefer: odata.maxpagesize=N` (reference §5);
 * - both error envelopes (answers.ts).
 * Nothing here imports Node-RED.
 */
import { AuthManager } from "../auth/renewal";
import { AuthState } from "../auth/source";
import { Budget, isRefusal } from "../budget";
import { AuthError, ErpError, MlcError, ValidationError } from "../errors";
import { HttpClient, HttpClientOptions, HttpMethod, HttpResponse, HttpTlsOptions, safeUrl } from "../http";
import { odataPage } from "../poll/pages";
import { closeWithin } from "../auth/close";
import type { SharedSecret } from "../auth/shared-secret";
import { FailContext, failError, isSessionGone } from "./answers";
import { KeptSapB1Session, SapB1SessionSource, checkLoginAnswer } from "./session";

/** Service Layer protocol versions: `/b1s/v1` (OData v3) and `/b1s/v2` (OData v4). */
export type SapB1Version = "v1" | "v2";
/** A plain JSON record as the Service Layer returns it. */
export type SapB1Record = Record<string, unknown>;

/** Default rows per page asked with `Prefer: odata.maxpagesize` (the server's own default is 20). */
export const DEFAULT_PAGE_SIZE = 100;
/** Default requests in flight at once per client. */
export const DEFAULT_MAX_CONCURRENT = 4;
/** Default bound on close (logout + pool), ms; below Node-RED's 15 s close timeout. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/** Options of {@link SapB1Client}. */
export interface SapB1ClientOptions {
  /** Service Layer URL, e.g. `https://sl.example.local:50000` (a trailing `/b1s/v1` or `/b1s/v2` is accepted). */
  url: string;
  /** Protocol version; default "v2" (or the one named in `url`). */
  version?: SapB1Version;
  /** Company database, e.g. "SBODEMOUS". */
  companyDb: string;
  /** Service Layer user name. */
  username: string;
  /** Password (a secret: never logged). */
  password: string;
  /** Optional Login `Language` code. */
  language?: number;
  /** TLS trust of this connection (CA PEM and/or SHA-256 pin). */
  tls?: HttpTlsOptions;
  /** Further HttpClient options (timeouts, retries). */
  http?: Omit<HttpClientOptions, "tls">;
  /** Rows per page asked with `Prefer: odata.maxpagesize`; default 100; 0 = the server's default. */
  pageSize?: number;
  /** Requests in flight at once; default 4. */
  maxConcurrent?: number;
  /** Pause after a refused Login, ms; default 300000 (nodes/lib/auth/renewal.ts). */
  authCooldownMs?: number;
  /** Told when Login is paused after a refusal and when it works again. */
  onAuthState?: (s: AuthState) => void;
  /** Bound on {@link SapB1Client.close}, ms; default 10000. */
  closeTimeoutMs?: number;
  /** A session kept from an earlier run (e.g. before a `kill -9`): used without a Login until the server answers 401. */
  session?: KeptSapB1Session;
  /** The session shared by several instances on one Redis (session.ts): one Login per connection, logout by the last. */
  sharedSession?: SharedSecret<KeptSapB1Session>;
  /**
   * Told the session to keep across restarts (after each Login, before the session is used; awaited) and `undefined`
   * after a logout; must not throw. The value is a credential: keep it encrypted (nodes/lib/auth/token-file.ts).
   */
  onSession?: (s: KeptSapB1Session | undefined) => void | Promise<void>;
}

/** Query options of {@link SapB1Client.list} and {@link SapB1Client.get}. */
export interface SapB1Query {
  /** `$filter` text (dates and times quoted, see events.ts). */
  filter?: string;
  /** `$select` fields. */
  select?: string | string[];
  /** `$expand` (v2 enhancements, SLGUIDE §3.7.11). */
  expand?: string | string[];
  /** `$orderby`, e.g. "UpdateDate,UpdateTime,DocEntry". */
  orderby?: string | string[];
  /** `$top`: at most this many rows over all pages. */
  top?: number;
  /**
   * Rows per page for this list (`Prefer: odata.maxpagesize`, reference §5), e.g. larger for a full scan whose every
   * page is one Service Layer call; default the client's `pageSize`; 0 = the server's default.
   */
  pageSize?: number;
}

/** Options of {@link SapB1Client.patch}. */
export interface SapB1PatchOptions {
  /** `If-Match` ETag (v2, FP 2102+); a mismatch throws ErpError `etag_mismatch` (412, "-2039"). */
  ifMatch?: string;
}

/** Result of {@link SapB1Client.testConnection}. */
export interface SapB1ConnectionInfo {
  ok: true;
  version: SapB1Version;
  companyDb: string;
  /** Server build from the Login answer, e.g. "1000250". */
  serverVersion?: string;
  /** Session idle timeout from the Login answer, minutes. */
  sessionTimeoutMin?: number;
}

/** Counters for status and benchmarks (no secret). */
export interface SapB1Stats {
  /** Logins answered 200. */
  logins: number;
  /** Data requests sent (replays included; Login/Logout excluded). */
  requests: number;
  /** Requests replayed after a re-login. */
  replays: number;
  signedIn: boolean;
  /** Names (never values) of the cookies held. */
  cookieNames: string[];
}

const ENTITY_RE = /^[A-Za-z_][A-Za-z0-9_]{0,99}$/;
const closedError = (): MlcError => new ErpError("SAP Business One client is closed", { code: "client_closed" });

function joinList(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v.map((x) => x.trim()).filter(Boolean).join(",") : v?.trim();
  return s || undefined;
}

/**
 * OData key literal: an integer bare (`Invoices(812)`), anything else quoted with `'` doubled (`Items('A''1')`)
 * (SLGUIDE §3.5, §3.7.2).
 * @throws ValidationError for an empty key or a non-integer number
 */
export function keyLiteral(key: string | number): string {
  if (typeof key === "number") {
    if (!Number.isSafeInteger(key)) throw new ValidationError(`SAP Business One key must be an integer or a string, got ${key}`);
    return String(key);
  }
  if (typeof key !== "string" || key === "") throw new ValidationError("SAP Business One key is empty");
  return `'${key.replace(/'/g, "''")}'`;
}

/** A parsed Service Layer URL: origin and version. @throws ValidationError when it is not an http(s) URL */
function parseServiceUrl(raw: string, version: SapB1Version | undefined): { origin: string; version: SapB1Version } {
  let u: URL;
  try {
    u = new URL(String(raw ?? "").trim());
  } catch {
    throw new ValidationError("SAP Business One Service Layer URL is not a valid URL (expected e.g. https://sl.example.local:50000)");
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new ValidationError("SAP Business One Service Layer URL must start with https://");
  if (u.username || u.password || u.search || u.hash) throw new ValidationError("SAP Business One Service Layer URL must not contain credentials, a query or a fragment");
  const m = /^\/b1s\/(v1|v2)\/?$/.exec(u.pathname);
  if (!m && u.pathname !== "/" && u.pathname !== "") throw new ValidationError("SAP Business One Service Layer URL must be the server (https://host:50000) or its /b1s/v1 or /b1s/v2 root");
  const named = m?.[1] as SapB1Version | undefined;
  if (version && version !== "v1" && version !== "v2") throw new ValidationError(`SAP Business One version must be v1 or v2, got ${String(version)}`);
  return { origin: u.origin, version: version ?? named ?? "v2" };
}

/** One Service Layer connection (see module doc). */
export class SapB1Client {
  readonly version: SapB1Version;
  readonly companyDb: string;
  /** `https://host:port/b1s/vN/` */
  readonly serviceRoot: string;
  private readonly origin: string;
  private readonly http: HttpClient;
  private readonly budget: Budget;
  private readonly session: SapB1SessionSource;
  private readonly auth: AuthManager<SapB1SessionSource>;
  private readonly pageSize: number;
  private readonly closeTimeoutMs: number;
  private requests = 0;
  private replays = 0;
  private closing?: Promise<void>;

  /** @throws ValidationError for a malformed URL, version, page size, missing CompanyDB/user/password or bad TLS settings */
  constructor(opts: SapB1ClientOptions) {
    if (!opts || typeof opts !== "object") throw new ValidationError("SAP Business One client options are required");
    const { origin, version } = parseServiceUrl(opts.url, opts.version);
    this.origin = origin;
    this.version = version;
    this.serviceRoot = `${origin}/b1s/${version}/`;
    this.companyDb = String(opts.companyDb ?? "").trim();
    if (!this.companyDb) throw new ValidationError("SAP Business One company database (CompanyDB) is required");
    if (!opts.username || !opts.password) throw new ValidationError("SAP Business One user name and password are required");
    this.pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 0 || this.pageSize > 10_000) throw new ValidationError("pageSize must be an integer 0…10000");
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.http = new HttpClient({ ...(opts.http ?? {}), tls: opts.tls });
    this.budget = new Budget({ maxConcurrent: opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT, closedMessage: "SAP Business One client is closed" });
    this.session = this.makeSession(opts);
    this.auth = new AuthManager(this.session, {
      cooldownMs: opts.authCooldownMs,
      isRefusal: (err) => err instanceof AuthError,
      onState: opts.onAuthState,
      closedError,
    });
  }

  /**
   * `GET /{entity}({key})` → the record, or null when the server answers 404 (`-2028`).
   * @param key DocEntry (number) or a string key (ItemCode, CardCode)
   * @throws ValidationError bad entity/key; AuthError (`login_failed`, `session_invalid`, `forbidden`);
   *   ErpError (`bad_request` -1000, `business_error`); RateLimitedError; HttpError 5xx; TimeoutError; MlcError `tls_refused`
   */
  async get(entity: string, key: string | number, q: Pick<SapB1Query, "select" | "expand"> = {}): Promise<SapB1Record | null> {
    this.checkEntity(entity);
    const recordId = `${entity}(${keyLiteral(key)})`;
    const url = this.serviceRoot + recordId + queryString({ $select: joinList(q.select), $expand: joinList(q.expand) });
    const ctx = { op: `GET ${recordId}`, recordId };
    const res = await this.call({ method: "GET", url }, ctx);
    if (res.status === 404) return null;
    if (res.status !== 200) throw failError(res, ctx);
    return parseRecord(res.body, recordId);
  }

  /**
   * `GET /{entity}?$filter&$select&$expand&$orderby&$top` and every next page → the rows, one at a time.
   * @throws as {@link get}; ErpError `unexpected_response` for a page without `value`, `paging_loop` for a repeating
   *   next link, `foreign_next_link` for a next link to another server (cookies are never sent there)
   */
  async *list(entity: string, q: SapB1Query = {}): AsyncGenerator<SapB1Record, void, undefined> {
    this.checkEntity(entity);
    if (q.top !== undefined && !(Number.isInteger(q.top) && q.top >= 0)) throw new ValidationError("$top must be a non-negative integer");
    const pageSize = q.pageSize ?? this.pageSize;
    if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > 10_000) throw new ValidationError("pageSize must be an integer 0…10000");
    let url: string | undefined =
      this.serviceRoot +
      entity +
      queryString({ $filter: q.filter?.trim() || undefined, $select: joinList(q.select), $expand: joinList(q.expand), $orderby: joinList(q.orderby), $top: q.top?.toString() });
    const seen = new Set<string>();
    let count = 0;
    while (url) {
      if (seen.has(url)) throw new ErpError(`SAP Business One next link repeats for ${entity}`, { code: "paging_loop" });
      seen.add(url);
      const { rows, next } = await this.page(url, entity, pageSize);
      for (const r of rows) {
        if (q.top !== undefined && count >= q.top) return;
        count++;
        yield r as SapB1Record;
      }
      url = next ? this.resolveNext(next) : undefined;
    }
  }

  /** All rows of {@link list} in an array. @throws as {@link list} */
  async listAll(entity: string, q: SapB1Query = {}): Promise<SapB1Record[]> {
    const out: SapB1Record[] = [];
    for await (const r of this.list(entity, q)) out.push(r);
    return out;
  }

  /**
   * `PATCH /{entity}({key})` with the fields to change (a merge; SLGUIDE §3.5.3) → 204. Used to write delivery status
   * back onto a document (e.g. `Comments` or a user field `U_…`).
   * @throws as {@link get}; ErpError `not_found` (404), `etag_mismatch` (412, "-2039"), `bad_request` (unknown field)
   */
  async patch(entity: string, key: string | number, fields: SapB1Record, o: SapB1PatchOptions = {}): Promise<void> {
    this.checkEntity(entity);
    if (!fields || typeof fields !== "object" || Array.isArray(fields)) throw new ValidationError("PATCH body must be an object of fields");
    const recordId = `${entity}(${keyLiteral(key)})`;
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (o.ifMatch) headers["If-Match"] = o.ifMatch;
    const ctx = { op: `PATCH ${recordId}`, recordId };
    // a merge of the same fields is idempotent: safe to repeat after a timeout
    const res = await this.call({ method: "PATCH", url: this.serviceRoot + recordId, headers, body: JSON.stringify(fields), idempotent: true }, ctx);
    if (res.status !== 204 && res.status !== 200) throw failError(res, ctx);
  }

  /**
   * Connection check: logs in (if no session yet) and reads `GET /Items?$select=ItemCode&$top=1`.
   * @throws the errors of a real call (AuthError `login_failed`, MlcError `tls_refused`, TimeoutError, …)
   */
  async testConnection(): Promise<SapB1ConnectionInfo> {
    await this.listAll("Items", { select: "ItemCode", top: 1 });
    return { ok: true, version: this.version, companyDb: this.companyDb, serverVersion: this.session.serverVersion, sessionTimeoutMin: this.session.sessionTimeoutMin };
  }

  /** Counters (no secret values). */
  stats(): SapB1Stats {
    return { logins: this.session.logins, requests: this.requests, replays: this.replays, signedIn: this.session.isSignedIn, cookieNames: this.session.jar.names() };
  }

  /** The current Login pause after a refusal: `{ blocked: true, until, error }` or `{ blocked: false }`. */
  authState(): AuthState {
    return this.auth.state();
  }

  /**
   * `POST /Logout` when a session is held (→ 204), then drop the cookies and close the pool. Idempotent; never
   * rejects; resolves within `closeTimeoutMs` (logout aborted at the deadline). Afterwards every call throws ErpError
   * `client_closed` and nothing logs in again.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.auth.close();
    this.budget.close();
    this.closing = this.shutdown();
    return this.closing;
  }

  // ------------------------------------------------------------------------------------------------------ plumbing

  private shutdown(): Promise<void> {
    return closeWithin(this.closeTimeoutMs, {
      pending: this.auth.pending,
      signOut: (signal) => this.session.end(signal),
      forget: () => this.session.clear(),
      release: () => this.http.close(),
    });
  }

  private makeSession(opts: SapB1ClientOptions): SapB1SessionSource {
    const loginUrl = `${this.serviceRoot}Login`; // case-sensitive: "/login" is a protected resource (401)
    const logoutUrl = `${this.serviceRoot}Logout`;
    const payload: Record<string, unknown> = { CompanyDB: this.companyDb, UserName: opts.username, Password: opts.password };
    if (opts.language !== undefined) payload.Language = opts.language;
    return new SapB1SessionSource({
      loginUrl,
      login: (signal) =>
        this.http.request({ method: "POST", url: loginUrl, headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(payload), idempotent: false, signal }),
      checkLogin: checkLoginAnswer,
      logoutUrl,
      logout: (cookie, signal) => this.http.request({ method: "POST", url: logoutUrl, headers: { Cookie: cookie }, idempotent: true, timeoutMs: this.closeTimeoutMs, signal }),
      initial: opts.session,
      onSession: opts.onSession,
      shared: opts.sharedSession,
    });
  }

  private checkEntity(entity: string): void {
    if (this.auth.isClosed) throw closedError();
    if (typeof entity !== "string" || !ENTITY_RE.test(entity)) throw new ValidationError(`Not a valid SAP Business One entity name: ${JSON.stringify(String(entity)).slice(0, 60)}`);
  }

  /**
   * One request through the budget. Like the kit's `pacedRequest` (nodes/lib/budget/request.ts), but the session's
   * cookies are read when the request gets its slot, after any re-login in progress: a request that queued behind a
   * re-login never carries the old session (reference §2: "after the re-login, never send the old cookies again").
   */
  private async send(req: { method: HttpMethod; url: string; headers?: Record<string, string>; body?: string; idempotent?: boolean }): Promise<HttpResponse> {
    const res = await this.budget.run(undefined, async () => {
      const attempt = this.budget.currentAttempt(); // read synchronously, before the first await
      const pending = this.auth.pending;
      if (pending) await pending.catch(() => undefined);
      const headers = { Accept: "application/json", ...(req.headers ?? {}), ...this.session.headers() };
      const r = await this.http.request({ ...req, headers, isFinal: () => true });
      this.budget.noteResponse(attempt, r.headers);
      if (isRefusal(r)) throw failError(r, { op: `${req.method} ${safeUrl(req.url).replace(this.serviceRoot, "")}` });
      return r;
    });
    this.requests++;
    this.session.absorb(req.url, res);
    return res;
  }

  /** Ensure a session, send, and when the session is gone log in once (single-flight) and replay once. */
  private async call(req: Parameters<SapB1Client["send"]>[0], ctx: FailContext): Promise<HttpResponse> {
    const gen = await this.auth.ensure();
    const first = await this.send(req);
    if (!isSessionGone(first) || this.auth.isClosed) return first;
    await this.auth.renew(gen);
    this.replays++;
    const res = await this.send(req);
    if (isSessionGone(res)) {
      ctx.op = `${ctx.op} (after logging in again)`;
      if (res.status !== 401) return { ...res, status: 401 };
    }
    return res;
  }

  private async page(url: string, entity: string, pageSize: number): Promise<{ rows: unknown[]; next?: string }> {
    const headers: Record<string, string> = pageSize > 0 ? { Prefer: `odata.maxpagesize=${pageSize}` } : {};
    const ctx = { op: `GET ${entity}` };
    const res = await this.call({ method: "GET", url, headers }, ctx);
    if (res.status !== 200) throw failError(res, ctx);
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      throw new ErpError(`SAP Business One GET ${entity} answered with a body that is not JSON`, { code: "unexpected_response", status: res.status });
    }
    return odataPage(parsed);
  }

  /** Next link → absolute URL on this server (reference §5). @throws ErpError `foreign_next_link` */
  private resolveNext(next: string): string {
    const abs = /^[a-z][a-z0-9+.-]*:/i.test(next) ? new URL(next) : next.startsWith("/") ? new URL(next, this.origin) : new URL(next, this.serviceRoot);
    if (abs.origin !== this.origin) throw new ErpError("SAP Business One next link points at another server; not followed", { code: "foreign_next_link" });
    return abs.toString();
  }
}

/** `?$a=…&$b=…` with values percent-encoded (names kept), "" when nothing is set. */
function queryString(params: Record<string, string | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${encodeURIComponent(v as string)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

function parseRecord(body: string, recordId: string): SapB1Record {
  try {
    const v = JSON.parse(body) as unknown;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as SapB1Record;
  } catch {
    // fall through
  }
  throw new ErpError(`SAP Business One GET ${recordId} answered with a body that is not a record`, { code: "unexpected_response", recordId });
}
