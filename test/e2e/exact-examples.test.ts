/**
 * End to end, as a palette user gets it (`npm pack` → install into a fresh user dir → Node-RED as its own process):
 * the Exact example examples/exact/invoice-payment-reminder.json deployed unchanged through the Admin API with the
 * environment variables its comment names, driven by ExactSim (strict defaults: it creates the webhook subscription
 * the way Exact does, probing the callback, and signs notifications with HashCode) and the Twilio/SendGrid simulators.
 * A new invoice → exactly one reminder to the right contact by the right channel; the same change delivered again →
 * none; a forged notification → 401; kill -9 right after a delivery was acknowledged + restart → the reminder is sent
 * once, nothing lost, nothing twice, also when the crash comes while the record's fetch waits for Exact's rate-limit
 * reset (the acknowledged notification is fetched after the restart).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { FlowNode, Stack, loadExamples, startStack, withCredentialRefs } from "../harness/stack";
import { freePort, tempDir, waitFor } from "../harness/nodered";
import { ExactSim } from "../sims/exact";

const ACME = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAIN = "2a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAILONLY = "4b9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAILCONTACT = "5c9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const PUBLIC = "https://nodered.example.com"; // the sim app's redirect-URI domain; the sim delivers it to Node-RED
const CONFIG_ID = "a1c0c0f1900d0e7a";
const TRIGGER_ID = "e7ac000000000001";

/** The example with the credentials a user types into the dialogs (env references; the refresh token pasted). */
function exampleFlows(refreshToken: string): FlowNode[] {
  // this example's tab and the shared config nodes only (the other Exact examples have their own e2e, exact-orders)
  const mine = (n: FlowNode) => n.id === "e7ac000000000000" || n.z === "e7ac000000000000" || (n.z === undefined && n.type !== "tab");
  return withCredentialRefs(loadExamples("exact")).filter(mine).map((n) => {
    if (n.id === CONFIG_ID) return { ...n, credentials: { clientId: "${EXACT_CLIENT_ID}", clientSecret: "${EXACT_CLIENT_SECRET}", refreshToken } };
    if (n.id === TRIGGER_ID) return { ...n, credentials: { webhookSecret: "${EXACT_WEBHOOK_SECRET}" } };
    return n;
  });
}

describe("end to end: the Exact payment-reminder example in a real Node-RED (packed and installed)", function () {
  this.timeout(240000);
  const sim = new ExactSim();
  let stack: Stack;
  let root: string;

  before(async function () {
    await sim.start();
    sim.put("crm/Accounts", { ID: ACME, Code: "            000042", Name: "Acme BV", Email: "ap@acme.example", MainContact: MAIN });
    sim.put("crm/Contacts", { ID: MAIN, Account: ACME, FullName: "Anna de Vries", Mobile: "+31612345678", Email: "anna@acme.example" });
    sim.put("crm/Accounts", { ID: MAILONLY, Code: "            000043", Name: "Beta BV", MainContact: MAILCONTACT });
    sim.put("crm/Contacts", { ID: MAILCONTACT, Account: MAILONLY, FullName: "Bram Smit", Email: "bram@beta.example" });
    root = tempDir("mlc-e2e-exact-ex-");
    const port = await freePort();
    sim.callbackTarget = `http://127.0.0.1:${port}`;
    stack = await startStack({
      userDir: path.join(root, "user"),
      port,
      install: "pack",
      families: [],
      extraEnv: {
        EXACT_BASE_URL: sim.url,
        EXACT_DIVISION: String(sim.division),
        EXACT_REDIRECT_URI: sim.redirectUri,
        EXACT_PUBLIC_URL: PUBLIC,
        EXACT_CLIENT_ID: sim.clientId,
        EXACT_CLIENT_SECRET: sim.clientSecret,
        EXACT_WEBHOOK_SECRET: sim.webhookSecret,
      },
      extraFlows: exampleFlows(sim.grant()),
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await stack?.stop();
    await sim.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const invoice = (n: number, account = ACME): string => String(sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: n, AmountDC: 1512.5, Currency: "EUR", InvoiceTo: account, OrderedBy: account, Status: 20, PaymentReference: `RF${n}`, DueDate: "/Date(1743465600000)/" }).InvoiceID);
  const smsFor = (n: number) => stack.twilio.messages.filter((m) => m.body.includes(`invoice ${n} `));
  const mailsFor = (n: number) => stack.sendgrid.mails.filter((m) => m.subject.includes(`Invoice ${n}:`));
  /** A quiet period long enough for a duplicate to show up: two more full notifications' worth of work. */
  const quiet = () => new Promise((r) => setTimeout(r, 1500));

  it("deploy subscribes SalesInvoices to the public callback, and Exact's validation calls are answered 200", async function () {
    const sub = await waitFor(() => [...sim.subscriptions.values()].find((s) => s.Topic === "SalesInvoices"), 20000, "subscription");
    assert.equal(sub.CallbackURL, `${PUBLIC}/mlc/exact/invoices`);
    const probes = await waitFor(() => {
      const p = sim.log.filter((l) => l.kind === "probe");
      return p.length >= 2 ? p : undefined;
    }, 10000, "two validation calls");
    assert.deepEqual(probes.map((p) => (p as { status: number }).status), probes.map(() => 200));
  });

  it("a new invoice sends exactly one SMS to the main contact's mobile; the same change delivered again sends none", async function () {
    const id = invoice(25000201);
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", id), [200]);
    const [m] = await waitFor(() => (smsFor(25000201).length ? smsFor(25000201) : undefined), 20000, "the SMS");
    assert.equal(m.to, "+31612345678");
    assert.match(m.body, /^Anna de Vries, invoice 25000201 of 1512.5 EUR is due 2025-04-01/);
    assert.deepEqual(await sim.notify("SalesInvoices", "Update", id), [200], "redelivery acknowledged");
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", id), [200]);
    await waitFor(() => sim.apiCalls().filter((e) => e.kind === "api" && decodeURIComponent(e.path).includes(id) && e.path.includes("SalesInvoices")).length >= 3, 10000, "the redeliveries fetched");
    await quiet();
    assert.equal(smsFor(25000201).length, 1);
  });

  it("a customer whose contact has only an e-mail address gets one e-mail", async function () {
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", invoice(25000202, MAILONLY)), [200]);
    const [mail] = await waitFor(() => (mailsFor(25000202).length ? mailsFor(25000202) : undefined), 20000, "the e-mail");
    assert.deepEqual(mail.to, ["bram@beta.example"]);
    await quiet();
    assert.equal(mailsFor(25000202).length, 1);
    assert.equal(smsFor(25000202).length, 0);
  });

  it("a burst of 10 invoices for one customer: 10 SMS at no more than 1.1 Exact API calls per reminder (enrichment cached)", async function () {
    const before = sim.apiCalls().length;
    const numbers = Array.from({ length: 10 }, (_, i) => 25000300 + i);
    for (const n of numbers) assert.deepEqual(await sim.notify("SalesInvoices", "Create", invoice(n)), [200]);
    await waitFor(() => numbers.every((n) => smsFor(n).length === 1) || undefined, 30000, "10 SMS");
    await quiet();
    const calls = sim.apiCalls().length - before;
    process.stdout.write(`      (${calls} Exact API calls for ${numbers.length} reminders: ${(calls / numbers.length).toFixed(2)} per reminder)\n`);
    assert.ok(calls / numbers.length <= 1.1, `${calls} calls`);
    assert.ok(numbers.every((n) => smsFor(n).length === 1));
  });

  it("a forged notification is refused with 401 and sends nothing", async function () {
    const id = invoice(25000203);
    for (const forge of ["lowercase", "secret", "reencoded"] as const) assert.deepEqual(await sim.notify("SalesInvoices", "Create", id, forge), [401]);
    await quiet();
    assert.equal(smsFor(25000203).length, 0);
  });

  it("kill -9 right after a delivery was acknowledged, then a restart: the reminder is sent once, nothing lost, nothing twice", async function () {
    const id = invoice(25000204);
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", id), [200]);
    await stack.nodeRed.kill(); // SIGKILL: whatever was in flight after the 200 is cut off
    await stack.nodeRed.start();
    await waitFor(() => (smsFor(25000204).length ? true : undefined), 30000, "the reminder after the restart");
    assert.deepEqual(await sim.notify("SalesInvoices", "Update", id), [200], "a redelivery after the restart");
    await quiet();
    assert.equal(smsFor(25000204).length, 1);
    assert.equal(smsFor(25000201).length, 1, "nothing earlier sent again");
    assert.equal([...sim.subscriptions.values()].filter((s) => s.Topic === "SalesInvoices").length, 1, "the restart did not subscribe twice");
  });

  it("kill -9 while the record's fetch waits for Exact's minute to reset: after the restart it is fetched and reminded once", async function () {
    const id = invoice(25000205);
    sim.spendMinute(); // another app used this minute's allowance: the fetch gets 429 and waits for the reset
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", id), [200], "acknowledged (journaled) before any fetch");
    await waitFor(() => sim.apiCalls().some((e) => e.kind === "api" && e.status === 429 && decodeURIComponent(e.path).includes(id)), 20000, "the fetch refused with 429");
    assert.equal(smsFor(25000205).length, 0);
    await stack.nodeRed.kill();
    await stack.nodeRed.start();
    await waitFor(() => (smsFor(25000205).length ? true : undefined), 150000, "the reminder after the restart and the reset");
    await quiet();
    assert.equal(smsFor(25000205).length, 1);
    assert.ok(sim.apiCalls().filter((e) => e.kind === "api" && e.status === 429).length <= 2, "a 429 waits for the reset; no retry storm");
  });
});
