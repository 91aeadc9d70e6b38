/**
 * ExactSim: an Exact Online simulator (127.0.0.1, port 0) that follows `../shared/reference/exact-online.md` strictly:
 * - OAuth (§2): `GET /api/oauth2/auth` redirects with a URL-encoded code (`…%21…`) valid 3 min and single use;
 *   `POST /api/oauth2/token` accepts only `application/x-www-form-urlencoded`, the exact registered `redirect_uri`,
 *   answers `expires_in` as a STRING ("600") and `token_type` "bearer"; access tokens live 600 s; a token request
 *   earlier than 570 s after the chain's last token → 401 "Access Token not expired"; refresh tokens rotate: a used
 *   one stays valid 10 min after its first use until the newer one is used, after that 400 "Old refresh token used",
 *   which (option `oldTokenKillsChain`, default on) also ends the chain; a new authorisation ends the old chain.
 * - API (§3–§6): `Accept: application/json` required (else Atom XML); Bearer required (401 JSON, or the old stacks'
 *   HTML "Object moved" page with `htmlUnauthorized`); `/api/v1/current/Me`; `/api/v1/{division}/{service}/{Entity}`
 *   with `$select` required (never `*`; unknown fields → 400 "Error in query syntax."), `$filter` with typed literals
 *   only (`guid'…'`, `datetime'…'`, `'…'`, numbers, booleans; no `datetimeoffset`, no navigation or field-vs-field),
 *   60 rows per page with an absolute `__next` (`$skiptoken=guid'…'`), `(guid'…')` keys, `/Date(ms)/` dates, errors
 *   as `{"error":{"code":"","message":{"lang":"","value":…}}}`.
 * - Limits (§5): per division 60/min and 5000/day with `X-RateLimit-*` headers (resets in epoch ms; when the minute
 *   is spent a 429 carries only the minutely headers); more than 10 errors (400/401/403/404) per endpoint in an hour
 *   block that endpoint for an hour (403 "Forbidden - API key blocked").
 * - Webhooks (§8): subscriptions listed/created/deleted (no update; duplicate → 500 "Data already exists"; https
 *   callbacks on the redirect URI's domain only); creating one probes the callback with an empty POST and again ~1 s
 *   later; deliveries are compact JSON signed with an upper-case HMAC-SHA256 `HashCode` over the raw Content.
 *   Callbacks are https URLs; the sim delivers them to `callbackTarget` (a local http origin) with the same path.
 * `now` is the sim's clock (tests move it to cross the 570 s / 600 s rules); `log` records every token grant and call.
 */
import http from "node:http";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { SimServer, readBody, sendRequest, splitUrl, writeJson } from "./http-server";

/** What the ledger records. */
export type ExactLogEntry =
  | { kind: "token"; grant: string; status: number; accessToken?: string; refreshToken?: string; usedRefreshToken?: string; reason?: string }
  | { kind: "api"; method: string; path: string; status: number; accessToken: string; division?: string }
  | { kind: "probe" | "webhook"; url: string; status: number; body: string };

interface EntityDef {
  pk: string;
  fields: string[];
  topic?: string;
}

/** Entities the sim serves (reference §7), `service/Entity` → primary key and fields. */
export const EXACT_ENTITIES: Record<string, EntityDef> = {
  "salesinvoice/SalesInvoices": { pk: "InvoiceID", topic: "SalesInvoices", fields: ["InvoiceID", "InvoiceNumber", "InvoiceDate", "DueDate", "AmountDC", "AmountFC", "Currency", "OrderedBy", "OrderedByName", "InvoiceTo", "InvoiceToName", "InvoiceToContactPerson", "OrderedByContactPerson", "Status", "StatusDescription", "Type", "PaymentReference", "YourRef", "Modified", "Division"] },
  "salesorder/SalesOrders": { pk: "OrderID", topic: "SalesOrders", fields: ["OrderID", "OrderNumber", "OrderDate", "DeliveryDate", "AmountDC", "AmountFC", "Currency", "OrderedBy", "OrderedByName", "OrderedByContactPerson", "InvoiceTo", "InvoiceToContactPerson", "DeliverTo", "DeliverToContactPerson", "Status", "ApprovalStatus", "DeliveryStatus", "InvoiceStatus", "YourRef", "Modified", "Division"] },
  "purchaseorder/PurchaseOrders": { pk: "PurchaseOrderID", topic: "PurchaseOrders", fields: ["PurchaseOrderID", "OrderNumber", "OrderDate", "ReceiptDate", "AmountDC", "AmountFC", "Currency", "Supplier", "SupplierName", "SupplierContact", "SupplierContactPersonFullName", "OrderStatus", "ApprovalStatus", "YourRef", "Modified", "Division"] },
  "salesorder/GoodsDeliveries": { pk: "EntryID", topic: "GoodsDeliveries", fields: ["EntryID", "DeliveryNumber", "DeliveryDate", "DeliveryAccount", "DeliveryAccountName", "DeliveryContact", "DeliveryContactPersonFullName", "Description", "ShippingMethodDescription", "TrackingNumber", "Remarks", "Modified", "Division"] },
  "purchaseentry/PurchaseEntries": { pk: "EntryID", topic: "PurchaseEntries", fields: ["EntryID", "EntryNumber", "EntryDate", "DueDate", "AmountDC", "AmountFC", "Currency", "InvoiceNumber", "Supplier", "SupplierName", "Status", "Type", "YourRef", "Modified", "Division"] },
  "purchase/PurchaseInvoices": { pk: "ID", fields: ["ID", "Amount", "Currency", "DueDate", "InvoiceDate", "EntryNumber", "Status", "Supplier", "Type", "YourRef", "PaymentReference", "Modified", "Division"] },
  "crm/Accounts": { pk: "ID", topic: "Accounts", fields: ["ID", "Code", "Name", "Email", "Phone", "Status", "IsSupplier", "IsSales", "Blocked", "IsAnonymised", "MainContact", "City", "Country", "Modified", "Division"] },
  "crm/Contacts": { pk: "ID", topic: "Contacts", fields: ["ID", "Account", "AccountName", "FirstName", "LastName", "FullName", "Email", "BusinessEmail", "Phone", "Mobile", "BusinessPhone", "BusinessMobile", "IsMainContact", "IsMailingExcluded", "IsAnonymised", "Modified", "Division"] },
  "cashflow/Receivables": { pk: "ID", fields: ["ID", "Account", "AccountName", "AmountDC", "AmountFC", "Currency", "DueDate", "InvoiceNumber", "InvoiceDate", "IsFullyPaid", "LastPaymentDate", "Status", "YourRef", "Modified", "Division"] },
  "cashflow/Payments": { pk: "ID", fields: ["ID", "Account", "AccountName", "AmountDC", "AmountFC", "Currency", "DueDate", "InvoiceNumber", "PaymentMethod", "Status", "Modified", "Division"] },
};

const WEBHOOK_TOPICS = new Set(["Accounts", "Contacts", "SalesInvoices", "SalesOrders", "PurchaseOrders", "PurchaseEntries", "FinancialTransactions", "GoodsDeliveries", "Items", "StockPositions", "Documents", "Quotations", "BankAccounts", "CostTransactions", "TimeTransactions"]);
const SUB_FIELDS = ["ID", "CallbackURL", "Topic", "ClientID", "Division", "Created", "Description"];
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HOUR_MS = 3_600_000;

/** An Exact error body (§6). */
export function exactErrorBody(value: string): unknown {
  return { error: { code: "", message: { lang: "", value } } };
}

/** `/Date(ms)/` for an instant. */
export function exactDate(ms: number): string {
  return `/Date(${Math.floor(ms)})/`;
}

type Cond = (row: Record<string, unknown>) => boolean;

class QueryError extends Error {}

/** Compare value of a row with a parsed literal. */
function compare(a: unknown, op: string, b: unknown): boolean {
  const norm = (v: unknown): unknown => (typeof v === "string" && /^\/Date\(-?\d+\)\/$/.test(v) ? Number(v.slice(6, -2)) : typeof v === "string" && GUID_RE.test(v) ? v.toLowerCase() : v);
  const x = norm(a);
  const y = norm(b);
  if (op === "eq") return x === y;
  if (op === "ne") return x !== y;
  if (x === null || x === undefined || y === null) return false;
  const l = x as number | string;
  const r = y as number | string;
  return op === "gt" ? l > r : op === "ge" ? l >= r : op === "lt" ? l < r : l <= r;
}

/** Parse one OData v2 literal as Exact accepts it. @throws QueryError */
function literal(text: string): unknown {
  let m: RegExpExecArray | null;
  if ((m = /^guid'([0-9a-fA-F-]{36})'$/.exec(text))) return m[1].toLowerCase();
  if ((m = /^datetime'(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?)'$/.exec(text))) return Date.parse(`${m[1]}Z`);
  if ((m = /^'((?:[^']|'')*)'$/.exec(text))) return m[1].replace(/''/g, "'");
  if (/^-?\d+(\.\d+)?[mMdD]?$/.test(text)) return Number(text.replace(/[mMdD]$/, ""));
  if (text === "true" || text === "false") return text === "true";
  if (text === "null") return null;
  throw new QueryError("Error in query syntax.");
}

/** Parse `$filter` (conditions joined by `and`). @throws QueryError */
function parseFilter(filter: string, fields: string[]): Cond[] {
  if (!filter) return [];
  return filter.split(/\s+and\s+/i).map((raw) => {
    const part = raw.trim().replace(/^\((.*)\)$/, "$1").trim();
    const m = /^([A-Za-z_][\w/]*)\s+(eq|ne|gt|ge|lt|le)\s+(.+)$/.exec(part);
    if (!m || m[1].includes("/") || !fields.includes(m[1])) throw new QueryError("Error in query syntax.");
    const value = literal(m[3].trim());
    return (row: Record<string, unknown>) => compare(row[m[1]], m[2], value);
  });
}

interface Chain {
  current: string;
  used: Map<string, number>;
  lastIssuedAt: number;
}

/** The simulator; `start()` → origin. */
export class ExactSim {
  clientId = "0d6f2b8e-5c1a-4a6e-9b7f-2f3c4d5e6a7b";
  clientSecret = "sim-client-secret";
  redirectUri = "https://nodered.example.com/mlc/mlc-exact-config/oauth";
  webhookSecret = "sim-webhook-secret-123";
  division = 123456;
  /** The sim's clock, ms since the epoch. */
  now: () => number = Date.now;
  minuteLimit = 60;
  dayLimit = 5000;
  /** Length of the "minute" window, ms (tests may shorten it; the headers stay epoch ms). */
  minuteMs = 60_000;
  /** Length of the "day" window, ms (tests may shorten it; Exact's daily allowance resets at midnight). */
  dayMs = 86_400_000;
  pageSize = 60;
  htmlUnauthorized = false;
  oldTokenKillsChain = true;
  /** Local origin that https callbacks are delivered to (path kept). */
  callbackTarget = "";
  /** Delay of the second validation POST after a subscription is created, ms. */
  validationDelayMs = 1000;
  /** When set, the next successful token answer is issued but its connection is destroyed (a lost answer). */
  dropNextTokenAnswer = false;
  readonly log: ExactLogEntry[] = [];
  readonly data = new Map<string, Map<string, Record<string, unknown>>>();
  readonly subscriptions = new Map<string, Record<string, unknown>>();
  private readonly codes = new Map<string, { expires: number; redirectUri: string }>();
  private readonly access = new Map<string, number>();
  private chain?: Chain;
  private readonly counters = new Map<string, { minuteStart: number; minute: number; dayStart: number; day: number }>();
  private readonly errors = new Map<string, number[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly server = new SimServer({ name: "ExactSim", handler: (req, res) => this.handle(req, res), onError: () => exactErrorBody("Internal server error") });

  start(): Promise<string> {
    return this.server.start();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.server.stop();
  }

  get url(): string {
    return this.server.url;
  }

  /** As if the user authorised the app in a browser: a code (URL-encoded, as the redirect carries it). */
  authorize(redirectUri = this.redirectUri): string {
    const code = `XTzM!IAAAA${randomBytes(12).toString("hex")}`;
    this.codes.set(code, { expires: this.now() + 180_000, redirectUri });
    return encodeURIComponent(code).replace(/!/g, "%21");
  }

  /** Start a chain directly (as authorising and exchanging the code would) and return its refresh token. */
  grant(): string {
    const rt = `Gcp7!IAAAAB${randomBytes(12).toString("hex")}`;
    this.chain = { current: rt, used: new Map(), lastIssuedAt: -Infinity };
    return rt;
  }

  /** End every access token (the next API call answers 401). */
  revokeAccessTokens(): void {
    this.access.clear();
  }

  /** Insert or replace a record; `Modified` set to the sim's now unless given. Values use Exact's formats. */
  put(path: string, row: Record<string, unknown>): Record<string, unknown> {
    const def = EXACT_ENTITIES[path];
    if (!def) throw new Error(`ExactSim: unknown entity ${path}`);
    const id = String(row[def.pk] ?? randomUUID()).toLowerCase();
    const full = { Division: this.division, ...row, [def.pk]: id, Modified: row.Modified ?? exactDate(this.now()) };
    if (!this.data.has(path)) this.data.set(path, new Map());
    this.data.get(path)?.set(id, full);
    return full;
  }

  /** Use up the current minute's allowance of `division` (as another app or process would). */
  spendMinute(division = String(this.division)): void {
    const now = this.now();
    const minuteStart = Math.floor(now / this.minuteMs) * this.minuteMs;
    const dayStart = Math.floor(now / this.dayMs) * this.dayMs;
    const c = this.counters.get(division) ?? { minuteStart, minute: 0, dayStart, day: 0 };
    Object.assign(c, { minuteStart, minute: this.minuteLimit });
    this.counters.set(division, c);
  }

  /** API calls (not token requests) recorded so far, optionally only those to `pathPart`. */
  apiCalls(pathPart = ""): ExactLogEntry[] {
    return this.log.filter((e) => e.kind === "api" && e.path.includes(pathPart));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path, query } = splitUrl(req.url);
    if (path === "/api/oauth2/auth" && req.method === "GET") return this.authorizePage(new URLSearchParams(query), res);
    if (path === "/api/oauth2/token" && req.method === "POST") return this.token(req, await readBody(req, 64 * 1024), res);
    if (path.startsWith("/api/v1/")) return this.api(req, path, query, res);
    writeJson(res, 404, exactErrorBody("Not found"));
  }

  private authorizePage(q: URLSearchParams, res: http.ServerResponse): void {
    if (q.get("client_id") !== this.clientId || q.get("redirect_uri") !== this.redirectUri || q.get("response_type") !== "code") {
      res.writeHead(400, { "Content-Type": "text/html" }).end("<html><body>Invalid request</body></html>");
      return;
    }
    const state = q.get("state");
    const target = `${this.redirectUri}?code=${this.authorize()}${state !== null ? `&state=${encodeURIComponent(state)}` : ""}`;
    res.writeHead(302, { Location: target }).end();
  }

  private token(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const f = new URLSearchParams(body.toString("utf8"));
    const grant = f.get("grant_type") ?? "";
    const refuse = (status: number, reason: string, error = "invalid_grant"): void => {
      this.log.push({ kind: "token", grant, status, reason, usedRefreshToken: f.get("refresh_token") ?? undefined });
      if (status === 401) res.writeHead(401, { "Content-Type": "text/plain" }).end(reason);
      else writeJson(res, status, { error, error_description: reason });
    };
    if (!/^application\/x-www-form-urlencoded/i.test(String(req.headers["content-type"] ?? ""))) return refuse(400, "Content-Type must be application/x-www-form-urlencoded", "invalid_request");
    if (f.get("client_id") !== this.clientId || f.get("client_secret") !== this.clientSecret) return refuse(400, "Invalid client", "invalid_client");
    if (grant === "authorization_code") {
      const code = f.get("code") ?? "";
      const c = this.codes.get(code);
      this.codes.delete(code);
      if (!c || this.now() > c.expires) return refuse(400, "Invalid or expired code");
      if (f.get("redirect_uri") !== c.redirectUri) return refuse(400, "redirect_uri mismatch");
      this.grant();
      return this.issue(res, grant, undefined);
    }
    if (grant !== "refresh_token") return refuse(400, "Unsupported grant type", "unsupported_grant_type");
    this.refreshGrant(f.get("refresh_token") ?? "", res, refuse);
  }

  private refreshGrant(rt: string, res: http.ServerResponse, refuse: (status: number, reason: string) => void): void {
    const chain = this.chain;
    const now = this.now();
    if (!chain || (rt !== chain.current && !chain.used.has(rt))) return refuse(400, "Invalid refresh token");
    if (chain.used.has(rt)) {
      const firstUse = chain.used.get(rt) ?? 0;
      if (now > firstUse + 600_000) {
        if (this.oldTokenKillsChain) this.chain = undefined;
        return refuse(400, "Old refresh token used");
      }
    }
    if (now < chain.lastIssuedAt + 570_000) return refuse(401, "Access Token not expired");
    if (rt === chain.current) {
      chain.used.clear(); // first use of the newest token: every older one expires
      chain.used.set(rt, now);
    }
    this.issue(res, "refresh_token", rt);
  }

  private issue(res: http.ServerResponse, grant: string, used: string | undefined): void {
    const chain = this.chain as Chain;
    const accessToken = `AAEAA${randomBytes(16).toString("hex")}`;
    const refreshToken = `Gcp7!IAAAAB${randomBytes(12).toString("hex")}`;
    chain.current = refreshToken;
    chain.lastIssuedAt = this.now();
    this.access.set(accessToken, this.now() + 600_000);
    this.log.push({ kind: "token", grant, status: 200, accessToken, refreshToken, usedRefreshToken: used });
    if (this.dropNextTokenAnswer) {
      this.dropNextTokenAnswer = false;
      res.socket?.destroy();
      return;
    }
    writeJson(res, 200, { access_token: accessToken, token_type: "bearer", expires_in: "600", refresh_token: refreshToken }, { "Cache-Control": "no-store" });
  }

  /** Count one call for the division; false (and a 429 written) when a limit is spent. */
  private rate(div: string, res: http.ServerResponse): Record<string, string> | undefined {
    const now = this.now();
    const minuteStart = Math.floor(now / this.minuteMs) * this.minuteMs;
    const dayStart = Math.floor(now / this.dayMs) * this.dayMs;
    const c = this.counters.get(div) ?? { minuteStart, minute: 0, dayStart, day: 0 };
    if (c.minuteStart !== minuteStart) Object.assign(c, { minuteStart, minute: 0 });
    if (c.dayStart !== dayStart) Object.assign(c, { dayStart, day: 0 });
    this.counters.set(div, c);
    const minutely = { "X-RateLimit-Minutely-Limit": String(this.minuteLimit), "X-RateLimit-Minutely-Reset": String(minuteStart + this.minuteMs) };
    const daily = { "X-RateLimit-Limit": String(this.dayLimit), "X-RateLimit-Reset": String(dayStart + this.dayMs) };
    if (c.day >= this.dayLimit) {
      writeJson(res, 429, exactErrorBody("API daily limit exceeded"), { ...daily, "X-RateLimit-Remaining": "0" });
      return undefined;
    }
    if (c.minute >= this.minuteLimit) {
      writeJson(res, 429, exactErrorBody("API minutely limit exceeded"), { ...minutely, "X-RateLimit-Minutely-Remaining": "0" });
      return undefined;
    }
    c.minute++;
    c.day++;
    return { ...minutely, "X-RateLimit-Minutely-Remaining": String(this.minuteLimit - c.minute), ...daily, "X-RateLimit-Remaining": String(this.dayLimit - c.day) };
  }

  private blocked(endpoint: string): boolean {
    const list = (this.errors.get(endpoint) ?? []).filter((t) => t > this.now() - HOUR_MS);
    this.errors.set(endpoint, list);
    return list.length > 10;
  }

  private async api(req: http.IncomingMessage, path: string, query: string, res: http.ServerResponse): Promise<void> {
    const auth = String(req.headers.authorization ?? "");
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    const m = /^\/api\/v1\/(current|\d+)\/(.+)$/.exec(path);
    const div = m?.[1] === "current" ? String(this.division) : (m?.[1] ?? "");
    const endpoint = (m?.[2] ?? path).replace(/\(.*$/, "");
    let status = 0;
    const answer = (s: number, body: unknown, headers: Record<string, string> = {}): void => {
      status = s;
      writeJson(res, s, body, headers);
    };
    try {
      if (this.blocked(endpoint)) return answer(403, exactErrorBody("Forbidden - API key blocked (too many errors)"));
      if (!/application\/json/i.test(String(req.headers.accept ?? ""))) {
        status = 200;
        res.writeHead(200, { "Content-Type": "application/atom+xml;charset=utf-8" }).end('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"></feed>');
        return;
      }
      const exp = this.access.get(token);
      if (exp === undefined || this.now() >= exp) return this.unauthorized(res, (s) => (status = s));
      const limits = this.rate(div, res);
      if (!limits) return void (status = 429);
      const body = req.method === "POST" ? await readBody(req, 1024 * 1024) : Buffer.alloc(0);
      if (!m) return answer(404, exactErrorBody("Not found"), limits);
      if (m[1] !== "current" && m[1] !== String(this.division)) return answer(403, exactErrorBody("Forbidden - WrongDivision"), { ...limits, Reason: "NoDivisionAccess" });
      const out = await this.route(req, m[1], m[2], new URLSearchParams(query), body);
      answer(out.status, out.body, limits);
    } finally {
      if ([400, 401, 403, 404].includes(status)) {
        const seen = this.errors.get(endpoint);
        if (seen) seen.push(this.now());
        else this.errors.set(endpoint, [this.now()]);
      }
      this.log.push({ kind: "api", method: req.method ?? "", path, status, accessToken: token, division: div });
    }
  }

  private unauthorized(res: http.ServerResponse, set: (s: number) => void): void {
    set(401);
    if (this.htmlUnauthorized) res.writeHead(401, { "Content-Type": "text/html" }).end("<html><head><title>Object moved</title></head><body><h2>Object moved to <a href=\"/docs/Login.aspx\">here</a>.</h2></body></html>");
    else writeJson(res, 401, exactErrorBody("Unauthorized"), { "WWW-Authenticate": "Bearer" });
  }

  private async route(req: http.IncomingMessage, div: string, rest: string, q: URLSearchParams, body: Buffer): Promise<{ status: number; body?: unknown }> {
    if (div === "current") {
      if (rest !== "Me") return { status: 404, body: exactErrorBody("Not found") };
      const me = { __metadata: { uri: `${this.url}/api/v1/current/Me(guid'3f2504e0-4f89-11d3-9a0c-0305e82c3301')`, type: "Exact.Web.Api.System.Me" }, UserID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", CurrentDivision: this.division, FullName: "Sim User", UserName: "sim.user", Email: "sim.user@example.com" };
      return { status: 200, body: { d: { results: [this.select(me, q.get("$select"), ["UserID", "CurrentDivision", "FullName", "UserName", "Email", "ServerTime", "ServerUtcOffset"])] } } };
    }
    const km = /^([A-Za-z]+\/[A-Za-z]+)(\((.*)\))?$/.exec(rest);
    if (!km) return { status: 404, body: exactErrorBody("Not found") };
    const [, entity, , key] = km;
    if (entity === "webhooks/WebhookSubscriptions") return this.subscriptionsRoute(req, key, q, body);
    const def = EXACT_ENTITIES[entity];
    if (!def) return { status: 404, body: exactErrorBody("Not found") };
    if (req.method !== "GET") return { status: 405, body: exactErrorBody("Method not allowed") };
    try {
      if (key === undefined) return { status: 200, body: this.collection(entity, def, q) };
      const id = /^guid'([0-9a-fA-F-]{36})'$/.exec(key)?.[1]?.toLowerCase();
      if (!id) return { status: 400, body: exactErrorBody("Error in query syntax.") };
      const row = this.data.get(entity)?.get(id);
      if (!row) return { status: 404, body: exactErrorBody("Not found") };
      return { status: 200, body: { d: this.select(this.withMeta(entity, def, row), q.get("$select"), def.fields) } };
    } catch (e) {
      if (e instanceof QueryError) return { status: 400, body: exactErrorBody(e.message) };
      throw e;
    }
  }

  private withMeta(entity: string, def: EntityDef, row: Record<string, unknown>): Record<string, unknown> {
    return { __metadata: { uri: `${this.url}/api/v1/${this.division}/${entity}(guid'${String(row[def.pk])}')`, type: `Exact.Web.Api.Models.${entity.split("/")[1].replace(/s$/, "")}` }, ...row };
  }

  /** `$select` projection. @throws QueryError for `*` or an unknown field */
  private select(row: Record<string, unknown>, sel: string | null, fields: string[]): Record<string, unknown> {
    if (sel === null) return row;
    const names = sel.split(",").map((s) => s.trim());
    if (names.some((n) => n === "*" || !fields.includes(n))) throw new QueryError("Error in query syntax.");
    const out: Record<string, unknown> = { __metadata: row.__metadata };
    for (const n of names) out[n] = row[n] ?? null;
    return out;
  }

  private collection(entity: string, def: EntityDef, q: URLSearchParams, rows?: Record<string, unknown>[]): unknown {
    const sel = q.get("$select");
    const top = q.get("$top");
    if (sel === null && top !== "1") throw new QueryError("Please add a $select or a $top=1 statement to the query string.");
    if (sel !== null) this.select({}, sel, def.fields); // an unknown or `*` field is refused even when nothing matches
    for (const o of (q.get("$orderby") ?? "").split(",").filter((x) => x.trim())) if (!def.fields.includes(o.trim().split(/\s+/)[0])) throw new QueryError("Error in query syntax.");
    const conds = parseFilter(q.get("$filter") ?? "", def.fields);
    const all = (rows ?? [...(this.data.get(entity)?.values() ?? [])]).filter((r) => conds.every((c) => c(r))).sort((a, b) => (String(a[def.pk]) < String(b[def.pk]) ? -1 : 1));
    const skipToken = q.get("$skiptoken");
    const after = skipToken ? /^guid'([0-9a-fA-F-]{36})'$/.exec(skipToken)?.[1]?.toLowerCase() : undefined;
    if (skipToken && !after) throw new QueryError("Error in query syntax.");
    const from = after ? all.filter((r) => String(r[def.pk]) > after) : all;
    const limit = Math.min(this.pageSize, top !== null && /^\d+$/.test(top) ? Number(top) : this.pageSize);
    const page = from.slice(0, limit).map((r) => this.select(this.withMeta(entity, def, r), sel, def.fields));
    const d: Record<string, unknown> = { results: page };
    if (from.length > limit && (top === null || Number(top) > limit)) {
      const next = new URLSearchParams(q);
      next.set("$skiptoken", `guid'${String(page[page.length - 1][def.pk])}'`);
      d.__next = `${this.url}/api/v1/${this.division}/${entity}?${next.toString().replace(/\+/g, "%20")}`;
    }
    return { d };
  }

  private async subscriptionsRoute(req: http.IncomingMessage, key: string | undefined, q: URLSearchParams, body: Buffer): Promise<{ status: number; body?: unknown }> {
    const def: EntityDef = { pk: "ID", fields: SUB_FIELDS };
    try {
      if (req.method === "GET" && key === undefined) return { status: 200, body: this.collection("webhooks/WebhookSubscriptions", def, q, [...this.subscriptions.values()]) };
      if (req.method === "DELETE" && key !== undefined) {
        const id = /^guid'([0-9a-fA-F-]{36})'$/.exec(key)?.[1]?.toLowerCase();
        if (!id) return { status: 400, body: exactErrorBody("Error in query syntax.") };
        return this.subscriptions.delete(id) ? { status: 204 } : { status: 404, body: exactErrorBody("Not found") };
      }
      if (req.method === "POST" && key === undefined) return this.createSubscription(req, body);
    } catch (e) {
      if (e instanceof QueryError) return { status: 400, body: exactErrorBody(e.message) };
      throw e;
    }
    return { status: 400, body: exactErrorBody("Update of a webhook subscription is not allowed") };
  }

  private async createSubscription(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; body?: unknown }> {
    if (!/^application\/json/i.test(String(req.headers["content-type"] ?? ""))) return { status: 400, body: exactErrorBody("Content-Type must be application/json") };
    let b: { CallbackURL?: unknown; Topic?: unknown };
    try {
      b = JSON.parse(body.toString("utf8")) as typeof b;
    } catch {
      return { status: 400, body: exactErrorBody("Invalid JSON") };
    }
    if (typeof b.CallbackURL !== "string" || typeof b.Topic !== "string") return { status: 400, body: exactErrorBody("Mandatory: CallbackURL, Topic") };
    if (!WEBHOOK_TOPICS.has(b.Topic)) return { status: 400, body: exactErrorBody(`Invalid topic: ${b.Topic}`) };
    let cb: URL;
    try {
      cb = new URL(b.CallbackURL);
    } catch {
      return { status: 400, body: exactErrorBody("Invalid CallbackURL") };
    }
    if (cb.protocol !== "https:" || cb.hostname !== new URL(this.redirectUri).hostname) return { status: 400, body: exactErrorBody("CallbackURL must be https on the domain of the app's redirect URI") };
    if ([...this.subscriptions.values()].some((s) => s.Topic === b.Topic && s.CallbackURL === b.CallbackURL)) return { status: 500, body: exactErrorBody("Data already exists") };
    const probe = await this.probe(b.CallbackURL);
    if (probe < 200 || probe >= 300) return { status: 500, body: exactErrorBody(`Invalid: Post to callback URL endpoint returns ${probe}`) };
    const sub = { ID: randomUUID(), CallbackURL: b.CallbackURL, Topic: b.Topic, ClientID: this.clientId, Division: this.division, Created: exactDate(this.now()), Description: null };
    this.subscriptions.set(sub.ID, sub);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.probe(sub.CallbackURL).catch(() => undefined);
    }, this.validationDelayMs);
    t.unref();
    this.timers.add(t);
    return { status: 201, body: { d: { __metadata: { uri: `${this.url}/api/v1/${this.division}/webhooks/WebhookSubscriptions(guid'${sub.ID}')`, type: "Exact.Web.Api.Models.Webhooks.WebhookSubscription" }, ...sub } } };
  }

  private localTarget(callbackUrl: string): string {
    const u = new URL(callbackUrl);
    return `${this.callbackTarget || "http://127.0.0.1:9"}${u.pathname}${u.search}`;
  }

  /** The empty validation POST. Returns the receiver's status (0 without an answer). */
  private async probe(callbackUrl: string): Promise<number> {
    const url = this.localTarget(callbackUrl);
    const r = await sendRequest(url, { headers: {}, body: "", timeoutMs: 5000 });
    this.log.push({ kind: "probe", url, status: r.status, body: "" });
    return r.status;
  }

  /**
   * Deliver a notification for `key` of `topic` to every subscription of the topic, signed as Exact does.
   * `forge`: "lowercase" (hash in lower case), "secret" (wrong key), "reencoded" (hash over re-serialised JSON with
   * escaped slashes) — each must be refused by the receiver. Returns the receivers' statuses.
   */
  async notify(topic: string, action: "Create" | "Update" | "Delete", key: string, forge?: "lowercase" | "secret" | "reencoded"): Promise<number[]> {
    const entity = Object.entries(EXACT_ENTITIES).find(([, d]) => d.topic === topic)?.[0] ?? topic;
    const created = new Date(this.now()).toISOString().slice(0, 22);
    const content = JSON.stringify({ Topic: topic, ClientId: this.clientId, Division: this.division, Action: action, Key: key, ExactOnlineEndpoint: `${this.url}/api/v1/${this.division}/${entity}(guid'${key}')`, EventCreatedOn: created });
    const signed = forge === "reencoded" ? content.replace(/\//g, "\\/") : content;
    let hash = createHmac("sha256", forge === "secret" ? "not-the-secret" : this.webhookSecret).update(forge === "reencoded" ? content : signed, "utf8").digest("hex").toUpperCase();
    if (forge === "lowercase") hash = hash.toLowerCase();
    const body = `{"Content":${signed},"HashCode":"${hash}"}`;
    const out: number[] = [];
    for (const sub of this.subscriptions.values()) {
      if (sub.Topic !== topic) continue;
      const url = this.localTarget(String(sub.CallbackURL));
      const r = await sendRequest(url, { headers: { "content-type": "application/json" }, body, timeoutMs: 10_000 });
      this.log.push({ kind: "webhook", url, status: r.status, body });
      out.push(r.status);
    }
    return out;
  }
}
