/**
 * nodes/lib/exact against the Exact Online simulator (test/sims/exact.ts), one test per trap of the reference
 * (`exact-online.md` "Traps"): URL-encoded single-use codes and the exact redirect URI, `expires_in` as a string,
 * no token request before 570 s, rotating refresh tokens persisted before use and never presented twice, restart
 * with persisted tokens, `Accept: application/json`, `$select` always, 60-row pages via `__next`, typed filter
 * literals, errors counted per endpoint, X-RateLimit headers (429 waits for the reset), webhook subscriptions
 * listed before creating and the callback validated, HashCode over the raw Content in upper-case hex.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ExactClient } from "../../nodes/lib/exact/client";
import { ExactTokens } from "../../nodes/lib/exact/tokens";
import { exactLiteral, fromExact } from "../../nodes/lib/exact/values";
import { pickRecipient } from "../../nodes/lib/exact/enrich";
import { eventFromNotification, exactPollRead, exactWindow } from "../../nodes/lib/exact/events";
import { judgeExactWebhook, parseExactNotification, verifyExactHashCode } from "../../nodes/lib/exact/webhook";
import { ensureSubscriptions, removeSubscriptions } from "../../nodes/lib/exact/subscriptions";
import { exactTime } from "../../nodes/lib/poll/conditions";
import { AuthError, ErpError, ValidationError } from "../../nodes/lib/errors";
import { ExactSim, exactDate } from "../sims/exact";
import { until } from "../harness/red-testbed";

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const INVOICE = "7b1c9f2e-3d4a-4e5b-8c6d-9e0f1a2b3c4d";

describe("exact: client (nodes/lib/exact) against ExactSim", function () {
  this.timeout(30000);
  let sim: ExactSim;
  let clock: { t: number };
  const closers: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    sim = new ExactSim();
    clock = { t: Date.now() };
    sim.now = () => clock.t;
    await sim.start();
    sim.put("salesinvoice/SalesInvoices", { InvoiceID: INVOICE, InvoiceNumber: 25000142, AmountDC: 1512.5, Currency: "EUR", DueDate: exactDate(1743465600000), Status: 20 });
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    await sim.stop();
  });

  function client(extra: Partial<ConstructorParameters<typeof ExactClient>[0]> = {}): ExactClient {
    const c = new ExactClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, redirectUri: sim.redirectUri, now: () => clock.t, ...extra });
    closers.push(() => c.close());
    return c;
  }
  const tokenLog = () => sim.log.filter((l) => l.kind === "token") as Extract<(typeof sim.log)[number], { kind: "token" }>[];

  it("exchanges a URL-encoded single-use code with the registered redirect URI; expires_in '600' is 600 s; tokens saved before first use", async () => {
    const saved: ExactTokens[] = [];
    const apiBeforeSave: number[] = [];
    const c = client({ onTokens: (t) => void (saved.push(t), apiBeforeSave.push(sim.apiCalls().length)) });
    const code = sim.authorize();
    assert.match(code, /%21/);
    await c.tokens.exchangeCode(code);
    assert.equal(saved.length, 1);
    assert.equal(apiBeforeSave[0], 0);
    assert.equal(c.tokens.expiresAt, clock.t + 600_000);
    const inv = await c.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID", "AmountDC", "DueDate"]);
    assert.equal(inv?.AmountDC, 1512.5);
    assert.equal((sim.apiCalls()[1] as { accessToken: string }).accessToken, saved[0].accessToken);
    // the code is single use, and a different redirect URI is refused
    await assert.rejects(c.tokens.exchangeCode(code), (e: unknown) => e instanceof AuthError && e.code === "reauthorize");
    await assert.rejects(client().tokens.exchangeCode(sim.authorize(), "https://nodered.example.com/other"), (e: unknown) => e instanceof AuthError && e.code === "reauthorize");
  });

  it("never asks for a token before 570 s: a 401 on a young token is 'token_revoked' without a token request", async () => {
    const c = client({ tokens: { refreshToken: sim.grant() } });
    await c.currentDivision();
    assert.equal(tokenLog().length, 1);
    clock.t += 300_000;
    sim.revokeAccessTokens();
    await assert.rejects(c.get("salesinvoice/SalesInvoices", INVOICE), (e: unknown) => e instanceof AuthError && e.code === "token_revoked");
    assert.equal(tokenLog().length, 1, "no token request inside 570 s");
    assert.equal(tokenLog().filter((l) => l.status === 401).length, 0);
  });

  it("refreshes once at 570 s for 20 concurrent calls; the new refresh token is saved first; the old one is never presented again", async () => {
    const saved: ExactTokens[] = [];
    const c = client({ tokens: { refreshToken: sim.grant() }, onTokens: (t) => void saved.push(t) });
    await c.get("salesinvoice/SalesInvoices", INVOICE);
    clock.t += 571_000;
    const all = await Promise.all(Array.from({ length: 20 }, () => c.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"])));
    assert.ok(all.every((r) => r?.InvoiceID === INVOICE));
    const grants = tokenLog();
    assert.equal(grants.length, 2);
    assert.ok(grants.every((g) => g.status === 200));
    assert.equal(grants[1].usedRefreshToken, grants[0].refreshToken, "refreshed with the newest token");
    assert.equal(saved.at(-1)?.refreshToken, grants[1].refreshToken);
    // presenting the used token after the newer one was used and its 10 minutes passed: refused, re-authorise
    const stale = client({ tokens: { refreshToken: grants[0].refreshToken as string } });
    clock.t += 600_001;
    await assert.rejects(stale.me(), (e: unknown) => e instanceof AuthError && e.code === "reauthorize");
  });

  it("a lost token answer is retried once with the same refresh token, not before 570 s after the lost request", async () => {
    const rt = sim.grant();
    const c = client({ tokens: { refreshToken: rt }, http: { retry: { maxAttempts: 1 } } });
    sim.dropNextTokenAnswer = true;
    await assert.rejects(c.me(), (e: unknown) => e instanceof Error && (e as { code?: string }).code !== undefined);
    clock.t += 60_000;
    await assert.rejects(c.me(), (e: unknown) => e instanceof Error && (e as { code?: string }).code === "refresh_pending");
    assert.equal(tokenLog().length, 1, "no second token request inside 570 s");
    clock.t += 520_000;
    const me = await c.me();
    assert.equal(me.CurrentDivision, sim.division);
    assert.deepEqual(tokenLog().map((l) => [l.status, l.usedRefreshToken === rt]), [[200, true], [200, true]]);
  });

  it("a restart inside the token's life uses the saved access token; after expiry it refreshes the saved refresh token (no new login)", async () => {
    let saved: ExactTokens | undefined;
    const a = client({ tokens: { refreshToken: sim.grant() }, onTokens: (t) => void (saved = t) });
    await a.me();
    await a.close();
    clock.t += 120_000;
    const b = client({ tokens: saved });
    await b.me();
    assert.equal(tokenLog().length, 1, "no token request after a restart mid-token-life");
    clock.t += 500_000;
    const c = client({ tokens: saved, onTokens: (t) => void (saved = t) });
    await c.me();
    assert.deepEqual(tokenLog().map((l) => [l.grant, l.status]), [["refresh_token", 200], ["refresh_token", 200]]);
  });

  it("lists 130 invoices in 60-row pages via __next with $select and a datetime'…' filter; $select is required", async () => {
    const base = Date.UTC(2025, 2, 1);
    for (let i = 0; i < 130; i++) sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: 1000 + i, AmountDC: i, Modified: exactDate(base + i * 1000) });
    const c = client({ tokens: { refreshToken: sim.grant() } });
    const rows = await drain(c.list("salesinvoice/SalesInvoices", { select: ["InvoiceID", "InvoiceNumber", "Modified"], filter: exactTime("Modified", "ge", base) }));
    assert.equal(rows.length, 131, "the 130 and the invoice seeded now");
    assert.equal(new Set(rows.map((r) => r.InvoiceID)).size, 131);
    assert.equal(sim.apiCalls("SalesInvoices").length, 3);
    const later = await drain(c.list("salesinvoice/SalesInvoices", { select: ["InvoiceID"], filter: `Modified gt ${exactLiteral(new Date(base + 125_000))} and AmountDC ge 0` }));
    assert.equal(later.length, 5, "126..129 and the invoice seeded now");
    const calls = sim.apiCalls().length;
    await assert.rejects(drain(c.list("salesinvoice/SalesInvoices", { select: [] })), ValidationError);
    await assert.rejects(drain(c.list("salesinvoice/SalesInvoices", { select: ["*"] })), ValidationError);
    assert.equal(sim.apiCalls().length, calls, "refused before leaving");
  });

  it("maps Exact errors, stops calling an endpoint after 8 errors in an hour, and 404 is 'absent'", async () => {
    const c = client({ tokens: { refreshToken: sim.grant() } });
    assert.equal(await c.get("salesinvoice/SalesInvoices", "00000000-0000-0000-0000-000000000001"), undefined);
    await assert.rejects(drain(c.list("salesinvoice/SalesInvoices", { select: ["InvoiceID"], filter: "Modified gt datetimeoffset'2025-01-01T00:00:00Z'" })), (e: unknown) => e instanceof ErpError && e.code === "query_syntax" && /Error in query syntax/.test(e.message));
    for (let i = 0; i < 6; i++) await assert.rejects(drain(c.list("salesinvoice/SalesInvoices", { select: ["NoSuchField"] })), ErpError);
    const before = sim.apiCalls("SalesInvoices").length;
    await assert.rejects(c.get("salesinvoice/SalesInvoices", INVOICE), (e: unknown) => e instanceof ErpError && e.code === "error_budget");
    assert.equal(sim.apiCalls("SalesInvoices").length, before, "the ninth call never left");
    assert.ok(sim.apiCalls("SalesInvoices").filter((l) => (l as { status: number }).status === 403).length === 0, "Exact never blocked us");
    assert.ok((await c.get("crm/Accounts", "00000000-0000-0000-0000-000000000002")) === undefined, "other endpoints still work");
  });

  it("an HTML 'Object moved' 401 is an AuthError, not a JSON parse failure", async () => {
    sim.htmlUnauthorized = true;
    const c = client({ tokens: { refreshToken: sim.grant() } });
    await c.me();
    clock.t += 100_000;
    sim.revokeAccessTokens();
    await assert.rejects(c.get("salesinvoice/SalesInvoices", INVOICE), (e: unknown) => e instanceof AuthError && e.code === "token_revoked");
    assert.equal(sim.apiCalls().filter((l) => (l as { status: number }).status === 401).length, 1);
    clock.t += 480_000;
    const inv = await c.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]);
    assert.equal(inv?.InvoiceID, INVOICE, "after 570 s and the pause, one refresh and the call goes through");
  });

  it("keeps within X-RateLimit-Minutely-* (no 429), and a 429 from a spent minute waits for the reset instead of failing", async () => {
    sim.minuteLimit = 3;
    sim.minuteMs = 3000;
    sim.now = () => Date.now();
    clock.t = Date.now();
    const a = client({ tokens: { refreshToken: sim.grant() } });
    for (let i = 0; i < 7; i++) assert.equal((await a.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]))?.InvoiceID, INVOICE);
    const status = (s: number) => sim.apiCalls().filter((l) => (l as { status: number }).status === s).length;
    assert.equal(status(429), 0, "the header feed kept every call inside the minute");
    assert.deepEqual(Object.keys(a.rateRemaining(sim.division)).sort(), ["daily", "minutely"]);
    // a second client (no readings yet) sharing the same token meets a minute spent by the first: it waits, never fails
    const b = new ExactClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, division: sim.division, tokens: { refreshToken: "x", accessToken: tokenLog()[0].accessToken as string, issuedAt: Date.now(), expiresAt: Date.now() + 500_000 } });
    closers.push(() => b.close());
    while (Date.now() % 3000 > 1500) await new Promise((r) => setTimeout(r, 20));
    sim.spendMinute(String(sim.division));
    const got = await b.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]);
    assert.equal(got?.InvoiceID, INVOICE);
    assert.equal(status(429), 1, "one refusal, then it waited for X-RateLimit-Minutely-Reset");
    assert.equal(tokenLog().length, 1);
  });

  it("a request waiting out a 429 leaves with the token current then (refreshed while it waited), not a stale one", async () => {
    sim.minuteMs = 3000;
    let offset = 0;
    sim.now = () => Date.now() + offset;
    const c = client({ tokens: { refreshToken: sim.grant() }, now: () => Date.now() + offset });
    assert.equal((await c.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]))?.InvoiceID, INVOICE);
    sim.spendMinute(String(sim.division)); // the next call is refused until the minute resets
    const waiting = c.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]);
    await until(() => sim.apiCalls().some((l) => (l as { status: number }).status === 429), "the refusal");
    offset = 601_000; // meanwhile the access token expires (client and Exact clocks) and another call refreshes it
    const refreshing = c.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]);
    assert.deepEqual([(await waiting)?.InvoiceID, (await refreshing)?.InvoiceID], [INVOICE, INVOICE]);
    const grants = tokenLog();
    assert.equal(grants.length, 2);
    // after the first read (and the division lookup before it) and the refusal
    const after = (sim.apiCalls() as Extract<(typeof sim.log)[number], { kind: "api" }>[]).slice(3);
    assert.deepEqual(after.map((l) => l.status), [200, 200], "no call left with the expired token (no 401 and replay)");
    assert.ok(after.every((l) => l.accessToken === grants[1].accessToken), "both carried the refreshed token");
  });

  it("a spent daily allowance (X-RateLimit-Remaining 0) holds calls until X-RateLimit-Reset; a 429 for it waits too and is no error", async () => {
    sim.dayLimit = 4;
    const DAY = 5000;
    sim.dayMs = DAY; // a 5-second "day", so the reset comes within the test
    sim.now = () => Date.now();
    clock.t = Date.now();
    while (Date.now() % DAY > 1000) await new Promise((r) => setTimeout(r, 20));
    const a = client({ tokens: { refreshToken: sim.grant() } });
    for (let i = 0; i < 6; i++) assert.equal((await a.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]))?.InvoiceID, INVOICE);
    const status = (s: number) => sim.apiCalls().filter((l) => (l as { status: number }).status === s).length;
    assert.equal(status(429), 0, "the fifth call waited for the daily reset instead of meeting a 429");
    assert.equal(sim.apiCalls("SalesInvoices").filter((l) => (l as { status: number }).status === 200).length, 6);
    // a second client without readings meets a day another client spent: one 429, then it waits for X-RateLimit-Reset
    const b = new ExactClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, division: sim.division, tokens: { refreshToken: "x", accessToken: tokenLog()[0].accessToken as string, issuedAt: Date.now(), expiresAt: Date.now() + 500_000 } });
    closers.push(() => b.close());
    await new Promise((r) => setTimeout(r, DAY - (Date.now() % DAY) + 50)); // the start of a fresh "day"
    for (let i = 0; i < 4; i++) await a.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]);
    const refusedBefore = status(429);
    assert.equal((await b.get("salesinvoice/SalesInvoices", INVOICE, ["InvoiceID"]))?.InvoiceID, INVOICE);
    assert.equal(status(429) - refusedBefore, 1, "one refusal, then it waited for the daily reset");
    assert.doesNotThrow(() => b.errors.check("salesinvoice/SalesInvoices"), "a 429 is not counted towards Exact's error block");
    assert.equal(tokenLog().length, 1);
  });

  it("subscribes only missing topics after listing, validates the callback, and deletes", async () => {
    const seen: { len: number }[] = [];
    const receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({ len: Buffer.concat(chunks).length });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => receiver.close(() => r())));
    sim.callbackTarget = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const c = client({ tokens: { refreshToken: sim.grant() } });
    const cb = "https://nodered.example.com/mlc/exact/invoices";
    const s1 = await c.subscribe("SalesInvoices", cb);
    const s2 = await c.subscribe("SalesInvoices", cb);
    assert.equal(s1.ID, s2.ID);
    assert.equal(sim.apiCalls("WebhookSubscriptions").filter((l) => (l as { method: string }).method === "POST").length, 1);
    assert.ok(seen.length >= 1 && seen[0].len === 0, "validation POST is empty");
    await assert.rejects(c.subscribe("SalesInvoices", "http://nodered.example.com/x"), (e: unknown) => e instanceof ErpError && /https/.test(e.message));
    assert.equal(await c.unsubscribe(s1.ID), true);
    assert.equal(await c.unsubscribe(s1.ID), false);
  });

  it("ensureSubscriptions subscribes each topic once and removeSubscriptions deletes only ours", async () => {
    const receiver = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => receiver.close(() => r())));
    sim.callbackTarget = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const c = client({ tokens: { refreshToken: sim.grant() } });
    const ours = "https://nodered.example.com/mlc/exact/docs";
    await c.subscribe("Accounts", "https://nodered.example.com/mlc/exact/other");
    const first = await ensureSubscriptions(c, ["SalesInvoices", "SalesOrders", "Receivables"], ours);
    assert.deepEqual(first.map((r) => [r.topic, !!r.subscription, /poll it/.test(r.error ?? "")]), [["SalesInvoices", true, false], ["SalesOrders", true, false], ["Receivables", false, true]]);
    await ensureSubscriptions(c, ["SalesInvoices", "SalesOrders"], ours);
    assert.equal(sim.subscriptions.size, 3);
    assert.equal(sim.apiCalls("WebhookSubscriptions").filter((l) => (l as { status: number }).status >= 400).length, 0, "no refused call");
    assert.equal(await removeSubscriptions(c, ours), 2);
    assert.deepEqual([...sim.subscriptions.values()].map((s) => s.Topic), ["Accounts"]);
  });

  it("a failing callback fails the subscription with Exact's text", async () => {
    const receiver = http.createServer((_req, res) => res.writeHead(500).end());
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => receiver.close(() => r())));
    sim.callbackTarget = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const c = client({ tokens: { refreshToken: sim.grant() } });
    await assert.rejects(c.subscribe("SalesInvoices", "https://nodered.example.com/mlc/exact/i"), (e: unknown) => e instanceof Error && /callback URL endpoint returns 500/.test(e.message));
  });

  it("a signed delivery → the fetched record as an envelope with the same jobId a poll of the same change yields", async () => {
    const bodies: string[] = [];
    const receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        bodies.push(Buffer.concat(chunks).toString("utf8"));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => receiver.close(() => r())));
    sim.callbackTarget = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    const c = client({ tokens: { refreshToken: sim.grant() } });
    await c.subscribe("SalesInvoices", "https://nodered.example.com/mlc/exact/invoices");
    assert.deepEqual(await sim.notify("SalesInvoices", "Update", INVOICE), [200]);
    const body = bodies.find((b) => b.length > 0) as string;
    assert.ok(verifyExactHashCode(body, sim.webhookSecret));
    for (const forge of ["lowercase", "secret", "reencoded"] as const) {
      await sim.notify("SalesInvoices", "Update", INVOICE, forge);
      assert.equal(verifyExactHashCode(bodies.at(-1) as string, sim.webhookSecret), false, forge);
    }
    const pushed = await eventFromNotification(c, parseExactNotification(body) as NonNullable<ReturnType<typeof parseExactNotification>>);
    assert.equal(pushed?.topic, "exact/SalesInvoices/updated");
    assert.equal(pushed?.erp.number, "25000142");
    assert.equal(pushed?.payload.DueDate, "2025-04-01T00:00:00.000Z");
    const win = exactWindow();
    const state = { watermark: "", seenAtWatermark: [], recent: [] };
    const polled: unknown[] = [];
    for await (const ev of exactPollRead(c, "SalesInvoices")({ filter: win.filterFor(state, undefined, clock.t + 1000), untilMs: clock.t + 1000 })) polled.push(ev);
    assert.equal(polled.length, 1);
    assert.equal((polled[0] as typeof pushed)?.erp.jobId, pushed?.erp.jobId);
  });

  it("fetches the record a webhook names only on its own host", async () => {
    const c = client({ tokens: { refreshToken: sim.grant() } });
    const rec = await c.getByEndpoint(`${sim.url}/api/v1/${sim.division}/salesinvoice/SalesInvoices(guid'${INVOICE}')`);
    assert.equal(rec?.InvoiceNumber, 25000142);
    const calls = sim.apiCalls().length;
    await assert.rejects(c.getByEndpoint(`https://evil.example.com/api/v1/${sim.division}/salesinvoice/SalesInvoices(guid'${INVOICE}')`), (e: unknown) => e instanceof ValidationError && e.code === "foreign_endpoint");
    assert.equal(sim.apiCalls().length, calls);
  });
});

describe("exact: the simulator's own traps (what a careless client meets)", function () {
  this.timeout(20000);
  let sim: ExactSim;
  beforeEach(async () => {
    sim = new ExactSim();
    await sim.start();
  });
  afterEach(() => sim.stop());

  async function token(): Promise<string> {
    const r = await fetch(`${sim.url}/api/oauth2/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: sim.grant(), client_id: sim.clientId, client_secret: sim.clientSecret }) });
    const b = (await r.json()) as { access_token: string; expires_in: unknown; token_type: string };
    assert.equal(typeof b.expires_in, "string");
    return b.access_token;
  }

  it("token requests must be form-encoded; a second one inside 570 s is a 401", async () => {
    const json = await fetch(`${sim.url}/api/oauth2/token`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ grant_type: "refresh_token", refresh_token: sim.grant(), client_id: sim.clientId, client_secret: sim.clientSecret }) });
    assert.equal(json.status, 400);
    await token();
    const again = await fetch(`${sim.url}/api/oauth2/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: (sim.log.at(-1) as { refreshToken: string }).refreshToken, client_id: sim.clientId, client_secret: sim.clientSecret }) });
    assert.equal(again.status, 401);
  });

  it("without Accept: application/json the answer is Atom XML; $select=* and missing $select are 400", async () => {
    const at = await token();
    const base = `${sim.url}/api/v1/${sim.division}/salesinvoice/SalesInvoices`;
    const atom = await fetch(`${base}?$select=InvoiceID`, { headers: { authorization: `Bearer ${at}` } });
    assert.match(atom.headers.get("content-type") ?? "", /atom\+xml/);
    const h = { authorization: `Bearer ${at}`, accept: "application/json" };
    assert.equal((await fetch(`${base}?$select=*`, { headers: h })).status, 400);
    const none = await fetch(base, { headers: h });
    assert.equal(none.status, 400);
    assert.match(((await none.json()) as { error: { message: { value: string } } }).error.message.value, /\$select or a \$top=1/);
    const ok = await fetch(`${base}?$select=InvoiceID`, { headers: h });
    assert.equal(ok.headers.get("x-ratelimit-minutely-limit"), "60");
    assert.match(ok.headers.get("x-ratelimit-minutely-reset") ?? "", /^\d{13}$/, "reset in epoch ms");
  });
});

describe("exact: HashCode and values", () => {
  const sample =
    '{"Content":{"Topic":"SalesInvoices","ClientId":"0d6f2b8e-5c1a-4a6e-9b7f-2f3c4d5e6a7b","Division":123456,"Action":"Update","Key":"7b1c9f2e-3d4a-4e5b-8c6d-9e0f1a2b3c4d","ExactOnlineEndpoint":"https://start.exactonline.nl/api/v1/123456/salesinvoice/SalesInvoices(guid\'7b1c9f2e-3d4a-4e5b-8c6d-9e0f1a2b3c4d\')","EventCreatedOn":"2025-03-14T09:26:53.59"},"HashCode":"FF14F331070DB7108AB2A47EC73ABCC0450BEA90E21BFC2BB093EBAB4CDA5F51"}';

  it("verifies the reference's worked example and refuses its lower-case form, another secret and re-encoded JSON", () => {
    assert.equal(verifyExactHashCode(sample, "sim-webhook-secret-123"), true);
    assert.equal(verifyExactHashCode(Buffer.from(sample), "sim-webhook-secret-123"), true);
    assert.equal(verifyExactHashCode(sample.replace(/"HashCode":"([0-9A-F]+)"/, (_m, h: string) => `"HashCode":"${h.toLowerCase()}"`), "sim-webhook-secret-123"), false);
    assert.equal(verifyExactHashCode(sample, "another-secret"), false);
    assert.equal(verifyExactHashCode(sample.replace("https://", "https:\\/\\/"), "sim-webhook-secret-123"), false);
    assert.equal(verifyExactHashCode("", "sim-webhook-secret-123"), false);
    assert.equal(judgeExactWebhook(Buffer.alloc(0), "sim-webhook-secret-123").kind, "validation");
    assert.deepEqual(judgeExactWebhook(sample.replace("FF14", "FF15"), "sim-webhook-secret-123"), { kind: "refused", status: 401, reason: "bad_signature" });
    assert.deepEqual(judgeExactWebhook(sample, ""), { kind: "refused", status: 401, reason: "no_secret" });
    assert.equal(judgeExactWebhook(sample, "sim-webhook-secret-123").kind, "notification");
    const n = parseExactNotification(sample);
    assert.equal(n?.action, "update");
    assert.equal(n?.deliveryId, "SalesInvoices|123456|7b1c9f2e-3d4a-4e5b-8c6d-9e0f1a2b3c4d|update|2025-03-14T09:26:53.59");
  });

  it("fromExact turns /Date(ms)/ into ISO, keeps __metadata as @odata.*, drops deferred links", () => {
    const out = fromExact({ __metadata: { uri: "u", type: "Exact.Web.Api.Models.SalesInvoice" }, DueDate: "/Date(1743465600000)/", Empty: null, Lines: { __deferred: { uri: "x" } }, Exp: { results: [{ D: "/Date(0)/" }] } });
    assert.deepEqual(out, { "@odata.id": "u", "@odata.type": "Exact.Web.Api.Models.SalesInvoice", DueDate: "2025-04-01T00:00:00.000Z", Empty: null, Exp: [{ D: "1970-01-01T00:00:00.000Z" }] });
    assert.equal(exactLiteral("O'Brien"), "'O''Brien'");
    assert.equal(exactLiteral(INVOICE), `guid'${INVOICE}'`);
  });

  it("pickRecipient: main contact first, mobile → SMS, e-mail only → e-mail, account e-mail last, opt-outs honoured", () => {
    const account = { ID: "a", MainContact: "c2", Email: "ap@x.example" };
    const c1 = { ID: "c1", FullName: "One", Mobile: "+31611111111" };
    const c2 = { ID: "c2", FullName: "Two", BusinessEmail: "two@x.example" };
    assert.deepEqual(pickRecipient({ account, contacts: [c1, c2] }).recipient, { channel: "email", to: "two@x.example", name: "Two", contactId: "c2", accountId: "a" });
    assert.equal(pickRecipient({ account, contacts: [c1, c2] }, {}, (to) => to === "two@x.example").recipient?.to, "+31611111111");
    assert.equal(pickRecipient({ account, contacts: [] }).recipient?.to, "ap@x.example");
    assert.deepEqual(pickRecipient({ account: { ID: "a" }, contacts: [{ ID: "c3", FullName: "Nobody" }] }), { reason: "no-contact-found" });
    assert.deepEqual(pickRecipient({ account: { ID: "a" }, contacts: [c1] }, {}, () => true), { reason: "opted-out" });
  });
});
