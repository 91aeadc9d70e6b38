/**
 * SAP Business One Service Layer simulator (127.0.0.1, port 0; HTTPS with a self-signed certificate by default),
 * following reference sap-business-one.md to the letter:
 * - `POST /b1s/v{1,2}/Login` (case-sensitive: `/login` is a protected resource → 401) with CompanyDB/UserName/Password
 *   → 200, `Set-Cookie: B1SESSION=<id>;HttpOnly;` (no Path, trailing `;`) and `ROUTEID=.node1; path=/b1s`, body with
 *   SessionId/Version/SessionTimeout (minutes); wrong credentials → 401 with the version's error envelope;
 * - every other request needs both cookies with exactly the Login's values, else 401 code 301 "Invalid session or
 *   session already timeout."; sessions time out after `SessionTimeout` minutes idle (sliding) or by {@link expireSessions};
 * - `POST /Logout` → 204, the session is gone;
 * - collections page at 20 rows (`Prefer: odata.maxpagesize=N` → `Preference-Applied`, `B1S-PageSize`), `$top` does not
 *   lift the page size, next link `odata.nextLink` (v1) / `@odata.nextLink` (v2), relative or absolute-path form;
 * - `$filter` strict (sapb1-filter.ts), `$select`, `$orderby`, `$top`, `$skip`; `$inlinecount` refused on v2;
 * - v1 envelope `{"error":{"code":<number>,"message":{"lang":"en-us","value":…}}}`, v2 `{"error":{"code":"<string>","message":…}}`;
 * - v2 dates rendered `YYYY-MM-DDT00:00:00Z`, v1 `YYYY-MM-DD`; IncomingPayments without UpdateDate/UpdateTime;
 * - PATCH merges (unknown property → 400 -1000), ETag/If-Match on v2 (412 "-2039"); GET by key 404 -2028.
 * Ledger: logins, logouts, requests (method, path, status, whether both cookies came), protocol violations.
 */
import { randomUUID } from "node:crypto";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { readBody, splitUrl, writeJson } from "./http-server";
import { FieldTypes, FilterError, FilterParser } from "./sapb1-filter";

type Row = Record<string, unknown>;
type Version = "v1" | "v2";

const DOC_FIELDS: FieldTypes["types"] = {
  DocEntry: "number", DocNum: "number", DocType: "string", CardCode: "string", CardName: "string", DocDate: "date", DocDueDate: "date", TaxDate: "date",
  DocTotal: "number", DocCurrency: "string", VatSum: "number", PaidToDate: "number", DocumentStatus: "enum", Cancelled: "enum", CreationDate: "date",
  UpdateDate: "date", UpdateTime: "time", DocTime: "time", NumAtCard: "string", Comments: "string", DocumentLines: "string", U_NotifyStatus: "string",
};
const SCHEMAS: Record<string, { key: string; types: FieldTypes["types"] }> = {
  Invoices: { key: "DocEntry", types: DOC_FIELDS },
  PurchaseInvoices: { key: "DocEntry", types: DOC_FIELDS },
  PurchaseOrders: { key: "DocEntry", types: DOC_FIELDS },
  Orders: { key: "DocEntry", types: DOC_FIELDS },
  IncomingPayments: {
    key: "DocEntry",
    types: { DocEntry: "number", DocNum: "number", DocType: "string", CardCode: "string", CardName: "string", DocDate: "date", DueDate: "date", TaxDate: "date", TransferSum: "number", CashSum: "number", TransferDate: "date", TransferReference: "string", DocCurrency: "string", Cancelled: "enum", Remarks: "string", PaymentInvoices: "string" },
  },
  Items: {
    key: "ItemCode",
    types: { ItemCode: "string", ItemName: "string", QuantityOnStock: "number", MinInventory: "number", InventoryItem: "enum", Valid: "enum", Frozen: "enum", CreateDate: "date", UpdateDate: "date", UpdateTime: "time", ItemWarehouseInfoCollection: "string" },
  },
  BusinessPartners: {
    key: "CardCode",
    types: { CardCode: "string", CardName: "string", CardType: "string", Phone1: "string", Cellular: "string", EmailAddress: "string", Currency: "string", UpdateDate: "date", UpdateTime: "time", ContactEmployees: "string" },
  },
};
const ENUMS = { DocumentStatus: ["bost_Open", "bost_Close", "bost_Paid", "bost_Delivered"], Cancelled: ["tNO", "tYES"], InventoryItem: ["tNO", "tYES"], Valid: ["tNO", "tYES"], Frozen: ["tNO", "tYES"] };
const DATE_FIELDS = new Set(["DocDate", "DocDueDate", "TaxDate", "CreationDate", "UpdateDate", "DueDate", "TransferDate", "CreateDate"]);

/** The pair made for this process: generated once, every simulator of the run serves it. */
let generated: { key: string; cert: string } | undefined;

/**
 * A self-signed certificate for 127.0.0.1 (openssl, bounded to 20 s, once per process; else the test-only pair in
 * test/fixtures/tls). A pair of its own keeps it out of NODE_EXTRA_CA_CERTS, which trusts the fixture pair for
 * the Entra simulator, so "without the CA" still fails in a Node-RED that talks to both.
 */
export function selfSignedCert(): { key: string; cert: string } {
  if (generated) return generated;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-sapb1-"));
  try {
    const keyFile = path.join(dir, "key.pem");
    const certFile = path.join(dir, "cert.pem");
    const r = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore", timeout: 20_000, killSignal: "SIGKILL" });
    if (r.status === 0) return (generated = { key: fs.readFileSync(keyFile, "utf8"), cert: fs.readFileSync(certFile, "utf8") });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const fixtures = path.join(__dirname, "..", "..", "..", "test", "fixtures", "tls");
  return { key: fs.readFileSync(path.join(fixtures, "server-key.pem"), "utf8"), cert: fs.readFileSync(path.join(fixtures, "server-cert.pem"), "utf8") };
}

/** Options of {@link SapB1Sim}. */
export interface SapB1SimOptions {
  companyDb?: string;
  username?: string;
  password?: string;
  /** TLS key pair; default {@link selfSignedCert}; `false` serves plain HTTP. */
  tls?: { key: string; cert: string } | false;
  /** Server page size (b1s.conf PageSize); default 20. */
  pageSize?: number;
  /** SessionTimeout, minutes; default 30. */
  sessionTimeoutMin?: number;
  /**
   * Next-link form: "relative" (`Invoices?$skip=20`, default), "absolute-path" (`/b1s/v1/Invoices?$skip=20`),
   * "absolute-url" (`https://127.0.0.1:<port>/b1s/v1/…`), or "foreign" (a link to another host: a client must not follow it).
   */
  nextLink?: "relative" | "absolute-path" | "absolute-url" | "foreign";
  /** Clock, ms (session idle timeout); default Date.now. */
  now?: () => number;
}

interface Session {
  id: string;
  route: string;
  lastUse: number;
  /** Sequence number of its Login. */
  seq: number;
}

/** One request as the simulator saw it. */
export interface SimRequest {
  method: string;
  path: string;
  query: string;
  status: number;
  /** Both cookies present with the values of a live session. */
  sessionOk: boolean;
  /** B1SESSION value sent (the test checks no old session is reused). */
  session?: string;
  /** Rows in the answer of a collection GET. */
  rows?: number;
}

/** The simulator (see module doc). */
export class SapB1Sim {
  readonly companyDb: string;
  readonly username: string;
  readonly password: string;
  readonly cert?: string;
  readonly data: Record<string, Map<string, Row>> = {};
  readonly sessions = new Map<string, Session>();
  /** Every Login: when, accepted or not, and how many sessions were alive at that moment. */
  readonly logins: { at: number; ok: boolean; version: Version; alive: number }[] = [];
  readonly logouts: string[] = [];
  readonly requests: SimRequest[] = [];
  /** Protocol violations seen (a Login while a session of this client was alive, old cookies after a re-login, …). */
  readonly violations: string[] = [];
  /** Time literals with seconds seen in filters (silently compared as HH:MM). */
  readonly secondsInTimeFilters: string[] = [];
  /** Answers to inject before normal handling: next matching requests get this status and vendor error. */
  readonly inject: { match: RegExp; status: number; code: number | string; message: string; times: number; headers?: Record<string, string>; endSession?: boolean }[] = [];
  /**
   * Called once a data request has been answered (the answer written to the socket), e.g. to `kill -9` the client
   * between reading a poll and acting on it. Must not throw.
   */
  onAnswered?: (r: SimRequest) => void;
  /** Failed TLS handshakes (a client that does not trust the certificate): each one a connection attempt. */
  tlsFailures = 0;
  private readonly opts: SapB1SimOptions;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  /** Ended sessions → their Login's sequence number. */
  private readonly ended = new Map<string, number>();
  private loginSeq = 0;
  private origin = "";
  private routeSeq = 0;
  private etagSeq = 0;

  constructor(opts: SapB1SimOptions = {}) {
    this.opts = opts;
    this.companyDb = opts.companyDb ?? "SBODEMOUS";
    this.username = opts.username ?? "notify_svc";
    this.password = opts.password ?? "s3cret-B1";
    for (const e of Object.keys(SCHEMAS)) this.data[e] = new Map();
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) writeJson(res, 500, { error: { code: -1, message: { lang: "en-us", value: "Internal error" } } });
        else res.destroy();
      });
    };
    const tls = opts.tls === undefined ? selfSignedCert() : opts.tls;
    if (tls) this.cert = tls.cert;
    this.server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
    this.server.on("tlsClientError", () => {
      this.tlsFailures++;
    });
    this.server.on(tls ? "secureConnection" : "connection", (s: Socket) => {
      this.sockets.add(s);
      s.on("close", () => this.sockets.delete(s));
    });
  }

  /** `https://127.0.0.1:<port>` (the Service Layer URL a config node takes). */
  get url(): string {
    if (!this.origin) throw new Error("SapB1Sim not started");
    return this.origin;
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => resolve());
    });
    const scheme = this.cert ? "https" : "http";
    this.origin = `${scheme}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.origin;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.server.closeAllConnections?.();
    await closed;
  }

  /** Put a record (documents keyed by DocEntry, items by ItemCode, partners by CardCode). */
  put(entity: string, row: Row): void {
    const schema = SCHEMAS[entity];
    this.data[entity].set(String(row[schema.key]), { ...row });
  }

  /** Forget all records, sessions, ledgers and injections (between tests). */
  reset(): void {
    for (const e of Object.keys(this.data)) this.data[e].clear();
    for (const list of [this.logins, this.logouts, this.requests, this.violations, this.secondsInTimeFilters, this.inject] as unknown[][]) list.length = 0;
    this.sessions.clear();
    this.ended.clear();
  }

  /** End every session on the server side (as after an idle timeout or a Service Layer restart). */
  expireSessions(): void {
    for (const [id, s] of this.sessions) this.ended.set(id, s.seq);
    this.sessions.clear();
  }

  /** Sessions alive now (idle timeout applied). */
  liveSessions(): number {
    const limit = (this.opts.sessionTimeoutMin ?? 30) * 60_000;
    return [...this.sessions.values()].filter((s) => this.now() - s.lastUse <= limit).length;
  }

  /** Requests that reached data handling (not Login/Logout). */
  get dataRequests(): SimRequest[] {
    return this.requests.filter((r) => !/\/(Login|Logout)$/.test(r.path));
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private fail(res: http.ServerResponse, v: Version, status: number, code: number | string, message: string, headers: Record<string, string> = {}): number {
    const body = v === "v1" ? { error: { code: Number(code), message: { lang: "en-us", value: message } } } : { error: { code: String(code), message } };
    writeJson(res, status, body, headers);
    return status;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path: p, query } = splitUrl(req.url);
    const rec: SimRequest = { method: req.method ?? "", path: p, query, status: 0, sessionOk: false };
    this.requests.push(rec);
    const body = (await readBody(req, 1_000_000)).toString("utf8");
    if (p === "/ping/" || p === "/ping") {
      writeJson(res, 200, { message: "pong", sender: "node1", timestamp: String(this.now() / 1000) });
      rec.status = 200;
      return;
    }
    const m = /^\/b1s\/(v1|v2)\/(.*)$/.exec(p);
    if (!m) {
      rec.status = 404;
      writeJson(res, 404, undefined);
      return;
    }
    const v = m[1] as Version;
    const rest = m[2];
    if (req.method === "POST" && rest === "Login") {
      rec.status = this.login(res, v, body);
      return;
    }
    const session = this.sessionOf(req, rec);
    if (!session) {
      rec.status = this.fail(res, v, 401, 301, "Invalid session or session already timeout.");
      return;
    }
    session.lastUse = this.now();
    const inj = this.inject.find((i) => i.times > 0 && i.match.test(`${req.method} ${rest}`));
    if (inj) {
      inj.times--;
      // a real "session timed out" answer means the server no longer has the session
      if (inj.endSession) this.endSession(session);
      rec.status = this.fail(res, v, inj.status, inj.code, inj.message, inj.headers);
      return;
    }
    if (req.method === "POST" && rest === "Logout") {
      this.endSession(session);
      this.logouts.push(session.id);
      res.writeHead(204).end();
      rec.status = 204;
      return;
    }
    rec.status = this.data_(req, res, v, decodeURIComponent(rest), query, body, rec);
    this.onAnswered?.(rec);
  }

  private endSession(session: Session): void {
    this.sessions.delete(session.id);
    this.ended.set(session.id, session.seq);
  }

  private login(res: http.ServerResponse, v: Version, body: string): number {
    let creds: Row = {};
    try {
      creds = JSON.parse(body) as Row;
    } catch {
      return this.fail(res, v, 400, -1000, "Invalid JSON");
    }
    const ok = creds.CompanyDB === this.companyDb && creds.UserName === this.username && creds.Password === this.password;
    this.logins.push({ at: this.now(), ok, version: v, alive: this.liveSessions() });
    if (!ok) return this.fail(res, v, 401, 100000027, "Login failed");
    const id = randomUUID();
    const route = `.node${(this.routeSeq++ % 2) + 1}`;
    this.sessions.set(id, { id, route, lastUse: this.now(), seq: ++this.loginSeq });
    const timeout = this.opts.sessionTimeoutMin ?? 30;
    const meta = v === "v1" ? { "odata.metadata": `${this.origin}/b1s/v1/$metadata#B1Sessions/@Element` } : { "@odata.context": `${this.origin}/b1s/v2/$metadata#B1Sessions/$entity` };
    writeJson(res, 200, { ...meta, SessionId: id, Version: v === "v1" ? "1000110" : "1000250", SessionTimeout: timeout }, {
      "Set-Cookie": [`B1SESSION=${id};HttpOnly;`, `ROUTEID=${route}; path=/b1s`],
    });
    return 200;
  }

  private cookies(req: http.IncomingMessage): Record<string, string> {
    const out: Record<string, string> = {};
    for (const part of String(req.headers.cookie ?? "").split(";")) {
      const i = part.indexOf("=");
      if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
  }

  private sessionOf(req: http.IncomingMessage, rec: SimRequest): Session | undefined {
    const c = this.cookies(req);
    rec.session = c.B1SESSION;
    const s = c.B1SESSION ? this.sessions.get(c.B1SESSION) : undefined;
    if (!s) {
      const endedSeq = c.B1SESSION ? this.ended.get(c.B1SESSION) : undefined;
      // after a re-login the old cookies must never be sent again
      if (endedSeq !== undefined && endedSeq < this.loginSeq) this.violations.push("an ended session's cookie was sent after a later Login");
      return undefined;
    }
    if (this.now() - s.lastUse > (this.opts.sessionTimeoutMin ?? 30) * 60_000) {
      this.sessions.delete(s.id);
      this.ended.set(s.id, s.seq);
      return undefined;
    }
    if (c.ROUTEID !== s.route) {
      this.violations.push(`ROUTEID ${c.ROUTEID === undefined ? "missing" : "wrong"}`);
      return undefined;
    }
    rec.sessionOk = true;
    return s;
  }

  private data_(req: http.IncomingMessage, res: http.ServerResponse, v: Version, rest: string, query: string, body: string, rec: SimRequest): number {
    const m = /^([A-Za-z]+)(?:\((?:'((?:[^']|'')*)'|(\d+))\))?$/.exec(rest);
    const schema = m ? SCHEMAS[m[1]] : undefined;
    if (!m || !schema) return this.fail(res, v, 404, -2028, "Resource not found for the segment");
    const entity = m[1];
    const key = m[2] !== undefined ? m[2].replace(/''/g, "'") : m[3];
    if (key === undefined) {
      if (req.method !== "GET") return this.fail(res, v, 405, -1000, "Method not allowed");
      return this.collection(req, res, v, entity, query, rec);
    }
    const row = this.data[entity].get(key);
    if (!row) return this.fail(res, v, 404, -2028, "No matching records found (ODBC -2028)");
    if (req.method === "GET") {
      const etag = this.etagOf(row);
      writeJson(res, 200, this.render(v, entity, row, parseQuery(query).$select), v === "v2" ? { ETag: etag } : {});
      return 200;
    }
    if (req.method === "PATCH") return this.patch(req, res, v, entity, row, body);
    return this.fail(res, v, 400, -5006, "Operation not supported for this object");
  }

  private patch(req: http.IncomingMessage, res: http.ServerResponse, v: Version, entity: string, row: Row, body: string): number {
    let fields: Row;
    try {
      fields = JSON.parse(body) as Row;
    } catch {
      return this.fail(res, v, 400, -1000, "Invalid JSON in request body");
    }
    for (const f of Object.keys(fields)) if (!SCHEMAS[entity].types[f]) return this.fail(res, v, 400, -1000, `Property '${f}' of '${entity}' is invalid`);
    const ifMatch = req.headers["if-match"];
    if (v === "v2" && ifMatch && ifMatch !== this.etagOf(row)) return this.fail(res, v, 412, "-2039", "Another user or another operation modified data; to continue, open the window again (ODBC -2039)");
    Object.assign(row, fields);
    row.__etag = ++this.etagSeq;
    res.writeHead(204).end();
    return 204;
  }

  private etagOf(row: Row): string {
    return `W/"${String(row.__etag ?? 0)}"`;
  }

  private collection(req: http.IncomingMessage, res: http.ServerResponse, v: Version, entity: string, query: string, rec: SimRequest): number {
    const q = parseQuery(query);
    if (v === "v2" && q.$inlinecount !== undefined) return this.fail(res, v, 400, -1000, "$inlinecount is not supported; use $count");
    const parser = new FilterParser({ types: SCHEMAS[entity].types, enums: ENUMS });
    let rows = [...this.data[entity].values()];
    try {
      for (const f of [q.$select, q.$orderby].filter(Boolean).join(",").split(",").map((s) => s.trim().split(/\s+/)[0]).filter(Boolean)) {
        if (!SCHEMAS[entity].types[f]) throw new FilterError(`Property '${f}' of '${entity}' is invalid`);
      }
      if (q.$filter) rows = rows.filter(parser.parse(q.$filter));
    } catch (e) {
      if (e instanceof FilterError) return this.fail(res, v, 400, -1000, e.message);
      throw e;
    }
    this.secondsInTimeFilters.push(...parser.secondsSeen);
    rows = sortRows(rows, q.$orderby ?? SCHEMAS[entity].key);
    const skip = Number(q.$skip ?? 0);
    const top = q.$top !== undefined ? Number(q.$top) : Infinity;
    const remaining = rows.slice(skip, skip + top);
    const pref = /odata\.maxpagesize=(\d+)/.exec(String(req.headers.prefer ?? ""));
    const b1s = req.headers["b1s-pagesize"];
    const size = pref ? Number(pref[1]) : b1s !== undefined ? Number(b1s) : (this.opts.pageSize ?? 20);
    const page = size > 0 ? remaining.slice(0, size) : remaining;
    const out: Row = v === "v1" ? { "odata.metadata": `${this.origin}/b1s/v1/$metadata#${entity}` } : { "@odata.context": `${this.origin}/b1s/v2/$metadata#${entity}` };
    out.value = page.map((r) => this.render(v, entity, r, q.$select));
    rec.rows = page.length;
    if (size > 0 && remaining.length > size) {
      const params = query.split("&").filter((p) => p && !p.startsWith("$skip=") && !p.startsWith("$top="));
      params.push(`$skip=${skip + size}`);
      if (top !== Infinity) params.push(`$top=${top - size}`);
      const link = `${entity}?${params.join("&")}`;
      const form = this.opts.nextLink ?? "relative";
      const abs = form === "absolute-path" ? `/b1s/${v}/${link}` : form === "absolute-url" ? `${this.origin}/b1s/${v}/${link}` : form === "foreign" ? `https://sl.attacker.example/b1s/${v}/${link}` : link;
      out[v === "v1" ? "odata.nextLink" : "@odata.nextLink"] = abs;
    }
    writeJson(res, 200, out, pref ? { "Preference-Applied": `odata.maxpagesize=${pref[1]}` } : {});
    return 200;
  }

  private render(v: Version, entity: string, row: Row, select?: string): Row {
    const fields = select ? select.split(",").map((s) => s.trim()) : Object.keys(row).filter((k) => !k.startsWith("__"));
    const out: Row = {};
    for (const f of fields) {
      if (!(f in row)) continue;
      const val = row[f];
      out[f] = v === "v2" && DATE_FIELDS.has(f) && typeof val === "string" && /^\d{4}-\d{2}-\d{2}$/.test(val) ? `${val}T00:00:00Z` : val;
    }
    if (v === "v2" && SCHEMAS[entity]) out["@odata.etag"] = this.etagOf(row);
    return out;
  }
}

function parseQuery(query: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of query.split("&")) {
    if (!part) continue;
    const i = part.indexOf("=");
    const k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
    out[k] = i < 0 ? "" : decodeURIComponent(part.slice(i + 1).replace(/\+/g, " "));
  }
  return out;
}

function sortRows(rows: Row[], orderby: string): Row[] {
  const keys = orderby.split(",").map((s) => {
    const [f, dir] = s.trim().split(/\s+/);
    return { f, desc: dir === "desc" };
  });
  return rows.sort((a, b) => {
    for (const { f, desc } of keys) {
      const x = a[f] as string | number;
      const y = b[f] as string | number;
      if (x === y) continue;
      const c = x === undefined ? -1 : y === undefined ? 1 : x < y ? -1 : 1;
      return desc ? -c : c;
    }
    return 0;
  });
}
