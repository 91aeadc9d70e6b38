/**
 * Redeploy hand-off of mlc-twilio-sms (nodes/twilio/handoff.ts) in a real Node-RED runtime against the Twilio
 * simulator: creates still waiting in the account's pacing queue when a full deploy restarts the config node are
 * handed to the node's next instance and sent once each, instead of failing with "closed" and waiting for a journal
 * replay at the next start.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, settle, until } from "../harness/red-testbed";
import { TwilioSim } from "../sims/twilio";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;

const sim = new TwilioSim();
const TAB = "t1";
const ACCOUNT = sim.defaultAccount;
const bed = new Testbed([twilioNodes], {}, { credentials: { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } } });
const received = bed.received;

/** config (1 create/s, so a burst queues) + sms → out, catch → caught. `name` changes the config node (a redeploy restarts it). */
function flow(name: string): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "twilio" },
    { id: "cfg", type: "mlc-twilio-config", name, from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5", rate: "1" },
    { id: "sms", z: TAB, type: "mlc-twilio-sms", twilio: "cfg", to: "payload.phone", toType: "msg", body: "Invoice {{payload.invoice}} is overdue", callback: "", wires: [["out"]] },
    { id: "out", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", name: "", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

describe("mlc-twilio-sms: creates queued at a redeploy go to the node's next instance", function () {
  this.timeout(60000);
  bed.hooks({ sims: [sim] });

  it("4 inputs at 1 create/s, full redeploy after the first: all 4 sent exactly once, none failed", async () => {
    await bed.load(flow("before"));
    const phones = ["+14155550101", "+14155550102", "+14155550103", "+14155550104"];
    phones.forEach((phone, i) => bed.node("sms").receive({ payload: { phone, invoice: `INV-${i}` }, erp: { jobId: `jhand${i}` } }));
    await until(() => sim.messages.length >= 1, "the first create");
    assert.ok(sim.messages.length < phones.length, "the others still wait in the pacing queue");
    await bed.redeploy(flow("after"));
    await until(() => sim.messages.length === phones.length, () => `all sent (${sim.messages.length})`, 30000);
    await until(() => (received.out ?? []).length === phones.length, () => `all emitted (${(received.out ?? []).length})`);
    await settle(1500);
    assert.deepEqual(sim.messages.map((m) => m.to).sort(), phones, "each recipient exactly once");
    assert.equal((received.caught ?? []).length, 0, JSON.stringify((received.caught ?? [])[0]?.errorDetails));
    assert.deepEqual((received.out ?? []).map((m) => m.erp.jobId as string).sort(), ["jhand0", "jhand1", "jhand2", "jhand3"]);
  });
});
