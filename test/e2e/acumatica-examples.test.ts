/**
 * End to end, as a palette user gets it: `npm pack` → `npm install` into a fresh Node-RED user dir →
 * Node-RED started as its own process → GET /nodes lists every type with no load error → the Acumatica
 * examples deployed through the Admin API → driven against the simulators → assertions on what the
 * simulators recorded. MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { signTwilioRequest } from "../sims/twilio";
import { AUDIT_PROBE, AuditRecordView, auditOf, billRow, FlowNode, loadExamples, Stack, startStack } from "../harness/stack";
import { tempDir, waitFor } from "../harness/nodered";

const PACKAGE = "node-red-contrib-ml-connector";
const ALL_TYPES = ["mlc-acumatica-config", "mlc-acumatica-trigger", "mlc-acumatica-fetch", "mlc-intacct-config", "mlc-intacct-fetch", "mlc-twilio-config", "mlc-twilio-sms", "mlc-twilio-call", "mlc-twilio-verify", "mlc-twilio-status", "mlc-twilio-email", "mlc-dedupe", "mlc-audit", "mlc-exact-config", "mlc-exact-fetch", "mlc-bc-config", "mlc-bc-trigger", "mlc-bc-fetch", "mlc-sapb1-config", "mlc-sapb1-fetch", "mlc-sapb1-trigger", "mlc-intacct-trigger", "mlc-exact-trigger", "mlc-route"];

function jobIdOf(statusCallback: string | null): string {
  return new URL(String(statusCallback)).searchParams.get("j") ?? "";
}

describe("end to end: Acumatica examples in a real Node-RED (packed and installed)", function () {
  this.timeout(240000);
  let stack: Stack;
  let root: string;
  let exampleFlows: FlowNode[];

  before(async function () {
    root = tempDir("mlc-e2e-");
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", pollIntervalSec: 1, extraFlows: AUDIT_PROBE });
    exampleFlows = (await stack.nodeRed.getJson<FlowNode[]>("/flows")).filter((n) => !String(n.id).startsWith("e2e"));
  });

  afterEach(function () {
    // On failure, show what Node-RED logged: the fastest way to see why.
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await stack?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const audit = (jobId: string): Promise<AuditRecordView[]> => auditOf(stack.nodeRed.url, jobId);

  it("runs the expected Node-RED line", async function () {
    const settings = await stack.nodeRed.getJson<{ version: string }>("/settings");
    process.stdout.write(`      (Node-RED ${settings.version})\n`);
    const expected = process.env.MLC_EXPECT_NODE_RED_MAJOR;
    if (expected) assert.equal(settings.version.split(".")[0], expected);
    else assert.match(settings.version, /^\d+\.\d+\.\d+/);
  });

  it("loads every node type from the installed tarball with no load error", async function () {
    const sets = await stack.nodeRed.getJson<{ module: string; types: string[]; err?: string; enabled: boolean }[]>("/nodes");
    const ours = sets.filter((s) => s.module === PACKAGE);
    assert.deepEqual(ours.map((s) => s.err ?? null), ours.map(() => null), JSON.stringify(ours.map((s) => s.err)));
    assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...ALL_TYPES].sort());
    const installed = path.join(root, "user", "node_modules", PACKAGE);
    assert.ok(fs.existsSync(path.join(installed, "dist", "nodes", "twilio.html")), "editor file shipped");
    assert.ok(fs.existsSync(path.join(installed, "dist", "nodes", "locales", "en-US", "acumatica.html")), "help shipped");
    assert.ok(!fs.lstatSync(installed).isSymbolicLink(), "installed, not linked");
  });

  it("deployed all three example tabs", function () {
    const tabs = exampleFlows.filter((n) => n.type === "tab").map((n) => n.label);
    assert.deepEqual(tabs.sort(), ["Bill approval SMS", "Delivery status to audit and bill note", "Failed payment alert"]);
    assert.equal(exampleFlows.length, loadExamples().length);
  });

  let billJob = "";
  let billSid = "";

  it("a push notification delivered three times sends one SMS to the approver", async function () {
    const bill = stack.acumatica.get("Bill", ["Bill", "000123"]) as Record<string, unknown>;
    const statuses = await stack.pushBills([billRow(bill, "Contoso Freight LLC", "EP00000001")], 3);
    assert.deepEqual(statuses, [200, 200, 200]);
    const msgs = await waitFor(() => (stack.twilio.messages.length >= 1 ? stack.twilio.messages : undefined), 15000, "one SMS");
    await new Promise((r) => setTimeout(r, 1500)); // give any duplicate a chance to show up
    assert.equal(stack.twilio.messages.length, 1);
    const m = msgs[0];
    assert.equal(m.to, "+14155550132"); // "(415) 555-0132" normalised with region US
    assert.equal(m.from, "+15005550006");
    assert.match(m.body, /bill 000123 from Contoso Freight LLC for 1250 USD/);
    assert.match(String(m.statusCallback), new RegExp(`^${stack.env.PUBLIC_BASE_URL}/mlc/twilio/status\\?j=j[0-9a-f]{32}$`));
    billJob = jobIdOf(m.statusCallback);
    billSid = m.sid;
    const recs = await waitFor(async () => ((await audit(billJob)).length ? audit(billJob) : undefined), 10000, "audit record");
    assert.equal(recs[0].sid, billSid);
    assert.equal(recs[0].to.includes("0132"), false, "recipient is masked in the audit trail");
  });

  it("delivery statuses come back signed into the audit trail and a note on the bill", async function () {
    const results = await stack.twilio.deliver(billSid, "delivered");
    assert.deepEqual(results.map((r) => r.status), [200, 200]);
    const rec = await waitFor(async () => (await audit(billJob)).find((r) => r.status === "delivered"), 10000, "delivered in audit");
    assert.deepEqual(rec.history.map((h) => h.status), ["pending", "queued", "sent", "delivered"]); // opened before the create
    const note = await waitFor(() => {
      const b = stack.acumatica.get("Bill", ["Bill", "000123"]) as Record<string, unknown>;
      return typeof b.note === "string" && b.note.includes("delivered") ? b.note : undefined;
    }, 10000, "note on bill");
    assert.match(note, new RegExp(`SMS delivered to \\+1•+32 .*\\(${billSid}\\)`));
  });

  it("a forged status callback gets 403 and changes nothing; a late 'sent' is ignored", async function () {
    const url = `${stack.env.PUBLIC_BASE_URL}/mlc/twilio/status?j=${billJob}`;
    const params = { MessageSid: billSid, MessageStatus: "failed", AccountSid: stack.twilio.defaultAccount.accountSid, ErrorCode: "30003" };
    const forged = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signTwilioRequest("not-the-token", url, params) },
      body: new URLSearchParams(params).toString(),
    });
    assert.equal(forged.status, 403);
    const late = await stack.twilio.sendStatusCallbacks(billSid, ["sent"]);
    assert.equal(late[0].status, 200);
    await new Promise((r) => setTimeout(r, 500));
    const rec = (await audit(billJob))[0];
    assert.equal(rec.status, "delivered");
    assert.deepEqual(rec.history.map((h) => h.status), ["pending", "queued", "sent", "delivered"]); // opened before the create
  });

  it("an invalid phone number fails that message with a clear error while the others go through", async function () {
    const before = stack.twilio.messages.length;
    const b124 = stack.acumatica.get("Bill", ["Bill", "000124"]) as Record<string, unknown>;
    const b122 = stack.acumatica.get("Bill", ["Bill", "000122"]) as Record<string, unknown>;
    const b121 = stack.acumatica.get("Bill", ["Bill", "000121"]) as Record<string, unknown>;
    // Priya (EP00000003) has "555-01" on file; David (EP00000002) a valid number; bill 000121 is below the threshold.
    await stack.pushBills([billRow(b124, "Contoso Freight LLC", "EP00000003"), billRow(b122, "Fabrikam Maintenance", "EP00000002"), billRow(b121, "Bayside Office Supply", "EP00000001")]);
    await waitFor(() => stack.twilio.messages.length >= before + 1, 15000, "second SMS");
    const failed = await waitFor(async () => {
      const list = await auditOf(stack.nodeRed.url);
      return list.find((x) => x.erp?.id === "Bill/000124");
    }, 10000, "failed send in audit");
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(stack.twilio.messages.length, before + 1, "only the valid number was texted; 000121 is below threshold");
    assert.equal(stack.twilio.messages[before].to, "+12125550187");
    assert.equal(failed.error?.code, "invalid_phone");
    assert.match(failed.error?.message ?? "", /not a valid phone number/);
  });

  it("a final status appends to the bill's note: what a clerk wrote is kept", async function () {
    stack.acumatica.upsert("Bill", { Type: "Bill", ReferenceNbr: "000122", note: "Clerk: hold until the credit memo arrives" });
    const m = stack.twilio.messages.find((x) => x.to === "+12125550187");
    assert.ok(m, "bill 000122 was texted in the previous test");
    await stack.twilio.deliver(m.sid, "delivered");
    const note = await waitFor(() => {
      const b = stack.acumatica.get("Bill", ["Bill", "000122"]) as Record<string, unknown>;
      return typeof b.note === "string" && b.note.includes("SMS delivered") ? b.note : undefined;
    }, 10000, "note appended on bill 000122");
    assert.match(note, new RegExp(`^Clerk: hold until the credit memo arrives\nml-connector: SMS delivered to \\+1•+87 .*\\(${m.sid}\\)$`));
  });

  it("polls a newly voided payment and alerts the controller once", async function () {
    const before = stack.twilio.messages.length;
    stack.acumatica.upsert("Payment", {
      Type: "Payment", ReferenceNbr: "000313", CustomerID: "C000017", PaymentAmount: 412.75, Status: "Voided",
      PaymentMethod: "VISA", CurrencyID: "USD", Description: "Card declined (insufficient funds)", ApplicationDate: "2025-03-12T00:00:00+00:00",
    });
    const m = await waitFor(() => stack.twilio.messages.slice(before).find((x) => x.to === "+14155550199"), 15000, "payment alert");
    assert.match(m.body, /Payment 000313 from customer C000017 failed: Card declined \(insufficient funds\)/);
    await new Promise((r) => setTimeout(r, 3000)); // several more polls with overlap
    assert.equal(stack.twilio.messages.slice(before).length, 1);
  });

  it("after a restart, the poll sends nothing new and a redelivered push sends nothing", async function () {
    const before = stack.twilio.messages.length;
    const pushedIds = stack.acumatica.pushDeliveries.map((d) => d.id);
    await stack.nodeRed.restart();
    await new Promise((r) => setTimeout(r, 4000)); // several poll intervals after the restart
    const bill = stack.acumatica.get("Bill", ["Bill", "000123"]) as Record<string, unknown>;
    // Acumatica re-sends the first notification (same Id) after the restart.
    await stack.pushBills([billRow(bill, "Contoso Freight LLC", "EP00000001")], 1, pushedIds[0]);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(stack.twilio.messages.length, before);
  });

  it("keeps every secret out of flows, exports, logs and disk", async function () {
    const flowsText = JSON.stringify(await stack.nodeRed.getJson<unknown>("/flows"));
    const onDisk = fs.readFileSync(path.join(root, "user", "flows.json"), "utf8");
    const credsOnDisk = fs.readFileSync(path.join(root, "user", "flows_cred.json"), "utf8");
    const log = stack.nodeRed.log.join("\n");
    const secrets = [stack.env.TWILIO_AUTH_TOKEN, stack.env.ACUMATICA_CLIENT_SECRET, stack.env.ACUMATICA_PASSWORD, stack.pushSecret];
    for (const s of secrets) {
      assert.equal(flowsText.includes(s), false, "GET /flows");
      assert.equal(onDisk.includes(s), false, "flows.json");
      assert.equal(credsOnDisk.includes(s), false, "flows_cred.json is encrypted");
      assert.equal(log.includes(s), false, "Node-RED log");
    }
    assert.ok(stack.twilio.messages.every((m) => !m.body.includes(stack.env.ACUMATICA_PASSWORD)));
  });
});
