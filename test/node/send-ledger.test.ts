/**
 * Claim before send, record before ack, in a real Node-RED against the Twilio simulator: mlc-twilio-sms keeps a
 * send ledger keyed by jobId|recipient|channel and writes its audit record (with the ERP link) before the create.
 * - a create slower than the client timeout is looked up until Twilio has finished it: 1 SMS, not 2;
 * - the same jobId and recipient sent again (a journal replay) is not sent again;
 * - a claim left "sending" by a crash is reconciled: found → not re-sent; absent after the window → sent once;
 * - the audit record exists (pending, with the bill link) before the create and carries the sid after it; a
 *   status callback for a sid the record does not carry yet lands on that record;
 * - a body over 1,600 characters fails locally, one error, no request.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { TwilioSim } from "../sims/twilio";
import { Testbed, until, settle } from "../harness/red-testbed";
import { hashedKey } from "../../nodes/lib/ids";
import { ledgerKey } from "../../nodes/lib/twilio/ledger";
import { onJobSettled } from "../../nodes/lib/journal";
import type { AuditRecord } from "../../nodes/lib/audit";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const flowNodes = require("../../nodes/flow") as (RED: unknown) => void;

const TAB = "t1";
// the configured stores are loaded as Node-RED's start loads them: a redeploy stands for a restart over kept context
const bed = new Testbed([twilioNodes, flowNodes], { contextStorage: { default: { module: "memory" } } }, { loadContextStores: true });
const sim = new TwilioSim();
const TO = "+14155550132";
const ERP = { system: "acumatica", tenant: "AcmeProd", entity: "Bill", id: "Bill/000123", number: "000123", action: "updated" };

function flow(opts: { sms?: Record<string, unknown>; cfg?: Record<string, unknown> } = {}): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "ledger" },
    { id: "cfg", type: "mlc-twilio-config", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5", ...(opts.cfg ?? {}) },
    { id: "sms", z: TAB, type: "mlc-twilio-sms", twilio: "cfg", to: "to", toType: "msg", body: "Bill {{payload.ref}} needs approval", callback: "status", wires: [["out", "aud"], []], ...(opts.sms ?? {}) },
    { id: "out", z: TAB, type: "helper" },
    { id: "aud", z: TAB, type: "mlc-audit", operation: "auto", trail: "default", wires: [["audited"]] },
    { id: "audited", z: TAB, type: "helper" },
    { id: "st", z: TAB, type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["aud"]] },
    { id: "q", z: TAB, type: "mlc-audit", operation: "get", trail: "default", wires: [["records"]] },
    { id: "records", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

const creds = () => ({ cfg: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken } });
const r = (id: string) => bed.received[id];
const creates = () => sim.requests.filter((q) => q.method === "POST" && /\/Messages\.json$/.test(q.path));

function send(jobId: string, ref = "000123"): void {
  bed.node("sms").receive({ payload: { ref }, to: TO, erp: { ...ERP, jobId } });
}

/** The audit records of a jobId, read through an mlc-audit "get" node. */
async function records(jobId: string): Promise<AuditRecord[]> {
  const before = r("records").length;
  bed.node("q").receive({ payload: { jobId } });
  await until(() => r("records").length > before, "audit get");
  return r("records")[before].payload as AuditRecord[];
}

/** Overwrite the sms node's ledger entry for (jobId, TO, sms), as a crash between claim and answer leaves it. */
async function leaveClaim(jobId: string, at: number): Promise<void> {
  const key = hashedKey("sl", ledgerKey(jobId, TO, "sms"));
  await new Promise<void>((resolve, reject) =>
    (bed.node("sms").context() as unknown as { set(k: string, v: unknown, s: undefined, cb: (err?: Error) => void): void }).set(key, { v: { state: "sending", at }, t: at, e: 0 }, undefined, (err) => (err ? reject(err) : resolve())),
  );
}

describe("mlc-twilio-sms send ledger and audit before send", function () {
  this.timeout(60000);
  bed.hooks({ sims: [sim] });

  it("a create slower than the client timeout, retries 1: looked up until Twilio finished it, 1 SMS (was 2)", async () => {
    // Twilio processes the create only after 2.5 s; the client gives up after 1 s.
    sim.injectFault({ processAfterMs: 2500 });
    await bed.load(flow({ cfg: { timeout: "1" }, sms: { retries: "1", reconcileWindow: "4" } }), creds());
    send("jslow");
    await until(() => r("out").length + r("caught").length > 0, "outcome", 20000);
    await settle(500);
    assert.equal(r("caught").length, 0, JSON.stringify(r("caught")[0]?.errorDetails));
    assert.equal(sim.messages.length, 1, "exactly one SMS");
    assert.equal(creates().length, 1, "no second create");
    assert.equal(r("out")[0].reconciled, true);
    assert.equal(r("out")[0].twilio.sid, sim.messages[0].sid);
  });

  it("the same jobId and recipient sent again (a replay) is not sent again", async () => {
    await bed.load(flow(), creds());
    send("jtwice");
    await until(() => r("out").length === 1, "first send");
    send("jtwice");
    await until(() => r("out").length === 2, "second output");
    await settle(200);
    assert.equal(sim.messages.length, 1);
    assert.equal(r("out")[1].twilio.sid, r("out")[0].twilio.sid);
    assert.equal(r("out")[1].twilio.duplicate, true);
    const recs = await records("jtwice");
    assert.equal(recs.length, 1, "one audit record");
  });

  it("writes the audit record with the ERP link before the create, and the sid after it", async () => {
    let seenAtCreate: AuditRecord[] | undefined;
    sim.injectFault({ delayMs: 2000 });
    sim.onFault = () => {
      // The create has reached Twilio: read the trail now (the answer is 2 s away).
      void records("jaudit").then((x) => (seenAtCreate = x));
    };
    try {
      await bed.load(flow(), creds());
      send("jaudit");
      await until(() => r("out").length === 1 && seenAtCreate !== undefined, "send and early audit read");
    } finally {
      sim.onFault = undefined;
    }
    assert.equal(seenAtCreate?.length, 1);
    assert.equal(seenAtCreate?.[0].status, "pending");
    assert.deepEqual(seenAtCreate?.[0].erp, { system: "acumatica", tenant: "AcmeProd", entity: "Bill", id: "Bill/000123", number: "000123" });
    assert.equal(seenAtCreate?.[0].sid, undefined);
    await until(() => r("audited").length === 1, "downstream audit");
    const recs = await records("jaudit");
    assert.equal(recs.length, 1, "the downstream audit node completed the same record");
    assert.equal(recs[0].sid, sim.messages[0].sid);
    assert.equal(recs[0].status, "queued");
  });

  it("a claim left by a crash after the create is reconciled by lookup: not sent again", async () => {
    await bed.load(flow({ sms: { reconcileWindow: "1" } }), creds());
    send("jcrash1");
    await until(() => r("out").length === 1, "first send");
    await leaveClaim("jcrash1", Date.now() - 2000);
    await bed.redeploy(flow({ sms: { reconcileWindow: "1" } }), creds()); // the node reloads its ledger, as after a restart
    send("jcrash1");
    await until(() => r("out").length === 2, "replayed send settled", 20000);
    await settle(200);
    assert.equal(sim.messages.length, 1, "one SMS");
    assert.equal(r("out")[1].reconciled, true);
    assert.equal(r("out")[1].twilio.sid, sim.messages[0].sid);
    assert.ok(sim.requests.some((q) => q.method === "GET" && /\/Messages\.json/.test(q.path)), "looked up");
  });

  it("a claim left by a crash before the create: after the window proves it absent, sent once; audit says outcome_unknown until then", async function () {
    // A 15 s window: on a loaded machine the redeploy and the first audit read must still fall inside it.
    this.timeout(60000);
    await bed.load(flow({ sms: { reconcileWindow: "15" } }), creds());
    await leaveClaim("jcrash2", Date.now());
    await bed.redeploy(flow({ sms: { reconcileWindow: "15" } }), creds());
    send("jcrash2");
    const unknown = await (async () => {
      for (;;) {
        const recs = await records("jcrash2");
        if (recs.length) return recs;
        await settle(50);
      }
    })();
    assert.equal(unknown[0].status, "outcome_unknown");
    assert.equal(sim.messages.length, 0, "nothing sent while the outcome is unknown");
    await until(() => r("out").length === 1, "sent after the window", 45000);
    assert.equal(sim.messages.length, 1);
    const recs = await records("jcrash2");
    assert.equal(recs.length, 1);
    assert.equal(recs[0].sid, sim.messages[0].sid);
    assert.equal(recs[0].erp?.id, "Bill/000123");
  });

  it("a status callback for a sid the record does not carry yet lands on that record (with the bill link)", async () => {
    sim.injectFault({ dropConnection: true }); // created, answer lost; the lookup below is slow to settle
    await bed.load(flow({ sms: { reconcileWindow: "1" } }), creds());
    send("jlate");
    await until(() => sim.messages.length === 1, "created");
    await sim.deliver(sim.messages[0].sid, "delivered");
    await until(() => r("out").length === 1, "settled");
    await until(() => r("audited").some((m) => m.twilio?.status === "delivered"), "delivered audited");
    const recs = await records("jlate");
    assert.equal(recs.length, 1);
    assert.equal(recs[0].status, "delivered");
    assert.equal(recs[0].erp?.id, "Bill/000123");
  });

  it("a status callback is in the audit trail before Twilio gets its 200 (no mlc-audit after the status node needed)", async () => {
    const nodes = flow().map((n) => (n.id === "st" ? { ...n, wires: [[]] } : n));
    await bed.load(nodes, creds());
    send("jack");
    await until(() => r("audited").length === 1, "send audited");
    const results = await sim.deliver(r("out")[0].twilio.sid, "delivered");
    assert.deepEqual(results.map((x) => x.status), [200, 200]);
    // Read right after the 200s: nothing downstream of the status node writes the trail in this flow.
    const recs = await records("jack");
    assert.equal(recs.length, 1);
    assert.deepEqual(recs[0].history.map((h) => h.status), ["pending", "queued", "sent", "delivered"]);
    assert.equal(recs[0].erp?.id, "Bill/000123");
  });

  it("tells the push journal an event is finished only when no recipient is left to a retry or a replay", async () => {
    const settled: string[] = [];
    const off = onJobSettled((j) => settled.push(j));
    try {
      await bed.load(flow({ sms: { reconcileWindow: "1" } }), creds());
      send("jdone"); // sent
      await until(() => r("out").length === 1, "sent");
      bed.node("sms").receive({ payload: { ref: "1" }, to: "+15005550001", erp: { ...ERP, jobId: "jrefused" } }); // Twilio refuses (21211)
      await until(() => r("caught").length === 1, "refused");
      sim.injectFault({ status: 503 }); // outcome unknown, not created: proven absent after the window, retryable
      send("jlater");
      await until(() => r("caught").length === 2, () => `not sent: ${JSON.stringify(r("caught").map((c) => c.errorDetails))} out ${r("out").length}`, 20000);
      await settle(100);
      assert.equal(r("caught")[1].errorDetails.code, "not_sent");
      // jlater has the same To, From and body as jdone: the lookup must not take jdone's message for it.
      assert.equal(r("out").length, 1);
      assert.deepEqual(settled.filter((j) => j.startsWith("j")).sort(), ["jdone", "jrefused"]);
    } finally {
      off();
    }
  });

  it("a body over 1,600 characters fails locally: one error, no request", async () => {
    await bed.load(flow({ sms: { body: "" } }), creds());
    bed.node("sms").receive({ payload: "x".repeat(1601), to: `${TO},+14155550133`, erp: { ...ERP, jobId: "jlong" } });
    await until(() => r("caught").length === 1, "catch");
    await settle(200);
    assert.equal(r("caught").length, 1, "one error for the message, not one per recipient");
    assert.equal(r("caught")[0].errorDetails.code, "body_too_long");
    assert.match(r("caught")[0].errorDetails.message, /1601 characters.*1600/);
    assert.equal(creates().length, 0);
    bed.node("sms").receive({ payload: "y".repeat(1600), to: TO, erp: { ...ERP, jobId: "jlong2" } });
    await until(() => r("out").length === 1, "1600 characters sent");
  });
});
