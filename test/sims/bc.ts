/**
 * BcSim: Microsoft Entra ID's token endpoint and Business Central API v2.0, on 127.0.0.1 (port 0 only), following
 * /work/shared/reference/business-central.md to the letter:
 * - Entra (§1), served over HTTPS with the test certificate (MSAL refuses an http authority):
 *   `POST /{tenant}/oauth2/v2.0/token`, form body only (JSON → 400 `invalid_request`), `grant_type=client_credentials`,
 *   secret in the body or HTTP Basic, scope exactly `https://api.businesscentral.dynamics.com/.default` (else 400
 *   `invalid_scope` AADSTS70011), wrong secret 401 `invalid_client` AADSTS7000215; `expires_in` random 3600–5400 s
 *   unless fixed; no refresh token.
 * - API (§2–§7), plain HTTP: `/v2.0/{tenant}/{environment}/api/v2.0/…`; Bearer only, expired/unknown → 401
 *   `Authentication_InvalidCredentials`; companies; entity sets with `$filter` (OData v4 literals: quoted DateTime or
 *   GUID → 400 incompatible types; `datetime'…'` → 400), `$select`, `$expand`, `$orderby`, `$top`, unknown property
 *   → 400; server-driven paging from `Prefer: odata.maxpagesize` with an opaque `$skiptoken` next link; keys unquoted
 *   GUIDs; PATCH needs `If-Match` (missing → 400 `BadRequest_InvalidToken`, stale → 409 `Request_EntityChanged`),
 *   JSON only (415), read-only fields refused (400); 429 per-user window of 6,000 per 5 min and fault injection
 *   (429 without Retry-After, 503/502 with it); concurrency over 5 is recorded.
 * - Webhooks (§8): subscriptions with the `validationToken` handshake (POST, `Content-Length: 0`, 5 s, body exactly
 *   the token, status exactly 200) on create and renew, `If-Match` on PATCH/DELETE, quoted ids, 3-day expiry, 200
 *   per environment, clientState ≤ 250, `webhookSupportedResources` (no purchaseOrders, no customerPayments);
 *   notifications batched per `notificationUrl` (several subscriptions per POST), `updated` merged, more than
 *   `collectionThreshold` changes → one `collection` (with `lastModifiedDateTime gt` first − 50 ms, or none after a
 *   delete); 408/429/5xx/no answer → retried (deleted after the 6th failure); any other non-2xx → every subscription
 *   of that URL deleted.
 */
import http from "node:http";
import https from "node:https";
import { X509Certificate, constants as cryptoConstants, randomBytes, randomUUID, verify as verifySignature } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { AddressInfo, Socket } from "node:net";
import { SimServer, readBody, sendRequest, splitUrl, writeJson } from "./http-server";

export const BC_SCOPE = "https://api.businesscentral.dynamics.com/.default";
/** Entity sets the environment notifies about (reference §8.3 documented list; purchaseOrders and customerPayments left out). */
export const SUPPORTED = ["accounts", "companyInformation", "currencies", "customerPaymentJournals", "customers", "employees", "items", "journals", "paymentTerms", "purchaseInvoices", "salesCreditMemos", "salesInvoices", "salesOrders", "salesQuotes", "vendors"];
const ENTITY_SETS = [...SUPPORTED, "purchaseOrders", "customerPayments"];
const EXPANDS: Record<string, string[]> = { salesInvoices: ["customer", "currency", "paymentTerm", "salesInvoiceLines"], purchaseInvoices: ["vendor", "purchaseInvoiceLines"], customers: ["customerFinancialDetails", "currency"] };
const READ_ONLY = ["id", "lastModifiedDateTime", "@odata.etag"];
/**
 * Properties of each entity set (reference §3), whether or not a record of the simulated company fills them: a filter,
 * `$select` or `$orderby` naming one is valid even when no row carries it (an empty set included), as on BC, where
 * every record has every property of its page. Sets not listed know the properties their rows carry.
 */
const ADDRESS = ["addressLine1", "addressLine2", "city", "state", "country", "postalCode"];
const DOCUMENT = ["id", "number", "currencyId", "currencyCode", "pricesIncludeTax", "paymentTermsId", "discountAmount", "totalAmountExcludingTax", "totalTaxAmount", "totalAmountIncludingTax", "status", "lastModifiedDateTime"];
const FIELDS: Record<string, string[]> = {
  salesInvoices: [...DOCUMENT, "externalDocumentNumber", "invoiceDate", "postingDate", "dueDate", "customerId", "customerNumber", "customerName", "billToCustomerId", "billToCustomerNumber", "billToName", "orderId", "orderNumber", "salesperson", "remainingAmount", "phoneNumber", "email", "disputeStatus", "promisedPayDate"],
  purchaseInvoices: [...DOCUMENT, "postingDate", "invoiceDate", "dueDate", "vendorInvoiceNumber", "vendorId", "vendorNumber", "vendorName", "payToName", "payToContact", "payToVendorId", "payToVendorNumber", "orderId", "orderNumber", "purchaser"],
  purchaseOrders: [...DOCUMENT, "orderDate", "postingDate", "vendorId", "vendorNumber", "vendorName", "payToName", "payToVendorId", "payToVendorNumber", "shipmentMethodId", "purchaser", "requestedReceiptDate", "fullyReceived"],
  customers: ["id", "number", "displayName", "type", ...ADDRESS, "phoneNumber", "email", "website", "salespersonCode", "balanceDue", "creditLimit", "taxLiable", "taxAreaId", "taxAreaDisplayName", "taxRegistrationNumber", "currencyId", "currencyCode", "paymentTermsId", "shipmentMethodId", "paymentMethodId", "blocked", "lastModifiedDateTime"],
  vendors: ["id", "number", "displayName", ...ADDRESS, "phoneNumber", "email", "website", "taxRegistrationNumber", "currencyId", "currencyCode", "irs1099Code", "paymentTermsId", "paymentMethodId", "taxLiable", "blocked", "balance", "lastModifiedDateTime"],
  customerPayments: ["id", "journalId", "journalDisplayName", "lineNumber", "customerId", "customerNumber", "postingDate", "documentNumber", "externalDocumentNumber", "amount", "appliesToInvoiceId", "appliesToInvoiceNumber", "description", "comment", "lastModifiedDateTime"],
};
const DAY = 86_400_000;

/** A record of the simulated company. */
export type BcRow = Record<string, unknown> & { id: string; lastModifiedDateTime: string };

/** What the ledger records. */
export type BcLog =
  | { kind: "token"; token: string; expiresIn: number }
  | { kind: "token-refused"; error: string }
  | { kind: "api"; method: string; path: string; query: string; status: number; token: string; headers: http.IncomingHttpHeaders }
  | { kind: "handshake"; url: string; status: number; ok: boolean }
  | { kind: "notify"; url: string; status: number; items: number; changeTypes: string[] }
  | { kind: "sub-deleted"; id: string; reason: string };

export interface SimSubscription {
  subscriptionId: string;
  notificationUrl: string;
  resource: string;
  entitySet: string;
  clientState: string;
  expiresAt: number;
  etag: string;
  failures: number;
}

interface Change {
  entitySet: string;
  id: string;
  changeType: "created" | "updated" | "deleted";
  at: number;
}

const err = (code: string, message: string) => ({ error: { code, message: `${message}  CorrelationId:  ${randomUUID()}.` } });

/** The simulator. `start()` starts both listeners. */
export class BcSim {
  tenant = "11111111-2222-3333-4444-555555555555";
  environment = "Production";
  companyId = "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e";
  clientId = "aaaaaaaa-0000-0000-0000-000000000001";
  clientSecret = "s3cr3t~value";
  /** PEM certificate registered on the app (Entra "certificate credentials"); client assertions are checked against it. */
  certificatePem?: string;
  /** Fixed token lifetime in s; undefined = random 3600–5400 (Entra default 60–90 min). */
  expiresIn?: number;
  /** Changes in one batch window above which a `collection` notification is sent (BC: 1,000). */
  collectionThreshold = 1000;
  /** Largest page the server gives without a Prefer header (BC online: 20,000). */
  maxPage = 20_000;
  /** Webhook handshake deadline, ms (BC: 5 s). */
  handshakeMs = 5000;
  /** Notification answer deadline, ms (BC: 30 s). */
  notifyTimeoutMs = 30_000;
  /** Simulated clock offset, ms (advance() moves it: token expiry, subscription expiry). */
  offsetMs = 0;
  /**
   * How far a single notification's `lastModifiedDateTime` lies from the record's, ms. BC stamps it with the source
   * table's own "Last Modified Date Time" field, or the current time when the table has none (BCHIST
   * `GetLastModifiedDateTime`), while some API pages show `SystemModifiedAt` (purchaseInvoices, §3): the two need not
   * be equal. Default 0.
   */
  notificationSkewMs = 0;
  readonly rows = new Map<string, Map<string, BcRow>>();
  readonly subs = new Map<string, SimSubscription>();
  readonly log: BcLog[] = [];
  /** Answers to inject on the next API calls: status and optional Retry-After (s). */
  readonly faults: Array<{ status: number; retryAfter?: number }> = [];
  /** Refuse matching API calls (after the token check): the status to answer with, undefined to serve it. */
  refuseApi?: (method: string, path: string, query: URLSearchParams) => number | undefined;
  /** Hold matching API calls (after the token check) until the returned promise settles; undefined to serve at once. */
  holdApi?: (method: string, path: string, query: URLSearchParams) => Promise<void> | undefined;
  maxConcurrentSeen = 0;
  private inFlight = 0;
  private readonly tokens = new Map<string, number>();
  private readonly window: number[] = [];
  private pending: Change[] = [];
  private readonly api = new SimServer({ name: "BcSim", handler: (q, s) => this.handleApi(q, s), onError: () => err("Internal_ServerError", "Simulator failure") });
  private tls?: https.Server;
  private tlsOrigin = "";
  private readonly sockets = new Set<Socket>();

  constructor() {
    for (const e of ENTITY_SETS) this.rows.set(e, new Map());
  }

  /** Simulated now, ms since the epoch. */
  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Move the simulated clock (tokens and subscriptions expire; expired subscriptions are deleted). */
  advance(ms: number): void {
    this.offsetMs += ms;
    for (const s of [...this.subs.values()]) if (s.expiresAt <= this.now()) this.dropSub(s.subscriptionId, "expired");
  }

  /** API origin (`http://127.0.0.1:<port>`) — the client's `apiHost`. */
  get apiHost(): string {
    return this.api.url;
  }

  /** Entra origin (`https://127.0.0.1:<port>`) — the client's `authorityHost`. */
  get authorityHost(): string {
    return this.tlsOrigin;
  }

  /** The test CA (the server certificate itself) that trusts {@link authorityHost}. */
  static readonly caPem = readFileSync(path.join(__dirname, "..", "..", "..", "test", "fixtures", "tls", "server-cert.pem"), "utf8");

  async start(): Promise<void> {
    await this.api.start();
    if (this.tls) return;
    const dir = path.join(__dirname, "..", "..", "..", "test", "fixtures", "tls");
    const server = https.createServer({ key: readFileSync(path.join(dir, "server-key.pem")), cert: readFileSync(path.join(dir, "server-cert.pem")) }, (q, s) => {
      this.handleToken(q, s).catch(() => writeJson(s, 500, { error: "server_error" }));
    });
    server.on("secureConnection", (sock: Socket) => {
      this.sockets.add(sock);
      sock.on("close", () => this.sockets.delete(sock));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.tls = server;
    this.tlsOrigin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await this.api.stop();
    const s = this.tls;
    this.tls = undefined;
    if (s) {
      const closed = new Promise<void>((r) => s.close(() => r()));
      for (const sock of this.sockets) sock.destroy();
      await closed;
    }
  }

  /**
   * The environment the BC examples read (README "Business Central"), pointing at this simulator; Node-RED trusts the
   * simulator's TLS certificate through NODE_EXTRA_CA_CERTS. Call after `start()`.
   */
  env(): Record<string, string> {
    return {
      BC_TENANT: this.tenant,
      BC_ENVIRONMENT: this.environment,
      BC_COMPANY_ID: this.companyId,
      BC_AUTHORITY_HOST: this.authorityHost,
      BC_API_HOST: this.apiHost,
      BC_CLIENT_ID: this.clientId,
      BC_CLIENT_SECRET: this.clientSecret,
      BC_CLIENT_STATE: "k7Qp9v-shared-secret",
      NODE_EXTRA_CA_CERTS: path.join(__dirname, "..", "..", "..", "test", "fixtures", "tls", "server-cert.pem"),
    };
  }

  /** Forget every record, subscription, token, fault and log entry (between tests); settings stay. */
  reset(): void {
    for (const set of this.rows.values()) set.clear();
    this.subs.clear();
    this.log.length = 0;
    this.faults.length = 0;
    this.refuseApi = undefined;
    this.holdApi = undefined;
    this.tokens.clear();
    this.pending = [];
    this.offsetMs = 0;
    this.notificationSkewMs = 0;
    this.maxConcurrentSeen = 0;
  }

  /** Revoke every token (the next API call answers 401). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  /** Token requests granted so far. */
  get tokensIssued(): number {
    return this.log.filter((l) => l.kind === "token").length;
  }

  /** API calls (not token requests) logged so far. */
  apiCalls(filter?: (l: Extract<BcLog, { kind: "api" }>) => boolean): Array<Extract<BcLog, { kind: "api" }>> {
    return this.log.filter((l): l is Extract<BcLog, { kind: "api" }> => l.kind === "api" && (!filter || filter(l)));
  }

  // ---- data ------------------------------------------------------------------------------------------------

  /** Insert or change a record (new etag, lastModifiedDateTime = now unless given) and queue its notification. */
  upsert(entitySet: string, fields: Partial<BcRow> & Record<string, unknown>, at?: number): BcRow {
    const set = this.set(entitySet);
    const id = (fields.id as string | undefined) ?? randomUUID();
    const old = set.get(id);
    const t = at ?? this.now();
    const row = { ...(old ?? {}), ...fields, id, lastModifiedDateTime: new Date(t).toISOString() } as BcRow;
    row["@odata.etag"] = `W/"JzE5O${randomBytes(8).toString("hex")}Jw=="`;
    set.set(id, row);
    this.pending.push({ entitySet, id, changeType: old ? "updated" : "created", at: t });
    return row;
  }

  /** Delete a record and queue a `deleted` notification. */
  remove(entitySet: string, id: string): void {
    this.set(entitySet).delete(id);
    this.pending.push({ entitySet, id, changeType: "deleted", at: this.now() });
  }

  private set(entitySet: string): Map<string, BcRow> {
    const s = this.rows.get(entitySet);
    if (!s) throw new Error(`BcSim has no entity set ${entitySet}`);
    return s;
  }

  // ---- Entra token endpoint ----------------------------------------------------------------------------------

  private async handleToken(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path: p } = splitUrl(req.url);
    const body = (await readBody(req, 64 * 1024)).toString("utf8");
    const refuse = (status: number, error: string, aadsts: string, text: string): void => {
      this.log.push({ kind: "token-refused", error });
      writeJson(res, status, { error, error_description: `${aadsts}: ${text}`, error_codes: [Number(aadsts.slice(6))], timestamp: new Date().toISOString(), trace_id: randomUUID(), correlation_id: randomUUID() });
    };
    if (req.method !== "POST" || p !== `/${this.tenant}/oauth2/v2.0/token`) return refuse(404, "invalid_request", "AADSTS90002", "Tenant or endpoint not found.");
    if (!/^application\/x-www-form-urlencoded/i.test(req.headers["content-type"] ?? "")) return refuse(400, "invalid_request", "AADSTS900144", "The request body must contain the following parameter: 'grant_type'.");
    const f = new URLSearchParams(body);
    let id = f.get("client_id");
    let secret = f.get("client_secret");
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? "");
    if (basic) [id, secret] = Buffer.from(basic[1], "base64").toString("utf8").split(":").map(decodeURIComponent);
    if (f.get("grant_type") !== "client_credentials") return refuse(400, "unsupported_grant_type", "AADSTS70003", "The app requested an unsupported grant type.");
    if (f.get("scope") !== BC_SCOPE) return refuse(400, "invalid_scope", "AADSTS70011", "The provided value for the input parameter 'scope' is not valid.");
    if (id !== this.clientId) return refuse(400, "unauthorized_client", "AADSTS700016", "Application not found in the directory.");
    if (f.has("client_assertion")) {
      if (!this.assertionValid(f, id)) return refuse(401, "invalid_client", "AADSTS700027", "The certificate with identifier used to sign the client assertion is not registered on application.");
    } else if (secret !== this.clientSecret) return refuse(401, "invalid_client", "AADSTS7000215", "Invalid client secret provided.");
    const expiresIn = this.expiresIn ?? 3600 + Math.floor(Math.random() * 1800);
    const token = `eyJ0eXAiOiJKV1Qi.${randomBytes(16).toString("hex")}`;
    this.tokens.set(token, this.now() + expiresIn * 1000);
    this.log.push({ kind: "token", token, expiresIn });
    writeJson(res, 200, { token_type: "Bearer", expires_in: expiresIn, ext_expires_in: expiresIn, access_token: token }, { "Cache-Control": "no-store" });
  }

  /**
   * RFC 7523 client assertion (Entra certificate credentials): a JWT signed PS256 (or RS256) by the registered
   * certificate's key, `x5t#S256` (or `x5t`) its thumbprint, `aud` the token endpoint, `iss` = `sub` = client id, not expired.
   */
  private assertionValid(f: URLSearchParams, clientId: string | null): boolean {
    if (!this.certificatePem || f.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") return false;
    const parts = (f.get("client_assertion") ?? "").split(".");
    if (parts.length !== 3) return false;
    try {
      const header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8")) as Record<string, string>;
      const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as Record<string, unknown>;
      const cert = new X509Certificate(this.certificatePem);
      const s256 = Buffer.from(cert.fingerprint256.replace(/:/g, ""), "hex").toString("base64url");
      const s1 = Buffer.from(cert.fingerprint.replace(/:/g, ""), "hex").toString("base64url");
      if (!(header.alg === "PS256" && header["x5t#S256"] === s256) && !(header.alg === "RS256" && header.x5t === s1)) return false;
      const key = { key: cert.publicKey, ...(header.alg === "PS256" ? { padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : {}) };
      if (!verifySignature("sha256", Buffer.from(`${parts[0]}.${parts[1]}`), key, Buffer.from(parts[2], "base64url"))) return false;
      const aud = `${this.tlsOrigin}/${this.tenant}/oauth2/v2.0/token`;
      return claims.aud === aud && claims.iss === clientId && claims.sub === clientId && Number(claims.exp) * 1000 > Date.now();
    } catch {
      return false;
    }
  }

  // ---- API -------------------------------------------------------------------------------------------------

  private async handleApi(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.inFlight++;
    this.maxConcurrentSeen = Math.max(this.maxConcurrentSeen, this.inFlight);
    try {
      const body = await readBody(req, 1024 * 1024);
      await this.routeApi(req, res, body.toString("utf8"));
    } finally {
      this.inFlight--;
    }
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, token: string, status: number, payload: unknown, headers: http.OutgoingHttpHeaders = {}): void {
    const { path: p, query } = splitUrl(req.url);
    this.log.push({ kind: "api", method: req.method ?? "", path: p, query: decodeURIComponent(query), status, token, headers: req.headers });
    writeJson(res, status, payload, headers);
  }

  private async routeApi(req: http.IncomingMessage, res: http.ServerResponse, body: string): Promise<void> {
    const { path: p, query } = splitUrl(req.url);
    const m = /^\/v2\.0\/([^/]+)\/([^/]+)\/api\/(v2\.0|microsoft\/runtime\/beta)\/(.*)$/.exec(p);
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
    const token = auth?.[1] ?? "";
    const exp = this.tokens.get(token);
    if (!auth || exp === undefined || exp <= this.now()) return this.answer(req, res, token, 401, err("Authentication_InvalidCredentials", "The server has rejected the client credentials."));
    if (!m || decodeURIComponent(m[1]) !== this.tenant || m[2] !== this.environment) return this.answer(req, res, token, 404, err("BadRequest_ResourceNotFound", "The requested resource was not found."));
    if (!this.admit(req, res, token)) return;
    const rest = m[4];
    const q = new URLSearchParams(query);
    await this.holdApi?.(req.method ?? "", rest, q);
    const refused = this.refuseApi?.(req.method ?? "", rest, q);
    if (refused !== undefined) return this.answer(req, res, token, refused, err("Internal_ServerError", "Refused by the test."));
    if (m[3] !== "v2.0") return this.supported(req, res, token, rest);
    if (rest === "companies" && req.method === "GET") return this.answer(req, res, token, 200, { value: [{ id: this.companyId, systemVersion: "24.0.16410.18056", name: "CRONUS", displayName: "CRONUS USA, Inc.", businessProfileId: "" }] });
    if (rest === "subscriptions" || rest.startsWith("subscriptions(")) return this.subscriptionsRoute(req, res, token, rest, body);
    const em = /^companies\(([^)]*)\)\/([A-Za-z]+)(?:\(([^)]*)\))?$/.exec(rest);
    if (!em || em[1] !== this.companyId) return this.answer(req, res, token, 404, err("BadRequest_NotFound", "The company was not found."));
    if (!this.rows.has(em[2])) return this.answer(req, res, token, 404, err("BadRequest_NotFound", `The resource '${em[2]}' was not found.`));
    if (em[3] === undefined) {
      if (req.method !== "GET") return this.answer(req, res, token, 405, err("BadRequest_MethodNotAllowed", "Method not allowed."));
      return this.listRoute(req, res, token, em[2], q);
    }
    if (!/^[0-9a-f-]{36}$/i.test(em[3])) return this.answer(req, res, token, 400, err("BadRequest_InvalidRequestUrl", "A binary operator with incompatible types was detected. Found operand types 'Edm.Guid' and 'Edm.String'."));
    return this.recordRoute(req, res, token, em[2], em[3], q, body);
  }

  /** Rate limits and injected faults; false when answered. */
  private admit(req: http.IncomingMessage, res: http.ServerResponse, token: string): boolean {
    const fault = this.faults.shift();
    if (fault) {
      const h = fault.retryAfter !== undefined ? { "Retry-After": String(fault.retryAfter) } : undefined;
      const code = fault.status === 429 ? "Application_TooManyRequests" : "Internal_ServiceUnavailable";
      this.answer(req, res, token, fault.status, err(code, fault.status === 429 ? "Too many requests." : "The service is unavailable."), h);
      return false;
    }
    const t = Date.now();
    while (this.window.length && this.window[0] <= t - 300_000) this.window.shift();
    if (this.window.length >= 6000) {
      this.answer(req, res, token, 429, err("Application_TooManyRequests", "Too many requests reached (6000 per 5 minutes)."));
      return false;
    }
    this.window.push(t);
    return true;
  }

  private supported(req: http.IncomingMessage, res: http.ServerResponse, token: string, rest: string): void {
    if (rest !== `companies(${this.companyId})/webhookSupportedResources`) return this.answer(req, res, token, 404, err("BadRequest_NotFound", "Not found."));
    this.answer(req, res, token, 200, { value: SUPPORTED.map((r) => ({ resource: `v2.0/${r}` })) });
  }

  private listRoute(req: http.IncomingMessage, res: http.ServerResponse, token: string, entitySet: string, q: URLSearchParams): void {
    let rows = [...this.set(entitySet).values()];
    try {
      const known = new Set([...(FIELDS[entitySet] ?? []), ...rows.flatMap((r) => Object.keys(r)), "lastModifiedDateTime", "id"]);
      const cond = parseFilter(q.get("$filter") ?? "", known);
      rows = rows.filter(cond);
      rows = orderRows(rows, q.get("$orderby"), known);
      rows = rows.map((r) => selectFields(r, q.get("$select"), q.get("$expand"), EXPANDS[entitySet] ?? [], known));
    } catch (e) {
      return this.answer(req, res, token, 400, err("BadRequest", (e as Error).message));
    }
    if (q.has("$top")) rows = rows.slice(0, Number(q.get("$top")));
    const pref = /odata\.maxpagesize=(\d+)/.exec(String(req.headers.prefer ?? ""));
    const size = Math.min(this.maxPage, pref ? Number(pref[1]) : this.maxPage);
    const skip = Number(q.get("$skiptoken") ? Buffer.from(q.get("$skiptoken") as string, "base64url").toString("utf8").split(":")[1] : 0);
    const page = rows.slice(skip, skip + size);
    const { path: p } = splitUrl(req.url);
    const out: Record<string, unknown> = { "@odata.context": `${this.api.url}${p.replace(/\/[^/]+$/, "")}/$metadata#${entitySet}`, value: page };
    if (skip + size < rows.length) {
      const next = new URLSearchParams(q);
      next.delete("$skiptoken");
      next.set("$skiptoken", Buffer.from(`${randomBytes(3).toString("hex")}:${skip + size}`).toString("base64url"));
      out["@odata.nextLink"] = `${this.api.url}${p}?${next.toString().replace(/\+/g, "%20")}`;
    }
    this.answer(req, res, token, 200, out, pref ? { "Preference-Applied": `odata.maxpagesize=${size}` } : {});
  }

  private recordRoute(req: http.IncomingMessage, res: http.ServerResponse, token: string, entitySet: string, id: string, q: URLSearchParams, body: string): void {
    const row = this.set(entitySet).get(id);
    if (!row) return this.answer(req, res, token, 404, err("BadRequest_NotFound", `The resource '${entitySet}' with key '${id}' was not found.`));
    if (req.method === "GET") {
      try {
        return this.answer(req, res, token, 200, selectFields(row, q.get("$select"), q.get("$expand"), EXPANDS[entitySet] ?? [], new Set([...(FIELDS[entitySet] ?? []), ...Object.keys(row)])));
      } catch (e) {
        return this.answer(req, res, token, 400, err("BadRequest", (e as Error).message));
      }
    }
    if (req.method !== "PATCH") return this.answer(req, res, token, 405, err("BadRequest_MethodNotAllowed", "Method not allowed."));
    if (!/^application\/json/i.test(req.headers["content-type"] ?? "")) return this.answer(req, res, token, 415, err("BadRequest", "Unsupported media type."));
    const ifMatch = req.headers["if-match"];
    if (!ifMatch) return this.answer(req, res, token, 400, err("BadRequest_InvalidToken", "Could not validate the client concurrency token required by the service. Please provide a valid token in the client request."));
    if (ifMatch !== "*" && ifMatch !== row["@odata.etag"]) return this.answer(req, res, token, 409, err("Request_EntityChanged", "Another user has already changed the record."));
    let changes: Record<string, unknown>;
    try {
      changes = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return this.answer(req, res, token, 400, err("BadRequest", "The request body is not valid JSON."));
    }
    const bad = Object.keys(changes).find((k) => READ_ONLY.includes(k) || !(k in row));
    if (bad) return this.answer(req, res, token, 400, err("BadRequest", `The property '${bad}' cannot be modified or does not exist.`));
    const updated = this.upsert(entitySet, { ...changes, id });
    this.answer(req, res, token, 200, updated, { ETag: String(updated["@odata.etag"]) });
  }

  // ---- subscriptions -----------------------------------------------------------------------------------------

  private async subscriptionsRoute(req: http.IncomingMessage, res: http.ServerResponse, token: string, rest: string, body: string): Promise<void> {
    this.advance(0);
    if (rest === "subscriptions") {
      if (req.method === "GET") return this.answer(req, res, token, 200, { value: [...this.subs.values()].map((s) => this.subJson(s)) });
      if (req.method === "POST") return this.createSub(req, res, token, body);
      return this.answer(req, res, token, 405, err("BadRequest_MethodNotAllowed", "Method not allowed."));
    }
    const m = /^subscriptions\('([^']+)'\)$/.exec(rest);
    if (!m) return this.answer(req, res, token, 400, err("BadRequest_InvalidRequestUrl", "Subscription keys are quoted: subscriptions('<id>')."));
    const sub = this.subs.get(m[1]);
    if (!sub) return this.answer(req, res, token, 404, err("BadRequest_NotFound", "The subscription was not found."));
    if (req.method === "GET") return this.answer(req, res, token, 200, this.subJson(sub));
    const ifMatch = req.headers["if-match"];
    if (!ifMatch) return this.answer(req, res, token, 400, err("BadRequest_InvalidToken", "Could not validate the client concurrency token required by the service."));
    if (ifMatch !== "*" && ifMatch !== sub.etag) return this.answer(req, res, token, 409, err("Request_EntityChanged", "Another user has already changed the record."));
    if (req.method === "DELETE") {
      this.subs.delete(sub.subscriptionId);
      return this.answer(req, res, token, 204, undefined);
    }
    if (req.method !== "PATCH") return this.answer(req, res, token, 405, err("BadRequest_MethodNotAllowed", "Method not allowed."));
    if (!(await this.handshake(sub.notificationUrl))) return this.answer(req, res, token, 400, err("BadRequest", "The subscription could not be renewed: the notification URL did not return the validation token."));
    sub.expiresAt = this.now() + 3 * DAY;
    sub.etag = `W/"JzE${randomBytes(6).toString("hex")}"`;
    this.answer(req, res, token, 200, this.subJson(sub));
  }

  private async createSub(req: http.IncomingMessage, res: http.ServerResponse, token: string, body: string): Promise<void> {
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return this.answer(req, res, token, 400, err("BadRequest", "The request body is not valid JSON."));
    }
    const resource = String(b.resource ?? "");
    const rm = /^\/?(?:api\/v2\.0\/)?companies\(([0-9a-f-]{36})\)\/([A-Za-z]+)$/.exec(resource);
    if (typeof b.notificationUrl !== "string" || !rm) return this.answer(req, res, token, 400, err("BadRequest_RequiredParamNotProvided", "notificationUrl and resource are required."));
    if (rm[1] !== this.companyId || !SUPPORTED.includes(rm[2])) return this.answer(req, res, token, 400, err("BadRequest_ResourceNotFound", `The resource '${rm[2]}' does not support webhooks.`));
    if (typeof b.clientState === "string" && b.clientState.length > 250) return this.answer(req, res, token, 400, err("BadRequest", "clientState is longer than 250 characters."));
    if (this.subs.size >= 200) return this.answer(req, res, token, 400, err("Application_DialogException", "The maximum number of subscriptions (200) has been reached."));
    if (!(await this.handshake(b.notificationUrl))) return this.answer(req, res, token, 400, err("BadRequest", "The subscription was not created: the notification URL did not return the validation token."));
    const sub: SimSubscription = {
      subscriptionId: randomBytes(16).toString("hex"),
      notificationUrl: b.notificationUrl,
      resource,
      entitySet: rm[2],
      clientState: typeof b.clientState === "string" ? b.clientState : "",
      expiresAt: this.now() + 3 * DAY,
      etag: `W/"JzE${randomBytes(6).toString("hex")}"`,
      failures: 0,
    };
    this.subs.set(sub.subscriptionId, sub);
    this.answer(req, res, token, 201, this.subJson(sub));
  }

  private subJson(s: SimSubscription): Record<string, unknown> {
    const at = new Date(this.now()).toISOString();
    return { "@odata.etag": s.etag, subscriptionId: s.subscriptionId, notificationUrl: s.notificationUrl, resource: s.resource, userId: randomUUID(), lastModifiedDateTime: at, clientState: s.clientState, expirationDateTime: new Date(s.expiresAt).toISOString(), timestamp: 0, systemCreatedAt: at };
  }

  /** The validation call: POST `notificationUrl?validationToken=…`, `Content-Length: 0`; exactly 200 and the token. */
  async handshake(notificationUrl: string): Promise<boolean> {
    const vt = randomBytes(12).toString("base64url");
    const url = `${notificationUrl}${notificationUrl.includes("?") ? "&" : "?"}validationToken=${encodeURIComponent(vt)}`;
    const r = await sendRequest(url, { method: "POST", headers: { "content-length": "0" }, body: "", timeoutMs: this.handshakeMs });
    const ok = r.status === 200 && r.body === vt;
    this.log.push({ kind: "handshake", url: notificationUrl, status: r.status, ok });
    return ok;
  }

  private dropSub(id: string, reason: string): void {
    if (this.subs.delete(id)) this.log.push({ kind: "sub-deleted", id, reason });
  }

  // ---- notifications -----------------------------------------------------------------------------------------

  /**
   * Send what the batch window collected: one POST per notificationUrl carrying the items of every subscription on
   * it. Returns the statuses per URL. Undelivered items are kept for the next flush (BC's retry).
   */
  async flush(): Promise<Array<{ url: string; status: number }>> {
    this.advance(0);
    const changes = this.pending;
    this.pending = [];
    const byUrl = new Map<string, Array<{ sub: SimSubscription; items: Record<string, unknown>[] }>>();
    for (const sub of this.subs.values()) {
      const mine = changes.filter((c) => c.entitySet === sub.entitySet);
      if (!mine.length) continue;
      const list = byUrl.get(sub.notificationUrl) ?? [];
      list.push({ sub, items: this.itemsFor(sub, mine) });
      byUrl.set(sub.notificationUrl, list);
    }
    const out: Array<{ url: string; status: number }> = [];
    for (const [url, group] of byUrl) out.push({ url, status: await this.deliver(url, group, changes) });
    return out;
  }

  private itemsFor(sub: SimSubscription, changes: Change[]): Record<string, unknown>[] {
    const base = { subscriptionId: sub.subscriptionId, clientState: sub.clientState, expirationDateTime: new Date(sub.expiresAt).toISOString() };
    const prefix = `/api/v2.0/companies(${this.companyId})/${sub.entitySet}`;
    if (changes.length > this.collectionThreshold) {
      const last = new Date(Math.max(...changes.map((c) => c.at))).toISOString();
      const deleted = changes.some((c) => c.changeType === "deleted");
      const from = new Date(Math.min(...changes.map((c) => c.at)) - 50).toISOString();
      const resource = deleted ? prefix : `${prefix}?$filter=lastModifiedDateTime%20gt%20${from}`;
      return [{ ...base, resource, changeType: "collection", lastModifiedDateTime: last }];
    }
    const items: Record<string, unknown>[] = [];
    for (const c of changes) {
      const prev = items[items.length - 1];
      const resource = `${prefix}(${c.id})`;
      const at = new Date(c.at + this.notificationSkewMs).toISOString();
      if (c.changeType === "updated" && prev && prev.resource === resource && prev.changeType === "updated") prev.lastModifiedDateTime = at;
      else items.push({ ...base, resource, changeType: c.changeType, lastModifiedDateTime: at });
    }
    return items;
  }

  private async deliver(url: string, group: Array<{ sub: SimSubscription; items: Record<string, unknown>[] }>, changes: Change[]): Promise<number> {
    const value = group.flatMap((g) => g.items);
    const r = await sendRequest(url, {
      method: "POST",
      headers: { "content-type": "application/json", clientrequestid: randomUUID(), "x-ms-correlation-id": randomUUID() },
      body: JSON.stringify({ value }),
      timeoutMs: this.notifyTimeoutMs,
    });
    this.log.push({ kind: "notify", url, status: r.status, items: value.length, changeTypes: value.map((v) => String(v.changeType)) });
    if (r.status >= 200 && r.status < 300) {
      for (const g of group) g.sub.failures = 0;
      return r.status;
    }
    const retry = r.status === 0 || r.status === 408 || r.status === 429 || (r.status >= 500 && r.status <= 599);
    if (!retry) {
      // reference §8.5: every subscription sharing the notificationUrl goes
      for (const s of [...this.subs.values()]) if (s.notificationUrl === url) this.dropSub(s.subscriptionId, `HTTP ${r.status}`);
      return r.status;
    }
    for (const g of group) {
      g.sub.failures++;
      if (g.sub.failures >= 6) this.dropSub(g.sub.subscriptionId, "too many failures");
    }
    const ids = new Set(group.map((g) => g.sub.entitySet));
    this.pending.unshift(...changes.filter((c) => ids.has(c.entitySet) && !this.pending.includes(c)));
    return r.status;
  }
}

// ---- OData query evaluation --------------------------------------------------------------------------------

const COND = /^([A-Za-z]+) (eq|ne|gt|ge|lt|le) (.+)$/;
const DT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A `$filter` of conditions joined by `and` (parentheses allowed) → predicate. @throws Error with BC's message for a type error */
function parseFilter(filter: string, known: ReadonlySet<string>): (r: BcRow) => boolean {
  if (!filter.trim()) return () => true;
  const parts = filter.split(/\s+and\s+/).map((p) => p.trim().replace(/^\(+|\)+$/g, ""));
  const preds = parts.map((part) => {
    const m = COND.exec(part);
    if (!m) throw new Error(`Syntax error in $filter near '${part.slice(0, 40)}'.`);
    const [, field, op, lit] = m;
    if (!known.has(field)) throw new Error(`Could not find a property named '${field}' on type 'Microsoft.NAV.entity'.`);
    if (/^(datetime|datetimeoffset|guid)'/i.test(lit)) throw new Error(`Unrecognized 'Edm.String' literal '${lit}' at '0' in '${part}'.`);
    const quoted = /^'(.*)'$/.exec(lit);
    const typed = field === "lastModifiedDateTime" || /Date$/.test(field) || field === "id" || /Id$/.test(field);
    if (quoted && typed && (DT.test(quoted[1]) || GUID.test(quoted[1]) || /^\d{4}-\d{2}-\d{2}$/.test(quoted[1]))) throw new Error("A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThan'.");
    const value: string | number = quoted ? quoted[1].replace(/''/g, "'") : DT.test(lit) ? Date.parse(lit) : /^-?\d+(\.\d+)?$/.test(lit) ? Number(lit) : lit;
    return (r: BcRow) => compare(r[field], value, op, DT.test(lit));
  });
  return (r) => preds.every((p) => p(r));
}

function compare(v: unknown, lit: string | number, op: string, isTime: boolean): boolean {
  const a = isTime ? Date.parse(String(v)) : typeof lit === "number" ? Number(v) : String(v ?? "");
  const b = lit;
  switch (op) {
    case "eq": return a === b;
    case "ne": return a !== b;
    case "gt": return a > b;
    case "ge": return a >= b;
    case "lt": return a < b;
    default: return a <= b;
  }
}

function orderRows(rows: BcRow[], orderby: string | null, known: ReadonlySet<string>): BcRow[] {
  if (!orderby) return rows.sort((a, b) => (a.id < b.id ? -1 : 1));
  const [field, dir] = orderby.trim().split(/\s+/);
  if (!known.has(field)) throw new Error(`Could not find a property named '${field}' on type 'Microsoft.NAV.entity'.`);
  const sign = dir === "desc" ? -1 : 1;
  return rows.sort((a, b) => (String(a[field]) < String(b[field]) ? -sign : String(a[field]) > String(b[field]) ? sign : a.id < b.id ? -1 : 1));
}

function selectFields(row: BcRow, select: string | null, expand: string | null, expandable: string[], known: ReadonlySet<string>): BcRow {
  let out: Record<string, unknown> = { ...row };
  if (select) {
    out = { "@odata.etag": row["@odata.etag"] };
    for (const f of select.split(",").map((s) => s.trim())) {
      if (!known.has(f)) throw new Error(`Could not find a property named '${f}' on type 'Microsoft.NAV.entity'.`);
      out[f] = row[f] ?? null;
    }
  }
  for (const e of expand ? expand.split(",").map((s) => s.trim()) : []) {
    if (!expandable.includes(e)) throw new Error(`Could not find a property named '${e}' on type 'Microsoft.NAV.entity'.`);
    out[e] = e.endsWith("Lines") ? [] : null;
  }
  return out as BcRow;
}
