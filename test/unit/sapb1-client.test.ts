/**
 * SapB1Client against the Service Layer simulator over HTTPS with a self-signed certificate: one Login reused, both
 * cookies on every request, 401/301 → one single-flight re-login and one replay, -5002 never a re-login, paging in
 * both versions and link forms, strict filters, both error envelopes, PATCH write-back with ETags, logout on close,
 * and the per-connection CA (refused without it). Each trap of reference sap-business-one.md has a case here.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { AuthCooldownError } from "../../nodes/lib/auth/source";
import { AuthError, ErpError, MlcError } from "../../nodes/lib/errors";
import { HttpClient } from "../../nodes/lib/http";
import { parseSapB1Error } from "../../nodes/lib/sapb1/answers";
import { SapB1Client, SapB1ClientOptions, keyLiteral } from "../../nodes/lib/sapb1/client";
import { docEntryFilter, updateWindow } from "../../nodes/lib/sapb1/events";
import { KeptSapB1Session } from "../../nodes/lib/sapb1/session";
import { SapB1Sim, selfSignedCert } from "../sims/sapb1";

const PAIR = selfSignedCert();

function invoice(n: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    DocEntry: n, DocNum: 10000 + n, CardCode: "C20000", CardName: "Lakeside Bikes Ltd.", DocDate: "2024-03-01", DocDueDate: "2024-03-31",
    DocTotal: 100 + n, DocCurrency: "USD", PaidToDate: 0, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: "2024-03-01",
    UpdateDate: "2024-03-01", UpdateTime: `09:${String(n % 60).padStart(2, "0")}:17`, ...over,
  };
}

describe("sapb1 client against the Service Layer simulator", function () {
  this.timeout(30000);
  let sim: SapB1Sim;
  const clients: SapB1Client[] = [];

  async function startSim(opts: ConstructorParameters<typeof SapB1Sim>[0] = {}): Promise<SapB1Sim> {
    sim = new SapB1Sim({ tls: PAIR, ...opts });
    await sim.start();
    for (let i = 1; i <= 45; i++) sim.put("Invoices", invoice(i));
    sim.put("IncomingPayments", { DocEntry: 301, DocNum: 4015, CardCode: "C20000", DocDate: "2024-03-28", TransferSum: 1250, Cancelled: "tNO" });
    sim.put("IncomingPayments", { DocEntry: 302, DocNum: 4016, CardCode: "C20000", DocDate: "2024-03-29", TransferSum: 50, Cancelled: "tNO" });
    sim.put("Items", { ItemCode: "A'1", ItemName: "Helmet", QuantityOnStock: 3, MinInventory: 5, UpdateDate: "2024-03-01", UpdateTime: "10:00:00" });
    return sim;
  }

  function client(over: Partial<SapB1ClientOptions> = {}): SapB1Client {
    const c = new SapB1Client({
      url: sim.url, companyDb: sim.companyDb, username: sim.username, password: sim.password, tls: { ca: PAIR.cert },
      http: { retry: { baseDelayMs: 1, maxDelayMs: 2 } }, ...over,
    });
    clients.push(c);
    return c;
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await sim?.stop();
  });

  it("logs in once, sends both cookies exactly as set on every request, and reuses the session", async () => {
    await startSim();
    const c = client();
    for (let i = 0; i < 5; i++) assert.equal((await c.get("Invoices", 3))?.DocNum, 10003);
    assert.equal((await c.listAll("Invoices", { top: 2 })).length, 2);
    assert.equal(sim.logins.length, 1, "one Login for the whole client");
    assert.equal(sim.logins[0].version, "v2");
    assert.ok(sim.dataRequests.length >= 6);
    assert.ok(sim.dataRequests.every((r) => r.sessionOk), "B1SESSION and ROUTEID with the Login's values on every request");
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(c.stats().cookieNames.sort(), ["B1SESSION", "ROUTEID"]);
  });

  it("keeps the session cookie on /b1s/v1 too (no Path, trailing ';': a path-scoped jar would drop it)", async () => {
    await startSim();
    const c = client({ version: "v1" });
    assert.equal((await c.get("Invoices", 1))?.DocEntry, 1);
    assert.equal(sim.logins[0].version, "v1");
    assert.ok(sim.dataRequests.every((r) => r.sessionOk));
  });

  it("answers 401 code 301 once the session is gone: logs in once, replays once, never sends the old cookie again", async () => {
    await startSim();
    const c = client();
    await c.get("Invoices", 1);
    sim.expireSessions();
    assert.equal((await c.get("Invoices", 2))?.DocEntry, 2);
    assert.equal(sim.logins.length, 2);
    assert.equal(sim.logins[1].alive, 0, "the second Login came only after the first session had ended");
    assert.equal(c.stats().replays, 1);
    const statuses = sim.dataRequests.map((r) => r.status);
    assert.deepEqual(statuses, [200, 401, 200]);
    await c.get("Invoices", 3);
    assert.deepEqual(sim.violations, []);
  });

  it("re-logs in single-flight: ten requests meeting an expired session share one Login", async () => {
    await startSim();
    const c = client({ maxConcurrent: 10 });
    await c.get("Invoices", 1);
    sim.expireSessions();
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => c.get("Invoices", i + 1)));
    assert.equal(got.filter((r) => r !== null).length, 10);
    assert.equal(sim.logins.length, 2, "one re-login for all of them");
  });

  it("treats 400 -5002 as a business error: no re-login, no replay, the vendor text reported", async () => {
    await startSim();
    const c = client();
    await c.get("Invoices", 1);
    sim.inject.push({ match: /^PATCH Invoices/, status: 400, code: -5002, message: "Document is already cancelled", times: 1 });
    await assert.rejects(c.patch("Invoices", 1, { Comments: "x" }), (e: unknown) => {
      assert.ok(e instanceof ErpError);
      assert.equal(e.code, "business_error");
      assert.equal(e.vendorCode, "-5002", "v2 sends the code as a string");
      assert.match(e.message, /already cancelled/);
      assert.equal(e.retryable, false);
      return true;
    });
    assert.equal(sim.logins.length, 1);
    assert.equal(sim.dataRequests.filter((r) => r.method === "PATCH").length, 1);
  });

  it("re-logs in on a 400 whose text says the session timed out (issue 12), once", async () => {
    await startSim();
    const c = client();
    await c.get("Invoices", 1);
    sim.inject.push({ match: /^GET Invoices/, status: 400, code: -5002, message: "Session timeout, please login again; session already timeout", times: 1 });
    assert.equal((await c.get("Invoices", 2))?.DocEntry, 2);
    assert.equal(sim.logins.length, 2);
  });

  it("reports a session that stays invalid after the re-login as AuthError session_invalid (no loop)", async () => {
    await startSim();
    const c = client();
    await c.get("Invoices", 1);
    sim.inject.push({ match: /^GET Invoices/, status: 401, code: 301, message: "Invalid session or session already timeout.", times: 5 });
    await assert.rejects(c.get("Invoices", 2), (e: unknown) => e instanceof AuthError && e.code === "session_invalid" && /after logging in again/.test(e.message));
    assert.equal(sim.logins.length, 2, "exactly one re-login");
  });

  it("refuses a wrong password once and does not retry the Login per call (pause)", async () => {
    await startSim();
    const c = client({ password: "wrong" });
    await assert.rejects(c.get("Invoices", 1), (e: unknown) => e instanceof AuthError && e.code === "login_failed" && String(e.vendorCode) === "100000027" && !/wrong/.test(e.message));
    await assert.rejects(c.get("Invoices", 1), (e: unknown) => e instanceof AuthCooldownError);
    assert.equal(sim.logins.length, 1);
    assert.equal(c.authState().blocked, true);
  });

  for (const version of ["v1", "v2"] as const) {
    for (const nextLink of ["relative", "absolute-path", "absolute-url"] as const) {
      it(`pages at the server's 20 rows and follows ${version} ${nextLink} next links`, async () => {
        await startSim({ nextLink });
        const c = client({ version, pageSize: 0 });
        const rows = await c.listAll("Invoices", { select: "DocEntry,DocNum", orderby: "DocEntry" });
        assert.deepEqual(rows.map((r) => r.DocEntry), Array.from({ length: 45 }, (_, i) => i + 1));
        assert.equal(sim.dataRequests.length, 3);
      });
    }
  }

  it("refuses a next link to another server (the session cookies never leave for it)", async () => {
    await startSim({ nextLink: "foreign" });
    const c = client({ pageSize: 0 });
    await assert.rejects(c.listAll("Invoices"), (e: unknown) => e instanceof ErpError && e.code === "foreign_next_link");
    assert.equal(sim.dataRequests.length, 1);
  });

  it("treats an idle session past SessionTimeout as gone: 401, one re-login", async () => {
    let now = Date.parse("2024-03-01T08:00:00Z");
    await startSim({ now: () => now });
    const c = client();
    await c.get("Invoices", 1);
    now += 29 * 60_000;
    await c.get("Invoices", 1);
    now += 29 * 60_000; // sliding: 29 min after the last use is still alive
    await c.get("Invoices", 1);
    assert.equal(sim.logins.length, 1);
    now += 31 * 60_000;
    assert.equal((await c.get("Invoices", 2))?.DocEntry, 2);
    assert.equal(sim.logins.length, 2);
    assert.deepEqual(sim.dataRequests.map((r) => r.status), [200, 200, 200, 401, 200]);
  });

  it("asks a page size with Prefer: odata.maxpagesize, and $top does not lift the page size", async () => {
    await startSim();
    const big = client({ pageSize: 50 });
    assert.equal((await big.listAll("Invoices")).length, 45);
    assert.equal(sim.dataRequests.length, 1);
    const small = client({ pageSize: 0 });
    const rows = await small.listAll("Invoices", { top: 30, orderby: "DocEntry" });
    assert.deepEqual(rows.map((r) => r.DocEntry), Array.from({ length: 30 }, (_, i) => i + 1));
    assert.equal(sim.dataRequests.length, 3, "30 rows at 20 per page = 2 more requests");
    // a list may ask its own page size (the scans read whole sets with larger pages)
    assert.equal((await big.listAll("Invoices", { pageSize: 10 })).length, 45);
    assert.equal(sim.dataRequests.length, 8, "45 rows at 10 per page = 5 more requests");
    await assert.rejects(big.listAll("Invoices", { pageSize: -1 }).then(() => undefined), /pageSize/);
  });

  it("filters on UpdateDate/UpdateTime with quoted literals and minutes only (the kit's split-time window)", async () => {
    await startSim();
    const c = client();
    const w = updateWindow("UTC");
    // watermark 09:41:30 − 120 s overlap = 09:39:30, rounded up to the whole minute: records the window still remembers
    const filter = w.filterFor({ watermark: "2024-03-01T09:41:30.000Z", seenAtWatermark: [], recent: [] });
    assert.match(filter, /UpdateTime ge '09:40'/);
    const rows = await c.listAll("Invoices", { filter, orderby: "UpdateDate,UpdateTime,DocEntry" });
    // 09:40:17 … 09:45:17 (the server compares hour:minute only)
    assert.deepEqual(rows.map((r) => r.DocEntry), [40, 41, 42, 43, 44, 45]);
    assert.deepEqual(sim.secondsInTimeFilters, []);
    await assert.rejects(c.listAll("Invoices", { filter: "UpdateDate ge 2024-03-01" }), (e: unknown) => e instanceof ErpError && e.code === "bad_request" && e.vendorCode === "-1000");
  });

  it("polls IncomingPayments by DocEntry: UpdateDate is not a property there (400 -1000)", async () => {
    await startSim();
    const c = client({ version: "v1" });
    await assert.rejects(c.listAll("IncomingPayments", { filter: "UpdateDate ge '2024-01-01'" }), (e: unknown) => e instanceof ErpError && e.code === "bad_request" && e.vendorCode === -1000);
    const rows = await c.listAll("IncomingPayments", { filter: docEntryFilter(301), orderby: "DocEntry" });
    assert.deepEqual(rows.map((r) => r.DocEntry), [302]);
  });

  it("reads both error envelopes", () => {
    assert.deepEqual(parseSapB1Error('{"error":{"code":-10,"message":{"lang":"en-us","value":"1320000140 - code already assigned"}}}'), { code: -10, message: "1320000140 - code already assigned" });
    assert.deepEqual(parseSapB1Error('{"error":{"code":"-2039","message":"Another user modified data"}}'), { code: "-2039", message: "Another user modified data" });
    assert.deepEqual(parseSapB1Error("<html>"), {});
  });

  it("gets by quoted string key, answers null for 404 -2028, and patches with ETags on v2 (412 -2039)", async () => {
    await startSim();
    const c = client();
    assert.equal(keyLiteral("A'1"), "'A''1'");
    assert.equal((await c.get("Items", "A'1"))?.ItemName, "Helmet");
    assert.equal(await c.get("Invoices", 999), null);
    const inv = await c.get("Invoices", 5);
    const etag = String(inv?.["@odata.etag"]);
    await c.patch("Invoices", 5, { Comments: "SMS delivered" }, { ifMatch: etag });
    assert.equal((await c.get("Invoices", 5))?.Comments, "SMS delivered");
    await assert.rejects(c.patch("Invoices", 5, { Comments: "again" }, { ifMatch: etag }), (e: unknown) => e instanceof ErpError && e.code === "etag_mismatch" && e.vendorCode === "-2039");
    await assert.rejects(c.patch("Invoices", 5, { NoSuchField: 1 }), (e: unknown) => e instanceof ErpError && e.code === "bad_request");
  });

  it("logs out on close (204) and refuses calls afterwards", async () => {
    await startSim();
    const c = client();
    await c.get("Invoices", 1);
    await c.close();
    assert.equal(sim.logouts.length, 1);
    assert.equal(sim.liveSessions(), 0);
    await assert.rejects(c.get("Invoices", 1), (e: unknown) => e instanceof MlcError && e.code === "client_closed");
    assert.equal(sim.logins.length, 1);
  });

  it("keeps the session across a crash: the next client reuses it without a Login; a dead kept session costs one 401 and one Login", async () => {
    await startSim();
    const kept: (KeptSapB1Session | undefined)[] = [];
    const first = client({ onSession: (s) => void kept.push(s) });
    await first.get("Invoices", 1);
    assert.equal(kept.length, 1, "handed out once, after the Login");
    assert.match(String(kept[0]?.cookie), /^B1SESSION=[^;]+; ROUTEID=\.node\d$/);
    // "kill -9": the first client never logs out; a new process starts with what was kept
    const second = client({ session: kept[0], onSession: (s) => void kept.push(s) });
    assert.equal(second.stats().signedIn, true);
    assert.equal((await second.get("Invoices", 2))?.DocEntry, 2);
    assert.equal(sim.logins.length, 1, "no second Login while the first session lives");
    assert.equal(sim.liveSessions(), 1);
    // a clean stop logs out and forgets the kept session
    await second.close();
    assert.equal(kept[kept.length - 1], undefined);
    assert.equal(sim.liveSessions(), 0);
    // a kept session the server no longer knows: one 401, one Login, the request completes; never a loop
    const third = client({ session: kept[0], onSession: (s) => void kept.push(s) });
    assert.equal((await third.get("Invoices", 3))?.DocEntry, 3);
    assert.equal(sim.logins.length, 2);
    assert.equal(sim.dataRequests.filter((r) => r.status === 401).length, 1);
    assert.notEqual(kept[kept.length - 1]?.cookie, kept[0]?.cookie, "the new session is handed out");
    assert.deepEqual(sim.violations, []);
  });

  it("ignores a kept session without B1SESSION (logs in)", async () => {
    await startSim();
    const c = client({ session: { cookie: "ROUTEID=.node1" } });
    assert.equal(c.stats().signedIn, false);
    await c.get("Invoices", 1);
    assert.equal(sim.logins.length, 1);
  });

  it("trusts the self-signed certificate only through this connection's CA or pin, and fails clearly without", async () => {
    await startSim();
    const noCa = client({ tls: undefined });
    await assert.rejects(noCa.testConnection(), (e: unknown) => e instanceof MlcError && e.code === "tls_refused" && /not trusted/.test(e.message));
    assert.equal(sim.logins.length, 0, "nothing reached the server");
    const pinned = client({ tls: { ca: PAIR.cert, pinSha256: new X509Certificate(PAIR.cert).fingerprint256 } });
    const info = await pinned.testConnection();
    assert.equal(info.ok, true);
    assert.equal(info.sessionTimeoutMin, 30);
    assert.equal(process.env.NODE_TLS_REJECT_UNAUTHORIZED, undefined, "never a process-wide switch");
  });

  it("simulator: Login is case-sensitive (/login is a protected resource → 401 301)", async () => {
    await startSim();
    const h = new HttpClient({ tls: { ca: PAIR.cert } });
    try {
      const body = JSON.stringify({ CompanyDB: sim.companyDb, UserName: sim.username, Password: sim.password });
      const res = await h.request({ method: "POST", url: `${sim.url}/b1s/v1/login`, headers: { "Content-Type": "application/json" }, body });
      assert.equal(res.status, 401);
      assert.deepEqual(parseSapB1Error(res.body).code, 301);
      assert.equal(sim.logins.length, 0);
    } finally {
      await h.close();
    }
  });
});
