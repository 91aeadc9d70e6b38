/**
 * mlc-twilio-email and the SendGrid Event Webhook of mlc-twilio-status in a real Node-RED runtime
 * (node-red-node-test-helper, red.js HTTP layout via test/harness/red-testbed.ts) against the SendGrid
 * simulator (test/sims/sendgrid.ts): e-mails as SendGrid receives them, signed events through Node-RED's HTTP
 * stack to <url>/mlc/twilio/<endpoint>/sendgrid, statuses into mlc-audit, forgeries, duplicates, and no API
 * key anywhere.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import type { TestFlowNode } from "node-red-node-test-helper";
import { AcceptedStatus, onStatus } from "../../nodes/lib/twilio/bus";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";
import { DEFAULT_SENDGRID_KEY, SendGridSim } from "../sims/sendgrid";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const flowNodes = require("../../nodes/flow") as (RED: unknown) => void;

const sg = new SendGridSim();
const bed = new Testbed([twilioNodes, flowNodes]);
const TAB = "t1";
const creds = { cfg: { sendgridApiKey: DEFAULT_SENDGRID_KEY } };
const BILL = { contact: "ap@northwind.example", ReferenceNbr: "INV-1042", Vendor: "Smith & Sons <Ltd>", Amount: "1,250.50" };

/** config + email → [out, audit]; status → [stOut, audit]; audit → auditOut; catch → caught. */
function flow(opts: { email?: Record<string, unknown>; cfg?: Record<string, unknown> } = {}): TestFlowNode[] {
  return [
    { id: TAB, type: "tab", label: "email" },
    {
      id: "cfg",
      type: "mlc-twilio-config",
      name: "sim",
      publicBaseUrl: bed.url,
      sendgridFrom: "Billing <billing@contoso.example>",
      sendgridApiHost: sg.url,
      sendgridVerificationKey: sg.publicKeyBase64,
      timeout: "5",
      ...(opts.cfg ?? {}),
    },
    {
      id: "em",
      z: TAB,
      type: "mlc-twilio-email",
      twilio: "cfg",
      to: "payload.contact",
      toType: "msg",
      from: "",
      subject: "Bill {{payload.ReferenceNbr}} from {{payload.Vendor}}",
      body: "Bill {{payload.ReferenceNbr}} for {{payload.Amount}} from {{payload.Vendor}} needs approval.",
      html: false,
      wires: [["out", "audit"]],
      ...(opts.email ?? {}),
    },
    { id: "out", z: TAB, type: "helper" },
    { id: "st", z: TAB, type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["stOut", "audit"]] },
    { id: "stOut", z: TAB, type: "helper" },
    { id: "audit", z: TAB, type: "mlc-audit", operation: "auto", trail: "email", wires: [["auditOut"]] },
    { id: "auditOut", z: TAB, type: "helper" },
    { id: "c1", z: TAB, type: "catch", name: "", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z: TAB, type: "helper" },
  ];
}

const r = (id: string): Msg[] => bed.received[id] ?? [];
const webhookUrl = (): string => `${bed.url}/mlc/twilio/status/sendgrid`;

/** Inject one bill and wait for the send's output; returns the X-Message-Id and jobId. */
async function sendOne(jobId: string, payload: Record<string, unknown> = BILL): Promise<{ sid: string; jobId: string }> {
  const before = r("out").length;
  bed.node("em").receive({ payload, erp: { jobId, id: "Bill/INV-1042" } });
  await until(() => r("out").length > before || r("caught").length > 0, "email output");
  assert.equal(r("caught").length, 0, JSON.stringify(r("caught")[0]?.errorDetails));
  const out = r("out")[r("out").length - 1];
  return { sid: out.twilio.sid as string, jobId };
}

/** Everything that could leak: emitted msgs, node errors/warnings/status, runtime log. */
function everythingSaid(): string {
  const parts: unknown[] = [Object.values(bed.received).flat()];
  for (const id of ["em", "st", "audit"]) {
    try {
      const n = bed.node(id);
      parts.push(n.error.getCalls().map((c) => String(c.args[0]) + JSON.stringify(c.args[1] ?? null)));
      parts.push(n.warn.getCalls().map((c) => String(c.args[0])));
      parts.push(n.status.getCalls().map((c) => JSON.stringify(c.args[0])));
    } catch {
      /* node not deployed in this test */
    }
  }
  parts.push(bed.logCalls().map((c) => JSON.stringify(c.args)));
  return JSON.stringify(parts);
}

describe("mlc-twilio-email and the SendGrid Event Webhook in Node-RED", function () {
  this.timeout(20000);
  let bus: AcceptedStatus[] = [];
  let unsubscribe: (() => void) | undefined;

  bed.hooks({
    sims: [sg],
    beforeEach: () => {
      bus = [];
    },
    afterEach: () => {
      const said = everythingSaid();
      assert.ok(!said.includes(DEFAULT_SENDGRID_KEY) && !said.includes(DEFAULT_SENDGRID_KEY.split(".")[2]), "the SendGrid API key appears in a msg, status or log");
    },
  });
  before(() => {
    sg.eventWebhookUrl = webhookUrl();
    unsubscribe = onStatus("", (s) => bus.push(s)); // channel of the config node's Account SID: none here (SendGrid only)
  });
  after(() => unsubscribe?.());

  describe("sending", () => {
    it("sends through SendGrid with the rendered subject and body, the account's From and the jobId custom arg", async () => {
      await bed.load(flow(), creds);
      const { sid } = await sendOne("jEMAIL1");

      assert.equal(sg.mails.length, 1);
      const m = sg.mails[0];
      assert.equal(m.messageId, sid);
      assert.deepEqual(m.to, ["ap@northwind.example"]);
      assert.deepEqual(m.from, { email: "billing@contoso.example", name: "Billing" });
      assert.equal(m.subject, "Bill INV-1042 from Smith & Sons <Ltd>");
      assert.deepEqual(m.content, [{ type: "text/plain", value: "Bill INV-1042 for 1,250.50 from Smith & Sons <Ltd> needs approval." }]);
      assert.deepEqual(m.customArgs, { mlc_job_id: "jEMAIL1" });
      assert.deepEqual(sg.requests.map((q) => [q.path, q.status, q.auth]), [["/v3/mail/send", 202, "ok"]]);

      const out = r("out")[0];
      assert.deepEqual(out.twilio, { sid, status: "queued", to: "ap@northwind.example", channel: "email", jobId: "jEMAIL1" });
      assert.match(sid, /^[A-Za-z0-9_-]{22}$/);
      await until(() => r("auditOut").length === 1, "audit record");
      assert.equal(r("auditOut")[0].audit.status, "queued");
      assert.equal(r("auditOut")[0].audit.channel, "email");
    });

    it("the same jobId and address again (a replay) is not sent again (main sent 2); another jobId is", async () => {
      await bed.load(flow(), creds);
      const first = await sendOne("jEMAILTWICE");
      const again = await sendOne("jEMAILTWICE");
      assert.equal(sg.mails.length, 1, "one e-mail");
      assert.equal(again.sid, first.sid);
      assert.equal(r("out")[1].twilio.duplicate, true);
      await sendOne("jEMAILOTHER");
      assert.equal(sg.mails.length, 2);
    });

    it("an HTML body is sent as text/html with the values HTML-escaped; From and msg.email defaults", async () => {
      await bed.load(flow({ email: { to: "", toType: "msg", from: "Payables Desk <desk@contoso.example>", html: true, body: "<p>Bill <b>{{payload.ReferenceNbr}}</b> from {{payload.Vendor}}</p>" } }), creds);
      bed.node("em").receive({ payload: BILL, email: "Vendor AP <AP@Northwind.Example>" });
      await until(() => r("out").length === 1 || r("caught").length > 0, "email output");
      assert.equal(r("caught").length, 0, JSON.stringify(r("caught")[0]?.errorDetails));
      const m = sg.mails[0];
      assert.deepEqual(m.content, [{ type: "text/html", value: "<p>Bill <b>INV-1042</b> from Smith &amp; Sons &lt;Ltd&gt;</p>" }]);
      assert.deepEqual(m.from, { email: "desk@contoso.example", name: "Payables Desk" });
      assert.deepEqual(m.to, ["AP@northwind.example"]);
      const jobId = r("out")[0].twilio.jobId as string;
      assert.match(jobId, /^j[0-9a-f]{24}$/, "a jobId is generated when the msg has none");
      assert.equal(m.customArgs.mlc_job_id, jobId);
    });

    it("an invalid address fails only that message (Catch, invalid_email, nothing sent); the next one is sent", async () => {
      await bed.load(flow(), creds);
      bed.node("em").receive({ payload: { ...BILL, contact: "accounts payable at northwind" }, erp: { jobId: "jBAD", id: "Bill/1" } });
      bed.node("em").receive({ payload: { ...BILL, contact: "ar@northwind.example" }, erp: { jobId: "jGOOD" } });
      await until(() => r("caught").length === 1 && r("out").length === 1, "catch and output");

      const c = r("caught")[0];
      assert.equal(c.errorDetails.code, "invalid_email");
      assert.equal(c.errorDetails.name, "ValidationError");
      assert.equal(c.errorDetails.recordId, "Bill/1");
      assert.equal(c.error.source.id, "em");
      assert.equal(c.twilio.status, "failed");
      assert.equal(c.twilio.channel, "email");
      assert.equal(c.twilio.jobId, "jBAD");
      assert.equal(sg.requests.length, 1, "no request for the invalid address");
      assert.deepEqual(sg.mails.map((m) => m.to[0]), ["ar@northwind.example"]);
      assert.equal(r("out")[0].twilio.jobId, "jGOOD");
    });

    it("a wrong API key goes to Catch as auth_failed, the key nowhere", async () => {
      const wrong = "SG.wrongKeyForTheSim000000.d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5MDAwMDA";
      await bed.load(flow(), { cfg: { sendgridApiKey: wrong } });
      bed.node("em").receive({ payload: BILL, erp: { jobId: "jAUTH" } });
      await until(() => r("caught").length === 1, "catch");
      const c = r("caught")[0];
      assert.equal(c.errorDetails.code, "auth_failed");
      assert.equal(c.errorDetails.status, 401);
      assert.equal(c.twilio.status, "failed");
      assert.ok(!everythingSaid().includes(wrong) && !everythingSaid().includes("wrongKeyForTheSim"));
    });

    it("no API key configured → Catch no_api_key; an invalid From → invalid_from; nothing sent", async () => {
      await bed.load(flow(), {});
      bed.node("em").receive({ payload: BILL });
      await until(() => r("caught").length === 1, "catch");
      assert.equal(r("caught")[0].errorDetails.code, "no_api_key");
      await bed.unload();

      await bed.load(flow({ cfg: { sendgridFrom: "billing@contoso" } }), creds);
      bed.node("em").receive({ payload: BILL });
      await until(() => r("caught").length === 1, "catch");
      assert.equal(r("caught")[0].errorDetails.code, "invalid_from", "a From without a dotted domain is refused before sending");
      assert.equal(sg.requests.length, 0);
    });

    it("SendGrid's refusals reach Catch with SendGrid's own messages (400 sendgrid_rejected, 403 auth_failed), sent once", async () => {
      await bed.load(flow({ email: { to: "email", toType: "msg", subject: "", body: "" } }), creds);
      sg.injectFault({ status: 400, errors: [{ message: "Each unique email address in the personalizations array should only be included once.", field: "personalizations.0.to", help: null }] });
      sg.injectFault({ status: 403, errors: [{ message: "The from address does not match a verified Sender Identity.", field: "from", help: null }] });
      bed.node("em").receive({ payload: BILL, email: "ap@northwind.example", subject: "Bill {{payload.ReferenceNbr}}", body: "Body from msg.body" });
      await until(() => r("caught").length === 1, "first catch");
      bed.node("em").receive({ payload: "Body from the payload", subject: "Second", email: "x@northwind.example" });
      await until(() => r("caught").length === 2, "second catch");
      const [a, b] = r("caught");
      assert.deepEqual([a.errorDetails.code, a.errorDetails.status, a.errorDetails.vendorCode], ["sendgrid_rejected", 400, "personalizations.0.to"]);
      assert.match(a.errorDetails.message, /should only be included once/);
      assert.deepEqual([b.errorDetails.code, b.errorDetails.status], ["auth_failed", 403]);
      assert.match(b.errorDetails.message, /verified Sender Identity/);
      assert.deepEqual(sg.requests.map((q) => q.status), [400, 403]);
      const sent = sg.requests.map((q) => q.body as { subject: string; content: { value: string }[] });
      assert.deepEqual(sent.map((q) => [q.subject, q.content[0].value]), [["Bill INV-1042", "Body from msg.body"], ["Second", "Body from the payload"]]);
    });
  });

  describe("Event Webhook through mlc-twilio-status", () => {
    it("delivered: queued then delivered come out of the status node with the jobId, and audit records then updates", async () => {
      await bed.load(flow(), creds);
      const { sid, jobId } = await sendOne("jDELIV");
      await until(() => r("auditOut").length === 1, "audit record");

      const res = await sg.deliver(sid, "delivered");
      assert.equal(res.status, 200);
      await until(() => r("stOut").length === 2 && r("auditOut").length === 3, "two statuses and their audit updates");

      assert.deepEqual(r("stOut").map((m) => m.topic), ["twilio/status/queued", "twilio/status/delivered"]);
      for (const m of r("stOut")) {
        assert.deepEqual({ ...m.twilio, status: undefined }, { sid, status: undefined, to: "ap@northwind.example", channel: "email", jobId });
        assert.equal(m.payload.sg_message_id.split(".")[0], sid);
      }
      assert.equal(r("stOut")[1].twilio.status, "delivered");
      assert.equal(r("stOut")[1].payload.event, "delivered");

      const audits = r("auditOut").map((m) => m.audit);
      assert.deepEqual(audits.map((a) => a.status), ["queued", "queued", "delivered"]);
      assert.equal(audits[2].sid, sid);
      assert.equal(audits[2].jobId, jobId);
      assert.equal(r("auditOut")[2].auditChanged, true);
      assert.deepEqual(bus.filter((b) => b.sid === sid).map((b) => [b.kind, b.status, b.jobId]), [["message", "queued", jobId], ["message", "delivered", jobId]]);
    });

    it("bounce: undelivered with errorCode sendgrid_bounce, recorded as a failure by audit", async () => {
      await bed.load(flow(), creds);
      const { sid } = await sendOne("jBOUNCE");
      assert.equal((await sg.deliver(sid, "bounce")).status, 200);
      await until(() => r("stOut").length === 2 && r("auditOut").length === 3, "statuses");
      const last = r("stOut")[1];
      assert.equal(last.topic, "twilio/status/undelivered");
      assert.equal(last.twilio.errorCode, "sendgrid_bounce");
      assert.match(last.payload.reason, /^550 5\.1\.1/);
      const a = r("auditOut")[2].audit;
      assert.equal(a.status, "undelivered");
      assert.equal(a.error.code, "sendgrid_bounce");
    });

    it("dropped → failed, deferred → sending, open → read (after delivered)", async () => {
      await bed.load(flow(), creds);
      const a = await sendOne("jA");
      const b = await sendOne("jB");
      const c = await sendOne("jC");
      await sg.deliver(a.sid, "dropped");
      await sg.deliver(b.sid, "deferred");
      await sg.deliver(c.sid, "open");
      await until(() => r("stOut").length === 7, "seven statuses");
      const bySid = (sid: string) => r("stOut").filter((m) => m.twilio.sid === sid).map((m) => m.twilio.status + (m.twilio.errorCode ? `:${m.twilio.errorCode}` : ""));
      assert.deepEqual(bySid(a.sid), ["queued", "failed:sendgrid_dropped"]);
      assert.deepEqual(bySid(b.sid), ["queued", "sending"]);
      assert.deepEqual(bySid(c.sid), ["queued", "delivered", "read"]);
    });

    it("forged event posts (tampered, unsigned, another key, altered body) get 403 and change nothing", async () => {
      await bed.load(flow(), creds);
      const { sid } = await sendOne("jFORGED");
      const events = [...sg.eventsFor(sid, "processed"), ...sg.eventsFor(sid, "delivered")];
      const forger = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
      const results = [
        await sg.sendEvents(webhookUrl(), events, { tamper: true }),
        await sg.sendEvents(webhookUrl(), events, { omitSignature: true }),
        await sg.sendEvents(webhookUrl(), events, { signWith: forger }),
        await sg.sendEvents(webhookUrl(), sg.eventsFor(sid, "delivered"), { replaceBody: SendGridSim.serialise(sg.eventsFor(sid, "bounce")) }),
      ];
      assert.deepEqual(results.map((x) => x.status), [403, 403, 403, 403]);
      await settle();
      assert.equal(r("stOut").length, 0);
      assert.equal(bus.length, 0);
      assert.ok(bed.node("st").warn.getCalls().some((call) => /invalid signature/.test(String(call.args[0]))));

      // no side effect: the genuine batch afterwards is emitted in full
      assert.equal((await sg.sendEvents(webhookUrl(), events)).status, 200);
      await until(() => r("stOut").length === 2, "genuine statuses");
      assert.deepEqual(r("stOut").map((m) => m.twilio.status), ["queued", "delivered"]);
    });

    it("duplicate events are emitted once; a late event after a final one is not emitted", async () => {
      await bed.load(flow(), creds);
      const { sid } = await sendOne("jDUP");
      const batch = [...sg.eventsFor(sid, "processed"), ...sg.eventsFor(sid, "delivered")];
      assert.equal((await sg.sendEvents(webhookUrl(), batch)).status, 200);
      assert.equal((await sg.sendEvents(webhookUrl(), batch)).status, 200, "SendGrid's retry of the same batch is acknowledged");
      assert.equal((await sg.sendEvents(webhookUrl(), sg.eventsFor(sid, "delivered"))).status, 200, "the same event with a new sg_event_id");
      assert.equal((await sg.sendEvents(webhookUrl(), sg.eventsFor(sid, "deferred"))).status, 200, "late");
      await settle();
      assert.deepEqual(r("stOut").map((m) => m.twilio.status), ["queued", "delivered"]);
      assert.equal(bus.filter((b) => b.sid === sid).length, 2);
    });

    it("events of e-mails not sent by the package (no mlc_job_id) are acknowledged and ignored", async () => {
      await bed.load(flow(), creds);
      const { sid } = await sendOne("jOTHER");
      const foreign = sg.eventsFor(sid, "delivered").map((e) => {
        const copy = { ...e };
        delete copy.mlc_job_id;
        return copy;
      });
      assert.equal((await sg.sendEvents(webhookUrl(), foreign)).status, 200);
      assert.equal((await sg.sendEvents(webhookUrl(), [{ event: "delivered", email: "x@y.example", sg_message_id: "zzz.filter", mlc_job_id: "j1" }, { event: "click", sg_message_id: sid, mlc_job_id: "jOTHER", email: "ap@northwind.example" }])).status, 200);
      await settle();
      assert.deepEqual(r("stOut").map((m) => [m.twilio.sid, m.twilio.status]), [["zzz", "delivered"]], "only the event with a job id and a status");
    });

    it("a signed body that is not a JSON array → 400; a GET → 405", async () => {
      await bed.load(flow(), creds);
      const raw = '{"event":"delivered"}';
      const ts = String(Math.floor(Date.now() / 1000));
      const res = await fetch(webhookUrl(), {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Signature": sg.sign(raw, ts), "X-Twilio-Email-Event-Webhook-Timestamp": ts },
        body: raw,
      });
      assert.equal(res.status, 400);
      assert.equal((await fetch(webhookUrl())).status, 405);
      assert.equal(r("stOut").length, 0);
    });

    it("without a verification key in the account: 404 (not served), and the configuration error reaches Catch once", async () => {
      await bed.load(flow({ cfg: { sendgridVerificationKey: "" } }), creds);
      const { sid } = await sendOne("jNOKEY");
      const res = await sg.deliver(sid, "delivered");
      assert.equal(res.status, 404);
      assert.equal(res.responseBody, "Not found");
      for (let i = 0; i < 5; i++) assert.equal((await fetch(webhookUrl(), { method: "POST", headers: { "Content-Type": "application/json" }, body: "[]" })).status, 404);
      await until(() => r("caught").length === 1, "catch");
      await settle();
      assert.equal(r("caught").length, 1, "reported once, not once per request");
      assert.equal(r("caught")[0].errorDetails.code, "no_verification_key");
      assert.equal(r("caught")[0].error.source.id, "st");
      assert.equal(r("stOut").length, 0);
    });

    it("an unset ${SENDGRID_VERIFICATION_KEY} reference disables only the Event Webhook (404, missing_env once), e-mail still goes", async () => {
      delete process.env.MLC_TEST_UNSET_SG_KEY;
      await bed.load(flow({ cfg: { sendgridVerificationKey: "${MLC_TEST_UNSET_SG_KEY}" } }), creds);
      const { sid } = await sendOne("jENVKEY");
      assert.ok(sid, "the e-mail was sent");
      assert.equal(sg.mails.filter((m) => JSON.stringify(m).includes("jENVKEY")).length, 1, "SendGrid received it once");
      for (let i = 0; i < 3; i++) assert.equal((await fetch(webhookUrl(), { method: "POST", headers: { "Content-Type": "application/json" }, body: "[]" })).status, 404);
      await until(() => r("caught").length === 1, "catch");
      await settle();
      assert.equal(r("caught").length, 1, "reported once, not once per request");
      assert.equal(r("caught")[0].errorDetails.code, "missing_env");
      assert.equal(r("caught")[0].error.source.id, "st");
    });
  });
});
