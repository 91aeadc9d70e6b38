/**
 * The Sage Intacct client (nodes/lib/intacct) against the strict simulator (test/sims/intacct.ts): the envelope,
 * one session per lifetime (sliding timeout, server clock, proactive renewal, expired session renewed once and never
 * resent), the three error levels in HTTP 200 answers, paging (query offset, readByQuery/readMore, expired resultId),
 * filters and literals, XML hygiene both ways, 429 / 5xx / 524 / HTML pages, and the concurrency cap.
 */
import assert from "node:assert/strict";
import { AuthCooldownError } from "../../nodes/lib/auth/source";
import { ErpError, HttpError, ValidationError } from "../../nodes/lib/errors";
import { IntacctAuthError, IntacctError } from "../../nodes/lib/intacct/answers";
import { IntacctClient, IntacctClientOptions } from "../../nodes/lib/intacct/client";
import { XmlRefusedError } from "../../nodes/lib/intacct/xml";
import { intacctTime } from "../../nodes/lib/poll/conditions";
import { WatermarkWindow } from "../../nodes/lib/poll/window";
import { IntacctSim } from "../sims/intacct";

const MIN = 60_000;

describe("intacct: XML gateway client against the simulator", () => {
  let sim: IntacctSim;
  const clients: IntacctClient[] = [];

  function client(over: Partial<IntacctClientOptions> = {}): IntacctClient {
    const c = new IntacctClient({
      ...sim.clientOptions(),
      retryBaseMs: 5,
      ...over,
    });
    clients.push(c);
    return c;
  }

  function bill(no: number, extra: Record<string, string> = {}): void {
    sim.upsert("APBILL", { RECORDNO: String(no), RECORDID: `INV-${no}`, VENDORID: "V1007", VENDORNAME: "Blue Ridge Paper & Co", STATE: "Submitted", TOTALENTERED: `${no}00.00`, WHENDUE: "04/09/2025", ...extra });
  }

  beforeEach(async () => {
    sim = new IntacctSim();
    await sim.start();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await sim.stop();
  });

  it("signs in once with getAPISession alone, then reuses the session id; the envelope passes the strict checks", async () => {
    for (let i = 1; i <= 3; i++) bill(i);
    const c = client();
    for (let i = 0; i < 5; i++) {
      const p = await c.query({ object: "apbill", select: ["RECORDNO", "STATE"] });
      assert.equal(p.rows.length, 3);
    }
    assert.equal(sim.logins, 1);
    assert.equal(c.logins, 1);
    assert.deepEqual(sim.log.map((l) => l.auth), ["login", "session", "session", "session", "session", "session"]);
    assert.deepEqual(sim.log[0].functions, ["getAPISession"]);
    assert.deepEqual(sim.violations, []);
  });

  it("uses the endpoint getAPISession returned", async () => {
    sim.sessionEndpointPath = "/ia/xml/xmlgw.phtml?cluster=b";
    bill(1);
    const c = client();
    await c.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.deepEqual(sim.requestUrls, ["/ia/xml/xmlgw.phtml", "/ia/xml/xmlgw.phtml?cluster=b"]);
  });

  it("an expired session is discarded, signed in again once and the request repeated once; the failed id is never resent", async () => {
    bill(1);
    const c = client();
    await c.query({ object: "APBILL", select: ["RECORDNO"] });
    sim.expireSessions();
    const p = await c.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.equal(p.rows.length, 1);
    await c.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.equal(sim.logins, 2);
    assert.deepEqual(sim.log.map((l) => l.outcome), ["ok", "ok", "auth-failure", "ok", "ok", "ok"]);
    assert.deepEqual(sim.violations, []);
  });

  it("the timeout slides with each call and is read on the server's clock, never compared with ours", async () => {
    bill(1);
    let skew = 0;
    sim.sessionDurationMs = 10 * MIN;
    sim.clockOffsetMs = -3 * 3600_000; // the gateway's clock is 3 h behind ours
    const c = client({ now: () => Date.now() + skew });
    for (let i = 0; i < 5; i++) {
      await c.query({ object: "APBILL", select: ["RECORDNO"] });
      skew += 4 * MIN; // 20 minutes in all, twice the session duration, but never 5 idle minutes
      sim.clockOffsetMs += 4 * MIN;
    }
    assert.equal(sim.logins, 1, "one getAPISession for the whole sliding lifetime");
    assert.deepEqual(sim.violations, []);
  });

  it("renews proactively with less than 5 minutes left, and not before", async () => {
    bill(1);
    let skew = 0;
    sim.sessionDurationMs = 60 * MIN;
    const c = client({ now: () => Date.now() + skew });
    await c.query({ object: "APBILL", select: ["RECORDNO"] });
    skew = sim.clockOffsetMs = 54 * MIN;
    await c.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.equal(sim.logins, 1, "6 minutes left: the session is reused");
    skew += 56 * MIN;
    sim.clockOffsetMs = skew;
    await c.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.equal(sim.logins, 2, "4 minutes left: a new session");
    assert.deepEqual(sim.violations, []);
  });

  it("a control-level failure (sender refused) is typed and not retried; no secret in the message", async () => {
    const c = client({ senderPassword: "wrong-sender-pw" });
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), (e: unknown) => {
      assert.ok(e instanceof IntacctAuthError);
      assert.equal(e.code, "sender_refused");
      assert.equal(e.level, "control");
      assert.equal(e.vendorCode, "XL03000006");
      assert.match(e.message, /Incorrect Intacct XML Partner ID or password/);
      assert.doesNotMatch(e.message, /wrong-sender-pw|userPw!/);
      return true;
    });
    assert.equal(sim.log.length, 1);
  });

  it("an authentication-level refusal pauses sign-in instead of retrying per call", async () => {
    const c = client({ userPassword: "nope" });
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), (e: unknown) => e instanceof IntacctAuthError && e.code === "auth_failed" && e.vendorCode === "XL03000006" && /Sign-in information is incorrect/.test(e.message));
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), AuthCooldownError);
    assert.equal(sim.log.length, 1, "the paused sign-in never reached the gateway");
    sim.senderAuthorized = false;
    const d = client();
    await assert.rejects(d.testConnection(), /Invalid Web Services Authorization/);
  });

  it("a function failure in a 200 answer carries its error number; with transaction=true the siblings report XL03000009", async () => {
    bill(1);
    const c = client();
    await assert.rejects(c.query({ object: "BADOBJECT", select: ["RECORDNO"] }), (e: unknown) => {
      assert.ok(e instanceof IntacctError);
      assert.equal(e.code, "intacct_result");
      assert.equal(e.vendorCode, "Query Failed");
      assert.match(e.message, /Object definition BADOBJECT not found/);
      return true;
    });
    const fns = [
      { controlId: "good", body: { query: { select: { field: ["RECORDNO"] }, object: "APBILL", pagesize: "10" } } },
      { controlId: "bad", body: { query: { select: { field: ["RECORDNO"] }, object: "NOPE", pagesize: "10" } } },
    ];
    const answer = await c.execute(fns, true);
    const byId = Object.fromEntries(answer.results.map((r) => [r.controlId, r]));
    assert.equal(byId.bad.status, "failure");
    assert.equal(byId.good.status, "failure");
    assert.equal(byId.good.errors[0].errorno, "XL03000009");
  });

  it("pages query by offset and readByQuery by readMore until numremaining is 0; pagesize always sent", async () => {
    for (let i = 1; i <= 5; i++) bill(i);
    const c = client();
    const q: string[] = [];
    for await (const r of c.queryAll({ object: "APBILL", select: ["RECORDNO"], pageSize: 2, orderBy: [{ field: "RECORDNO" }] })) q.push(String(r.RECORDNO));
    assert.deepEqual(q, ["1", "2", "3", "4", "5"]);
    const rb: string[] = [];
    for await (const r of c.readByQueryAll({ object: "APBILL", query: "STATE = 'Submitted'", pageSize: 2 })) rb.push(String(r.RECORDNO));
    assert.deepEqual(rb, ["1", "2", "3", "4", "5"]);
    assert.deepEqual(sim.log.slice(4).map((l) => l.functions[0]), ["readByQuery", "readMore", "readMore"]);
    assert.deepEqual(sim.violations, []);
  });

  it("an expired resultId fails and is not retried (the read restarts from the watermark)", async () => {
    for (let i = 1; i <= 3; i++) bill(i);
    sim.resultIdLifetimeMs = 0;
    const c = client();
    const read = async () => {
      for await (const _ of c.readByQueryAll({ object: "APBILL", query: "", pageSize: 2 })) void _;
    };
    await assert.rejects(read(), (e: unknown) => e instanceof IntacctError && /expired/.test(e.message));
    assert.equal(sim.log.filter((l) => l.functions[0] === "readMore").length, 1);
  });

  it("filters: one condition unwrapped, and/or with two or more, ISO values sent as Intacct literals, empty and refused", async () => {
    bill(1, { WHENMODIFIED: "03/10/2025 14:22:31", STATE: "Submitted" });
    bill(2, { WHENMODIFIED: "03/10/2025 15:03:09", STATE: "Partially Approved" });
    bill(3, { WHENMODIFIED: "03/11/2025 09:00:00", STATE: "Posted" });
    const c = client();
    const ids = async (filter: Parameters<IntacctClient["query"]>[0]["filter"]) => (await c.query({ object: "APBILL", select: ["RECORDNO"], filter })).rows.map((r) => r.RECORDNO);
    assert.deepEqual(await ids({ and: [{ field: "STATE", op: "equalto", value: "Posted" }] }), ["3"]);
    assert.deepEqual(await ids({ or: [{ field: "STATE", op: "equalto", value: "Submitted" }, { field: "STATE", op: "equalto", value: "Partially Approved" }] }), ["1", "2"]);
    // 2025-03-10T22:30:00Z is 15:30 in Los Angeles (PDT from 9 March)
    assert.deepEqual(await ids({ and: [{ field: "WHENMODIFIED", op: "greaterthanorequalto", value: "2025-03-10T22:03:09Z" }, { field: "STATE", op: "in", value: ["Partially Approved", "Posted"] }] }), ["2", "3"]);
    assert.deepEqual(await ids({ field: "WHENMODIFIED", op: "lessthan", value: new Date("2025-03-10T22:03:09Z") }), ["1"]);
    assert.deepEqual(await ids({ field: "WHENDUE", op: "equalto", value: "2025-04-09" }), ["1", "2", "3"]);
    // ISO without an offset is the company's wall clock, written as Intacct's literal (never sent as ISO)
    assert.deepEqual(await ids({ field: "WHENMODIFIED", op: "greaterthan", value: "2025-03-10T15:03:09" }), ["3"]);
    assert.deepEqual(await ids({ field: "WHENMODIFIED", op: "lessthanorequalto", value: "2025-03-10 14:22:31.900" }), ["1"]);
    await assert.rejects(ids({ or: [] }), ValidationError);
    await assert.rejects(ids({ field: "STATE; DROP", op: "equalto", value: "x" }), ValidationError);
    assert.deepEqual(sim.violations, []);
  });

  it("the poll window's readByQuery text (company time, AND) is read by the gateway", async () => {
    bill(1, { WHENMODIFIED: "03/10/2025 07:22:31" });
    bill(2, { WHENMODIFIED: "03/10/2025 07:22:40" });
    const w = new WatermarkWindow({ overlapMs: 1000, modifiedField: "WHENMODIFIED", timeCondition: intacctTime(sim.timeZone), and: "AND", userFilter: "STATE = 'Submitted'" });
    const filter = w.filterFor(WatermarkWindow.initial("2025-03-10T14:22:35Z"), undefined, Date.parse("2025-03-10T15:00:00Z"));
    const c = client();
    const got: unknown[] = [];
    for await (const r of c.readByQueryAll({ object: "APBILL", query: filter })) got.push(r.RECORDNO);
    assert.deepEqual(got, ["2"]);
  });

  it("answers become plain JSON: dates in ISO, dotted fields flat, entities decoded, empty values ''", async () => {
    bill(7, { WHENMODIFIED: "03/10/2025 14:22:31", "DISPLAYCONTACT.PHONE1": "+1 415 555 0100", DESCRIPTION: "" });
    const c = client();
    const [r] = (await c.query({ object: "APBILL", select: ["RECORDNO", "VENDORNAME", "WHENMODIFIED", "WHENDUE", "DISPLAYCONTACT.PHONE1", "DESCRIPTION"] })).rows;
    assert.deepEqual(r, { RECORDNO: "7", VENDORNAME: "Blue Ridge Paper & Co", WHENMODIFIED: "2025-03-10T21:22:31.000Z", WHENDUE: "2025-04-09", "DISPLAYCONTACT.PHONE1": "+1 415 555 0100", DESCRIPTION: "" });
  });

  it("control characters are stripped before escaping; markup in values is escaped", async () => {
    bill(1, { DESCRIPTION: "a<b>&c" });
    const c = client();
    const rows = (await c.query({ object: "APBILL", select: ["RECORDNO", "DESCRIPTION"], filter: { field: "DESCRIPTION", op: "equalto", value: "a<b>\u0001&c\u000b" } })).rows;
    assert.deepEqual(rows, [{ RECORDNO: "1", DESCRIPTION: "a<b>&c" }]);
    assert.deepEqual(sim.violations, []);
  });

  it("an answer with a DOCTYPE (XXE, billion laughs) is refused with a clear error", async () => {
    const c = client();
    await c.testConnection();
    sim.faults.push({ status: 200, raw: '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><response>&lol2;</response>' });
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), (e: unknown) => e instanceof XmlRefusedError && e.code === "xml_doctype");
    sim.faults.push({ status: 200, raw: '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><response>&x;</response>' });
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), /DOCTYPE or ENTITY/);
  });

  it("429 GW-0010 is re-queued, 5xx repeated with backoff, 524 never repeated, an HTML page is an HttpError", async () => {
    bill(1);
    const c = client();
    await c.testConnection();
    sim.faults.push({ status: 429 }, { status: 503 }, { status: 502, html: true });
    assert.equal((await c.query({ object: "APBILL", select: ["RECORDNO"] })).rows.length, 1);
    const before = sim.log.length;
    sim.faults.push({ status: 524, html: true });
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), (e: unknown) => e instanceof HttpError && e.status === 524 && !e.retryable && /not XML/.test(e.message));
    assert.equal(sim.log.length, before + 1, "524 sent once");
    sim.faults.push({ status: 500, html: true }, { status: 500, html: true }, { status: 500, html: true });
    await assert.rejects(c.query({ object: "APBILL", select: ["RECORDNO"] }), (e: unknown) => e instanceof HttpError && e.status === 500 && e.retryable);
  });

  it("never more requests in flight than the concurrency cap (no 429 from a burst)", async () => {
    bill(1);
    sim.maxConcurrent = 2;
    sim.delayMs = 30;
    const c = client({ maxConcurrent: 2 });
    await c.testConnection();
    await Promise.all(Array.from({ length: 8 }, () => c.query({ object: "APBILL", select: ["RECORDNO"] })));
    assert.equal(sim.log.filter((l) => l.outcome === "429").length, 0);
    assert.equal(sim.logins, 1);
  });

  it("concurrent first calls share one sign-in; a bad config is refused up front", async () => {
    bill(1);
    const c = client();
    await Promise.all([1, 2, 3].map(() => c.query({ object: "APBILL", select: ["RECORDNO"] })));
    assert.equal(sim.logins, 1);
    assert.throws(() => new IntacctClient({ senderId: "", senderPassword: "x", companyId: "c", userId: "u", userPassword: "p" }), (e: unknown) => e instanceof ErpError && e.code === "bad_config");
    assert.throws(() => client({ endpoint: "ftp://x" }), /http\(s\)/);
  });

  it("test connection reports company, user and endpoint host only; an entity session carries its location", async () => {
    const c = client({ locationId: "E100" });
    const t = await c.testConnection();
    assert.equal(t.companyId, sim.companyId);
    assert.equal(t.locationId, "E100");
    assert.equal(t.endpointHost, new URL(sim.url).host);
    assert.ok(!JSON.stringify(t).includes(sim.userPassword));
    const bad = client({ locationId: "E999" });
    await assert.rejects(bad.testConnection(), /Invalid location/);
  });
});

describe("intacct: the session kept across a restart", () => {
  let sim: IntacctSim;
  beforeEach(async () => {
    sim = new IntacctSim();
    await sim.start();
    sim.upsert("APBILL", { RECORDNO: "1", RECORDID: "A", VENDORID: "V1", STATE: "Submitted" });
  });
  afterEach(() => sim.stop());

  const opts = (): IntacctClientOptions => ({ endpoint: sim.endpoint, senderId: sim.senderId, senderPassword: sim.senderPassword, companyId: sim.companyId, userId: sim.userId, userPassword: sim.userPassword, timeZone: sim.timeZone });

  it("a restarted client reuses the kept session instead of opening a second one; a failed one is forgotten", async () => {
    const kept: (unknown | undefined)[] = [];
    const first = new IntacctClient({ ...opts(), onSession: (s) => void kept.push(s) });
    await first.query({ object: "APBILL", select: ["RECORDNO"] });
    await first.close(); // like kill -9: nothing is signed out, the session stays alive on the server
    const saved = kept[kept.length - 1] as NonNullable<IntacctClientOptions["session"]>;
    assert.ok(saved && saved.sessionId && saved.endpoint === sim.endpoint && saved.expiresAt > Date.now());
    const second = new IntacctClient({ ...opts(), session: saved, onSession: (s) => void kept.push(s) });
    await second.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.equal(sim.logins, 1, "one getAPISession across the restart");
    sim.expireSessions();
    await second.query({ object: "APBILL", select: ["RECORDNO"] });
    assert.equal(sim.logins, 2);
    assert.ok(kept.includes(undefined), "the failed session was forgotten");
    assert.notEqual((kept[kept.length - 1] as { sessionId: string }).sessionId, saved.sessionId);
    assert.deepEqual(sim.violations, []);
    await second.close();
  });
});
