/**
 * End to end for the Twilio examples (examples/twilio/), packed and installed into a real Node-RED:
 * a call with keypress acknowledgement and escalation to a second call and an e-mail, forged call
 * callbacks, Verify passcodes (approved, expired), STOP followed by a send, SendGrid events into the audit
 * trail, and a burst of 200 messages at a 10 per second budget against a Twilio that refuses more than 5
 * concurrent requests.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { signTwilioRequest } from "../sims/twilio";
import { AUDIT_PROBE, auditOf, Stack, startStack } from "../harness/stack";
import { tempDir, waitFor } from "../harness/nodered";

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const jobOf = (url: string | null): string => new URL(String(url)).searchParams.get("j") ?? "";

describe("end to end: Twilio examples in a real Node-RED (packed and installed)", function () {
  this.timeout(300000);
  let stack: Stack;
  let root: string;

  before(async function () {
    root = tempDir("mlc-e2e-tw-");
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", families: ["twilio"], extraFlows: AUDIT_PROBE, twilio: { concurrencyLimit: 5, latencyMs: 20 } });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await stack?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const post = async (p: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await fetch(`${stack.nodeRed.url}${p}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };

  it("deployed the four Twilio example tabs with no error", async function () {
    const flows = await stack.nodeRed.getJson<{ type: string; label?: string }[]>("/flows");
    const tabs = flows.filter((n) => n.type === "tab" && !String(n.label).startsWith("e2e")).map((n) => n.label).sort();
    assert.deepEqual(tabs, ["Overdue invoice: call, escalate, e-mail", "Reminders with opt-outs and quiet hours", "Twilio events: statuses, inbound, e-mail events", "Verify: gate vendor bank-detail changes"]);
    assert.equal(stack.nodeRed.log.filter((l) => /\[error\]/.test(l)).length, 0, stack.nodeRed.log.filter((l) => /\[error\]/.test(l)).join("\n"));
  });

  it("an overdue invoice is read out naturally; pressing 1 acknowledges it and nobody else is called", async function () {
    await stack.nodeRed.inject("c1c1000000000001");
    const call = await waitFor(() => stack.twilio.calls[0], 10000, "first call");
    assert.equal(call.to, "+14155550132");
    const answered = await stack.twilio.answerCall(call.sid, { digits: "1" });
    assert.equal(answered.status, 200);
    assert.match(call.spokenText, /Invoice I N V, 1 0 4 2 for Northwind Traders, 4,820 dollars, was due on Sunday, March 23, 2025 and is still unpaid\. Press 1 to confirm/);
    await stack.twilio.progressCall(call.sid, "completed");
    const rec = await waitFor(async () => (await auditOf(stack.nodeRed.url, jobOf(call.statusCallback))).find((r) => r.status === "completed"), 10000, "call completed in audit");
    assert.equal(rec.channel, "voice");
    await pause(1500);
    assert.equal(stack.twilio.calls.length, 1, "acknowledged: no escalation call");
    assert.equal(stack.sendgrid.mails.length, 0);
  });

  it("forged call callbacks (status and keypress) get 403 and change nothing", async function () {
    const call = stack.twilio.calls[0];
    for (const p of ["/mlc/twilio/overdue-status", "/mlc/twilio/overdue-1/gather"]) {
      const url = `${stack.env.PUBLIC_BASE_URL}${p}?j=${jobOf(call.statusCallback)}`;
      const params = { CallSid: call.sid, CallStatus: "failed", Digits: "1", AccountSid: stack.twilio.defaultAccount.accountSid };
      const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signTwilioRequest("forged-token", url, params) }, body: new URLSearchParams(params).toString() });
      assert.equal(r.status, 403, p);
    }
    const recs = await auditOf(stack.nodeRed.url, jobOf(call.statusCallback));
    assert.equal(recs[0].status, "completed");
  });

  it("no keypress escalates to the backup contact, then to an e-mail whose signed SendGrid events reach the audit trail", async function () {
    const calls0 = stack.twilio.calls.length;
    await stack.nodeRed.inject("c1c1000000000001");
    const first = await waitFor(() => stack.twilio.calls[calls0], 10000, "first call");
    await stack.twilio.answerCall(first.sid, { noInput: true });
    const second = await waitFor(() => stack.twilio.calls[calls0 + 1], 10000, "backup call");
    assert.equal(second.to, "+12125550187");
    await stack.twilio.progressCall(second.sid, "no-answer");
    const mail = await waitFor(() => stack.sendgrid.mails[0], 10000, "e-mail");
    assert.deepEqual(mail.to, ["controller@acme.example"]);
    assert.match(mail.subject, /Unacknowledged: invoice INV-1042 is overdue/);
    const jobId = mail.customArgs.mlc_job_id;
    assert.ok(jobId);
    const posted = await stack.sendgrid.deliver(mail.messageId, "delivered");
    assert.equal(posted.status, 200);
    const forged = await stack.sendgrid.sendEvents(String(stack.sendgrid.eventWebhookUrl), stack.sendgrid.eventsFor(mail.messageId, "bounce"), { tamper: true });
    assert.equal(forged.status, 403);
    const rec = await waitFor(async () => (await auditOf(stack.nodeRed.url, jobId)).find((r) => r.channel === "email" && r.status === "delivered"), 10000, "e-mail delivered in audit");
    assert.deepEqual(rec.history.map((h) => h.status), ["queued", "delivered"]);
  });

  it("Verify gates a bank-detail change: the right code is approved, an expired code is refused", async function () {
    const phone = "+14155550166";
    assert.deepEqual((await post("/examples/bank-details/request", { phone })).json, { result: "pending" });
    const v1 = stack.twilio.getVerification(phone);
    assert.ok(v1);
    assert.deepEqual((await post("/examples/bank-details/confirm", { phone, code: v1.code })).json, { result: "approved" });

    assert.deepEqual((await post("/examples/bank-details/request", { phone })).json, { result: "pending" });
    const v2 = stack.twilio.getVerification(phone);
    assert.ok(v2 && v2.sid !== v1.sid);
    stack.twilio.expireVerification(v2.sid);
    assert.deepEqual((await post("/examples/bank-details/confirm", { phone, code: v2.code })).json, { result: "expired" });
  });

  it("a STOP reply is honoured: the next reminder is not sent, and the refusal is in the audit trail", async function () {
    const phone = "+14155550177";
    const r = await stack.twilio.sendInbound(`${stack.env.PUBLIC_BASE_URL}/mlc/twilio/events/inbound`, { from: phone, to: "+15005550006", body: "STOP" });
    assert.equal(r.status, 200);
    const before = stack.twilio.messages.length;
    assert.equal((await post("/examples/reminder", { phone, text: "Invoice INV-1042 is overdue", urgent: true })).status, 202);
    const refused = await waitFor(async () => (await auditOf(stack.nodeRed.url)).find((x) => x.error?.code === "opted_out"), 10000, "opted_out in audit");
    assert.equal(refused.status, "failed");
    assert.equal(refused.to.includes("0177"), false, "masked");
    await pause(500);
    assert.equal(stack.twilio.messages.length, before, "nothing sent to the opted-out number");
  });

  it("a burst of 200 reminders at the account's 10 per second budget meets no 429", async function () {
    const before = stack.twilio.messages.length;
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post("/examples/reminder", { phone: `+1312555${String(2000 + i)}`, text: `Reminder ${i}`, urgent: true })));
    assert.ok(answers.every((a) => a.status === 202));
    await waitFor(() => stack.twilio.messages.length >= before + 200, 60000, "200 messages");
    assert.equal(stack.twilio.rejected429, 0, "Twilio refused nothing");
    assert.equal(stack.twilio.messages.length, before + 200);
  });
});
