/**
 * nodes/lib/bc against the Business Central simulator (test/sims/bc.ts): Entra ID sign-in through MSAL (one token
 * for concurrent calls, `expires_in` read, 401 → one new token and one replay, a refused secret not retried), OData v4
 * paging by next link only, unquoted time literals, enum decoding, PATCH with If-Match, 429/503/502 handling, and the
 * webhook traps: handshake on create and renew, quoted ids and If-Match, 3-day expiry, webhookSupportedResources,
 * mixed notification batches, `collection` notifications, and deletion of every subscription of a URL on a 4xx.
 */
import assert from "node:assert/strict";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { AuthCooldownError } from "../../nodes/lib/auth/source";
import { BcClient, BcNotification } from "../../nodes/lib/bc/client";
import { bcLiteral, decodeEnum } from "../../nodes/lib/bc/values";
import { AuthError, ErpError } from "../../nodes/lib/errors";
import { HttpClient } from "../../nodes/lib/http";
import { odataV4Time } from "../../nodes/lib/poll/conditions";
import { WatermarkWindow } from "../../nodes/lib/poll/window";
import { BC_SCOPE, BcSim } from "../sims/bc";
import { until } from "../harness/red-testbed";

/** A webhook receiver: answers the handshake (or not, per `mode`) and records notification bodies. */
class Receiver {
  mode: "ok" | "quoted" | "status201" | "notify404" | "notify503" = "ok";
  readonly bodies: Array<{ value: BcNotification[] }> = [];
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => this.handle(req, res, Buffer.concat(chunks).toString("utf8")));
  });
  url = "";

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bc/notify`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const vt = new URL(req.url ?? "/", "http://x").searchParams.get("validationToken");
    if (vt !== null) {
      if (this.mode === "quoted") return void res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(vt));
      if (this.mode === "status201") return void res.writeHead(201, { "Content-Type": "text/plain" }).end(vt);
      return void res.writeHead(200, { "Content-Type": "text/plain" }).end(vt);
    }
    if (this.mode === "notify404") return void res.writeHead(404).end();
    if (this.mode === "notify503") return void res.writeHead(503, { "Retry-After": "60" }).end();
    this.bodies.push(JSON.parse(body) as { value: BcNotification[] });
    res.writeHead(202).end();
  }
}

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("bc: client (nodes/lib/bc) against BcSim", function () {
  this.timeout(30000);
  let sim: BcSim;
  let client: BcClient;
  const clients: BcClient[] = [];

  function newClient(over: Partial<ConstructorParameters<typeof BcClient>[0]> = {}): BcClient {
    const c = new BcClient({
      tenant: sim.tenant,
      environment: sim.environment,
      companyId: sim.companyId,
      clientId: sim.clientId,
      clientSecret: sim.clientSecret,
      authorityHost: sim.authorityHost,
      apiHost: sim.apiHost,
      tls: { ca: BcSim.caPem },
      ...over,
    });
    clients.push(c);
    return c;
  }

  beforeEach(async () => {
    sim = new BcSim();
    await sim.start();
    client = newClient();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await sim.stop();
  });

  describe("Entra ID sign-in (MSAL)", () => {
    it("shares one token among concurrent calls and reads expires_in (not 3600)", async () => {
      sim.expiresIn = 4271;
      await Promise.all(Array.from({ length: 8 }, () => client.companies()));
      assert.equal(sim.tokensIssued, 1);
      const ttl = client.auth.source.expiresAt - Date.now();
      assert.ok(ttl > 4271_000 - 10_000 && ttl <= 4271_000 + 2000, `token lifetime ${ttl} ms should follow expires_in 4271 s`);
      assert.equal(sim.apiCalls().length, 8);
      assert.ok(sim.apiCalls().every((c) => String(c.headers.authorization).startsWith("Bearer ")));
    });

    it("gets a new token once after a 401 and replays the request once", async () => {
      await client.companies();
      sim.revokeTokens();
      const rows = await client.companies();
      assert.equal(rows.length, 1);
      assert.equal(sim.tokensIssued, 2);
      assert.deepEqual(sim.apiCalls().map((c) => c.status), [200, 401, 200]);
    });

    it("a request re-queued after a 429 leaves with the token current then (renewed while it waited), not a stale one", async () => {
      let t = Date.now();
      const c = newClient({ now: () => t });
      await c.companies();
      const first = sim.apiCalls()[0].token;
      sim.faults.push({ status: 429, retryAfter: 1 }); // the next call is refused: the budget re-queues it and pauses
      const waiting = c.companies();
      await until(() => sim.apiCalls().some((l) => l.status === 429), "the refusal");
      t += 2 * 3600_000; // meanwhile the token expires (client and BC clocks) and another call renews it
      sim.offsetMs = 2 * 3600_000;
      const renewing = c.companies();
      assert.deepEqual([(await waiting).length, (await renewing).length], [1, 1]);
      assert.equal(sim.tokensIssued, 2);
      const after = sim.apiCalls().slice(2);
      assert.deepEqual(after.map((l) => l.status), [200, 200], "no call left with the expired token (no 401 and replay)");
      assert.ok(after.every((l) => l.token !== first && l.token === after[0].token), "both carried the renewed token");
    });

    it("renews a token whose short lifetime is spent (expires_in honoured), one request per renewal", async () => {
      sim.expiresIn = 2;
      await client.companies();
      while (client.auth.source.valid(Date.now())) await new Promise((r) => setTimeout(r, 50));
      await client.companies();
      assert.equal(sim.tokensIssued, 2);
      assert.ok(sim.apiCalls().every((c) => c.status === 200), "no call went out with an expired token");
    });

    it("over 24 simulated hours of calls: a token per 60–90 min lifetime, renewed before expiry (no call meets a 401)", async () => {
      let t = Date.now();
      const c = newClient({ now: () => t });
      for (let minute = 0; minute < 24 * 60; minute += 5) {
        t = Date.now() + minute * 60_000;
        sim.offsetMs = minute * 60_000;
        await c.companies();
      }
      assert.ok(sim.apiCalls().every((l) => l.status === 200), "no call went out with an expired token");
      assert.ok(sim.tokensIssued >= 16 && sim.tokensIssued <= 26, `${sim.tokensIssued} tokens in 24 h`);
    });

    it("refuses a wrong secret with the AADSTS code, no secret in the text, and does not retry during the pause", async () => {
      const bad = newClient({ clientSecret: "wrong-secret-value" });
      const e1 = await bad.companies().catch((e: unknown) => e);
      assert.ok(e1 instanceof AuthError, String(e1));
      assert.equal(e1.vendorCode, "AADSTS7000215");
      assert.ok(!e1.message.includes("wrong-secret-value"));
      const e2 = await bad.companies().catch((e: unknown) => e);
      assert.ok(e2 instanceof AuthCooldownError);
      assert.equal(sim.log.filter((l) => l.kind === "token-refused").length, 1);
    });

    it("sim: the token endpoint takes only a form body and exactly the BC .default scope", async () => {
      const h = new HttpClient({ tls: { ca: BcSim.caPem } });
      const url = `${sim.authorityHost}/${sim.tenant}/oauth2/v2.0/token`;
      const form = (scope: string) => new URLSearchParams({ grant_type: "client_credentials", client_id: sim.clientId, client_secret: sim.clientSecret, scope }).toString();
      try {
        const json = await h.request({ method: "POST", url, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ grant_type: "client_credentials" }) });
        assert.equal(json.status, 400);
        assert.equal(JSON.parse(json.body).error, "invalid_request");
        const scope = await h.request({ method: "POST", url, headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: form("https://api.businesscentral.dynamics.com") });
        assert.equal(JSON.parse(scope.body).error, "invalid_scope");
        const ok = await h.request({ method: "POST", url, headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: form(BC_SCOPE) });
        const answer = JSON.parse(ok.body) as Record<string, unknown>;
        assert.equal(ok.status, 200);
        assert.ok(Number(answer.expires_in) >= 3600 && Number(answer.expires_in) <= 5400 && !("refresh_token" in answer));
      } finally {
        await h.close();
      }
    });

    it("signs in with a certificate credential (client assertion), and is refused with a key of another certificate", async () => {
      const dir = path.join(__dirname, "..", "..", "..", "test", "fixtures", "bc");
      sim.certificatePem = readFileSync(path.join(dir, "app-cert.pem"), "utf8");
      const thumbprintSha256 = new X509Certificate(sim.certificatePem).fingerprint256.replace(/:/g, "");
      const good = newClient({ clientSecret: undefined, certificate: { thumbprintSha256, privateKey: readFileSync(path.join(dir, "app-key.pem"), "utf8") } });
      assert.equal((await good.companies()).length, 1);
      const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      const bad = newClient({ clientSecret: undefined, certificate: { thumbprintSha256, privateKey: other } });
      await assert.rejects(bad.companies(), (e: unknown) => e instanceof AuthError && e.vendorCode === "AADSTS700027");
    });

    it("refuses common/organizations as tenant and an http authority", () => {
      assert.throws(() => newClient({ tenant: "common" }), /tenant GUID or its domain/);
      assert.throws(() => newClient({ authorityHost: sim.authorityHost.replace("https:", "http:") }), /https origin/);
    });
  });

  describe("OData v4 reading", () => {
    it("pages by @odata.nextLink with Prefer odata.maxpagesize, never $skip", async () => {
      const c = newClient({ pageSize: 3 });
      for (let i = 0; i < 7; i++) sim.upsert("customers", { number: `C${i}`, displayName: `Customer ${i}` });
      const rows = await drain(c.list("customers"));
      assert.equal(rows.length, 7);
      assert.equal(new Set(rows.map((r) => r.id)).size, 7);
      const calls = sim.apiCalls((l) => l.path.endsWith("/customers"));
      assert.equal(calls.length, 3);
      assert.ok(calls.every((l) => l.headers.prefer === "odata.maxpagesize=3"));
      assert.ok(calls.every((l) => !/\$skip=/.test(l.query)));
    });

    it("polls with the unquoted DateTimeOffset literal; a quoted one is a type error at BC", async () => {
      const t0 = Date.parse("2024-03-01T09:00:00.000Z");
      sim.upsert("salesInvoices", { number: "S1", status: "Open" }, t0 + 1000);
      sim.upsert("salesInvoices", { number: "S2", status: "Open" }, t0 + 5000);
      const w = new WatermarkWindow({ overlapMs: 0, modifiedField: "lastModifiedDateTime", timeCondition: odataV4Time });
      const filter = w.filterFor({ watermark: new Date(t0 + 2000).toISOString(), seenAtWatermark: [], recent: [] }, 0, t0 + 60_000);
      assert.match(filter, /lastModifiedDateTime ge 2024-03-01T09:00:02\.000Z/);
      const events = await drain(client.pollRead("salesInvoices", filter));
      assert.deepEqual(events.map((e) => e.erp.number), ["S2"]);
      assert.equal(events[0].topic, "bc/salesInvoices/updated");
      const quoted = await drain(client.list("salesInvoices", { filter: "lastModifiedDateTime gt '2024-03-01T09:00:00Z'" })).catch((e: unknown) => e);
      assert.ok(quoted instanceof ErpError && quoted.code === "bad_request" && quoted.status === 400);
      assert.equal(bcLiteral(new Date(t0)), "2024-03-01T09:00:00.000Z");
      assert.equal(bcLiteral("7d0e5b11-22aa-4c3b-8d9e-0f1a2b3c4d5e"), "7d0e5b11-22aa-4c3b-8d9e-0f1a2b3c4d5e");
      assert.equal(bcLiteral("O'Brien"), "'O''Brien'");
    });

    it("decodes enum members escaped on the wire (In_x0020_Review, _x0020_)", async () => {
      const inv = sim.upsert("salesInvoices", { number: "S9", status: "In_x0020_Review" });
      const cust = sim.upsert("customers", { number: "C9", blocked: "_x0020_" });
      const [ev] = await drain(client.changes({ subscriptionId: "x", resource: `/api/v2.0/companies(${sim.companyId})/salesInvoices(${inv.id})`, changeType: "updated" }));
      assert.equal(ev.payload.status, "In Review");
      const [c] = await drain(client.changes({ subscriptionId: "x", resource: `api/v2.0/companies(${sim.companyId})/customers(${cust.id})`, changeType: "updated" }));
      assert.equal(c.payload.blocked, " ");
      assert.equal(decodeEnum(" "), " ");
    });

    it("gets one record with $select/$expand; an unknown property is a 400, a missing record not_found", async () => {
      const inv = sim.upsert("salesInvoices", { number: "S3", totalAmountIncludingTax: 10 });
      const r = await client.get("salesInvoices", inv.id, { select: "number,totalAmountIncludingTax", expand: "customer" });
      assert.equal(r.number, "S3");
      assert.ok("customer" in r);
      await assert.rejects(client.get("salesInvoices", inv.id, { select: "remainingAmountX" }), (e: unknown) => e instanceof ErpError && e.code === "bad_request");
      await assert.rejects(client.get("salesInvoices", "00000000-0000-0000-0000-000000000000"), (e: unknown) => e instanceof ErpError && e.code === "not_found" && e.vendorCode === "BadRequest_NotFound");
    });

    it("sim: the overdue example's listing is valid on a company with no invoices, or none that fills dueDate (every property exists on BC)", async () => {
      const overdue = { filter: "status eq 'Open' and remainingAmount gt 0 and dueDate lt 2024-03-01", select: "id,number,dueDate,remainingAmount,currencyCode,customerName,phoneNumber,lastModifiedDateTime", orderby: "dueDate asc" };
      assert.deepEqual(await drain(client.list("salesInvoices", overdue)), []);
      const inv = sim.upsert("salesInvoices", { number: "S4", status: "Open" }); // a draft: no due date, nothing remaining yet
      assert.deepEqual(await drain(client.list("salesInvoices", overdue)), []);
      const r = await client.get("salesInvoices", inv.id, { select: "number,dueDate" });
      assert.deepEqual([r.number, r.dueDate], ["S4", null]);
      await assert.rejects(drain(client.list("salesInvoices", { ...overdue, orderby: "dueDateX asc" })), (e: unknown) => e instanceof ErpError && e.code === "bad_request");
    });
  });

  describe("writes and throttling", () => {
    it("PATCHes with If-Match and only changed fields; a stale ETag is etag_mismatch", async () => {
      const v = sim.upsert("vendors", { number: "V1", displayName: "Old", phoneNumber: "+15555550100" });
      const etag = String(v["@odata.etag"]);
      const updated = await client.update("vendors", v.id, { ...v, displayName: "New" }, etag);
      assert.equal(updated.displayName, "New");
      assert.notEqual(updated["@odata.etag"], etag);
      const patch = sim.apiCalls((l) => l.method === "PATCH")[0];
      assert.equal(patch.headers["if-match"], etag);
      await assert.rejects(client.update("vendors", v.id, { displayName: "Again" }, etag), (e: unknown) => e instanceof ErpError && e.code === "etag_mismatch" && e.status === 409);
      await assert.rejects(client.update("vendors", v.id, { displayName: "x" }, ""), /ETag/);
    });

    it("waits out a 429 without Retry-After and a 503 with it, and repeats a GET answered 502", async () => {
      sim.faults.push({ status: 429 }, { status: 503, retryAfter: 0 }, { status: 502, retryAfter: 0 });
      const rows = await client.companies();
      assert.equal(rows.length, 1);
      assert.deepEqual(sim.apiCalls().map((c) => c.status), [429, 503, 502, 200]);
    });

    it("keeps at most 5 calls in flight", async () => {
      for (let i = 0; i < 3; i++) sim.upsert("items", { number: `I${i}` });
      await Promise.all(Array.from({ length: 20 }, () => drain(client.list("items"))));
      assert.ok(sim.maxConcurrentSeen <= 5, `saw ${sim.maxConcurrentSeen} concurrent`);
    });
  });

  describe("webhook subscriptions", () => {
    let rx: Receiver;
    beforeEach(async () => {
      rx = new Receiver();
      await rx.start();
    });
    afterEach(() => rx.stop());

    it("creates after a passing handshake, renews (handshake again) and deletes with If-Match", async () => {
      const sub = await client.subscribe("salesInvoices", rx.url, "k7Qp9v-shared-secret");
      assert.equal(sub.resource, `/api/v2.0/companies(${sim.companyId})/salesInvoices`);
      assert.equal(sim.log.filter((l) => l.kind === "handshake" && l.ok).length, 1);
      sim.advance(2 * 86_400_000);
      const renewed = await client.renew(sub);
      assert.ok(Date.parse(renewed.expirationDateTime) > Date.parse(sub.expirationDateTime));
      assert.equal(sim.log.filter((l) => l.kind === "handshake" && l.ok).length, 2);
      const del = await client.unsubscribe(renewed);
      assert.equal(del, true);
      assert.equal((await client.subscriptions()).length, 0);
      assert.ok(sim.apiCalls((l) => l.method === "DELETE").every((l) => l.path.endsWith(`subscriptions('${sub.subscriptionId}')`) && l.headers["if-match"] === renewed["@odata.etag"]));
    });

    it("is not created when the handshake answer is JSON-quoted or not exactly 200", async () => {
      rx.mode = "quoted";
      await assert.rejects(client.subscribe("salesInvoices", rx.url, "s"), (e: unknown) => e instanceof ErpError && e.status === 400);
      rx.mode = "status201";
      await assert.rejects(client.subscribe("salesInvoices", rx.url, "s"), (e: unknown) => e instanceof ErpError);
      assert.equal(sim.subs.size, 0);
    });

    it("expires after three days (renewal then meets not_found); clientState over 250 refused", async () => {
      const sub = await client.subscribe("customers", rx.url, "s");
      sim.advance(3 * 86_400_000 + 1000);
      await assert.rejects(client.renew(sub), (e: unknown) => e instanceof ErpError && e.code === "not_found");
      await assert.rejects(client.subscribe("customers", rx.url, "x".repeat(251)), /250/);
    });

    it("lists webhook-enabled entity sets: no purchaseOrders, no customerPayments; BC refuses to subscribe them", async () => {
      const set = await client.webhookResources();
      assert.ok(set.has("salesInvoices") && set.has("purchaseInvoices") && set.has("customers"));
      assert.ok(!set.has("purchaseOrders") && !set.has("customerPayments"));
      await assert.rejects(client.subscribe("purchaseOrders", rx.url, "s"), (e: unknown) => e instanceof ErpError && e.status === 400);
    });

    it("one POST mixes subscriptions of one URL; each item resolves to its record", async () => {
      const s1 = await client.subscribe("salesInvoices", rx.url, "secret-1");
      const s2 = await client.subscribe("customers", rx.url, "secret-2");
      const inv = sim.upsert("salesInvoices", { number: "S1", status: "Open" });
      sim.upsert("salesInvoices", { id: inv.id, status: "Paid" });
      const cust = sim.upsert("customers", { number: "C1" });
      await sim.flush();
      assert.equal(rx.bodies.length, 1);
      const items = rx.bodies[0].value;
      assert.deepEqual(new Set(items.map((i) => i.subscriptionId)), new Set([s1.subscriptionId, s2.subscriptionId]));
      assert.deepEqual(items.map((i) => `${i.changeType}:${i.clientState}`).sort(), ["created:secret-1", "created:secret-2", "updated:secret-1"]);
      const events = (await Promise.all(items.map((n) => drain(client.changes(n))))).flat();
      assert.deepEqual(new Set(events.map((e) => e.erp.id)), new Set([inv.id, cust.id]));
      assert.equal(events.find((e) => e.erp.id === inv.id)?.payload.status, "Paid");
    });

    it("a collection notification is re-queried with all pages: one event per changed record", async () => {
      sim.collectionThreshold = 3;
      const c = newClient({ pageSize: 2 });
      await c.subscribe("salesInvoices", rx.url, "s");
      sim.upsert("salesInvoices", { number: "OLD" }, Date.now() - 3600_000);
      await sim.flush();
      rx.bodies.length = 0;
      for (let i = 0; i < 5; i++) sim.upsert("salesInvoices", { number: `B${i}` });
      await sim.flush();
      const [n] = rx.bodies[0].value;
      assert.equal(n.changeType, "collection");
      assert.match(n.resource, /\?\$filter=lastModifiedDateTime%20gt%20/);
      const events = await drain(c.changes(n));
      assert.deepEqual(events.map((e) => e.erp.number).sort(), ["B0", "B1", "B2", "B3", "B4"]);
    });

    it("after a delete in the batch the collection URL has no filter: only rows changed within BC's retry horizon are read, not the whole set", async () => {
      sim.collectionThreshold = 2;
      sim.upsert("customers", { number: "OLD" }, Date.now() - 3 * 86_400_000); // untouched for three days: not in the batch
      assert.deepEqual(await sim.flush(), [], "no subscription yet: nobody told");
      await client.subscribe("customers", rx.url, "s");
      const a = sim.upsert("customers", { number: "A" });
      sim.upsert("customers", { number: "B" });
      sim.remove("customers", a.id);
      await sim.flush();
      const [n] = rx.bodies[0].value;
      assert.equal(n.changeType, "collection");
      assert.ok(!n.resource.includes("$filter"));
      assert.deepEqual((await drain(client.changes(n))).map((e) => e.erp.number), ["B"]);
    });

    it("sim: a 404 to a notification deletes every subscription of that URL; a 503 keeps them and is retried", async () => {
      await client.subscribe("salesInvoices", rx.url, "s");
      await client.subscribe("customers", rx.url, "s");
      rx.mode = "notify503";
      sim.upsert("salesInvoices", { number: "S" });
      await sim.flush();
      assert.equal(sim.subs.size, 2);
      rx.mode = "ok";
      await sim.flush();
      assert.equal(rx.bodies.length, 1, "the batch answered 503 came again");
      rx.mode = "notify404";
      sim.upsert("customers", { number: "C" });
      await sim.flush();
      assert.equal(sim.subs.size, 0);
    });

    it("the same change read by webhook and by poll has one jobId; a later change a new one", async () => {
      await client.subscribe("salesInvoices", rx.url, "s");
      const inv = sim.upsert("salesInvoices", { number: "S7", status: "Open" });
      await sim.flush();
      const [pushed] = await drain(client.changes(rx.bodies[0].value[0]));
      const polled = await drain(client.pollRead("salesInvoices", ""));
      assert.equal(pushed.erp.action, "created");
      assert.equal(polled[0].erp.action, "updated");
      assert.equal(pushed.erp.jobId, polled[0].erp.jobId);
      sim.upsert("salesInvoices", { id: inv.id, status: "Paid" }, Date.now() + 1000);
      const [later] = await drain(client.pollRead("salesInvoices", ""));
      assert.notEqual(later.erp.jobId, pushed.erp.jobId);
    });

    it("a deleted notification yields an id-only deleted event; a resource outside the environment is refused", async () => {
      const id = "3f1c2a9e-0b7d-4e1a-9c55-1a2b3c4d5e6f";
      const [ev] = await drain(client.changes({ subscriptionId: "x", resource: `/api/v2.0/companies(${sim.companyId})/salesInvoices(${id})`, changeType: "deleted", lastModifiedDateTime: "2024-03-01T09:14:22.517Z" }));
      assert.equal(ev.erp.action, "deleted");
      assert.equal(ev.erp.id, id);
      assert.throws(() => client.resolveResource("https://evil.example/api/v2.0/companies(x)/salesInvoices"), /outside/);
    });
  });
});
