/**
 * mlc-twilio-call in a real Node-RED runtime (node-red-node-test-helper) against the Twilio simulator: the
 * call's TwiML as the simulator hears it, keypress acknowledgement through the signed Gather action, final
 * call statuses through a deployed mlc-twilio-status node (or polling), AMD, forgeries and per-message errors.
 *
 * HTTP layout of node-red/red.js (admin app then node app on one root app, test/harness/red-testbed.ts), so
 * the simulator's signed requests travel through the same stack as in production.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";
import { TwilioSim, signTwilioRequest } from "../sims/twilio";
import { AcceptedStatus, onStatus } from "../../nodes/lib/twilio/bus";
import { sharedAuditTrail } from "../../nodes/shared/audit-trail";
import type { RedNode } from "../../nodes/shared/types";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const flowNodes = require("../../nodes/flow") as (RED: unknown) => void;

const sim = new TwilioSim();
const TAB = "t1";
const ACCOUNT = sim.defaultAccount;
const bed = new Testbed([twilioNodes, flowNodes], {}, { credentials: { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } } });
const received = bed.received;
/** Time given to the runtime to deliver anything that would (wrongly) still be emitted. */
const SETTLE_MS = 200;

const BILL = { phone: "(415) 555-0132", Amount: 1250.5, CurrencyID: "USD", DueDate: "2025-04-09", ReferenceNbr: "INV-1042", Vendor: "Smith & Sons <Ltd>" };
const MESSAGE =
  "Bill {{#spell}}{{payload.ReferenceNbr}}{{/spell}} from {{payload.Vendor}} for {{#amount}}{{payload.Amount}} {{payload.CurrencyID}}{{/amount}} is due {{#date}}{{payload.DueDate}}{{/date}}.";
const SPOKEN = "Bill I N V, 1 0 4 2 from Smith & Sons <Ltd> for 1,250 dollars and 50 cents is due Wednesday, April 9, 2025.";

/** config + call (3 outputs) + status node + catch, all in one tab. */
function flow(opts: { call?: Record<string, unknown>; status?: false } = {}): TestFlowNode[] {
  const nodes: TestFlowNode[] = [
    { id: TAB, type: "tab", label: "twilio call" },
    { id: "cfg", type: "mlc-twilio-config", name: "sim", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5" },
    {
      id: "voice",
      z: TAB,
      type: "mlc-twilio-call",
      twilio: "cfg",
      to: "payload.phone",
      toType: "msg",
      message: MESSAGE,
      voice: "Polly.Joanna",
      language: "en-US",
      repeat: true,
      twimlMode: "say",
      ack: false,
      ackTimeout: 8,
      ackDigit: "1",
      amd: false,
      callback: "status",
      endpoint: "call",
      poll: false,
      pollInterval: 5,
      pollTimeout: 600,
      wires: [["placed"], ["acked"], ["nacked"]],
      ...(opts.call ?? {}),
    },
    { id: "placed", z: TAB, type: "helper" },
    { id: "acked", z: TAB, type: "helper" },
    { id: "nacked", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", name: "", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
  if (opts.status !== false) {
    nodes.push({ id: "st", z: TAB, type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["stOut"]] });
    nodes.push({ id: "stOut", z: TAB, type: "helper" });
  }
  return nodes;
}

function inject(payload: Record<string, unknown>, extra: Msg = {}): void {
  bed.node("voice").receive({ payload, ...extra });
}

/** Inject one bill and wait for output 1; returns the placed msg. */
async function placeOne(extra: Msg = {}, payload: Record<string, unknown> = BILL): Promise<Msg> {
  const before = received.placed.length;
  inject(payload, extra);
  await until(() => received.placed.length === before + 1 || received.caught.length > 0, "call placed");
  assert.equal(received.caught.length, 0, JSON.stringify(received.caught[0]?.errorDetails));
  return received.placed[before];
}

const callCreates = (): typeof sim.requests => sim.requests.filter((r) => r.method === "POST" && /\/Calls\.json$/.test(r.path));

function assertNoSecrets(): void {
  const text = bed.emitted();
  assert.ok(!text.includes(ACCOUNT.authToken), "the Auth Token appears in an emitted msg");
  assert.ok(!/x-twilio-signature/i.test(text), "signature header leaked into a msg");
}

/** The absolute Gather action URL of the call's TwiML. */
function gatherAction(twiml: string): string {
  const m = /<Gather [^>]*action="([^"]+)"/.exec(twiml);
  assert.ok(m, `no Gather action in ${twiml}`);
  return m[1].replace(/&amp;/g, "&");
}

async function postForm(target: string, params: Record<string, string>, signature?: string): Promise<{ status: number; text: string }> {
  const res = await fetch(target, {
    method: "POST",
    body: new URLSearchParams(params).toString(),
    headers: { "Content-Type": "application/x-www-form-urlencoded", ...(signature !== undefined ? { "X-Twilio-Signature": signature } : {}) },
  });
  return { status: res.status, text: await res.text() };
}

describe("mlc-twilio-call in Node-RED", function () {
  this.timeout(20000);

  bed.hooks({ sims: [sim], afterEach: assertNoSecrets });

  it("places a call that reads amount, date and reference naturally, with the StatusCallback of the status node", async () => {
    await bed.load(flow());
    const out = await placeOne({ erp: { jobId: "jcall1", id: "Bill/INV-1042" } });

    assert.equal(sim.calls.length, 1);
    const c = sim.calls[0];
    assert.equal(c.to, "+14155550132");
    assert.equal(c.from, "+15005550006");
    assert.equal(c.statusCallback, `${bed.url}/mlc/twilio/status?j=jcall1`);
    assert.deepEqual([...c.statusCallbackEvents].sort(), ["answered", "completed", "initiated", "ringing"]);
    assert.equal(c.machineDetection, null);
    assert.ok(c.twiml?.includes('<Say voice="Polly.Joanna" language="en-US">'), c.twiml ?? "");
    assert.ok(c.twiml?.includes("Smith &amp; Sons &lt;Ltd&gt;"), "ERP text XML-escaped by the builder");
    assert.ok(!c.twiml?.includes("<Gather"), "no Gather without acknowledgement");

    assert.deepEqual(out.twilio, { sid: c.sid, status: "queued", to: "+14155550132", channel: "voice", jobId: "jcall1" });
    assert.match(out.twilio.sid, /^CA[0-9a-f]{32}$/);

    const answered = await sim.answerCall(c.sid, { noInput: true });
    assert.deepEqual(answered.said, [SPOKEN, SPOKEN], "message said twice");
    assert.equal(sim.calls[0].spokenText, `${SPOKEN} ${SPOKEN}`);

    await sim.progressCall(c.sid, "completed");
    await until(() => received.acked.length === 1, "answered on output 2");
    const done = received.acked[0];
    assert.equal(done.ack.result, "answered");
    assert.equal(done.twilio.sid, c.sid);
    assert.equal(done.twilio.status, "completed");
    assert.equal(done.payload.ReferenceNbr, "INV-1042");
    assert.ok(!Number.isNaN(Date.parse(done.ack.at)));
    assert.ok(received.stOut.some((m) => m.twilio.sid === c.sid && m.twilio.status === "completed" && m.twilio.channel === "voice" && m.twilio.jobId === "jcall1"));
    await settle(SETTLE_MS);
    assert.equal(received.nacked.length, 0);
    assert.equal(received.acked.length, 1);
  });

  it("keypress 1 acknowledges: signed Gather action, thanks, output 2 with the digits", async () => {
    await bed.load(flow({ call: { ack: true } }));
    const out = await placeOne({ erp: { jobId: "jack1" } });
    const c = sim.calls[0];
    const action = gatherAction(c.twiml as string);
    assert.ok(action.startsWith(`${bed.url}/mlc/twilio/call/gather?c=`), action);
    assert.match(c.twiml as string, /<Gather input="dtmf" numDigits="1" timeout="8" [^>]*method="POST" actionOnEmptyResult="true">/);

    const r = await sim.answerCall(c.sid, { digits: "1" });
    assert.equal(r.status, 200);
    assert.equal(r.gather?.actionOnEmptyResult, true);
    assert.equal(r.gather?.numDigits, 1);
    assert.equal(r.posted.Digits, "1");
    assert.ok(sim.calls[0].spokenText.startsWith(`${SPOKEN} Press 1 to confirm.`), sim.calls[0].spokenText);
    assert.match(sim.calls[0].spokenText, /Thank you\./);

    await until(() => received.acked.length === 1, "acknowledged");
    const a = received.acked[0];
    assert.equal(a.ack.result, "acknowledged");
    assert.equal(a.ack.digits, "1");
    assert.equal(a.twilio.sid, out.twilio.sid);
    assert.equal(a.twilio.jobId, "jack1");

    // the call ends afterwards: the completed status must not emit a second outcome
    await sim.progressCall(c.sid, "completed");
    await until(() => received.stOut.some((m) => m.twilio.status === "completed"), "completed status");
    await settle(SETTLE_MS);
    assert.equal(received.acked.length, 1);
    assert.equal(received.nacked.length, 0);
  });

  it("no input: output 3 with result no-input", async () => {
    await bed.load(flow({ call: { ack: true } }));
    await placeOne();
    const c = sim.calls[0];
    const r = await sim.answerCall(c.sid, { noInput: true });
    assert.equal(r.status, 200);
    assert.equal(r.posted.Digits ?? "", "");
    await until(() => received.nacked.length === 1, "not acknowledged");
    assert.equal(received.nacked[0].ack.result, "no-input");
    assert.equal(received.nacked[0].twilio.sid, c.sid);
    await sim.progressCall(c.sid, "completed");
    await until(() => received.stOut.some((m) => m.twilio.status === "completed"), "completed status");
    await settle(SETTLE_MS);
    assert.equal(received.nacked.length, 1);
    assert.equal(received.acked.length, 0);
  });

  it("a wrong key gets one retry prompt, then no-input", async () => {
    await bed.load(flow({ call: { ack: true } }));
    await placeOne();
    const c = sim.calls[0];
    const first = await sim.answerCall(c.sid, { digits: "7" });
    assert.equal(first.status, 200);
    assert.equal(first.posted.Digits, "7");
    assert.deepEqual(first.said.slice(-1), ["Sorry, that key is not valid. Press 1 to confirm."]);
    assert.match(sim.calls[0].documents[sim.calls[0].documents.length - 1], /<Gather [^>]*action="[^"]*\/mlc\/twilio\/call\/gather\?c=/);
    await settle(SETTLE_MS);
    assert.equal(received.nacked.length + received.acked.length, 0, "no outcome after the first wrong key");

    const second = await sim.answerCall(c.sid, { digits: "9" });
    assert.equal(second.status, 200);
    assert.deepEqual(second.said.slice(-1), ["No input received. Goodbye."]);
    await until(() => received.nacked.length === 1, "no-input after the second wrong key");
    assert.equal(received.nacked[0].ack.result, "no-input");
    assert.equal(received.nacked[0].ack.digits, "9");
    assert.equal(received.acked.length, 0);
  });

  it("no answer, reported by the deployed status node: output 3 with result no-answer", async () => {
    await bed.load(flow({ call: { ack: true } }));
    await placeOne({ erp: { jobId: "jna" } });
    const c = sim.calls[0];
    await sim.progressCall(c.sid, "no-answer");
    await until(() => received.nacked.length === 1, "no-answer");
    assert.equal(received.nacked[0].ack.result, "no-answer");
    assert.equal(received.nacked[0].twilio.status, "no-answer");
    assert.ok(received.stOut.some((m) => m.twilio.sid === c.sid && m.twilio.status === "no-answer"));
    assert.equal(received.acked.length, 0);
  });

  it("busy: output 3 with result busy", async () => {
    await bed.load(flow());
    await placeOne();
    await sim.progressCall(sim.calls[0].sid, "busy");
    await until(() => received.nacked.length === 1, "busy");
    assert.equal(received.nacked[0].ack.result, "busy");
  });

  it("refuses a forged Gather action (403; 400 without the header) and emits nothing; the genuine one still counts", async () => {
    await bed.load(flow({ call: { ack: true } }));
    await placeOne();
    const c = sim.calls[0];
    const action = gatherAction(c.twiml as string);
    const params = { CallSid: c.sid, AccountSid: ACCOUNT.accountSid, Digits: "1", FinishedOnKey: "", msg: "Gather End", CallStatus: "in-progress" };
    const wrongKey = await postForm(action, params, signTwilioRequest("0".repeat(32), action, params));
    const unsigned = await postForm(action, params);
    const otherUrl = await postForm(action, params, signTwilioRequest(ACCOUNT.authToken, action + "&x=1", params));
    assert.deepEqual([wrongKey.status, unsigned.status, otherUrl.status], [403, 400, 403]);
    await settle(SETTLE_MS);
    assert.equal(received.acked.length, 0);
    assert.equal(received.nacked.length, 0);

    await sim.answerCall(c.sid, { digits: "1" });
    await until(() => received.acked.length === 1, "genuine acknowledgement");
    assert.equal(received.acked[0].ack.result, "acknowledged");
  });

  it("the status node refuses a forged call status callback with 403", async () => {
    await bed.load(flow());
    await placeOne({ erp: { jobId: "jforged" } });
    const c = sim.calls[0];
    const target = c.statusCallback as string;
    const params = { CallSid: c.sid, AccountSid: ACCOUNT.accountSid, CallStatus: "completed", To: c.to, From: c.from, CallbackSource: "call-progress-events", SequenceNumber: "0" };
    const forged = await postForm(target, params, signTwilioRequest("f".repeat(32), target, params));
    assert.equal(forged.status, 403);
    await settle(SETTLE_MS);
    assert.equal(received.stOut.length, 0);
    assert.equal(received.acked.length + received.nacked.length, 0);

    const genuine = await postForm(target, params, signTwilioRequest(ACCOUNT.authToken, target, params));
    assert.equal(genuine.status, 200);
    await until(() => received.acked.length === 1, "genuine completed");
    assert.equal(received.acked[0].ack.result, "answered");
  });

  it("with AMD, a call answered by a machine ends on output 3 as machine", async () => {
    await bed.load(flow({ call: { ack: true, amd: true } }));
    await placeOne();
    const c = sim.calls[0];
    assert.equal(c.machineDetection, "Enable");
    await sim.progressCall(c.sid, "completed", { answeredBy: "machine_end_beep" });
    await until(() => received.nacked.length === 1, "machine");
    assert.equal(received.nacked[0].ack.result, "machine");
    assert.equal(received.nacked[0].ack.answeredBy, "machine_end_beep");
    await settle(SETTLE_MS);
    assert.equal(received.nacked.length, 1);
    assert.equal(received.acked.length, 0);
  });

  it("poll mode reaches the final status without any callback endpoint, publishing each status once", async () => {
    const seen: AcceptedStatus[] = [];
    const off = onStatus(ACCOUNT.accountSid, (s) => seen.push(s));
    try {
      await bed.load(flow({ call: { poll: true, pollInterval: 1, callback: "" }, status: false }));
      const out = await placeOne({ erp: { jobId: "jpoll" } });
      const c = sim.calls[0];
      assert.equal(c.statusCallback, null, "no StatusCallback in poll mode");
      assert.equal(callCreates()[0].form?.StatusCallback, undefined);
      await sim.progressCall(c.sid, "completed", { answeredBy: "human" });
      await until(() => received.acked.length === 1, "answered (polled)");
      assert.equal(received.acked[0].ack.result, "answered");
      assert.equal(received.acked[0].twilio.status, "completed");
      assert.equal(received.acked[0].twilio.sid, out.twilio.sid);
      const mine = seen.filter((s) => s.sid === c.sid);
      assert.equal(mine[mine.length - 1].status, "completed");
      assert.equal(mine[mine.length - 1].jobId, "jpoll");
      assert.equal(new Set(mine.map((s) => s.status)).size, mine.length, "each status published once");
      const fetches = sim.requests.filter((r) => r.method === "GET" && r.path.endsWith(`/Calls/${c.sid}.json`));
      assert.ok(fetches.length >= 1);
      await settle(SETTLE_MS);
      assert.equal(received.acked.length, 1);
      assert.equal(received.nacked.length, 0);
    } finally {
      off();
    }
  });

  it("poll mode with acknowledgement keeps polling after the keypress until the call is completed (one outcome)", async () => {
    const seen: AcceptedStatus[] = [];
    const off = onStatus(ACCOUNT.accountSid, (s) => seen.push(s));
    try {
      const nodes = flow({ call: { ack: true, poll: true, pollInterval: 1, callback: "" } });
      // an mlc-audit node on trail "default", fed by outputs 1 and 2 as the examples wire it
      const voice = nodes.find((n) => n.id === "voice") as TestFlowNode;
      voice.wires = [["placed", "audit"], ["acked", "audit"], ["nacked", "audit"]];
      nodes.push({ id: "audit", z: TAB, type: "mlc-audit", operation: "auto", trail: "default", wires: [[]] });
      await bed.load(nodes);
      const out = await placeOne({ erp: { jobId: "jpollack" } });
      const c = sim.calls[0];
      assert.equal(c.statusCallback, null, "no StatusCallback in poll mode");
      assert.equal((await sim.answerCall(c.sid, { digits: "1" })).status, 200);
      await until(() => received.acked.length === 1, "acknowledged");
      assert.equal(received.acked[0].ack.result, "acknowledged");
      assert.equal(received.acked[0].twilio.sid, out.twilio.sid);
      await sim.progressCall(c.sid, "completed");
      // the audit record follows the account's status channel (mlc-twilio-status): it must see "completed"
      await until(() => seen.some((s) => s.sid === c.sid && s.status === "completed"), "completed polled after the acknowledgement");
      assert.equal(seen.find((s) => s.sid === c.sid && s.status === "completed")?.jobId, "jpollack");
      const trail = sharedAuditTrail(bed.node("voice") as unknown as RedNode, "default");
      assert.ok(trail, "the audit node's trail");
      const t = await trail;
      let recorded: string | undefined;
      const refresh = (): void => void t.findBySid(c.sid).then((r) => (recorded = r?.status));
      await until(() => (refresh(), recorded === "completed"), () => `audit record completed (is ${recorded})`);
      const fetchesAtEnd = sim.requests.filter((r) => r.method === "GET" && r.path.endsWith(`/Calls/${c.sid}.json`)).length;
      await settle(1500);
      assert.equal(sim.requests.filter((r) => r.method === "GET" && r.path.endsWith(`/Calls/${c.sid}.json`)).length, fetchesAtEnd, "polling stops at the final status");
      assert.equal(received.acked.length, 1);
      assert.equal(received.nacked.length, 0);
    } finally {
      off();
    }
  });

  it("gives up after pollTimeout: a call never heard of again is no-answer", async () => {
    await bed.load(flow({ call: { pollTimeout: 1 } }));
    await placeOne();
    await until(() => received.nacked.length === 1, "given up");
    assert.equal(received.nacked[0].ack.result, "no-answer");
  });

  it("an invalid number fails only that message (invalid_phone, no call), the next one is placed", async () => {
    await bed.load(flow());
    inject({ ...BILL, phone: "12345" });
    inject({ ...BILL, phone: "+1 415 555 0133" });
    await until(() => received.caught.length === 1 && received.placed.length === 1, "catch and placed");
    const e = received.caught[0];
    assert.equal(e.errorDetails.code, "invalid_phone");
    assert.equal(e.error.source.id, "voice");
    assert.equal(e.twilio.status, "failed");
    assert.equal(e.twilio.channel, "voice");
    assert.equal(callCreates().length, 1);
    assert.equal(sim.calls.length, 1);
    assert.equal(sim.calls[0].to, "+14155550133");
  });

  it("twiml and url modes pass the caller's document or URL; a long message is said once, a too long one fails", async () => {
    const doc = '<Response><Say voice="alice">Custom &amp; plain</Say></Response>';
    await bed.load(flow({ call: { twimlMode: "twiml", twiml: "doc", twimlType: "msg", ack: true } }));
    await placeOne({ doc });
    assert.equal(sim.calls[0].twiml, doc);
    const heard = await sim.answerCall(sim.calls[0].sid, { noInput: true });
    assert.deepEqual(heard.said, ["Custom & plain"]);
    await bed.unload();

    await bed.load(flow({ call: { twimlMode: "url", twiml: "https://twiml.example.test/voice.xml", twimlType: "str" } }));
    await placeOne();
    assert.equal(sim.calls[1].url, "https://twiml.example.test/voice.xml");
    assert.equal(sim.calls[1].twiml, null);
    await bed.unload();

    await bed.load(flow({ call: { message: "{{payload.text}}", ack: true } }));
    await placeOne({}, { phone: "+14155550132", text: "a".repeat(2200) });
    const once = sim.calls[2].twiml as string;
    assert.ok(once.length <= 4000, String(once.length));
    assert.equal(once.split("a".repeat(2200)).length - 1, 1, "said once");
    inject({ phone: "+14155550132", text: "b".repeat(4100) });
    await until(() => received.caught.length === 1, "too long");
    assert.equal(received.caught[0].errorDetails.code, "twiml_too_long");
    assert.equal(sim.calls.length, 3);
  });

  it("pending calls are dropped on close: nothing is emitted after a redeploy", async () => {
    await bed.load(flow({ call: { ack: true } }));
    await placeOne();
    const sid = sim.calls[0].sid;
    const node = bed.node("voice") as unknown as { close(removed: boolean): Promise<void> };
    await node.close(true);
    await sim.progressCall(sid, "no-answer");
    await settle(SETTLE_MS);
    assert.equal(received.nacked.length, 0);
    assert.equal(received.acked.length, 0);
  });
});
