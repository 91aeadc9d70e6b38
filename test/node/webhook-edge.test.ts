/**
 * The webhook edge under hostile input (issue 14) and webhook paths under httpNodeRoot (issue 6 §5), in a real
 * Node-RED runtime (node-red-node-test-helper) with the red.js HTTP layout (admin app with its body parsers in
 * front of the node app), against the Twilio and SendGrid simulators. One test per row of the issues' tables;
 * requests that no HTTP client sends as written go over raw sockets (test/harness/raw-http.ts).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, settle, until } from "../harness/red-testbed";
import { head, looksLikeStackTrace, rawRequest } from "../harness/raw-http";
import { signTwilioRequest, TwilioSim } from "../sims/twilio";
import { SendGridSim } from "../sims/sendgrid";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;

const sim = new TwilioSim();
const sg = new SendGridSim();
const ACCOUNT = sim.defaultAccount;
const creds = { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } };
const TAB = "t1";

/** config + sms (callbacks to the "status" endpoint) + status node → stOut, catch → caught. */
function flow(bed: Testbed, cfg: Record<string, unknown> = {}): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "edge" },
    { id: "cfg", type: "mlc-twilio-config", name: "sim", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5", sendgridVerificationKey: sg.publicKeyBase64, ...cfg },
    { id: "sms", z: TAB, type: "mlc-twilio-sms", twilio: "cfg", to: "payload.phone", toType: "msg", body: "Bill {{payload.n}}", callback: "status", wires: [["out"]] },
    { id: "out", z: TAB, type: "helper" },
    { id: "st", z: TAB, type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["stOut"]] },
    { id: "stOut", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", name: "", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

async function sendOne(bed: Testbed): Promise<string> {
  const before = bed.received.out.length;
  bed.node("sms").receive({ payload: { phone: "+14155550100", n: 1 } });
  await until(() => bed.received.out.length > before, "sms sent");
  return bed.received.out[bed.received.out.length - 1].twilio.sid as string;
}

for (const root of ["/mlc-hooks/", "/hooks/mlc/"]) {
  describe(`webhook paths under httpNodeRoot ${root} (issue 6 §5)`, function () {
    this.timeout(30000);
    const bed = new Testbed([twilioNodes], { httpNodeRoot: root }, { credentials: creds, httpNodeRoot: root });
    bed.hooks({ sims: [sim, sg] });

    it("genuine Twilio status callbacks validate (signature URL = public base URL + httpNodeRoot + exact path) and are emitted", async () => {
      await bed.load(flow(bed));
      const sid = await sendOne(bed);
      const msg = sim.getMessage(sid);
      assert.ok(msg?.statusCallback?.startsWith(`${bed.url}${root}mlc/twilio/status?`), String(msg?.statusCallback));
      const results = await sim.deliver(sid);
      assert.deepEqual(results.map((r) => r.status), [200, 200]);
      await until(() => bed.received.stOut.length === 2, "two statuses");
      assert.deepEqual(bed.received.stOut.map((m) => m.twilio.status), ["sent", "delivered"]);
    });

    it("a forged callback at the same URL still gets 403", async () => {
      await bed.load(flow(bed));
      const sid = await sendOne(bed);
      const [r] = await sim.sendStatusCallbacks(sid, ["sent"], { tamper: true });
      assert.equal(r.status, 403);
    });
  });
}

describe("the webhook edge under hostile input (issue 14)", function () {
  this.timeout(60000);
  const bed = new Testbed([twilioNodes], {}, { credentials: creds });
  bed.hooks({ sims: [sim, sg] });
  const port = (): number => Number(new URL(bed.url).port);
  const statusUrl = (): string => `${bed.url}/mlc/twilio/status`;

  /** POST a JSON body signed as Twilio signs JSON webhooks (bodySHA256 in the URL, the URL signed). */
  async function signedJson(path: string, raw: string, token = ACCOUNT.authToken): Promise<{ status: number; text: string }> {
    const url = `${bed.url}${path}?bodySHA256=${createHash("sha256").update(raw).digest("hex")}`;
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", "X-Twilio-Signature": signTwilioRequest(token, url, {}) }, body: raw });
    return { status: res.status, text: await res.text() };
  }

  const logText = (args: unknown[]): string => JSON.stringify(args, (_k, v: unknown) => (v instanceof Error ? `${v.message}\n${v.stack}` : v));
  const errorLogs = (re: RegExp): number => bed.logCalls().filter((c) => re.test(logText(c.args))).length;

  it("/sendgrid without a verification key: 404, not 500, and one report instead of a log line per request", async () => {
    await bed.load(flow(bed, { sendgridVerificationKey: "" }));
    const answers = await Promise.all(Array.from({ length: 50 }, () => fetch(`${statusUrl()}/sendgrid`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "[]" }).then(async (r) => [r.status, await r.text()])));
    assert.ok(answers.every(([s, t]) => s === 404 && t === "Not found"), JSON.stringify(answers.slice(0, 3)));
    await until(() => bed.received.caught.length === 1, "one report to Catch");
    await settle();
    assert.equal(bed.received.caught.length, 1);
    assert.equal(bed.node("st").error.getCalls().length, 1, "one error report (Catch has it, so the runtime logs none)");
    assert.equal(errorLogs(/verification key/), 0, "no log line per request");
    assert.equal(bed.received.stOut.length, 0);
  });

  it("paths with a bad escape get 400, not 500", async () => {
    await bed.load(flow(bed));
    for (const t of ["/mlc/%", "/mlc/%zz", "/mlc/twilio/status%e0%a4%a", "/mlc/twilio/%C0%AE%C0%AE/status"]) {
      const res = await rawRequest(port(), head("POST", t, { "Content-Type": "application/x-www-form-urlencoded" }, "a=1"), "a=1");
      assert.equal(res.status, 400, t);
      assert.equal(res.body, "Bad request");
    }
  });

  it("a validly signed callback whose JSON is null, an array, or has numbers or booleans for status fields gets 400, not 500", async () => {
    await bed.load(flow(bed));
    const bodies = ["null", "[]", '"x"', '{"MessageSid":"SM0123456789abcdef0123456789abcdef","MessageStatus":1}', '{"MessageSid":true,"MessageStatus":"sent"}', '{"CallSid":"CA1","CallStatus":{"a":1}}'];
    for (const raw of bodies) {
      for (const p of ["/mlc/twilio/status", "/mlc/twilio/status/inbound"]) {
        const r = await signedJson(p, raw);
        assert.equal(r.status, 400, `${p} ${raw}`);
        assert.equal(r.text, "Bad request");
      }
    }
    const ok = await signedJson("/mlc/twilio/status", '{"MessageSid":"SM0123456789abcdef0123456789abcdef","MessageStatus":"sent","To":"+14155550100"}');
    assert.equal(ok.status, 200, "a well-formed signed JSON callback is still accepted");
    await until(() => bed.received.stOut.length === 1, "one status");
    assert.equal(bed.received.caught.length, 0);
  });

  it("requests the old capture did not claim (unserved, /MLC, /mlc//, undecodable) with hostile bodies get short fixed answers, no stack trace", async () => {
    await bed.load(flow(bed));
    const manyParams = Array.from({ length: 10000 }, (_, i) => `p${i}=${i}`).join("&");
    const cases: [string, Record<string, string>, string][] = [
      ["/mlc/nowhere", { "Content-Type": "application/json" }, '{"a": [1, 2'],
      ["/MLC/twilio/status", { "Content-Type": "application/json" }, "{nope"],
      ["/mlc//nowhere", { "Content-Type": "application/x-www-form-urlencoded" }, manyParams],
      ["/mlc/%zz", { "Content-Type": "application/json; charset=bogus" }, "{}"],
      ["/mlc/nowhere", { "Content-Type": "application/json", "Content-Encoding": "br" }, "\x1b\x03\x00"],
      ["/mlc/twilio/status", { "Content-Type": "application/json", "Content-Encoding": "br" }, "\x1b\x03\x00"],
      ["/mlc/twilio/status", { "Content-Type": "application/x-www-form-urlencoded; charset=bogus" }, "a=1"],
      ["/mlc/twilio/status", { "Content-Type": "application/x-www-form-urlencoded" }, manyParams],
      ["/mlc/twilio/status/inbound", { "Content-Type": "application/json" }, "[" .repeat(10000)],
    ];
    for (const [t, h, body] of cases) {
      const res = await rawRequest(port(), head("POST", t, h, body), body, { timeoutMs: 10000 });
      assert.ok([400, 403, 404, 413, 415].includes(res.status), `${t} ${JSON.stringify(h)} → ${res.status}`);
      assert.ok(!looksLikeStackTrace(res.body) && res.body.length < 100, `${t}: ${res.body.slice(0, 300)}`);
    }
    assert.equal(bed.logCalls().filter((c) => /Error/.test(logText(c.args)) && looksLikeStackTrace(logText(c.args))).length, 0, "no stack trace in the log");
    assert.equal(bed.received.stOut.length, 0);
  });

  it("a 5 MB JSON body to an unserved /mlc path is refused with 413 before it is parsed", async () => {
    await bed.load(flow(bed));
    const big = Buffer.from('{"a":"' + "x".repeat(5 * 1024 * 1024) + '"}');
    const res = await rawRequest(port(), head("POST", "/mlc/nowhere/at/all", { "Content-Type": "application/json" }, big), big);
    assert.equal(res.status, 413);
    assert.equal(res.body, "Payload too large");
  });

  it("POST /MLC/…/sendgrid with JSON and POST /mlc//…/inbound with a form are answered, not held open", async () => {
    await bed.load(flow(bed));
    const a = await rawRequest(port(), head("POST", "/MLC/twilio/status/sendgrid", { "Content-Type": "application/json" }, "[]"), "[]", { timeoutMs: 5000 });
    assert.equal(a.status, 403, "unsigned SendGrid events");
    const form = "From=%2B14155550100&Body=STOP";
    const b = await rawRequest(port(), head("POST", "/mlc//twilio/status/inbound", { "Content-Type": "application/x-www-form-urlencoded" }, form), form, { timeoutMs: 5000 });
    assert.equal(b.status, 400, "unsigned inbound message (twilio.md §5.5: missing header → 400)");
  });

  it("an absolute-form target reaches the endpoint of its path (400 unsigned), not 503 forever", async () => {
    await bed.load(flow(bed));
    const form = "MessageSid=SM1&MessageStatus=delivered";
    const res = await rawRequest(port(), head("POST", "http://evil.example/mlc/twilio/status", { "Content-Type": "application/x-www-form-urlencoded" }, form), form, { timeoutMs: 5000 });
    assert.equal(res.status, 400);
  });

  it("a validly signed SendGrid event an hour old is refused (403); a fresh one is accepted; tolerance 0 turns the check off", async () => {
    const events = [{ email: "ap@northwind.example", event: "delivered", sg_message_id: "sgOLD.filter0001", mlc_job_id: "jOLD", timestamp: 1 }];
    await bed.load(flow(bed));
    const hourAgo = String(Math.floor(Date.now() / 1000) - 3600);
    assert.equal((await sg.sendEvents(`${statusUrl()}/sendgrid`, events, { timestamp: hourAgo })).status, 403);
    await settle();
    assert.equal(bed.received.stOut.length, 0);
    assert.equal((await sg.sendEvents(`${statusUrl()}/sendgrid`, events)).status, 200);
    await until(() => bed.received.stOut.length === 1, "fresh event");
    assert.equal((await sg.sendEvents(`${statusUrl()}/sendgrid`, events)).status, 200, "a replay inside the window is acknowledged");
    await settle();
    assert.equal(bed.received.stOut.length, 1, "…and dropped by the dedupe");
    await bed.unload();
    await bed.load(flow(bed, { sendgridTolerance: "0" }));
    assert.equal((await sg.sendEvents(`${statusUrl()}/sendgrid`, [{ ...events[0], sg_message_id: "sgOLD2.filter" }], { timestamp: hourAgo })).status, 200);
  });

  it("forged callbacks are logged at most once a minute, however many arrive", async () => {
    await bed.load(flow(bed));
    const sid = await sendOne(bed);
    for (let i = 0; i < 40; i++) {
      const [r] = await sim.sendStatusCallbacks(sid, ["sent"], { tamper: true });
      assert.equal(r.status, 403);
    }
    const warns = bed.node("st").warn.getCalls().filter((c) => /X-Twilio-Signature/.test(String(c.args[0])));
    assert.equal(warns.length, 1);
  });

  it("the config node's Test connection (admin route under /mlc when both roots are /) still reads its JSON body", async () => {
    await bed.load(flow(bed));
    const res = await fetch(`${bed.url}/mlc/mlc-twilio-config/test`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ config: { apiHost: sim.url }, credentials: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } }),
    });
    assert.equal(res.status, 200);
    const json = (await res.json()) as { ok: boolean; message: string };
    assert.equal(json.ok, true, json.message);
  });
});
