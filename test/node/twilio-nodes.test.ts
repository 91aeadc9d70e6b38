/**
 * The Twilio node set (mlc-twilio-config, mlc-twilio-sms, mlc-twilio-status) in a real Node-RED runtime
 * (node-red-node-test-helper), against the Twilio simulator (test/sims/twilio.ts).
 *
 * HTTP layout mirrors node-red/red.js: one root express app on the helper's server, with RED.httpAdmin
 * mounted at "/" first and RED.httpNode at "/" after it (the default httpAdminRoot = httpNodeRoot = "/"),
 * both mounted before the node set loads (test/harness/red-testbed.ts). The config node's public base URL is
 * the helper's URL, so the simulator's signed status callbacks travel through that stack to
 * <url>/mlc/twilio/<endpoint>.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";
import { TwilioSim } from "../sims/twilio";
import { DEFAULT_SENDGRID_KEY, SendGridSim } from "../sims/sendgrid";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;

const sim = new TwilioSim();

const TAB = "t1";
const ACCOUNT = sim.defaultAccount;
const API_KEY = sim.defaultApiKey;
const accountCreds = { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } };

/** Node-RED with the red.js HTTP layout ("nodeOnly" in one block); loads with the account's credentials by default. */
const bed = new Testbed([twilioNodes], {}, { credentials: accountCreds });
/** Every message a helper node receives, in order. */
const received = bed.received;

function configNode(extra: Record<string, unknown> = {}): TestFlowNode {
  return {
    id: "cfg",
    type: "mlc-twilio-config",
    name: "sim",
    from: "+15005550006",
    defaultRegion: "US",
    publicBaseUrl: bed.url,
    apiHost: sim.url,
    timeout: "5",
    ...extra,
  };
}

/** config + sms → out, status → stOut, catch → caught, all in one tab. */
function flow(opts: { sms?: Record<string, unknown>; cfg?: Record<string, unknown>; status?: Record<string, unknown> | false } = {}): TestFlowNode[] {
  const nodes: TestFlowNode[] = [
    { id: TAB, type: "tab", label: "twilio" },
    configNode(opts.cfg),
    {
      id: "sms",
      z: TAB,
      type: "mlc-twilio-sms",
      twilio: "cfg",
      to: "payload.phone",
      toType: "msg",
      body: "Invoice {{payload.invoice}} for {{payload.vendor}} is overdue",
      callback: "status",
      wires: [["out"]],
      ...(opts.sms ?? {}),
    },
    { id: "out", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", name: "", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
  if (opts.status !== false) {
    nodes.push({ id: "st", z: TAB, type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["stOut"]], ...(opts.status ?? {}) });
    nodes.push({ id: "stOut", z: TAB, type: "helper" });
  }
  return nodes;
}

function inject(payload: Record<string, unknown>, extra: Msg = {}): void {
  bed.node("sms").receive({ payload, ...extra });
}

const creates = (): typeof sim.requests => sim.requests.filter((r) => r.method === "POST" && /\/Messages\.json$/.test(r.path));

function assertNoSecrets(): void {
  const text = bed.emitted();
  for (const secret of [ACCOUNT.authToken, API_KEY.secret]) assert.ok(!text.includes(secret), "a secret appears in an emitted msg");
  assert.ok(!/x-twilio-signature/i.test(text), "signature header leaked into a msg");
}

async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(bed.url + path, { method: "POST", body, headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers } });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** POST `chunks` × 16 KB form data with chunked transfer encoding (no Content-Length); resolves the status. */
function postChunked(path: string, chunks: number): Promise<number> {
  const { port } = new URL(bed.url);
  return new Promise<number>((resolve, reject) => {
    const req = http.request(
      // a (wrong) signature, so a body that is read reaches the signature check (403), not the missing-header 400
      { host: "127.0.0.1", port, method: "POST", path, headers: { "Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked", "X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    const chunk = "x".repeat(16 * 1024);
    let sent = 0;
    const pump = (): void => {
      while (sent < chunks) {
        sent++;
        if (!req.write(sent === 1 ? "a=" + chunk : chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

describe("twilio node set in Node-RED", function () {
  this.timeout(20000);

  bed.hooks({ sims: [sim], afterEach: assertNoSecrets });

  describe("mlc-twilio-sms", () => {
    it("sends an SMS with a rendered body, an E.164 recipient and a StatusCallback carrying the jobId", async () => {
      await bed.load(flow());
      inject({ phone: "(415) 555-0132", invoice: "INV-1042", vendor: "Smith & Sons <Ltd>" }, { erp: { jobId: "jabc123" } });
      await until(() => received.out.length === 1, "sms output");

      assert.equal(sim.messages.length, 1);
      const m = sim.messages[0];
      assert.equal(m.to, "+14155550132");
      assert.equal(m.from, "+15005550006");
      assert.equal(m.body, "Invoice INV-1042 for Smith & Sons <Ltd> is overdue");
      assert.equal(m.statusCallback, `${bed.url}/mlc/twilio/status?j=jabc123`);
      assert.ok(m.statusCallback?.includes("/mlc/twilio/status?j=jabc123"));
      assert.equal(creates()[0].auth, "account");

      const out = received.out[0];
      assert.deepEqual(
        { sid: out.twilio.sid, status: out.twilio.status, jobId: out.twilio.jobId, to: out.twilio.to, channel: out.twilio.channel },
        { sid: m.sid, status: "queued", jobId: "jabc123", to: "+14155550132", channel: "sms" },
      );
      assert.match(out.twilio.sid, /^SM[0-9a-f]{32}$/);
      assert.equal(received.caught.length, 0);
    });

    it("generates a jobId when the msg has none and puts it in the StatusCallback", async () => {
      await bed.load(flow());
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "V" });
      await until(() => received.out.length === 1, "sms output");
      const jobId = received.out[0].twilio.jobId as string;
      assert.ok(jobId && /^[A-Za-z0-9]+$/.test(jobId), jobId);
      assert.equal(new URL(sim.messages[0].statusCallback as string).searchParams.get("j"), jobId);
    });

    it("an invalid number goes to Catch (invalid_phone, no request) and the next valid message is still sent", async () => {
      await bed.load(flow());
      inject({ phone: "12345", invoice: "INV-1", vendor: "A" });
      inject({ phone: "(415) 555-0133", invoice: "INV-2", vendor: "B" });
      await until(() => received.caught.length === 1 && received.out.length === 1, "catch and output");

      const c = received.caught[0];
      assert.equal(c.errorDetails.code, "invalid_phone");
      assert.equal(c.errorDetails.name, "ValidationError");
      assert.equal(c.error.source.id, "sms");
      assert.equal(c.twilio.status, "failed");
      assert.equal(c.payload.invoice, "INV-1");

      assert.equal(creates().length, 1, "no request for the invalid number");
      assert.equal(sim.messages.length, 1);
      assert.equal(sim.messages[0].to, "+14155550133");
      assert.equal(received.out[0].payload.invoice, "INV-2");
    });

    it("an opted-out recipient (21610) goes to Catch after exactly one request (not retried)", async () => {
      sim.optOut("+14155550177");
      await bed.load(flow());
      inject({ phone: "415-555-0177", invoice: "INV-1", vendor: "A" });
      inject({ phone: "+15005550004", invoice: "INV-2", vendor: "B" }); // Twilio's magic opted-out number
      await until(() => received.caught.length === 2, "two catches");
      await settle();

      for (const c of received.caught) {
        assert.equal(c.errorDetails.vendorCode, 21610);
        assert.equal(c.errorDetails.code, "twilio_21610");
        assert.equal(c.errorDetails.retryable, false);
        assert.equal(c.twilio.errorCode, 21610);
        assert.equal(c.twilio.status, "failed");
      }
      const byTo = (to: string) => creates().filter((r) => r.form?.To === to);
      assert.equal(byTo("+14155550177").length, 1);
      assert.equal(byTo("+15005550004").length, 1);
      assert.equal(sim.messages.length, 0);
      assert.equal(received.out.length, 0);
    });

    it("429 twice then success: retried, exactly one message created", async () => {
      sim.injectFault({ status: 429 }, 2);
      await bed.load(flow());
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" });
      await until(() => received.out.length === 1 || received.caught.length > 0, "sms outcome");

      assert.equal(received.caught.length, 0, JSON.stringify(received.caught[0]?.errorDetails));
      assert.deepEqual(creates().map((r) => r.status), [429, 429, 201]);
      assert.equal(sim.messages.length, 1);
      assert.equal(received.out[0].twilio.sid, sim.messages[0].sid);
    });

    it("a dropped connection after the create is reconciled by lookup, never re-sent", async () => {
      sim.injectFault({ dropConnection: true });
      await bed.load(flow());
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" });
      await until(() => received.out.length === 1 || received.caught.length > 0, "sms outcome");
      await settle(300);
      assert.equal(received.caught.length, 0);
      const out = received.out[0];
      assert.equal(out.reconciled, true);
      assert.equal(out.twilio.sid, sim.messages[0].sid, "the message Twilio did create is the one reported");
      assert.equal(creates().length, 1, "exactly one create request");
      assert.equal(sim.messages.length, 1);
      assert.ok(sim.requests.some((r) => r.method === "GET" && /\/Messages\.json$/.test(r.path)), "looked the message up");
    });

    it("a 503 on create whose message exists is reconciled; one that does not exist fails to Catch, not resent", async () => {
      sim.injectFault({ status: 503, createMessage: true });
      // A 1 s reconcile window: the absent message is proven absent after 1 s of lookups (default 30 s).
      await bed.load(flow({ sms: { reconcileWindow: "1" } }));
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" });
      await until(() => received.out.length === 1 || received.caught.length > 0, "first outcome");
      assert.equal(received.out[0]?.reconciled, true);
      sim.injectFault({ status: 503 });
      inject({ phone: "+14155550133", invoice: "INV-2", vendor: "B" });
      await until(() => received.caught.length === 1, "catch");
      await settle(300);
      assert.equal(creates().length, 2, "one create per message, none repeated");
      assert.equal(sim.messages.length, 1);
      assert.equal(received.caught[0].errorDetails.status, 503);
    });

    it("authenticates REST calls with an API key", async () => {
      await bed.load(flow(), { cfg: { accountSid: ACCOUNT.accountSid, apiKeySid: API_KEY.sid, apiKeySecret: API_KEY.secret, authToken: ACCOUNT.authToken } });
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" });
      await until(() => received.out.length === 1 || received.caught.length > 0, "sms outcome");
      assert.equal(received.caught.length, 0, JSON.stringify(received.caught[0]?.errorDetails));
      const r = creates()[0];
      assert.equal(r.auth, "apikey");
      assert.equal(r.credentialSid, API_KEY.sid);
      assert.equal(sim.messages[0].accountSid, ACCOUNT.accountSid);
    });

    it("an API key alone (no Auth Token) still sends", async () => {
      await bed.load(flow({ sms: { callback: "" }, status: false }), { cfg: { accountSid: ACCOUNT.accountSid, apiKeySid: API_KEY.sid, apiKeySecret: API_KEY.secret } });
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" });
      await until(() => received.out.length === 1 || received.caught.length > 0, "sms outcome");
      assert.equal(received.caught.length, 0, JSON.stringify(received.caught[0]?.errorDetails));
      assert.equal(sim.messages[0].statusCallback, null, "no callback endpoint selected → no StatusCallback");
    });

    it("wrong credentials go to Catch as auth_failed without the token in the error", async () => {
      await bed.load(flow(), { cfg: { accountSid: ACCOUNT.accountSid, authToken: "ffffffffffffffffffffffffffffffff" } });
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" });
      await until(() => received.caught.length === 1, "catch");
      assert.equal(received.caught[0].errorDetails.code, "auth_failed");
      assert.ok(!JSON.stringify(received.caught[0]).includes("ffffffffffffffffffffffffffffffff"));
    });
  });

  describe("mlc-twilio-status", () => {
    async function sendOne(jobId = "jstatus1"): Promise<{ sid: string; jobId: string }> {
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" }, { erp: { jobId } });
      await until(() => received.out.length >= 1, "sms output");
      return { sid: received.out[received.out.length - 1].twilio.sid as string, jobId };
    }

    it("emits sent then delivered with the jobId of the send", async () => {
      await bed.load(flow());
      const { sid, jobId } = await sendOne();
      const results = await sim.deliver(sid);
      assert.deepEqual(results.map((r) => r.status), [200, 200]);
      await until(() => received.stOut.length === 2, "two status messages");

      assert.deepEqual(received.stOut.map((m) => m.twilio.status), ["sent", "delivered"]);
      for (const m of received.stOut) {
        assert.equal(m.twilio.jobId, jobId);
        assert.equal(m.twilio.jobId, received.out[0].twilio.jobId);
        assert.equal(m.twilio.sid, sid);
        assert.equal(m.twilio.to, "+14155550132");
        assert.equal(m.payload.MessageSid, sid);
      }
      assert.equal(received.stOut[1].topic, "twilio/status/delivered");
    });

    it("reports undelivered with its ErrorCode", async () => {
      await bed.load(flow());
      const { sid } = await sendOne();
      await sim.deliver(sid, "undelivered", { errorCode: 30003 });
      await until(() => received.stOut.length === 2, "two status messages");
      assert.equal(received.stOut[1].twilio.status, "undelivered");
      assert.equal(received.stOut[1].twilio.errorCode, 30003);
    });

    it("emits a duplicated callback once", async () => {
      await bed.load(flow());
      const { sid } = await sendOne();
      const results = await sim.sendStatusCallbacks(sid, ["sent"], { duplicate: true });
      assert.deepEqual(results.map((r) => r.status), [200, 200], "duplicates are acknowledged");
      await settle();
      assert.equal(received.stOut.length, 1);
      assert.equal(received.stOut[0].twilio.status, "sent");
    });

    it("does not emit a late status after a final one (out of order)", async () => {
      await bed.load(flow());
      const { sid } = await sendOne();
      const results = await sim.sendStatusCallbacks(sid, ["delivered", "sent"]);
      assert.deepEqual(results.map((r) => r.status), [200, 200]);
      await settle();
      assert.deepEqual(received.stOut.map((m) => m.twilio.status), ["delivered"]);
    });

    it("refuses forged callbacks with 403 (tampered, other key) or 400 (unsigned, as twilio.webhook()) and emits nothing", async () => {
      await bed.load(flow());
      const { sid } = await sendOne();
      const tampered = await sim.sendStatusCallbacks(sid, ["sent"], { tamper: true });
      const unsigned = await sim.sendStatusCallbacks(sid, ["delivered"], { omitSignature: true });
      const otherKey = await sim.sendStatusCallbacks(sid, ["delivered"], { signWithToken: API_KEY.secret });
      assert.deepEqual([...tampered, ...unsigned, ...otherKey].map((r) => r.status), [403, 400, 403]);
      await settle();
      assert.equal(received.stOut.length, 0);

      // no side effect: the genuine callbacks afterwards are still emitted in full
      await sim.sendStatusCallbacks(sid, ["sent", "delivered"]);
      await until(() => received.stOut.length === 2, "genuine callbacks");
      assert.deepEqual(received.stOut.map((m) => m.twilio.status), ["sent", "delivered"]);
    });

    it("refuses a signed callback whose body was altered", async () => {
      await bed.load(flow());
      const { sid } = await sendOne();
      const [good] = await sim.sendStatusCallbacks(sid, ["sent"]);
      assert.equal(good.status, 200);
      const params = { ...good.params, MessageStatus: "delivered", SmsStatus: "delivered" };
      const res = await post(new URL(good.url).pathname + new URL(good.url).search, new URLSearchParams(params).toString(), { "X-Twilio-Signature": good.signature });
      assert.equal(res.status, 403);
      await settle();
      assert.deepEqual(received.stOut.map((m) => m.twilio.status), ["sent"]);
    });

    // Was 503 for any unserved path; since issue 6 §5 a path nothing serves is 404 once the flows have started
    // (503 stays for a node being restarted, see webhook-edge.test.ts).
    it("answers 404 with a fixed text (dispatcher still mounted) when no status node serves the endpoint", async () => {
      await bed.load(flow({ status: false }));
      const { sid } = await sendOne();
      const results = await sim.deliver(sid);
      assert.deepEqual(results.map((r) => r.status), [404, 404]);
      const direct = await post("/mlc/twilio/nowhere", "a=1");
      assert.equal(direct.status, 404);
      assert.equal(direct.text, "Not found");
      assert.ok(!/at .*\.js/.test(direct.text), "no stack trace");
    });

    it("keeps serving the endpoint after a redeploy (status node restarted)", async () => {
      await bed.load(flow());
      const { sid } = await sendOne();
      await bed.redeploy(flow());
      received.stOut = [];
      const results = await sim.deliver(sid);
      assert.deepEqual(results.map((r) => r.status), [200, 200]);
      await until(() => received.stOut.length === 2, "status after redeploy");
    });

    it("answers 413 to a body over 256 KB (declared length)", async () => {
      await bed.load(flow());
      const big = "a=" + "x".repeat(300 * 1024);
      const res = await post("/mlc/twilio/status", big, { "X-Twilio-Signature": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" });
      assert.equal(res.status, 413);
      await settle();
      assert.equal(received.stOut.length, 0);
    });

    it("answers 413 to a chunked body over 256 KB (no Content-Length)", async () => {
      await bed.load(flow());
      const status = await postChunked("/mlc/twilio/status", 40);
      assert.equal(status, 413);
    });

    it("answers 405 to a GET and emits nothing", async () => {
      await bed.load(flow());
      const res = await fetch(bed.url + "/mlc/twilio/status");
      assert.equal(res.status, 405);
    });
  });

  describe("mlc-twilio-status served by the node app alone", () => {
    before(() => {
      bed.layout = "nodeOnly";
    });
    after(() => {
      bed.layout = "red";
    });

    it("accepts genuine callbacks and refuses forged ones", async () => {
      await bed.load(flow());
      inject({ phone: "+14155550132", invoice: "INV-1", vendor: "A" }, { erp: { jobId: "jalone" } });
      await until(() => received.out.length === 1, "sms output");
      const sid = received.out[0].twilio.sid as string;
      const forged = await sim.sendStatusCallbacks(sid, ["sent"], { tamper: true });
      const results = await sim.deliver(sid);
      assert.deepEqual([...forged, ...results].map((r) => r.status), [403, 200, 200]);
      await until(() => received.stOut.length === 2, "status messages");
      assert.deepEqual(received.stOut.map((m) => [m.twilio.status, m.twilio.jobId]), [["sent", "jalone"], ["delivered", "jalone"]]);
    });

    it("answers 413 to declared and streamed oversize bodies", async () => {
      await bed.load(flow());
      const res = await post("/mlc/twilio/status", "a=" + "x".repeat(300 * 1024));
      assert.equal(res.status, 413);
      assert.equal(await postChunked("/mlc/twilio/status", 40), 413);
      assert.equal(await postChunked("/mlc/twilio/status", 2), 403, "a small chunked body is read and validated");
    });
  });

  describe("mlc-twilio-config test-connection endpoint", () => {
    const testUrl = (): string => `${bed.url}/mlc/mlc-twilio-config/test`;
    async function test(body: Record<string, unknown>): Promise<{ status: number; text: string; json: Msg }> {
      const res = await fetch(testUrl(), { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, text, json: JSON.parse(text) as Msg };
    }

    it("ok true for good credentials, never echoing the token", async () => {
      await bed.load(flow());
      const r = await test({ config: { apiHost: sim.url }, credentials: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } });
      assert.equal(r.status, 200);
      assert.equal(r.json.ok, true, r.text);
      assert.ok(r.json.message.includes("ml-connector test account"), r.json.message);
      assert.ok(!r.text.includes(ACCOUNT.authToken));
      const fetchAccount = sim.requests.filter((q) => q.method === "GET" && q.path.endsWith(`/Accounts/${ACCOUNT.accountSid}.json`));
      assert.equal(fetchAccount.length, 1);
    });

    it("ok false, code auth_failed for a bad token, never echoing it", async () => {
      await bed.load(flow());
      const bad = "badbadbadbadbadbadbadbadbadbad00";
      const r = await test({ config: { apiHost: sim.url }, credentials: { accountSid: ACCOUNT.accountSid, authToken: bad } });
      assert.equal(r.status, 200);
      assert.equal(r.json.ok, false);
      assert.equal(r.json.code, "auth_failed");
      assert.ok(!r.text.includes(bad) && !r.text.includes(ACCOUNT.authToken));
    });

    it("checks the SendGrid API key too when one is set (GET /v3/scopes, nothing sent), never echoing it", async () => {
      const sg = new SendGridSim();
      await sg.start();
      try {
        await bed.load(flow());
        const base = { config: { apiHost: sim.url, sendgridApiHost: sg.url }, credentials: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } };
        const good = await test({ ...base, credentials: { ...base.credentials, sendgridApiKey: DEFAULT_SENDGRID_KEY } });
        assert.equal(good.json.ok, true, good.text);
        assert.match(good.json.message, /SendGrid API key accepted/);
        const badKey = "SG.not-the-key.0000000000000000000000000000000000000000000";
        const bad = await test({ ...base, credentials: { ...base.credentials, sendgridApiKey: badKey } });
        assert.equal(bad.json.ok, false, bad.text);
        assert.equal(bad.json.code, "sendgrid_auth_failed");
        assert.ok(!bad.text.includes(badKey) && !good.text.includes(DEFAULT_SENDGRID_KEY));
        assert.deepEqual(sg.requests.map((q) => `${q.method} ${q.path} ${q.status}`), ["GET /v3/scopes 200", "GET /v3/scopes 401"]);
      } finally {
        await sg.stop();
      }
    });

    it("uses the deployed node's secret for a __PWRD__ placeholder", async () => {
      await bed.load(flow());
      const r = await test({ id: "cfg", config: { apiHost: sim.url }, credentials: { accountSid: ACCOUNT.accountSid, authToken: "__PWRD__" } });
      assert.equal(r.json.ok, true, r.text);
      assert.ok(!r.text.includes(ACCOUNT.authToken));
    });

    it("ok true for a standard API key (lists messages instead of fetching the account)", async () => {
      await bed.load(flow());
      const r = await test({ config: { apiHost: sim.url }, credentials: { accountSid: ACCOUNT.accountSid, apiKeySid: API_KEY.sid, apiKeySecret: API_KEY.secret } });
      assert.equal(r.json.ok, true, r.text);
      assert.ok(!r.text.includes(API_KEY.secret));
    });

    it("ok false for an incomplete configuration", async () => {
      await bed.load(flow());
      const r = await test({ config: { apiHost: sim.url }, credentials: { accountSid: "nope" } });
      assert.equal(r.json.ok, false);
      assert.equal(r.json.code, "bad_config");
    });
  });
});
