/**
 * mlc-twilio-sms beyond the basics, in a real Node-RED against the Twilio simulator: several recipients,
 * the opt-out list (inbound STOP/START through mlc-twilio-status, and 21610), quiet hours (hold, urgent
 * override, scheduling with SendAt), status polling, and the account's pacing budget under a burst.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { DEFAULT_MESSAGING_SERVICE_SID, TwilioSim, maxInWindow, signTwilioRequest } from "../sims/twilio";
import { Testbed, until, settle } from "../harness/red-testbed";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;

const TAB = "t1";
const bed = new Testbed([twilioNodes], { contextStorage: { default: { module: "memory" } } });

function flow(sim: TwilioSim, opts: { sms?: Record<string, unknown>; cfg?: Record<string, unknown> } = {}): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "sms features" },
    { id: "cfg", type: "mlc-twilio-config", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5", ...(opts.cfg ?? {}) },
    { id: "sms", z: TAB, type: "mlc-twilio-sms", twilio: "cfg", to: "to", toType: "msg", body: "Bill {{payload.ref}} needs approval", callback: "status", wires: [["out"], ["polled"]], ...(opts.sms ?? {}) },
    { id: "out", z: TAB, type: "helper" },
    { id: "polled", z: TAB, type: "helper" },
    { id: "st", z: TAB, type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["stOut"]] },
    { id: "stOut", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

function creds(sim: TwilioSim): Record<string, Record<string, string>> {
  return { cfg: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken } };
}

const r = (id: string) => bed.received[id];
const creates = (sim: TwilioSim) => sim.requests.filter((q) => q.method === "POST" && /\/Messages\.json$/.test(q.path));

let inboundSeq = 0;

/** Post a signed inbound-message webhook, as Twilio does for "A message comes in" (a new MessageSid unless given). */
async function inbound(sim: TwilioSim, from: string, body: string, sid = "SM" + String(++inboundSeq).padStart(32, "9")): Promise<number> {
  const url = `${bed.url}/mlc/twilio/status/inbound`;
  const params = { MessageSid: sid, AccountSid: sim.defaultAccount.accountSid, From: from, To: "+15005550006", Body: body, NumMedia: "0" };
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signTwilioRequest(sim.defaultAccount.authToken, url, params) },
    body: new URLSearchParams(params).toString(),
  });
  return res.status;
}

/** "HH:MM" UTC, `hours` from now. */
function utcClock(hoursFromNow: number): string {
  const d = new Date(Date.now() + hoursFromNow * 3600000);
  return `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
}

describe("mlc-twilio-sms features", function () {
  this.timeout(60000);
  const sim = new TwilioSim();

  before(async () => {
    await bed.start();
    await sim.start();
  });
  after(async () => {
    await sim.stop();
    await bed.stop();
  });
  beforeEach(() => sim.reset());
  afterEach(() => bed.unload());

  it("sends one message per recipient; a bad number fails that recipient only", async () => {
    await bed.load(flow(sim), creds(sim));
    bed.node("sms").receive({ payload: { ref: "000123" }, to: "(415) 555-0132, 555-01; +12125550187" });
    await until(() => r("out").length === 2 && r("caught").length === 1, "two sent, one caught");
    assert.deepEqual(sim.messages.map((m) => m.to).sort(), ["+12125550187", "+14155550132"]);
    assert.equal(r("caught")[0].errorDetails.code, "invalid_phone");
    assert.equal(r("out")[0].twilio.jobId, r("out")[1].twilio.jobId, "one event, one jobId");
  });

  it("STOP received on the inbound endpoint blocks later sends (recorded as failed 21610); START lifts it", async () => {
    await bed.load(flow(sim), creds(sim));
    assert.equal(await inbound(sim, "+14155550132", "stop"), 200);
    await until(() => r("stOut").length === 1, "inbound emitted");
    assert.equal(r("stOut")[0].topic, "twilio/inbound/stop");
    bed.node("sms").receive({ payload: { ref: "000124" }, to: "+14155550132" });
    await until(() => r("caught").length === 1, "opted-out send caught");
    await settle();
    assert.equal(creates(sim).length, 0, "nothing was sent");
    assert.equal(r("caught")[0].errorDetails.code, "opted_out");
    assert.equal(r("caught")[0].twilio.errorCode, 21610);
    assert.equal(r("caught")[0].twilio.status, "failed");
    assert.equal(await inbound(sim, "+14155550132", "START"), 200);
    await until(() => r("stOut").length === 2, "start emitted");
    bed.node("sms").receive({ payload: { ref: "000125" }, to: "+14155550132" });
    await until(() => r("out").length === 1, "sent after START");
    // a forged inbound message changes nothing
    const url = `${bed.url}/mlc/twilio/status/inbound`;
    const forged = await fetch(url, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" }, body: "From=%2B14155550132&Body=STOP" });
    assert.equal(forged.status, 403);
    bed.node("sms").receive({ payload: { ref: "000126" }, to: "+14155550132" });
    await until(() => r("out").length === 2, "still sendable after forged STOP");
  });

  it("a redelivered inbound STOP (same MessageSid) arriving after START is acknowledged, not applied or emitted again", async () => {
    await bed.load(flow(sim), creds(sim));
    const stopSid = "SM" + "a".repeat(32);
    assert.equal(await inbound(sim, "+14155550133", "STOP", stopSid), 200);
    assert.equal(await inbound(sim, "+14155550133", "START"), 200);
    await until(() => r("stOut").length === 2, "STOP and START emitted");
    assert.equal(await inbound(sim, "+14155550133", "STOP", stopSid), 200, "Twilio's retry is acknowledged");
    await settle();
    assert.deepEqual(r("stOut").map((m) => m.topic), ["twilio/inbound/stop", "twilio/inbound/start"]);
    bed.node("sms").receive({ payload: { ref: "000127" }, to: "+14155550133" });
    await until(() => r("out").length === 1, "still opted in");
    assert.equal(r("caught").length, 0);
  });

  it("two config nodes of one account share one opt-out list: STOP received through one blocks sends through the other", async () => {
    const nodes = flow(sim);
    nodes.push({ id: "cfg2", type: "mlc-twilio-config", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5" });
    nodes.push({ id: "sms2", z: TAB, type: "mlc-twilio-sms", twilio: "cfg2", to: "to", toType: "msg", body: "Bill {{payload.ref}} needs approval", wires: [["out"], []] });
    await bed.load(nodes, { ...creds(sim), cfg2: creds(sim).cfg });
    // Both senders load the list before the STOP arrives (each config node used to load its own copy).
    bed.node("sms").receive({ payload: { ref: "A1" }, to: "+12125550187" });
    bed.node("sms2").receive({ payload: { ref: "B1" }, to: "+12125550187" });
    await until(() => r("out").length === 2, "both config nodes send");
    assert.equal(await inbound(sim, "+14155550132", "STOP"), 200); // through cfg's status endpoint
    await until(() => r("stOut").length === 1, "inbound emitted");
    bed.node("sms2").receive({ payload: { ref: "B2" }, to: "+14155550132" });
    await until(() => r("caught").length === 1, "send through the other config node caught");
    assert.equal(r("caught")[0].errorDetails.code, "opted_out");
    assert.equal(creates(sim).filter((q) => q.form?.To === "+14155550132").length, 0);
  });

  it("a 21610 from Twilio puts the recipient on the opt-out list: the next send is not attempted", async () => {
    await bed.load(flow(sim), creds(sim));
    bed.node("sms").receive({ payload: { ref: "1" }, to: "+15005550004" });
    await until(() => r("caught").length === 1, "21610 caught");
    assert.equal(r("caught")[0].errorDetails.vendorCode, 21610);
    bed.node("sms").receive({ payload: { ref: "2" }, to: "+15005550004" });
    await until(() => r("caught").length === 2, "second caught");
    assert.equal(r("caught")[1].errorDetails.code, "opted_out");
    assert.equal(creates(sim).length, 1, "only the first send reached Twilio");
  });

  it("quiet hours: outside business hours a send is held; an urgent one goes at once", async () => {
    const quiet = { quiet: true, hoursStart: utcClock(2), hoursEnd: utcClock(3), hoursDays: "1-7", defaultTimezone: "UTC", quietMode: "hold" };
    await bed.load(flow(sim, { sms: quiet }), creds(sim));
    bed.node("sms").receive({ payload: { ref: "H1" }, to: "+14155550132" });
    bed.node("sms").receive({ payload: { ref: "U1" }, to: "+12125550187", urgent: true });
    await until(() => r("out").length === 1, "urgent sent");
    await settle(300);
    assert.equal(creates(sim).length, 1);
    assert.equal(sim.messages[0].to, "+12125550187");
    const statusTexts = (bed.node("sms").status.getCalls() as { args: { text?: string }[] }[]).map((c) => c.args[0]?.text ?? "");
    assert.ok(statusTexts.some((s) => /held 1/.test(s)), statusTexts.join(" | "));
  });

  it("quiet hours with a Messaging Service: the send is scheduled with Twilio (SendAt, ScheduleType=fixed)", async () => {
    const quiet = { quiet: true, hoursStart: utcClock(2), hoursEnd: utcClock(3), hoursDays: "1-7", defaultTimezone: "UTC", quietMode: "schedule", from: DEFAULT_MESSAGING_SERVICE_SID, fromType: "str" };
    await bed.load(flow(sim, { sms: quiet }), creds(sim));
    bed.node("sms").receive({ payload: { ref: "S1" }, to: "+14155550132" });
    await until(() => r("out").length === 1 || r("caught").length === 1, "scheduled");
    assert.equal(r("caught").length, 0, JSON.stringify(r("caught")[0]?.errorDetails));
    const form = creates(sim)[0].form as Record<string, string>;
    assert.equal(form.ScheduleType, "fixed");
    assert.equal(form.MessagingServiceSid, DEFAULT_MESSAGING_SERVICE_SID);
    const at = Date.parse(form.SendAt);
    assert.ok(at > Date.now() + 60 * 60000 && at < Date.now() + 3 * 3600000, `SendAt ${form.SendAt} is the next window start`);
  });

  it("polls the message until a final status when Twilio cannot call back (second output)", async () => {
    await bed.load(flow(sim, { sms: { poll: true, pollInterval: 1, callback: "" } }), creds(sim));
    bed.node("sms").receive({ payload: { ref: "P1" }, to: "+14155550132" });
    await until(() => r("out").length === 1, "sent");
    assert.equal(sim.messages[0].statusCallback, null, "no status callback requested");
    await sim.deliver(sim.messages[0].sid, "delivered");
    await until(() => r("polled").some((m) => m.twilio.status === "delivered"), "delivered by polling", 10000);
    const seen = r("polled").map((m) => m.twilio.status);
    assert.equal(seen[seen.length - 1], "delivered");
    assert.equal(new Set(seen).size, seen.length, "each status once");
    assert.equal(r("polled")[0].twilio.jobId, r("out")[0].twilio.jobId);
  });

  it("errors reach Catch with their message and code but no stack trace (no install paths in the sidebar)", async () => {
    await bed.load(flow(sim), creds(sim));
    bed.node("sms").receive({ payload: { ref: "000127" }, to: "555-01" });
    await until(() => r("caught").length === 1, "invalid number caught");
    const error = r("caught")[0].error as { message: string; stack?: string };
    assert.match(error.message, /not a valid phone number/);
    assert.equal(error.stack, undefined);
    assert.ok(!JSON.stringify(r("caught")[0]).includes("node_modules"), "no install path anywhere in the Catch message");
  });

  it("an unset environment variable is named in the status and the log, not called a bad time zone", async () => {
    const unset = "MLC_TEST_SURELY_UNSET_ZONE";
    delete process.env[unset];
    await bed.load(flow(sim, { sms: { quiet: true, defaultTimezone: "${" + unset + "}" } }), creds(sim));
    const node = bed.node("sms");
    const statuses = node.status.getCalls().filter((c) => c.thisValue === node).map((c) => (c.args[0] as { text?: string; fill?: string }));
    assert.deepEqual(statuses.at(-1), { fill: "red", shape: "ring", text: `${unset} not set` });
    const logged = node.error.getCalls().filter((c) => c.thisValue === node).map((c) => String((c.args[0] as Error).message ?? c.args[0]));
    assert.ok(logged.some((m) => m.includes(`environment variable ${unset} is not set`)), logged.join("\n"));
    assert.ok(!logged.some((m) => /IANA/.test(m)), "not reported as a bad time zone");
  });

  it("with no Twilio account selected the node says so at deploy instead of \"ready\"", async () => {
    await bed.load(flow(sim, { sms: { twilio: "" } }), creds(sim));
    const node = bed.node("sms");
    const last = node.status.getCalls().filter((c) => c.thisValue === node).map((c) => c.args[0] as { text?: string; fill?: string }).at(-1);
    assert.equal(last?.fill, "red");
    assert.notEqual(last?.text, "ready");
  });
});

describe("pacing: one budget per Twilio account", function () {
  this.timeout(120000);
  before(() => bed.start());
  after(() => bed.stop());
  afterEach(() => bed.unload());

  async function burst(sim: TwilioSim, cfg: Record<string, unknown>, n: number): Promise<void> {
    await bed.load(flow(sim, { cfg, sms: { callback: "" } }), creds(sim));
    for (let i = 0; i < n; i++) bed.node("sms").receive({ payload: { ref: `B${i}` }, to: `+1415555${String(1000 + i).padStart(4, "0")}` });
    await until(() => r("out").length + r("caught").length === n, `${n} outcomes`, 100000);
  }

  /** Run `fn` against a simulator started with `opts`, stopped afterwards. */
  async function withSim(opts: ConstructorParameters<typeof TwilioSim>[0], fn: (sim: TwilioSim) => Promise<void>): Promise<void> {
    const sim = new TwilioSim(opts);
    await sim.start();
    try {
      await fn(sim);
    } finally {
      await sim.stop();
    }
  }

  /** Every message created once, nothing lost, no 429; returns the busiest second of create starts (sim ledger). */
  function assertAllSentOnce(sim: TwilioSim, n: number): number {
    assert.equal(r("caught").length, 0, "nothing failed");
    assert.equal(r("out").length, n, "every message reported sent");
    assert.equal(sim.messages.length, n, "every message created");
    assert.equal(new Set(sim.messages.map((m) => m.to)).size, n, "each recipient once: nothing sent twice");
    assert.equal(creates(sim).filter((q) => q.status === 429).length, 0, "no 429");
    return maxInWindow(sim.createStarts());
  }

  it("control: without a budget a burst of 200 meets Twilio's 429s (concurrency limit 5)", async () => {
    await withSim({ concurrencyLimit: 5, latencyMs: 30 }, async (sim) => {
      await burst(sim, { rate: 0, concurrency: 100, rateLongCode: 0 }, 200);
      assert.ok(sim.requests.filter((q) => q.status === 429).length > 0, "the simulator did refuse some requests");
    });
  });

  it("200 bills at once, Twilio allows the sender 10/s, budget 10/s: 200 SMS, 0 × 429, at most 10 starts in any second", async () => {
    await withSim({ concurrencyLimit: 5, latencyMs: 30, senderRatePerSecond: 10 }, async (sim) => {
      await burst(sim, { rate: 10, concurrency: 5, rateLongCode: 10 }, 200);
      const busiest = assertAllSentOnce(sim, 200);
      assert.ok(busiest <= 10, `at most 10 creates in any second, saw ${busiest}`);
    });
  });

  it("300 SMS at the account's budget (100/s) against per-sender and account limits of 100/s: 300 sent, 0 lost, 0 × 429", async () => {
    await withSim({ senderRatePerSecond: 100, ratePerSecond: 100, concurrencyLimit: 10 }, async (sim) => {
      await burst(sim, { rate: 100, concurrency: 10, rateLongCode: 100 }, 300);
      const busiest = assertAllSentOnce(sim, 300);
      assert.ok(busiest <= 100, `at most 100 creates in any second, saw ${busiest}`);
    });
  });

  it("a budget of 10/s against a Twilio with no sender limit: at most 10 creates in any second", async () => {
    await withSim({}, async (sim) => {
      await burst(sim, { rate: 10, concurrency: 5, rateLongCode: 0 }, 40);
      const busiest = assertAllSentOnce(sim, 40);
      assert.ok(busiest <= 10, `at most 10 creates in any second, saw ${busiest}`);
      assert.ok(busiest >= 8, `and the budget is used (busiest second ${busiest})`);
    });
  });

  it("an empty per-sender rate takes Twilio's default for the type: a long code sends 1 per second", async () => {
    await withSim({ senderRatePerSecond: 1 }, async (sim) => {
      await burst(sim, { rate: 10, concurrency: 5, rateLongCode: "" }, 4);
      assert.equal(assertAllSentOnce(sim, 4), 1);
    });
  });

  it("a 429 puts the message back in the queue (after Retry-After) and the retry counts against the budget: nothing lost", async () => {
    await withSim({}, async (sim) => {
      sim.injectFault({ status: 429, code: 20429, retryAfter: 1 }, 3);
      sim.injectFault({ status: 429, code: 20429 }, 3);
      await burst(sim, { rate: 10, concurrency: 5, rateLongCode: 0 }, 20);
      assert.equal(r("caught").length, 0, "nothing failed");
      assert.equal(sim.messages.length, 20, "every message created");
      assert.equal(new Set(sim.messages.map((m) => m.to)).size, 20, "none twice");
      assert.equal(creates(sim).filter((q) => q.status === 429).length, 6, "the six refusals happened");
      assert.equal(creates(sim).length, 26, "each refused create went again once");
      const busiest = maxInWindow(sim.createStarts());
      assert.ok(busiest <= 10, `retries included, at most 10 creates in any second, saw ${busiest}`);
    });
  });
});
