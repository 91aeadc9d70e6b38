/**
 * test/sims/sendgrid.ts behaves like SendGrid, and nodes/lib/twilio/sendgrid.ts talks to it correctly:
 * - the simulator's Event Webhook signatures verify with SendGrid's own @sendgrid/eventwebhook (and our
 *   verifyEventWebhook verifies SendGrid's published test vector), tampering of any part fails;
 * - Mail Send through @sendgrid/mail (one MailService per key, host override): 202 + X-Message-Id, ledger,
 *   custom_args; SendGrid's 400/401/429/5xx shapes and their typed-error mapping; no API key in any error.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { EventWebhook } from "@sendgrid/eventwebhook";
import { AuthError, HttpError, RateLimitedError, TimeoutError, ValidationError, errorDetails } from "../../nodes/lib/errors";
import {
  JOB_ID_ARG,
  createMailService,
  emailStatusOf,
  mapSendGridError,
  parseEmailAddress,
  parseEvents,
  renderHtmlTemplate,
  sendEmail,
  verifyEventWebhook,
} from "../../nodes/lib/twilio/sendgrid";
import { DEFAULT_SENDGRID_KEY, SendGridSim } from "../sims/sendgrid";
import { useReceiver, useSim } from "../harness/sim-http";

const FAST = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5, maxRetryAfterMs: 5000 };
const OTHER_KEY = "SG.secondAccountKey00000000.c2Vjb25kc2VjcmV0c2Vjb25kc2VjcmV0MDAwMDAw";

describe("SendGrid simulator and lib/twilio/sendgrid", function () {
  this.timeout(20000);
  const sim = useSim(new SendGridSim({ apiKeys: [DEFAULT_SENDGRID_KEY, OTHER_KEY] }));
  /** Receives the Event Webhook POSTs and keeps the raw bytes and headers. */
  const rx = useReceiver();
  const eventsUrl = () => rx.base + "/events";

  const mail = () => createMailService({ apiKey: DEFAULT_SENDGRID_KEY, apiHost: sim.url, timeoutMs: 5000 });

  async function sendOne(to = "ap@northwind.example", jobId = "j1"): Promise<string> {
    const { messageId } = await sendEmail(mail(), { to, from: "Billing <billing@contoso.example>", subject: "Bill 42", text: "Please approve", customArgs: { [JOB_ID_ARG]: jobId } });
    return messageId;
  }

  describe("Signed Event Webhook", () => {
    it("verifyEventWebhook accepts SendGrid's published test vector and rejects any change", () => {
      // @sendgrid/eventwebhook's own spec (sendgrid/sendgrid-nodejs packages/eventwebhook/src/eventwebhook.spec.js)
      const PUBLIC_KEY = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
      const SIGNATURE = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
      const TIMESTAMP = "1588788367";
      const PAYLOAD = JSON.stringify({ category: "example_payload", event: "test_event", message_id: "message_id" });
      assert.equal(verifyEventWebhook(PUBLIC_KEY, Buffer.from(PAYLOAD), SIGNATURE, TIMESTAMP), true);
      assert.equal(verifyEventWebhook(PUBLIC_KEY, PAYLOAD + " ", SIGNATURE, TIMESTAMP), false);
      assert.equal(verifyEventWebhook(PUBLIC_KEY, PAYLOAD, SIGNATURE, "1588788368"), false);
      assert.equal(verifyEventWebhook(PUBLIC_KEY, PAYLOAD, undefined, TIMESTAMP), false);
      assert.equal(verifyEventWebhook(PUBLIC_KEY, PAYLOAD, "not base64!", TIMESTAMP), false);
      assert.equal(verifyEventWebhook(sim.publicKeyBase64, PAYLOAD, SIGNATURE, TIMESTAMP), false, "another account's key");
      assert.throws(() => verifyEventWebhook("bm90IGEga2V5", PAYLOAD, SIGNATURE, TIMESTAMP), (e: unknown) => e instanceof ValidationError && e.code === "bad_verification_key");
    });

    it("the verification key is base64 DER SPKI of a P-256 key, like SendGrid's settings page shows", () => {
      assert.match(sim.publicKeyBase64, /^MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE[A-Za-z0-9+/]{86}==$/);
      const key = crypto.createPublicKey({ key: Buffer.from(sim.publicKeyBase64, "base64"), format: "der", type: "spki" });
      assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    });

    it("a signed batch verifies with @sendgrid/eventwebhook over the raw bytes; re-serialised JSON, tampering and a forger's key fail", async () => {
      const messageId = await sendOne();
      const events = [...sim.eventsFor(messageId, "processed"), ...sim.eventsFor(messageId, "delivered")];
      const r = await sim.sendEvents(eventsUrl(), events);
      assert.equal(r.status, 200);
      const { headers, raw } = rx.received[0];
      assert.equal(headers["content-type"], "application/json");
      assert.ok(raw.toString().endsWith("]\r\n") && raw.toString().includes("},\r\n{"), "SendGrid's body layout");
      const sig = String(headers["x-twilio-email-event-webhook-signature"]);
      const ts = String(headers["x-twilio-email-event-webhook-timestamp"]);
      assert.match(ts, /^\d{10}$/);

      const ew = new EventWebhook();
      const key = ew.convertPublicKeyToECDSA(sim.publicKeyBase64);
      assert.equal(ew.verifySignature(key, raw, sig, ts), true, "SendGrid's library accepts the simulator's signature");
      assert.equal(ew.verifySignature(key, JSON.stringify(JSON.parse(raw.toString())), sig, ts), false, "only the raw bytes verify");
      assert.equal(verifyEventWebhook(sim.publicKeyBase64, raw, sig, ts), true);
      assert.equal(verifyEventWebhook(sim.publicKeyBase64, raw, sig, String(Number(ts) + 1)), false);

      await sim.sendEvents(eventsUrl(), events, { tamper: true });
      const t = rx.received[1];
      assert.notEqual(t.headers["x-twilio-email-event-webhook-signature"], sig);
      assert.equal(verifyEventWebhook(sim.publicKeyBase64, t.raw, String(t.headers["x-twilio-email-event-webhook-signature"]), String(t.headers["x-twilio-email-event-webhook-timestamp"])), false);

      const forger = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
      await sim.sendEvents(eventsUrl(), events, { signWith: forger });
      const f = rx.received[2];
      assert.equal(verifyEventWebhook(sim.publicKeyBase64, f.raw, String(f.headers["x-twilio-email-event-webhook-signature"]), String(f.headers["x-twilio-email-event-webhook-timestamp"])), false);

      const altered = SendGridSim.serialise(events).replace('"delivered"', '"bounce"');
      await sim.sendEvents(eventsUrl(), events, { replaceBody: altered });
      const a = rx.received[3];
      assert.equal(verifyEventWebhook(sim.publicKeyBase64, a.raw, String(a.headers["x-twilio-email-event-webhook-signature"]), String(a.headers["x-twilio-email-event-webhook-timestamp"])), false);

      await sim.sendEvents(eventsUrl(), events, { omitSignature: true });
      assert.equal(rx.received[4].headers["x-twilio-email-event-webhook-signature"], undefined);
    });

    it("events carry the X-Message-Id, the recipient and the custom args flattened; parseEvents reads them back", async () => {
      const messageId = await sendOne("Vendor AP <AP@Northwind.Example>", "jPARSE");
      const evs = sim.eventsFor(messageId, "bounce");
      assert.equal(evs.length, 1);
      assert.equal(evs[0][JOB_ID_ARG], "jPARSE", "custom args flattened into the event");
      assert.ok(String(evs[0].sg_message_id).startsWith(messageId + "."));
      const parsed = parseEvents(SendGridSim.serialise([...evs, { event: "click", email: "x@y.example" }, "junk" as unknown as Record<string, unknown>]));
      assert.equal(parsed.length, 2, "a non-object entry is skipped");
      assert.deepEqual(
        { sgMessageId: parsed[0].sgMessageId, event: parsed[0].event, email: parsed[0].email, jobId: parsed[0].jobId, reason: parsed[0].reason },
        { sgMessageId: messageId, event: "bounce", email: "AP@Northwind.Example", jobId: "jPARSE", reason: "550 5.1.1 The email account that you tried to reach does not exist" },
      );
      assert.equal(parsed[0].timestamp, evs[0].timestamp);
      assert.equal(parsed[1].jobId, undefined);
      assert.equal(parseEvents('[{"event":"open","sg_message_id":"abc.filter","unique_args":{"mlc_job_id":"jLEGACY"}}]')[0].jobId, "jLEGACY");
      assert.throws(() => parseEvents("{}"), (e: unknown) => e instanceof ValidationError && e.code === "bad_events");
      assert.throws(() => parseEvents("[{"), (e: unknown) => e instanceof ValidationError && e.code === "bad_events");
    });

    it("maps SendGrid events to message statuses", () => {
      const s = (event: string, raw: Record<string, unknown> = {}) => emailStatusOf({ event, raw });
      assert.deepEqual(s("processed"), { status: "queued" });
      assert.deepEqual(s("deferred"), { status: "sending" });
      assert.deepEqual(s("delivered"), { status: "delivered" });
      assert.deepEqual(s("bounce", { type: "bounce" }), { status: "undelivered", errorCode: "sendgrid_bounce" });
      assert.deepEqual(s("bounce", { type: "blocked" }), { status: "undelivered", errorCode: "sendgrid_blocked" });
      assert.deepEqual(s("dropped"), { status: "failed", errorCode: "sendgrid_dropped" });
      assert.deepEqual(s("open"), { status: "read" });
      assert.deepEqual(s("spamreport"), { status: "undelivered", errorCode: "sendgrid_spamreport" });
      assert.deepEqual(s("unsubscribe"), { status: "undelivered", errorCode: "sendgrid_unsubscribe" });
      assert.equal(s("click"), undefined);
    });
  });

  describe("Mail Send", () => {
    it("202 with X-Message-Id; the ledger has from, to, subject, content and the jobId custom arg", async () => {
      const messageId = await sendOne("Accounts Payable <ap@northwind.example>", "jSEND");
      assert.match(messageId, /^[A-Za-z0-9_-]{22}$/);
      assert.equal(sim.mails.length, 1);
      const m = sim.mails[0];
      assert.equal(m.messageId, messageId);
      assert.deepEqual(m.from, { email: "billing@contoso.example", name: "Billing" });
      assert.deepEqual(m.to, ["ap@northwind.example"]);
      assert.equal(m.subject, "Bill 42");
      assert.deepEqual(m.content, [{ type: "text/plain", value: "Please approve" }]);
      assert.deepEqual(m.customArgs, { [JOB_ID_ARG]: "jSEND" });
      assert.deepEqual(sim.requests.map((r) => [r.method, r.path, r.status, r.auth]), [["POST", "/v3/mail/send", 202, "ok"]]);
    });

    it("one MailService per key: two accounts never share their key", async () => {
      const a = createMailService({ apiKey: DEFAULT_SENDGRID_KEY, apiHost: sim.url });
      const b = createMailService({ apiKey: OTHER_KEY, apiHost: sim.url + "/" });
      await sendEmail(a, { to: "a@x.example", from: "f@x.example", subject: "A", html: "<p>A</p>" });
      await sendEmail(b, { to: "b@x.example", from: "f@x.example", subject: "B", text: "B" });
      await sendEmail(a, { to: "c@x.example", from: "f@x.example", subject: "C", text: "C" });
      assert.deepEqual(sim.requests.map((r) => r.keyIndex), [0, 1, 0]);
      assert.deepEqual(sim.mails[0].content, [{ type: "text/html", value: "<p>A</p>" }]);
    });

    it("SendGrid's validation answer: 400 with every error, mapped to HttpError sendgrid_rejected", async () => {
      const res = await fetch(sim.url + "/v3/mail/send", {
        method: "POST",
        headers: { Authorization: `Bearer ${DEFAULT_SENDGRID_KEY}`, "Content-Type": "application/json" },
        body: JSON.stringify({ personalizations: [{ to: [{ email: "nope" }] }], from: {}, content: [{ type: "text/plain", value: "" }] }),
      });
      assert.equal(res.status, 400);
      const body = (await res.json()) as { errors: { message: string; field: string; help: string }[] };
      assert.deepEqual(body.errors.map((e) => e.field), ["personalizations.0.to.0.email", "from.email", "subject", "content.0.value"]);
      assert.ok(body.errors.every((e) => e.help.startsWith("http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#")));

      await assert.rejects(
        sendEmail(mail(), { to: "ap@northwind.example", from: "not-an-address", subject: "S", text: "T" }),
        (e: unknown) => {
          assert.ok(e instanceof HttpError);
          assert.equal(e.code, "sendgrid_rejected");
          assert.equal(e.status, 400);
          assert.equal(e.vendorCode, "from.email");
          assert.match(e.message, /The from email does not contain a valid address\. \(from\.email\)/);
          assert.equal(e.retryable, false);
          return true;
        },
      );
      assert.equal(sim.mails.length, 0);
    });

    it("401 for a wrong key or none: AuthError, the key in no error text", async () => {
      const wrong = "SG.wrongKeyWrongKey000000.d3JvbmdzZWNyZXR3cm9uZ3NlY3JldDAwMDAwMDAw";
      let caught: unknown;
      try {
        await sendEmail(createMailService({ apiKey: wrong, apiHost: sim.url }), { to: "a@x.example", from: "f@x.example", subject: "S", text: "T" });
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof AuthError);
      assert.equal(caught.code, "auth_failed");
      assert.equal(caught.status, 401);
      assert.equal(caught.cause, undefined, "the SDK error (with its Authorization header) is not kept");
      const text = JSON.stringify(errorDetails(caught)) + String(caught.stack);
      assert.ok(!text.includes(wrong) && !text.includes("wrongKeyWrongKey"), text);
      const none = await fetch(sim.url + "/v3/mail/send", { method: "POST", body: "{}" });
      assert.equal(none.status, 401);
      assert.deepEqual(sim.requests.map((r) => r.auth), ["bad", "none"]);
    });

    it("429 is retried (nothing was processed) and then succeeds with exactly one e-mail", async () => {
      sim.injectFault({ status: 429, retryAfter: 0 }, 2);
      const { messageId } = await sendEmail(mail(), { to: "a@x.example", from: "f@x.example", subject: "S", text: "T" }, { retry: FAST });
      assert.deepEqual(sim.requests.map((r) => r.status), [429, 429, 202]);
      assert.equal(sim.mails.length, 1);
      assert.equal(sim.mails[0].messageId, messageId);
    });

    it("429 beyond the attempts → RateLimitedError with the delay SendGrid asked for", async () => {
      sim.injectFault({ status: 429, retryAfter: 0 }, 5);
      await assert.rejects(sendEmail(mail(), { to: "a@x.example", from: "f@x.example", subject: "S", text: "T" }, { retry: FAST }), (e: unknown) => e instanceof RateLimitedError && e.retryAfterMs === 0 && e.retryable);
      assert.equal(sim.requests.length, 3);
      sim.reset();
      sim.injectFault({ status: 429, retryAfter: 60 }, 1);
      await assert.rejects(sendEmail(mail(), { to: "a@x.example", from: "f@x.example", subject: "S", text: "T" }, { retry: FAST }), RateLimitedError);
      assert.equal(sim.requests.length, 1, "a Retry-After longer than the policy allows gives up at once");
    });

    it("a 5xx is not resent (the e-mail may have been accepted)", async () => {
      sim.injectFault({ status: 503 });
      await assert.rejects(sendEmail(mail(), { to: "a@x.example", from: "f@x.example", subject: "S", text: "T" }, { retry: FAST }), (e: unknown) => e instanceof HttpError && e.status === 503 && e.code === "http_503");
      assert.equal(sim.requests.length, 1);
    });

    it("a refused connection is a TimeoutError with outcomeUnknown false (code connect_failed)", async () => {
      const dead = http.createServer();
      await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
      const port = (dead.address() as AddressInfo).port;
      await new Promise<void>((r) => dead.close(() => r()));
      await assert.rejects(
        sendEmail(createMailService({ apiKey: DEFAULT_SENDGRID_KEY, apiHost: `http://127.0.0.1:${port}` }), { to: "a@x.example", from: "f@x.example", subject: "S", text: "T" }, { retry: { ...FAST, maxAttempts: 2 } }),
        (e: unknown) => e instanceof TimeoutError && !e.outcomeUnknown && e.code === "connect_failed" && !e.message.includes(DEFAULT_SENDGRID_KEY),
      );
    });

    it("createMailService refuses a missing or non-SendGrid key and a bad host; mapSendGridError keeps typed errors", () => {
      assert.throws(() => createMailService({ apiKey: "" }), (e: unknown) => e instanceof ValidationError && e.code === "no_api_key");
      assert.throws(() => createMailService({ apiKey: "AKIAsomethingelse" }), (e: unknown) => e instanceof ValidationError && e.code === "bad_api_key" && !e.message.includes("AKIAsomethingelse"));
      assert.throws(() => createMailService({ apiKey: DEFAULT_SENDGRID_KEY, apiHost: "ftp://x" }), (e: unknown) => e instanceof ValidationError && e.code === "bad_config");
      const v = new ValidationError("x", { code: "y" });
      assert.equal(mapSendGridError(v), v);
      const built = mapSendGridError(new Error("Provide at least one of to, cc or bcc"));
      assert.ok(built instanceof ValidationError && built.code === "invalid_input");
    });
  });

  describe("addresses and templates", () => {
    it("parseEmailAddress takes plain and named addresses, refuses anything else", () => {
      assert.deepEqual(parseEmailAddress(" ap@Northwind.Example "), { email: "ap@northwind.example" });
      assert.deepEqual(parseEmailAddress('"Accounts Payable" <AP@northwind.example>'), { email: "AP@northwind.example", name: "Accounts Payable" });
      for (const bad of ["", "ap", "ap@", "@x.example", "ap@localhost", "a b@x.example", "ap@x..example", 42, undefined, "x".repeat(250) + "@x.example"]) {
        assert.equal(parseEmailAddress(bad), undefined, String(bad));
      }
    });

    it("renderHtmlTemplate escapes {{values}} and keeps {{{raw}}}", () => {
      assert.equal(renderHtmlTemplate("<p>{{v}}</p>{{{r}}}", { v: "Smith & <Sons>", r: "<b>x</b>" }), "<p>Smith &amp; &lt;Sons&gt;</p><b>x</b>");
      assert.throws(() => renderHtmlTemplate("{{#a}}", {}), (e: unknown) => e instanceof ValidationError && e.code === "bad_template");
    });
  });
});
