/**
 * IntacctSim: the Sage Intacct XML gateway on 127.0.0.1, port 0, following ../shared/reference/sage-intacct.md to
 * the letter, for the client's unit tests, node tests and the demo.
 *
 * - One endpoint, `POST /ia/xml/xmlgw.phtml`, `Content-Type: application/xml` only (anything else: control failure);
 *   answers `text/xml; encoding="UTF-8";charset=UTF-8`, HTTP 200 for business errors at the three levels (§4).
 * - Envelope (§2): `<control>` children present and in order (senderid, password, controlid, uniqueid, dtdversion,
 *   [policyid], includewhitespace), controlid 1–256, uniqueid true|false, dtdversion 3.0; every `<function>` has a
 *   controlid attribute 1–256; no DOCTYPE / ENTITY; no characters XML 1.0 forbids (raw or as references).
 * - Sessions (§3): `getAPISession` with `<login>` returns sessionid, endpoint, locationid; every answer carries
 *   sessiontimestamp / sessiontimeout (company time with offset, the simulator's clock); the timeout slides with
 *   each call; an expired or unknown session id is an authentication failure XL03000006.
 * - `query` (§5.1), `readByQuery` + `readMore` (§5.2) with paging, resultId lifetime, upper-case object names,
 *   `<and>`/`<or>` with two or more conditions, date literals `mm/dd/yyyy[ HH:MM:SS]` only.
 * - `transaction="true"`: siblings of a failed function report XL03000009.
 * - Limits (§8): at most `maxConcurrent` requests at once, the rest 429 GW-0010; injected faults (5xx, 524,
 *   Cloudflare HTML pages, 429).
 * - `violations` records what the reference calls a trap even where a real gateway may let it pass (a login while
 *   the session has more than 5 minutes left, a failed session id sent again, getAPISession not alone, pagesize not
 *   sent): tests assert it stays empty. `log` records every request (functions, auth kind; never a password).
 */
import http from "node:http";
import { randomBytes } from "node:crypto";
import { XMLParser } from "fast-xml-parser";
import { pad, wallClock, zoneOffsetMs } from "../../nodes/lib/poll/zone";
import { SimServer, readBody, splitUrl } from "./http-server";
import { SimRecord } from "./intacct-text";
import { FnContext, runFunction } from "./intacct-functions";

export const INTACCT_PATH = "/ia/xml/xmlgw.phtml";

/** One request in the ledger. */
export interface IntacctLogEntry {
  auth: "login" | "session" | "none";
  functions: string[];
  /** The object each function named (`<object>` of query/readByQuery; "" for others), in the same order. */
  objects?: string[];
  sessionId?: string;
  /** Outcome: "ok", "control-failure", "auth-failure", "429", or an injected status. */
  outcome: string;
  transaction: boolean;
}

/** An injected answer for the next request. */
export interface IntacctFault {
  status: number;
  /** Cloudflare-style HTML body instead of XML. */
  html?: boolean;
  /** This exact body (served as XML), e.g. a DOCTYPE with entities. */
  raw?: string;
}

interface SimSession {
  id: string;
  userKey: string;
  locationId: string;
  expiresAt: number;
  failed: boolean;
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@_", parseTagValue: false, processEntities: true, htmlEntities: true, isArray: (name) => name === "function" });

const ILLEGAL_RAW = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const ILLEGAL_REF = /&#(?:x0*(?:[0-8bcef]|1[0-9a-f])|0*(?:[0-8]|1[1-2]|1[4-9]|2[0-9]|3[01]));/i;

/** XML text escaping for answers. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function errorXml(errorno: string, description: string, description2 = "", correction = ""): string {
  return `<errormessage><error><errorno>${esc(errorno)}</errorno><description>${esc(description)}</description><description2>${esc(description2)}</description2><correction>${esc(correction)}</correction></error></errormessage>`;
}

/** The simulator; `start()` → origin. Fields are public knobs for tests. */
export class IntacctSim {
  senderId = "acme_sender";
  senderPassword = "senderPw!";
  companyId = "ACME-US";
  userId = "ws_notify";
  userPassword = "userPw!";
  /** Whether the company authorised the sender id for Web Services. */
  senderAuthorized = true;
  /** Entity ids of a multi-entity company (`locationid` at login). */
  readonly locations = new Set<string>(["E100", "E200"]);
  /** Session duration, ms (slides with each call). */
  sessionDurationMs = 3_600_000;
  /** Company time zone of WHENMODIFIED values and session timestamps. */
  timeZone = "America/Los_Angeles";
  /** The simulator's clock runs this far ahead of the host's, ms (server clock ≠ client clock). */
  clockOffsetMs = 0;
  /** resultId lifetime, ms. */
  resultIdLifetimeMs = 30 * 60_000;
  /** Concurrent requests allowed; more → 429 GW-0010. */
  maxConcurrent = 4;
  /** Delay before answering, ms (to hold requests in flight). */
  delayMs = 0;
  /** Endpoint path returned by getAPISession (a test may point it elsewhere on this host). */
  sessionEndpointPath = INTACCT_PATH;
  /** Answers for the next requests, in order. */
  readonly faults: IntacctFault[] = [];
  /** Records per object name (upper case), values as Intacct text. */
  readonly records: Record<string, SimRecord[]> = { APBILL: [], APPYMT: [], VENDOR: [] };
  readonly log: IntacctLogEntry[] = [];
  /** Request target (path and query) of every POST, in order. */
  readonly requestUrls: string[] = [];
  readonly violations: string[] = [];
  /** Successful getAPISession calls. */
  logins = 0;
  /** Fail the next N function results of this name with this error (result level), e.g. `{ query: 1 }`. */
  readonly failFunctions: Record<string, number> = {};
  readonly sessions = new Map<string, SimSession>();
  readonly resultIds = new Map<string, { rows: SimRecord[]; pos: number; pageSize: number; expiresAt: number; listType: string; fields: string[] | "*" }>();
  private inFlight = 0;
  private readonly server = new SimServer({ name: "IntacctSim", handler: (req, res) => this.handle(req, res), errorContentType: "text/plain" });

  start(): Promise<string> {
    return this.server.start();
  }
  stop(): Promise<void> {
    return this.server.stop();
  }
  get url(): string {
    return this.server.url;
  }
  /** The gateway URL `http://127.0.0.1:<port>/ia/xml/xmlgw.phtml`. */
  get endpoint(): string {
    return this.url + INTACCT_PATH;
  }
  /** What an IntacctClient needs to reach this simulator's company: gateway URL, sender and user credentials, time zone. */
  clientOptions(): { endpoint: string; senderId: string; senderPassword: string; companyId: string; userId: string; userPassword: string; timeZone: string } {
    return { endpoint: this.endpoint, senderId: this.senderId, senderPassword: this.senderPassword, companyId: this.companyId, userId: this.userId, userPassword: this.userPassword, timeZone: this.timeZone };
  }
  /** The simulator's clock, ms. */
  now(): number {
    return Date.now() + this.clockOffsetMs;
  }

  /** `MM/DD/YYYY HH:MM:SS` of `ms` (default now) in the company's time zone. */
  timeText(ms = this.now()): string {
    const w = wallClock(ms, this.timeZone);
    return `${pad(w.month)}/${pad(w.day)}/${w.year} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
  }

  /** ISO 8601 with the company's offset, e.g. `2025-03-10T09:15:02-07:00`. */
  isoText(ms: number): string {
    const w = wallClock(ms, this.timeZone);
    const off = Math.round(zoneOffsetMs(ms, this.timeZone) / 60_000);
    const sign = off < 0 ? "-" : "+";
    return `${w.year}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  }

  /** Add or replace (by RECORDNO) a record of `object`; WHENMODIFIED defaults to now. @returns the stored record */
  upsert(object: string, rec: SimRecord): SimRecord {
    const list = (this.records[object] ??= []);
    const stored: SimRecord = { WHENMODIFIED: this.timeText(), ...rec };
    const i = list.findIndex((r) => r.RECORDNO === stored.RECORDNO);
    if (i >= 0) list[i] = stored;
    else list.push(stored);
    return stored;
  }

  /** Delete a record by RECORDNO (Purchasing-originated bills are deleted and recreated with a new RECORDNO). */
  remove(object: string, recordNo: string): void {
    const list = this.records[object] ?? [];
    const i = list.findIndex((r) => r.RECORDNO === recordNo);
    if (i >= 0) list.splice(i, 1);
  }

  /** Back to the state of a new simulator (records, sessions, ledgers, faults and knobs), keeping the port. */
  reset(): void {
    const fresh = new IntacctSim();
    for (const k of ["senderId", "senderPassword", "companyId", "userId", "userPassword", "senderAuthorized", "sessionDurationMs", "timeZone", "clockOffsetMs", "resultIdLifetimeMs", "maxConcurrent", "delayMs", "sessionEndpointPath", "logins"] as const) {
      (this as Record<string, unknown>)[k] = fresh[k];
    }
    this.faults.length = 0;
    this.log.length = 0;
    this.requestUrls.length = 0;
    this.violations.length = 0;
    this.sessions.clear();
    this.resultIds.clear();
    for (const k of Object.keys(this.failFunctions)) delete this.failFunctions[k];
    for (const k of Object.keys(this.records)) delete this.records[k];
    Object.assign(this.records, { APBILL: [], APPYMT: [], VENDOR: [] });
  }

  /** Expire every session now (the next call with its id is an authentication failure). */
  expireSessions(): void {
    for (const s of this.sessions.values()) s.expiresAt = this.now() - 1;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path } = splitUrl(req.url);
    if (req.method !== "POST" || path !== INTACCT_PATH) {
      res.writeHead(404, { "Content-Type": "text/html" });
      res.end("<html><body>Not Found</body></html>");
      return;
    }
    const body = (await readBody(req, 8 * 1024 * 1024)).toString("utf8");
    this.requestUrls.push(req.url ?? "");
    const fault = this.faults.shift();
    if (fault) return this.answerFault(res, fault);
    if (this.inFlight >= this.maxConcurrent) {
      this.log.push({ auth: "none", functions: [], outcome: "429", transaction: false });
      return this.send(res, 429, `<response><control><status>failure</status></control>${errorXml("GW-0010", "Rate limit exceeded", "Too many concurrent requests", "Please Try Again Later")}</response>`);
    }
    this.inFlight++;
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      this.send(res, 200, this.answer(req, body));
    } finally {
      this.inFlight--;
    }
  }

  private answerFault(res: http.ServerResponse, f: IntacctFault): void {
    this.log.push({ auth: "none", functions: [], outcome: String(f.status), transaction: false });
    if (f.raw !== undefined) {
      res.writeHead(f.status, { "Content-Type": 'text/xml; encoding="UTF-8";charset=UTF-8' });
      res.end(f.raw);
      return;
    }
    if (f.html) {
      res.writeHead(f.status, { "Content-Type": "text/html; charset=UTF-8" });
      res.end(`<!DOCTYPE html><html><head><title>api.intacct.com | ${f.status}</title></head><body><div id="cf-error-details">Error ${f.status}</div></body></html>`);
      return;
    }
    const code = f.status === 429 ? "GW-0010" : "GW-0001";
    this.send(res, f.status, `<response><control><status>failure</status></control>${errorXml(code, `HTTP ${f.status}`, "", "Please Try Again Later")}</response>`);
  }

  private send(res: http.ServerResponse, status: number, xml: string): void {
    const text = `<?xml version="1.0" encoding="UTF-8"?>\n${xml}`;
    res.writeHead(status, { "Content-Type": 'text/xml; encoding="UTF-8";charset=UTF-8', "Content-Length": String(Buffer.byteLength(text)) });
    res.end(text);
  }

  private controlFailure(errorno: string, description: string, description2 = ""): string {
    this.log.push({ auth: "none", functions: [], outcome: "control-failure", transaction: false });
    return `<response><control><status>failure</status></control>${errorXml(errorno, description, description2)}</response>`;
  }

  /** Checks of the raw request and the control block; undefined when acceptable, else the failure answer. */
  private checkRaw(req: http.IncomingMessage, body: string): string | undefined {
    const ct = String(req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
    if (ct !== "application/xml") return this.controlFailure("XL03000003", "XML Parse error", `Unsupported content type ${ct || "(none)"}`);
    if (/<!\s*(DOCTYPE|ENTITY)/i.test(body)) return this.controlFailure("XL03000003", "XML Parse error", "DOCTYPE is not allowed");
    if (ILLEGAL_RAW.test(body) || ILLEGAL_REF.test(body)) return this.controlFailure("XL03000003", "XML Parse error", "Illegal character in XML");
    const control = /<request>\s*<control>([\s\S]*?)<\/control>/.exec(body);
    if (!control) return this.controlFailure("XL03000003", "XML Parse error", "Missing <request><control>");
    const names = [...control[1].matchAll(/<([A-Za-z]+)[\s/>]/g)].map((m) => m[1]).filter((n, i, a) => a.indexOf(n) === i);
    const want = ["senderid", "password", "controlid", "uniqueid", "dtdversion", ...(names.includes("policyid") ? ["policyid"] : []), "includewhitespace"];
    if (names.join(",") !== want.join(",")) return this.controlFailure("XL03000003", "XML Parse error", `control elements must be ${want.join(", ")}`);
    return undefined;
  }

  private answer(req: http.IncomingMessage, body: string): string {
    const bad = this.checkRaw(req, body);
    if (bad) return bad;
    let doc: Record<string, any>;
    try {
      doc = parser.parse(body, true);
    } catch {
      return this.controlFailure("XL03000003", "XML Parse error");
    }
    const c = doc?.request?.control ?? {};
    const controlId = String(c.controlid ?? "");
    if (controlId.length < 1 || controlId.length > 256) return this.controlFailure("XL03000003", "Invalid controlid", "controlid must be 1-256 characters");
    if (c.uniqueid !== "true" && c.uniqueid !== "false") return this.controlFailure("XL03000003", "Invalid uniqueid");
    if (c.dtdversion !== "3.0") return this.controlFailure("XL03000003", "Invalid dtdversion", "Functions require dtdversion 3.0");
    if (c.senderid !== this.senderId || c.password !== this.senderPassword) return this.controlFailure("XL03000006", "Incorrect Intacct XML Partner ID or password.");
    const controlXml = `<control><status>success</status><senderid>${esc(this.senderId)}</senderid><controlid>${esc(controlId)}</controlid><uniqueid>${c.uniqueid}</uniqueid><dtdversion>3.0</dtdversion></control>`;
    const op = doc.request.operation;
    if (!op || Array.isArray(op)) return this.controlFailure("XL03000003", "XML Parse error", "Exactly one <operation> is required");
    return `<response>${controlXml}${this.operation(op)}</response>`;
  }

  private authFailure(entry: IntacctLogEntry, description2: string, userid = ""): string {
    entry.outcome = "auth-failure";
    this.log.push(entry);
    return `<operation><authentication><status>failure</status><userid>${esc(userid)}</userid><companyid>${esc(this.companyId)}</companyid><locationid></locationid></authentication>${errorXml("XL03000006", "", description2)}</operation>`;
  }

  /** Login or session; undefined session means the failure answer was returned. */
  private authenticate(op: Record<string, any>, entry: IntacctLogEntry): { session?: SimSession; failure?: string; login?: { locationId: string; userKey: string } } {
    const auth = op.authentication ?? {};
    const fns = (op.content?.function ?? []) as Record<string, unknown>[];
    if (auth.login) {
      entry.auth = "login";
      const l = auth.login;
      if (fns.length !== 1 || !("getAPISession" in fns[0])) this.violations.push("login credentials sent with functions other than a lone getAPISession");
      if (!this.senderAuthorized) return { failure: this.authFailure(entry, "Invalid Web Services Authorization", l.userid) };
      if (l.userid !== this.userId || l.companyid !== this.companyId || l.password !== this.userPassword) return { failure: this.authFailure(entry, "Sign-in information is incorrect", l.userid) };
      const locationId = typeof l.locationid === "string" ? l.locationid : "";
      if (locationId && !this.locations.has(locationId)) return { failure: this.authFailure(entry, `Invalid location ${locationId}`, l.userid) };
      return { login: { locationId, userKey: `${l.companyid}|${l.userid}|${locationId}` } };
    }
    if (typeof auth.sessionid === "string") {
      entry.auth = "session";
      const s = this.sessions.get(auth.sessionid);
      entry.sessionId = auth.sessionid;
      if (s?.failed) this.violations.push("a session id that had failed was sent again");
      if (!s || s.failed || s.expiresAt <= this.now()) {
        if (s) s.failed = true;
        return { failure: this.authFailure(entry, "Invalid session") };
      }
      s.expiresAt = this.now() + this.sessionDurationMs;
      return { session: s };
    }
    return { failure: this.authFailure(entry, "Sign-in information is incorrect") };
  }

  /** Opens a session for a login (getAPISession). */
  openSession(userKey: string, locationId: string): SimSession {
    for (const s of this.sessions.values()) {
      if (s.userKey === userKey && !s.failed && s.expiresAt - this.now() > 5 * 60_000) this.violations.push("getAPISession while the session had more than 5 minutes left");
    }
    const s: SimSession = { id: randomBytes(18).toString("base64url") + "..", userKey, locationId, expiresAt: this.now() + this.sessionDurationMs, failed: false };
    this.sessions.set(s.id, s);
    this.logins++;
    return s;
  }

  private operation(op: Record<string, any>): string {
    const transaction = op["@_transaction"] === "true";
    const fns = (op.content?.function ?? []) as Record<string, any>[];
    const names = fns.map((f) => Object.keys(f).find((k) => !k.startsWith("@_")) ?? "");
    const objects = fns.map((f, i) => String((f[names[i]] as { object?: unknown } | undefined)?.object ?? ""));
    const entry: IntacctLogEntry = { auth: "none", functions: names, objects, outcome: "ok", transaction };
    const a = this.authenticate(op, entry);
    if (a.failure) return a.failure;
    const ctx: FnContext = { sim: this, login: a.login, session: a.session };
    const results = fns.map((f) => runFunction(ctx, f));
    if (transaction && results.some((r) => r.failed)) {
      for (const r of results) if (!r.failed) r.xml = `<result><status>failure</status><function>${r.name}</function><controlid>${esc(r.controlId)}</controlid>${errorXml("XL03000009", "The entire transaction in this operation has been rolled back due to an error.")}</result>`;
    }
    this.log.push(entry);
    const session = ctx.session;
    const now = this.now();
    const stamps = session ? `<sessiontimestamp>${this.isoText(now)}</sessiontimestamp><sessiontimeout>${this.isoText(session.expiresAt)}</sessiontimeout>` : "";
    return `<operation><authentication><status>success</status><userid>${esc(this.userId)}</userid><companyid>${esc(this.companyId)}</companyid><locationid>${esc(session?.locationId ?? "")}</locationid>${stamps}</authentication>${results.map((r) => r.xml).join("")}</operation>`;
  }
}
