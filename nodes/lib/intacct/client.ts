/**
 * Sage Intacct XML gateway client (reference sage-intacct.md; official SDK `intacct/intacct-sdk-js`), built on the
 * family kit: the HTTP client (nodes/lib/http.ts), a rate budget with a concurrency cap (Intacct enforces
 * concurrent requests; 429 `GW-0010` re-queued, never dropped), single-flight sign-in with a refusal cool-down
 * (nodes/lib/auth/renewal.ts) over the API session source (session.ts), and the readMore page iterator.
 *
 * One request = `POST <endpoint>` with `Content-Type: application/xml`, an envelope of `<control>` (sender id and
 * password, a fresh control id, `uniqueid` false, `dtdversion` 3.0, `includewhitespace` false) and one `<operation>`
 * with `<authentication>` (`<login>` only for `getAPISession`, which goes alone; `<sessionid>` for everything else)
 * and `<content>` with `<function controlid="…">` elements. The endpoint returned by `getAPISession` is used
 * afterwards. An authentication failure with a session id discards the session (never sent again), signs in once
 * more and repeats the request once. 5xx answers (not 524) are repeated with backoff, at most `maxAttempts` times.
 */
import { randomUUID } from "node:crypto";
import { AuthManager } from "../auth/renewal";
import type { SharedSecret } from "../auth/shared-secret";
import { AuthState } from "../auth/source";
import { Budget, pacedRequest } from "../budget";
import { AuthError, ErpError } from "../errors";
import { HttpClient, HttpClientOptions, HttpResponse } from "../http";
import { readMorePages } from "../poll/pages";
import { backoffDelay, DEFAULT_RETRY_POLICY, sleep } from "../retry";
import { IntacctAnswer, IntacctAuthError, IntacctSessionFailure, readDocument, readEnvelope, resultFor } from "./answers";
import { IntacctQuery, ReadByQueryRequest, plainRecord, queryXml, readByQueryXml } from "./query";
import { IntacctSession, IntacctSessionSource, remainingMs, sessionKey } from "./session";
import { XmlTree, asArray, buildRequestXml, textOf } from "./xml";

/** The gateway's public endpoint (reference §1). */
export const INTACCT_ENDPOINT = "https://api.intacct.com/ia/xml/xmlgw.phtml";

/** Credentials of one company user through one Web Services sender. All secrets: never logged. */
export interface IntacctCredentials {
  senderId: string;
  senderPassword: string;
  companyId: string;
  userId: string;
  userPassword: string;
  /** Entity (location) id for an entity-level session in a multi-entity company; "" = top level. */
  locationId?: string;
}

/** Options of {@link IntacctClient}. */
export interface IntacctClientOptions extends IntacctCredentials {
  /** Gateway URL; default {@link INTACCT_ENDPOINT}. */
  endpoint?: string;
  /** The company's IANA time zone (dates without offset are read in it); default "UTC". */
  timeZone?: string;
  /** Requests in flight at once; default 2. */
  maxConcurrent?: number;
  /** Attempts for a 5xx answer (524 never repeated); default 3. */
  maxAttempts?: number;
  /** Base of the 5xx backoff, ms; default 1000 (the SDK's 2^(n-1) s). */
  retryBaseMs?: number;
  /** Session renewal margin, ms; default 300000. */
  renewBeforeMs?: number;
  /** Pause after a refused sign-in, ms; default 300000. */
  cooldownMs?: number;
  /** Told when sign-in is paused or resumes. */
  onAuthState?: (s: AuthState) => void;
  /** A session kept from an earlier run (see session.ts); used while valid. */
  session?: IntacctSession;
  /** Told the session to keep across restarts, `undefined` when it must be forgotten; must not throw. */
  onSession?: (s: IntacctSession | undefined) => void | Promise<void>;
  /** The session shared by the Node-RED instances of one Redis (session.ts); absent: this client's own. */
  sharedSession?: SharedSecret<IntacctSession>;
  /** HTTP client options (timeouts, TLS). */
  http?: HttpClientOptions;
  /** Local clock, ms since the epoch (tests). */
  now?: () => number;
}

/** One function to send: its control id and its body (e.g. `{ query: {...} }`). */
export interface IntacctFunction {
  controlId: string;
  body: XmlTree;
}

/** One page of a `query` or `readByQuery` answer: rows as plain JSON (see query.ts `plainRecord`). */
export interface IntacctPage {
  rows: Record<string, unknown>[];
  totalCount: number;
  count: number;
  numRemaining: number;
  offset: number;
  /** readByQuery/readMore only ("" when nothing remains). */
  resultId: string;
}

/** See module doc. One instance per config node; {@link close} it. */
export class IntacctClient {
  readonly auth: AuthManager<IntacctSessionSource>;
  readonly timeZone: string;
  private readonly opts: IntacctClientOptions;
  private readonly http: HttpClient;
  private readonly budget: Budget;
  private readonly configured: URL;
  private readonly cache = new Map<string, { at: number; row: Record<string, unknown> | undefined }>();
  /** Requests sent (every HTTP request the gateway counted, retries included). */
  requests = 0;

  /** @throws ErpError `bad_config` for an endpoint that is not an http(s) URL or missing credentials */
  constructor(opts: IntacctClientOptions) {
    for (const k of ["senderId", "senderPassword", "companyId", "userId", "userPassword"] as const) {
      if (!opts[k]) throw new ErpError(`Intacct ${k} is required`, { code: "bad_config" });
    }
    let url: URL;
    try {
      url = new URL(opts.endpoint || INTACCT_ENDPOINT);
    } catch {
      throw new ErpError("Intacct endpoint is not a URL", { code: "bad_config" });
    }
    if (!/^https?:$/.test(url.protocol)) throw new ErpError("Intacct endpoint must be http(s)", { code: "bad_config" });
    this.configured = url;
    this.opts = opts;
    this.timeZone = opts.timeZone || "UTC";
    this.http = new HttpClient(opts.http);
    this.budget = new Budget({ maxConcurrent: opts.maxConcurrent ?? 2 });
    const source = new IntacctSessionSource({
      key: sessionKey({ endpoint: url.toString(), senderId: opts.senderId, companyId: opts.companyId, userId: opts.userId, locationId: opts.locationId }),
      login: (signal) => this.login(signal),
      renewBeforeMs: opts.renewBeforeMs,
      now: opts.now,
      initial: opts.session,
      onSession: opts.onSession,
      shared: opts.sharedSession,
    });
    this.auth = new AuthManager(source, { cooldownMs: opts.cooldownMs, onState: opts.onAuthState, now: opts.now });
  }

  /** How many sessions were opened (`getAPISession` calls that succeeded). */
  get logins(): number {
    return this.auth.source.logins;
  }

  /** The endpoint requests go to: the session's, else the configured one. */
  get endpoint(): string {
    return this.auth.source.session?.endpoint ?? this.configured.toString();
  }

  /** The returned endpoint, if it is the configured host or an `*.intacct.com` https host (SDK rule), else ours. */
  private trustedEndpoint(returned: string): string {
    try {
      const u = new URL(returned);
      if (u.hostname === this.configured.hostname && u.protocol === this.configured.protocol) return u.toString();
      if (u.protocol === "https:" && u.hostname.endsWith(".intacct.com")) return u.toString();
    } catch {
      // fall through
    }
    return this.configured.toString();
  }

  private envelope(fns: IntacctFunction[], authentication: XmlTree, transaction: boolean): string {
    const o = this.opts;
    return buildRequestXml({
      request: {
        control: { senderid: o.senderId, password: o.senderPassword, controlid: randomUUID(), uniqueid: "false", dtdversion: "3.0", includewhitespace: "false" },
        operation: {
          "@_transaction": String(transaction),
          authentication,
          content: { function: fns.map((f) => ({ "@_controlid": f.controlId, ...f.body })) },
        },
      },
    });
  }

  /** One POST through the budget, 5xx (not 524) repeated with backoff. @throws HttpError, RateLimitedError, TimeoutError */
  private async post(url: string, body: string): Promise<HttpResponse> {
    const max = this.opts.maxAttempts ?? 3;
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: this.opts.retryBaseMs ?? 1000, maxDelayMs: 16_000 };
    for (let attempt = 0; ; attempt++) {
      this.requests++;
      const res = await pacedRequest(this.budget, this.http, {
        method: "POST",
        url,
        headers: { "Content-Type": "application/xml", Accept: "application/xml", "User-Agent": "node-red-contrib-ml-connector" },
        body,
        idempotent: true,
      });
      if (res.status < 500 || res.status === 524 || attempt + 1 >= max) return res;
      await sleep(backoffDelay(attempt, policy));
    }
  }

  private async exchange(fns: IntacctFunction[], authentication: XmlTree, usedSession: boolean, transaction: boolean): Promise<IntacctAnswer> {
    const url = this.endpoint;
    const res = await this.post(url, this.envelope(fns, authentication, transaction));
    const answer = readEnvelope(readDocument(res, url), usedSession, res.status);
    if (usedSession) this.auth.source.slide(remainingMs(answer.sessionTimestamp, answer.sessionTimeout));
    return answer;
  }

  /** `getAPISession`, alone in its request, with the login credentials (called by the session source only). */
  private async login(signal?: AbortSignal): Promise<{ session: Omit<IntacctSession, "expiresAt">; remainingMs?: number }> {
    void signal;
    const o = this.opts;
    const login: XmlTree = { userid: o.userId, companyid: o.companyId, password: o.userPassword };
    if (o.locationId) login.locationid = o.locationId;
    const controlId = `session-${randomUUID()}`;
    const url = this.configured.toString();
    const res = await this.post(url, this.envelope([{ controlId, body: { getAPISession: "" } }], { login }, false));
    const answer = readEnvelope(readDocument(res, url), false, res.status);
    const api = (resultFor(answer, controlId).data?.api ?? {}) as Record<string, unknown>;
    const sessionId = textOf(api.sessionid);
    if (!sessionId) throw new ErpError("getAPISession answered without a session id", { code: "unexpected_response" });
    const endpoint = this.trustedEndpoint(textOf(api.endpoint) || url);
    return { session: { sessionId, endpoint, locationId: textOf(api.locationid) }, remainingMs: remainingMs(answer.sessionTimestamp, answer.sessionTimeout) };
  }

  /**
   * Send functions in one request with the session (signing in first when needed) and return the answer; each
   * function's result is checked by the caller with {@link resultFor}.
   * @param transaction `transaction="true"`: all or nothing (siblings of a failure report XL03000009)
   * @throws IntacctAuthError (sign-in or sender refused; after a session failure and one new sign-in),
   *   AuthCooldownError, IntacctError (control level), RateLimitedError, HttpError, TimeoutError, XmlRefusedError
   */
  async execute(fns: IntacctFunction[], transaction = false): Promise<IntacctAnswer> {
    for (let tries = 0; ; tries++) {
      let gen = await this.auth.ensure();
      const current = this.auth.source.session;
      if (current && (await this.auth.source.sharedMoved(current.sessionId))) {
        await this.auth.renew(gen); // another instance renewed (ours failed there): take its session, never resend ours
        gen = await this.auth.ensure();
      }
      const session = this.auth.source.session;
      if (!session) throw new AuthError("No Intacct session", { code: "auth_failed" });
      try {
        return await this.exchange(fns, { sessionid: session.sessionId }, true, transaction);
      } catch (err) {
        if (!(err instanceof IntacctSessionFailure)) throw err;
        this.auth.source.failed(session.sessionId);
        if (tries >= 1) throw new IntacctAuthError("authentication", err.errors, "session_refused", err.status);
        await this.auth.renew(gen); // discards the failed session id: it is never sent again
      }
    }
  }

  /** One function; its result's `<data>`. @throws as {@link execute}; IntacctError `intacct_result` when it failed */
  async call(body: XmlTree): Promise<Record<string, unknown> | undefined> {
    const controlId = `${Object.keys(body)[0] ?? "fn"}-${randomUUID()}`;
    const answer = await this.execute([{ controlId, body }]);
    return resultFor(answer, controlId).data;
  }

  private page(data: Record<string, unknown> | undefined, object?: string): IntacctPage {
    if (!data) throw new ErpError("Intacct result has no <data>", { code: "unexpected_response" });
    const listType = textOf(data["@_listtype"]) || object || "";
    const key = Object.keys(data).find((k) => !k.startsWith("@_") && (k === listType || k.toLowerCase() === listType.toLowerCase()));
    const raw = asArray((key ? data[key] : undefined) as Record<string, unknown> | Record<string, unknown>[] | undefined);
    const num = (a: string) => Number(textOf(data[`@_${a}`]) || 0);
    return {
      rows: raw.map((r) => plainRecord(typeof r === "object" && r ? r : {}, this.timeZone)),
      totalCount: num("totalcount"),
      count: num("count"),
      numRemaining: num("numremaining"),
      offset: num("offset"),
      resultId: textOf(data["@_resultId"]),
    };
  }

  /** One page of `query`. @throws ValidationError for a malformed query; as {@link call} */
  async query(q: IntacctQuery): Promise<IntacctPage> {
    return this.page(await this.call(queryXml(q, this.timeZone)), q.object.toUpperCase());
  }

  /** Every row of `query`, paging by `offset` until `numremaining` is 0. @throws as {@link query} */
  async *queryAll(q: IntacctQuery): AsyncGenerator<Record<string, unknown>, void, undefined> {
    let offset = q.offset ?? 0;
    for (;;) {
      const p = await this.query({ ...q, offset });
      yield* p.rows;
      if (!(p.numRemaining > 0) || p.rows.length === 0) return;
      offset += p.rows.length;
    }
  }

  /** First page of `readByQuery`. @throws as {@link call} */
  async readByQuery(r: ReadByQueryRequest): Promise<IntacctPage> {
    return this.page(await this.call(readByQueryXml(r)), r.object.toUpperCase());
  }

  /** Next page of a `readByQuery`; an expired resultId fails (restart from the watermark, never repeat it). */
  async readMore(resultId: string, object?: string): Promise<IntacctPage> {
    return this.page(await this.call({ readMore: { resultId } }), object);
  }

  /** Every row of a `readByQuery` (then `readMore` until `numremaining` is 0). @throws as {@link call} */
  readByQueryAll(r: ReadByQueryRequest): AsyncGenerator<Record<string, unknown>, void, undefined> {
    const object = r.object.toUpperCase();
    return readMorePages(() => this.readByQuery(r), (id) => this.readMore(id, object));
  }

  /**
   * One record by a key field (`query` with `equalto`, page size 1), e.g. `get("VENDOR", "VENDORID", "V1007",
   * ["NAME", "DISPLAYCONTACT.CELLPHONE"])`. With `maxAgeMs` > 0 an answer (found or not) is reused for that long,
   * so enriching many alerts about the same vendor costs one call (at most 1000 entries, oldest dropped first).
   * @returns the row as plain JSON, or undefined when no record has that key
   * @throws as {@link query}
   */
  async get(object: string, keyField: string, key: string, select: string[], maxAgeMs = 0): Promise<Record<string, unknown> | undefined> {
    const cacheKey = JSON.stringify([object.toUpperCase(), keyField.toUpperCase(), key, select]);
    const now = (this.opts.now ?? Date.now)();
    const hit = this.cache.get(cacheKey);
    if (hit && maxAgeMs > 0 && now - hit.at < maxAgeMs) return hit.row;
    const page = await this.query({ object, select, filter: { field: keyField, op: "equalto", value: key }, pageSize: 1 });
    const row = page.rows[0];
    if (maxAgeMs > 0) {
      this.cache.delete(cacheKey);
      this.cache.set(cacheKey, { at: now, row });
      if (this.cache.size > 1000) this.cache.delete(this.cache.keys().next().value as string);
    }
    return row;
  }

  /**
   * Test connection: open (or reuse) the session. @returns the company, user and endpoint host (no secret)
   * @throws as {@link execute}
   */
  async testConnection(): Promise<{ companyId: string; userId: string; endpointHost: string; locationId: string }> {
    await this.auth.ensure();
    const s = this.auth.source.session;
    return { companyId: this.opts.companyId, userId: this.opts.userId, endpointHost: s ? new URL(s.endpoint).host : "", locationId: s?.locationId ?? "" };
  }

  /** Stop signing in, drop the session, close the pool. Idempotent; never rejects. */
  async close(): Promise<void> {
    this.auth.close();
    await this.auth.pending?.catch(() => undefined);
    this.auth.source.clear();
    this.budget.close();
    await this.http.close().catch(() => undefined);
  }
}

