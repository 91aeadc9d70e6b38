/**
 * mlc-twilio-verify in a real Node-RED runtime (node-red-node-test-helper, red.js HTTP layout via the Testbed)
 * against the Twilio simulator's Verify v2 (test/sims/twilio.ts): start, check, the four outputs, Twilio's
 * limits (5 sends, 5 checks, 10 minutes, 404 once a verification is finished) and that the passcode never
 * leaves the node.
 */
import assert from "node:assert/strict";
import { TestFlowNode } from "node-red-node-test-helper";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";
import { DEFAULT_VERIFY_SERVICE_SID, TwilioSim } from "../sims/twilio";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;

const sim = new TwilioSim();
const bed = new Testbed([twilioNodes]);
const ACCOUNT = sim.defaultAccount;
const SERVICE = DEFAULT_VERIFY_SERVICE_SID;
const TAB = "t1";
const PHONE = "+14155550132";
const OUTS = ["approved", "pending", "expired", "max"] as const;

/** Outputs of node `id` by name: `out("vstart").pending`. */
function out(id: string): Record<(typeof OUTS)[number], Msg[]> {
  return Object.fromEntries(OUTS.map((o) => [o, bed.received[`${id}-${o}`] ?? []])) as Record<(typeof OUTS)[number], Msg[]>;
}

function verifyNode(id: string, props: Record<string, unknown>): TestFlowNode[] {
  return [
    {
      id,
      z: TAB,
      type: "mlc-twilio-verify",
      twilio: "cfg",
      serviceSid: SERVICE,
      serviceSidType: "str",
      to: "to",
      toType: "msg",
      channel: "sms",
      code: "payload",
      codeType: "msg",
      locale: "",
      wires: OUTS.map((o) => [`${id}-${o}`]),
      ...props,
    },
    ...OUTS.map((o) => ({ id: `${id}-${o}`, z: TAB, type: "helper" })),
  ];
}

/** config + a "vstart" node + a "vcheck" node + Catch, in one tab. */
function flow(opts: { start?: Record<string, unknown>; check?: Record<string, unknown> } = {}): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "verify" },
    { id: "cfg", type: "mlc-twilio-config", name: "sim", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5" },
    ...verifyNode("vstart", { name: "send code", operation: "start", ...(opts.start ?? {}) }),
    ...verifyNode("vcheck", { name: "check code", operation: "check", ...(opts.check ?? {}) }),
    { id: "c1", z: TAB, type: "catch", name: "", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

/** Every status the verify nodes showed. */
let statuses: { id: string; text: string; fill?: string }[] = [];

async function load(f: TestFlowNode[] = flow()): Promise<void> {
  await bed.load(f, { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } });
  for (const id of ["vstart", "vcheck"]) {
    const n = bed.node(id) as unknown as { status(s: { text?: string; fill?: string }): void };
    const orig = n.status.bind(n);
    n.status = (s) => {
      statuses.push({ id, text: String(s.text ?? ""), fill: s.fill });
      orig(s);
    };
  }
}

const send = (id: string, msg: Msg): void => bed.node(id).receive(msg);
const checkReqs = (): typeof sim.requests => sim.requests.filter((r) => r.method === "POST" && r.path.endsWith("/VerificationCheck"));
/** Form of the n-th VerificationCheck request, as the simulator parsed it. */
const checkForm = (n: number): Record<string, string | string[]> => checkReqs()[n]?.form ?? {};
const starts = (): typeof sim.requests => sim.requests.filter((r) => r.method === "POST" && r.path.endsWith("/Verifications"));

/** A 6-digit code that is not `code`. */
const wrong = (code: string): string => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

/** Start a verification to PHONE through the "vstart" node; resolves with the code the simulator sent. */
async function started(to: string = PHONE, raw = "(415) 555-0132"): Promise<string> {
  const before = out("vstart").pending.length;
  send("vstart", { to: raw, payload: { vendor: "V-1001", iban: "DE89370400440532013000" } });
  await until(() => out("vstart").pending.length === before + 1, "start on output 2");
  const v = sim.getVerification(to);
  assert.ok(v, "verification in the simulator's ledger");
  return v.code;
}

describe("mlc-twilio-verify in Node-RED", function () {
  this.timeout(30000);

  bed.hooks({
    sims: [sim],
    beforeEach: () => {
      statuses = [];
    },
    afterEach: () => {
      // The passcode never reaches a msg (any output, Catch), the status, or the msg.verify of any output.
      const emitted = bed.emitted();
      const codes = sim.verifications.map((v) => v.code);
      for (const code of codes) {
        assert.ok(!emitted.includes(code), "a passcode appears in an emitted msg");
        assert.ok(!statuses.some((s) => s.text.includes(code)), "a passcode appears in a node status");
      }
      assert.ok(!emitted.includes(ACCOUNT.authToken), "the Auth Token appears in an emitted msg");
    },
  });

  it("start by SMS: output 2 (pending), the simulator holds the verification, msg.verify is masked", async () => {
    await load();
    await started();

    assert.equal(sim.verifications.length, 1);
    const v = sim.verifications[0];
    assert.equal(v.to, PHONE, "E.164 with the account's default region");
    assert.equal(v.channel, "sms");
    assert.equal(v.serviceSid, SERVICE);
    assert.equal(v.status, "pending");
    assert.deepEqual(v.params, { To: PHONE, Channel: "sms" });
    assert.match(v.code, /^\d{6}$/);

    const m = out("vstart").pending[0];
    assert.deepEqual(m.verify, { sid: v.sid, status: "pending", to: "+1••••••••32", channel: "sms", result: "pending" });
    assert.match(m.verify.sid, /^VE[0-9a-f]{32}$/);
    assert.equal(m.payload.vendor, "V-1001", "the start leaves the payload alone");
    assert.equal(out("vstart").approved.length + out("vstart").expired.length + out("vstart").max.length, 0);
    assert.equal(bed.received.caught.length, 0);
    assert.equal(starts().length, 1);
    const last = statuses.filter((s) => s.id === "vstart").pop();
    assert.deepEqual(last, { id: "vstart", text: "code sent: sent 1, ok 0", fill: "blue" });
  });

  it("check with the right code: output 1 (approved); the code property is removed from the msg", async () => {
    await load();
    const code = await started();
    send("vcheck", { to: "415-555-0132", payload: code, topic: "approve/V-1001" });
    await until(() => out("vcheck").approved.length === 1, "approved on output 1");

    const m = out("vcheck").approved[0];
    const v = sim.verifications[0];
    assert.deepEqual(m.verify, { sid: v.sid, status: "approved", to: "+1••••••••32", channel: "sms", result: "approved" });
    assert.equal("payload" in m, false, "msg.payload (the code) is deleted");
    assert.equal(m.topic, "approve/V-1001");
    assert.equal(v.status, "approved");
    assert.equal(v.deleted, true);
    const form = checkForm(0);
    assert.deepEqual(form, { To: PHONE, Code: code });
    assert.equal(out("vcheck").pending.length + out("vcheck").expired.length + out("vcheck").max.length, 0);
    const last = statuses.filter((s) => s.id === "vcheck").pop();
    assert.deepEqual(last, { id: "vcheck", text: "approved: sent 0, ok 1", fill: "green" });
  });

  it("a second check after approval: output 3 (expired, not found), because Twilio deleted the verification", async () => {
    await load();
    const code = await started();
    send("vcheck", { to: PHONE, payload: code });
    await until(() => out("vcheck").approved.length === 1, "approved");
    send("vcheck", { to: PHONE, payload: code });
    await until(() => out("vcheck").expired.length === 1, "expired on output 3");

    const m = out("vcheck").expired[0];
    assert.deepEqual(m.verify, { sid: "", status: "not_found", to: "+1••••••••32", channel: "sms", result: "expired" });
    assert.equal(out("vcheck").approved.length, 1, "never approved twice");
    assert.equal(checkReqs().length, 2);
    assert.equal(bed.received.caught.length, 0);
  });

  it("a wrong code: output 2 (pending, try again), then the right code is still approved", async () => {
    await load();
    const code = await started();
    send("vcheck", { to: PHONE, payload: wrong(code) });
    await until(() => out("vcheck").pending.length === 1, "pending on output 2");
    const m = out("vcheck").pending[0];
    assert.deepEqual(m.verify, { sid: sim.verifications[0].sid, status: "pending", to: "+1••••••••32", channel: "sms", result: "pending" });
    assert.equal(sim.verifications[0].wrongChecks, 1);
    assert.equal(statuses.filter((s) => s.id === "vcheck").pop()?.fill, "yellow");

    send("vcheck", { to: PHONE, payload: code });
    await until(() => out("vcheck").approved.length === 1, "approved");
  });

  it("5 wrong checks: each pending; the next check answers 60202 → output 4 (max attempts), one request each, never approved", async () => {
    await load();
    const code = await started();
    for (let i = 1; i <= 5; i++) {
      send("vcheck", { to: PHONE, payload: wrong(code) });
      await until(() => out("vcheck").pending.length === i, `wrong check ${i}`);
    }
    assert.equal(sim.verifications[0].wrongChecks, 5);

    send("vcheck", { to: PHONE, payload: code }); // even the right code is refused now
    await until(() => out("vcheck").max.length === 1, "max attempts on output 4");
    const m = out("vcheck").max[0];
    assert.deepEqual(m.verify, { sid: "", status: "max_attempts_reached", to: "+1••••••••32", channel: "sms", result: "max_attempts" });
    assert.equal(checkReqs().length, 6, "the 429 / 60202 is a final answer: not repeated");
    assert.equal(sim.verifications[0].status, "max_attempts_reached");

    send("vcheck", { to: PHONE, payload: code });
    await until(() => out("vcheck").expired.length === 1, "gone afterwards: output 3");
    assert.equal(out("vcheck").approved.length, 0);
    assert.equal(statuses.filter((s) => s.id === "vcheck").some((s) => s.text.startsWith("max attempts") && s.fill === "red"), true);
  });

  it("a 6th send to the same recipient answers 60203 → output 4 of the start node, and nothing is sent", async () => {
    await load();
    for (let i = 1; i <= 5; i++) await started();
    assert.equal(sim.verifications.length, 1, "re-sends within 10 minutes reuse the verification");
    assert.equal(sim.verifications[0].sendCodeAttempts.length, 5);

    send("vstart", { to: PHONE });
    await until(() => out("vstart").max.length === 1, "max attempts on output 4");
    assert.equal(out("vstart").max[0].verify.result, "max_attempts");
    assert.equal(out("vstart").max[0].verify.status, "max_attempts_reached");
    assert.equal(sim.verifications[0].sendCodeAttempts.length, 5);
    assert.equal(starts().length, 6);
  });

  it("a replay of the same jobId within the verification's lifetime sends no second code (main sent 2); another jobId does", async () => {
    await load();
    const erp = { system: "acumatica", entity: "Vendor", id: "V-1001", jobId: "jverify-1" };
    send("vstart", { to: PHONE, erp });
    await until(() => out("vstart").pending.length === 1, "first start");
    send("vstart", { to: PHONE, erp });
    await until(() => out("vstart").pending.length === 2, "replay on output 2");
    assert.equal(starts().length, 1, "one start request");
    assert.equal(sim.verifications[0].sendCodeAttempts.length, 1, "one code sent");
    assert.equal(out("vstart").pending[1].verify.duplicate, true);
    assert.equal(out("vstart").pending[1].verify.sid, out("vstart").pending[0].verify.sid);
    send("vstart", { to: PHONE, erp: { ...erp, jobId: "jverify-2" } });
    await until(() => out("vstart").pending.length === 3, "another event");
    assert.equal(starts().length, 2, "a new event starts (re-sends) again");
    assert.equal(out("vstart").pending[2].verify.duplicate, undefined);
  });

  it("an expired code (10 minutes over): output 3", async () => {
    await load();
    const code = await started();
    sim.expireVerification(PHONE);
    send("vcheck", { to: PHONE, payload: code });
    await until(() => out("vcheck").expired.length === 1, "expired on output 3");
    assert.equal(out("vcheck").expired[0].verify.result, "expired");
    assert.equal(out("vcheck").expired[0].verify.status, "not_found");
    assert.equal(out("vcheck").approved.length, 0);
    assert.equal(sim.verifications[0].status, "expired");
  });

  it("e-mail channel: the address is used as given, masked in msg.verify, and checked by address", async () => {
    await load(flow({ start: { channel: "email" } }));
    send("vstart", { to: "ap@northwind.example" });
    await until(() => out("vstart").pending.length === 1, "start on output 2");
    const v = sim.getVerification("ap@northwind.example");
    assert.ok(v);
    assert.equal(v.channel, "email");
    assert.deepEqual(v.params, { To: "ap@northwind.example", Channel: "email" });
    assert.deepEqual(out("vstart").pending[0].verify, { sid: v.sid, status: "pending", to: "a•@northwind.example", channel: "email", result: "pending" });

    // the check node is set to SMS: an address with "@" is still taken as an e-mail address
    send("vcheck", { to: "ap@northwind.example", payload: v.code });
    await until(() => out("vcheck").approved.length === 1, "approved");
    assert.equal(out("vcheck").approved[0].verify.to, "a•@northwind.example");
    assert.equal(out("vcheck").approved[0].verify.channel, "email");
  });

  it("msg.channel and msg.operation override the node; a check by msg.verify.sid needs no To", async () => {
    await load();
    send("vstart", { to: PHONE, channel: "call" });
    await until(() => out("vstart").pending.length === 1, "vstart");
    const v = sim.getVerification(PHONE);
    assert.ok(v);
    assert.equal(v.channel, "call");

    const m = out("vstart").pending[0];
    // the msg that left the start node comes back with the code typed in, through the same (start) node
    send("vstart", { ...m, to: undefined, operation: "check", payload: v.code });
    await until(() => out("vstart").approved.length === 1, "approved via msg.operation");
    assert.deepEqual(checkForm(0), { VerificationSid: v.sid, Code: v.code });
    assert.equal(out("vstart").approved[0].verify.sid, v.sid);
  });

  it("an invalid number goes to Catch (invalid_phone) without any request", async () => {
    await load();
    send("vstart", { to: "12345", payload: { vendor: "V-1" } });
    await until(() => bed.received.caught.length === 1, "catch");
    const c = bed.received.caught[0];
    assert.equal(c.errorDetails.code, "invalid_phone");
    assert.equal(c.errorDetails.name, "ValidationError");
    assert.equal(c.error.source.id, "vstart");
    assert.equal(c.verify.status, "failed");
    assert.equal(sim.requests.length, 0);
    await settle();
    assert.equal(OUTS.reduce((n, o) => n + out("vstart")[o].length, 0), 0);
  });

  it("Twilio errors go to Catch as typed errors: unknown Service (20404 on a start), bad code format (no check used)", async () => {
    await load(flow({ start: { serviceSid: "VA" + "9".repeat(32) } }));
    send("vstart", { to: PHONE });
    await until(() => bed.received.caught.length === 1, "catch 20404");
    assert.equal(bed.received.caught[0].errorDetails.code, "twilio_20404");
    assert.equal(bed.received.caught[0].errorDetails.vendorCode, 20404);
    assert.equal(out("vstart").expired.length, 0, "a 404 on a start is a configuration error, not an expiry");

    send("vcheck", { to: PHONE, payload: "12" });
    await until(() => bed.received.caught.length === 2, "catch invalid_code");
    const c = bed.received.caught[1];
    assert.equal(c.errorDetails.code, "invalid_code");
    assert.equal("payload" in c, false, "the code property is gone before Catch sees the msg");
    assert.equal(checkReqs().length, 0);
  });

  it("says at deploy what is missing instead of \"ready\": no Service SID, or its environment variable unset", async () => {
    const unset = "MLC_TEST_SURELY_UNSET_VERIFY_SID";
    delete process.env[unset];
    await load(flow({ start: { serviceSid: "" }, check: { serviceSid: unset, serviceSidType: "env" } }));
    const last = (id: string): { text?: string; fill?: string } | undefined => {
      // load() wraps node.status; the helper's spy on Node.prototype.status saw every call, also the first ones.
      const node = bed.node(id);
      const spy = (Object.getPrototypeOf(node) as { status: { getCalls(): { thisValue: unknown; args: unknown[] }[] } }).status;
      return spy.getCalls().filter((c) => c.thisValue === node).map((c) => c.args[0] as { text?: string; fill?: string }).at(-1);
    };
    await until(() => last("vstart")?.fill === "red" && last("vcheck")?.fill === "red", "both nodes red at deploy");
    assert.equal(last("vcheck")?.text, `${unset} not set`);
    assert.notEqual(last("vstart")?.text, "ready");
  });
});
