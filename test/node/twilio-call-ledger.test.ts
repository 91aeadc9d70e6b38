/**
 * mlc-twilio-call never calls twice for one event, in a real Node-RED against the Twilio simulator: the call node
 * claims jobId + callee in its send ledger before the create and records the sid after it.
 * - the same jobId and callee again (a journal replay, a re-delivered push) places no second call;
 * - a create slower than the client timeout is looked up (Calls by To and From) until Twilio has finished it:
 *   one call, reported as placed (reconciled), and a replay afterwards is a duplicate;
 * - statuses reach the call node only on its own account's channel.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, settle, until } from "../harness/red-testbed";
import { TwilioSim } from "../sims/twilio";
import { publishStatus } from "../../nodes/lib/twilio/bus";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;

const sim = new TwilioSim();
const TAB = "t1";
const ACCOUNT = sim.defaultAccount;
const bed = new Testbed([twilioNodes], {}, { credentials: { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } } });
const r = bed.received;
const TO = "+14155550132";
const ERP = { system: "acumatica", tenant: "AcmeProd", entity: "Bill", id: "Bill/000123", number: "000123", action: "updated" };

function flow(opts: { call?: Record<string, unknown>; cfg?: Record<string, unknown> } = {}): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "call ledger" },
    { id: "cfg", type: "mlc-twilio-config", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5", ...(opts.cfg ?? {}) },
    { id: "voice", z: TAB, type: "mlc-twilio-call", twilio: "cfg", to: "to", toType: "msg", message: "Bill {{payload.ref}} needs approval", callback: "status", wires: [["placed"], ["acked"], ["nacked"]], ...(opts.call ?? {}) },
    { id: "placed", z: TAB, type: "helper" },
    { id: "acked", z: TAB, type: "helper" },
    { id: "nacked", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

const creates = () => sim.requests.filter((q) => q.method === "POST" && /\/Calls\.json$/.test(q.path));

function call(jobId: string): void {
  bed.node("voice").receive({ payload: { ref: "000123" }, to: TO, erp: { ...ERP, jobId } });
}

describe("mlc-twilio-call send ledger", function () {
  this.timeout(60000);
  bed.hooks({ sims: [sim] });

  it("the same jobId and callee again (a replay) places no second call (was 2 calls)", async () => {
    await bed.load(flow());
    call("jcall-twice");
    await until(() => r.placed.length === 1 || r.caught.length > 0, "first call");
    call("jcall-twice");
    await until(() => r.placed.length === 2 || r.caught.length > 0, "second output");
    await settle(200);
    assert.equal(r.caught.length, 0, JSON.stringify(r.caught[0]?.errorDetails));
    assert.equal(sim.calls.length, 1, "one call");
    assert.equal(creates().length, 1, "one create");
    assert.equal(r.placed[1].twilio.sid, r.placed[0].twilio.sid);
    assert.equal(r.placed[1].twilio.duplicate, true);
    assert.equal(r.placed[0].twilio.duplicate, undefined);
  });

  it("a create slower than the client timeout is looked up until Twilio finished it: 1 call, and a replay is a duplicate", async () => {
    sim.injectFault({ on: "calls", processAfterMs: 2500 });
    await bed.load(flow({ cfg: { timeout: "1" }, call: { reconcileWindow: "4" } }));
    call("jcall-slow");
    await until(() => r.placed.length + r.caught.length > 0, "outcome", 20000);
    assert.equal(r.caught.length, 0, JSON.stringify(r.caught[0]?.errorDetails));
    assert.equal(sim.calls.length, 1, "exactly one call");
    assert.equal(r.placed[0].reconciled, true);
    assert.equal(r.placed[0].twilio.sid, sim.calls[0].sid);
    assert.ok(sim.requests.some((q) => q.method === "GET" && /\/Calls\.json/.test(q.path) && new URLSearchParams(q.query).get("To") === TO && new URLSearchParams(q.query).get("From") === "+15005550006"), "looked up by To and From");
    call("jcall-slow");
    await until(() => r.placed.length === 2 || r.caught.length > 0, "replay");
    await settle(200);
    assert.equal(sim.calls.length, 1, "the replay placed no call");
    assert.equal(creates().length, 1);
    assert.equal(r.placed[1].twilio.duplicate, true);
  });

  it("a create refused by Twilio releases the claim: the same event may be sent again", async () => {
    sim.injectFault({ on: "calls", status: 400, code: 21211, message: "Invalid 'To' Phone Number" });
    await bed.load(flow());
    call("jcall-refused");
    await until(() => r.caught.length === 1, "refusal");
    call("jcall-refused");
    await until(() => r.placed.length === 1, "placed on the second try");
    assert.equal(sim.calls.length, 1);
  });

  it("statuses reach the call node only on its own account's channel", async () => {
    await bed.load(flow());
    call("jcall-scope");
    await until(() => r.placed.length === 1, "placed");
    const sid = r.placed[0].twilio.sid as string;
    const busy = { kind: "call" as const, sid, status: "busy", jobId: "jcall-scope", fields: { CallSid: sid, CallStatus: "busy" } };
    publishStatus("AC" + "9".repeat(32), busy); // another account
    await settle(200);
    assert.equal(r.nacked.length, 0, "another account's status resolved the call");
    publishStatus(ACCOUNT.accountSid, busy);
    await until(() => r.nacked.length === 1, "own account's status");
    assert.equal(r.nacked[0].ack.result, "busy");
  });
});
