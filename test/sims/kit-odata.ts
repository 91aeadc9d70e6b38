/**
 * KitSim: a tiny generic ERP for the family kit's tests (127.0.0.1, port 0). It behaves as the documents the kit
 * follows say an ERP does, nothing more:
 * - `POST /oauth/token` (RFC 6749): `password`, `refresh_token` and `client_credentials` grants, form body, client
 *   id/secret in the body (§2.3.1). Refresh tokens rotate and are single use (a used one answers 400
 *   `invalid_grant`, §5.2). `expires_in` in seconds.
 * - `GET /odata/Items` (OData v4): Bearer only (401 otherwise, RFC 6750 §3); `$filter` made of
 *   `modifiedAt gt|ge|le <ISO 8601>` conditions joined by `and` (anything else: 400); results ordered by
 *   (modifiedAt, id), `$top` rows per page (default 2) with `@odata.nextLink` carrying `$skiptoken`.
 * - `POST /subscriptions` `{ notificationUrl }` (Bearer; the webhook registration of Business Central's
 *   `subscriptions` API and Exact Online's `webhooks/WebhookSubscriptions`): before it is created, the notification URL
 *   must pass the validation handshake as Business Central requires it: `POST <url>?validationToken=<token>`
 *   with no body, answered 200 with the token as the body (else 400 `ValidationFailed`). 201
 *   `{ id, notificationUrl, expirationDateTime }` (three days ahead). `DELETE /subscriptions/<id>` → 204, 404 unknown.
 * - The ledger (`log`) records each token grant issued and each API call with the token it used, so tests can check
 *   that a rotated refresh token was persisted before its access token was first used.
 */
import http from "node:http";
import { randomBytes } from "node:crypto";
import { SimServer, readBody, splitUrl, writeJson } from "./http-server";

/** One record of the list. */
export interface KitItem {
  id: string;
  name: string;
  /** ISO 8601 UTC. */
  modifiedAt: string;
}

/** What the ledger records. */
export type KitLogEntry =
  | { kind: "token"; grant: string; accessToken: string; refreshToken?: string }
  | { kind: "token-refused"; grant: string; error: string }
  | { kind: "api"; accessToken: string; status: number; filter: string }
  | { kind: "subscription"; op: "created" | "deleted" | "refused"; id?: string; notificationUrl?: string };

/** A webhook subscription. */
export interface KitSubscription {
  id: string;
  notificationUrl: string;
  /** ISO 8601 UTC. */
  expirationDateTime: string;
}

const COND_RE = /^modifiedAt (gt|ge|le) (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)$/;

/** The simulator; `start()` → origin. */
export class KitSim {
  readonly items: KitItem[] = [];
  readonly log: KitLogEntry[] = [];
  clientId = "kit-client";
  clientSecret = "kit-secret";
  username = "kit.user";
  password = "kit-pass";
  /** Token lifetime, s. */
  expiresIn = 3600;
  /** Rows per page unless `$top` says otherwise. */
  pageSize = 2;
  /** Webhook subscriptions by id. */
  readonly subscriptions = new Map<string, KitSubscription>();
  /** When set, the next list request answers this status (once), e.g. 400. */
  failNextList?: number;
  private readonly access = new Set<string>();
  private readonly refresh = new Set<string>();
  private readonly server = new SimServer({ name: "KitSim", handler: (req, res) => this.handle(req, res) });

  start(): Promise<string> {
    return this.server.start();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  get url(): string {
    return this.server.url;
  }

  /** Clears items, the ledger, tokens and faults (credentials and page size are kept). */
  reset(): void {
    this.items.length = 0;
    this.log.length = 0;
    this.subscriptions.clear();
    this.access.clear();
    this.refresh.clear();
    this.failNextList = undefined;
  }

  /** Revoke every access token (the next API call answers 401). */
  revokeAccessTokens(): void {
    this.access.clear();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path, query } = splitUrl(req.url);
    if (req.method === "POST" && path === "/oauth/token") return this.token(await readBody(req, 64 * 1024), res);
    if (req.method === "GET" && path === "/odata/Items") return this.list(req, new URLSearchParams(query), res);
    if (path === "/subscriptions" || path.startsWith("/subscriptions/")) {
      if (!this.access.has(bearer(req))) return writeJson(res, 401, { error: { code: "Unauthorized", message: "The access token is missing or invalid" } });
      if (req.method === "POST" && path === "/subscriptions") return this.subscribe(await readBody(req, 64 * 1024), res);
      if (req.method === "DELETE") return this.unsubscribe(decodeURIComponent(path.slice("/subscriptions/".length)), res);
    }
    writeJson(res, 404, { error: { code: "NotFound", message: "No such resource" } });
  }

  private token(body: Buffer, res: http.ServerResponse): void {
    const f = new URLSearchParams(body.toString("utf8"));
    const grant = f.get("grant_type") ?? "";
    const refuse = (error: string, status = 400): void => {
      this.log.push({ kind: "token-refused", grant, error });
      writeJson(res, status, { error });
    };
    if (f.get("client_id") !== this.clientId || f.get("client_secret") !== this.clientSecret) return refuse("invalid_client", 401);
    let withRefresh = false;
    if (grant === "password") {
      if (f.get("username") !== this.username || f.get("password") !== this.password) return refuse("invalid_grant");
      withRefresh = true;
    } else if (grant === "refresh_token") {
      const rt = f.get("refresh_token") ?? "";
      if (!this.refresh.delete(rt)) return refuse("invalid_grant");
      withRefresh = true;
    } else if (grant !== "client_credentials") return refuse("unsupported_grant_type");
    const accessToken = `at-${randomBytes(9).toString("hex")}`;
    this.access.add(accessToken);
    const answer: Record<string, unknown> = { access_token: accessToken, token_type: "Bearer", expires_in: this.expiresIn };
    if (withRefresh) {
      const refreshToken = `rt-${randomBytes(9).toString("hex")}`;
      this.refresh.add(refreshToken);
      answer.refresh_token = refreshToken;
    }
    this.log.push({ kind: "token", grant, accessToken, refreshToken: answer.refresh_token as string | undefined });
    writeJson(res, 200, answer, { "Cache-Control": "no-store" });
  }

  private async subscribe(body: Buffer, res: http.ServerResponse): Promise<void> {
    let url = "";
    try {
      url = String((JSON.parse(body.toString("utf8")) as { notificationUrl?: unknown }).notificationUrl ?? "");
    } catch {
      /* answered below */
    }
    if (!/^https?:\/\//.test(url)) return writeJson(res, 400, { error: { code: "BadRequest", message: "notificationUrl is required" } });
    const token = randomBytes(12).toString("hex");
    let ok = false;
    try {
      const answer = await fetch(`${url}?validationToken=${token}`, { method: "POST", signal: AbortSignal.timeout(10000) });
      ok = answer.status === 200 && (await answer.text()) === token;
    } catch {
      ok = false;
    }
    if (!ok) {
      this.log.push({ kind: "subscription", op: "refused", notificationUrl: url });
      return writeJson(res, 400, { error: { code: "ValidationFailed", message: "The notification URL did not echo the validation token" } });
    }
    const sub: KitSubscription = { id: randomBytes(8).toString("hex"), notificationUrl: url, expirationDateTime: new Date(Date.now() + 3 * 86400_000).toISOString() };
    this.subscriptions.set(sub.id, sub);
    this.log.push({ kind: "subscription", op: "created", id: sub.id, notificationUrl: url });
    writeJson(res, 201, sub);
  }

  private unsubscribe(id: string, res: http.ServerResponse): void {
    if (!this.subscriptions.delete(id)) return writeJson(res, 404, { error: { code: "NotFound", message: "No such subscription" } });
    this.log.push({ kind: "subscription", op: "deleted", id });
    res.writeHead(204).end();
  }

  private list(req: http.IncomingMessage, q: URLSearchParams, res: http.ServerResponse): void {
    const token = bearer(req);
    const filter = q.get("$filter") ?? "";
    if (!this.access.has(token)) {
      this.log.push({ kind: "api", accessToken: token, status: 401, filter });
      return writeJson(res, 401, { error: { code: "Unauthorized", message: "The access token is missing or invalid" } }, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
    }
    if (this.failNextList) {
      const status = this.failNextList;
      this.failNextList = undefined;
      this.log.push({ kind: "api", accessToken: token, status, filter });
      return writeJson(res, status, { error: { code: "Injected", message: "Injected failure" } });
    }
    const conds: ((t: number) => boolean)[] = [];
    for (const part of filter ? filter.split(" and ").map((p) => p.replace(/^\((.*)\)$/, "$1")) : []) {
      const m = COND_RE.exec(part);
      if (!m) return writeJson(res, 400, { error: { code: "BadRequest", message: "Unsupported $filter" } });
      const at = Date.parse(m[2]);
      conds.push(m[1] === "gt" ? (t) => t > at : m[1] === "ge" ? (t) => t >= at : (t) => t <= at);
    }
    this.log.push({ kind: "api", accessToken: token, status: 200, filter });
    const rows = this.items
      .filter((it) => conds.every((c) => c(Date.parse(it.modifiedAt))))
      .sort((a, b) => Date.parse(a.modifiedAt) - Date.parse(b.modifiedAt) || (a.id < b.id ? -1 : 1));
    const top = Number(q.get("$top") ?? this.pageSize);
    const skip = Number(q.get("$skiptoken") ?? 0);
    const page = rows.slice(skip, skip + top);
    const body: Record<string, unknown> = { "@odata.context": `${this.url}/odata/$metadata#Items`, value: page };
    if (skip + top < rows.length) {
      const next = new URLSearchParams(q);
      next.set("$skiptoken", String(skip + top));
      body["@odata.nextLink"] = `Items?${next.toString()}`;
    }
    writeJson(res, 200, body);
  }
}

function bearer(req: http.IncomingMessage): string {
  const auth = req.headers.authorization ?? "";
  return auth.startsWith("Bearer ") ? auth.slice(7) : "";
}
