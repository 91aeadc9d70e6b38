/**
 * End to end, as a palette user gets it (`npm pack` → install into a fresh user dir → Node-RED as its own process):
 * the Exact examples examples/exact/order-confirmation.json and delivery-alert.json deployed unchanged through the
 * Admin API with the environment variables their comments name, driven by ExactSim (strict defaults: subscriptions
 * probed as Exact does, notifications signed with HashCode) and the Twilio/SendGrid simulators.
 * - a new sales order → one confirmation to the contact the order names (OrderedByContactPerson), not the main contact;
 * - a new purchase order → one e-mail to the supplier's contact (SupplierContact has only an e-mail address);
 * - a new goods delivery → one SMS to the delivery contact with the shipping method and tracking number;
 * - a customer whose contacts opted out (IsMailingExcluded) or has none gets nothing, and the skip is in the audit trail
 *   with its reason (opted-out, no-contact-found), listed with the failed sends;
 * - the same change delivered again sends nothing more; a forged notification is refused with 401.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { AUDIT_PROBE, FlowNode, Stack, auditOf, loadExamples, startStack, withCredentialRefs } from "../harness/stack";
import { freePort, tempDir, waitFor } from "../harness/nodered";
import { ExactSim } from "../sims/exact";

const CUSTOMER = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAIN = "2a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const BUYER = "3a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const SUPPLIER = "4b9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const SUPPLIER_MAIN = "5b9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const SUPPLIER_SALES = "6b9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const OPTED_OUT = "7c9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const OPTED_OUT_CONTACT = "8c9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const NOBODY = "9d9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const PUBLIC = "https://nodered.example.com"; // the sim app's redirect-URI domain; the sim delivers it to Node-RED
const CONFIG_ID = "a1c0c0f1900d0e7a";
const TABS = ["e7ad000000000000", "e7ae000000000000"];

/** The two examples (their tabs and the shared config nodes) with the credentials a user types into the dialogs. */
function exampleFlows(refreshToken: string): FlowNode[] {
  return withCredentialRefs(loadExamples("exact"))
    .filter((n) => TABS.includes(n.id) || TABS.includes(String(n.z)) || n.z === undefined && n.type !== "tab")
    .map((n) => {
      if (n.id === CONFIG_ID) return { ...n, credentials: { clientId: "${EXACT_CLIENT_ID}", clientSecret: "${EXACT_CLIENT_SECRET}", refreshToken } };
      if (n.type === "mlc-exact-trigger") return { ...n, credentials: { webhookSecret: "${EXACT_WEBHOOK_SECRET}" } };
      return n;
    });
}

describe("end to end: the Exact order-confirmation and delivery-alert examples in a real Node-RED (packed and installed)", function () {
  this.timeout(240000);
  const sim = new ExactSim();
  let stack: Stack;
  let root: string;

  before(async function () {
    await sim.start();
    sim.put("crm/Accounts", { ID: CUSTOMER, Code: "            000042", Name: "Acme BV", Email: "orders@acme.example", MainContact: MAIN });
    sim.put("crm/Contacts", { ID: MAIN, Account: CUSTOMER, FullName: "Anna de Vries", Mobile: "+31612345678", Email: "anna@acme.example" });
    sim.put("crm/Contacts", { ID: BUYER, Account: CUSTOMER, FullName: "Bas Bakker", BusinessMobile: "+31687654321" });
    sim.put("crm/Accounts", { ID: SUPPLIER, Code: "            000077", Name: "Parts BV", IsSupplier: true, MainContact: SUPPLIER_MAIN });
    sim.put("crm/Contacts", { ID: SUPPLIER_MAIN, Account: SUPPLIER, FullName: "Piet Parts", Mobile: "+31611112222" });
    sim.put("crm/Contacts", { ID: SUPPLIER_SALES, Account: SUPPLIER, FullName: "Sanne Sales", BusinessEmail: "sales@parts.example" });
    sim.put("crm/Accounts", { ID: OPTED_OUT, Name: "Quiet BV", MainContact: OPTED_OUT_CONTACT });
    sim.put("crm/Contacts", { ID: OPTED_OUT_CONTACT, Account: OPTED_OUT, FullName: "Quinten", Mobile: "+31699998888", IsMailingExcluded: true });
    sim.put("crm/Accounts", { ID: NOBODY, Name: "Nobody BV" });
    root = tempDir("mlc-e2e-exact-orders-");
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
      extraFlows: [...exampleFlows(sim.grant()), ...AUDIT_PROBE],
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

  const smsWith = (text: string) => stack.twilio.messages.filter((m) => m.body.includes(text));
  const mailsWith = (text: string) => stack.sendgrid.mails.filter((m) => m.subject.includes(text));
  /** A quiet period long enough for a duplicate to show up. */
  const quiet = () => new Promise((r) => setTimeout(r, 1500));
  const salesOrder = (n: number, account: string, contact?: string): string =>
    String(sim.put("salesorder/SalesOrders", { OrderNumber: n, AmountDC: 250, Currency: "EUR", OrderedBy: account, InvoiceTo: account, DeliverTo: account, ...(contact ? { OrderedByContactPerson: contact } : {}), DeliveryDate: "/Date(1767571200000)/", YourRef: `PO-${n}`, Status: 12 }).OrderID);

  it("deploy subscribes SalesOrders, PurchaseOrders and GoodsDeliveries to their public callbacks", async function () {
    const subs = await waitFor(() => {
      const s = [...sim.subscriptions.values()];
      return s.length >= 3 ? s : undefined;
    }, 30000, "three subscriptions");
    assert.deepEqual(subs.map((s) => `${String(s.Topic)} ${String(s.CallbackURL)}`).sort(), [
      `GoodsDeliveries ${PUBLIC}/mlc/exact/deliveries`,
      `PurchaseOrders ${PUBLIC}/mlc/exact/purchase-orders`,
      `SalesOrders ${PUBLIC}/mlc/exact/sales-orders`,
    ]);
  });

  it("a new sales order: one confirmation by SMS to the contact the order names (not the main contact); a redelivery sends none", async function () {
    const id = salesOrder(7001, CUSTOMER, BUYER);
    assert.deepEqual(await sim.notify("SalesOrders", "Create", id), [200]);
    const [m] = await waitFor(() => (smsWith("order 7001").length ? smsWith("order 7001") : undefined), 20000, "the SMS");
    assert.equal(m.to, "+31687654321");
    assert.equal(m.body, "Bas Bakker, thank you for your order 7001 of 250 EUR, planned delivery 2026-01-05 (your ref PO-7001).");
    assert.deepEqual(await sim.notify("SalesOrders", "Update", id), [200]);
    await quiet();
    assert.equal(smsWith("order 7001").length, 1);
    const id2 = salesOrder(7002, CUSTOMER);
    assert.deepEqual(await sim.notify("SalesOrders", "Create", id2), [200]);
    const [m2] = await waitFor(() => (smsWith("order 7002").length ? smsWith("order 7002") : undefined), 20000, "the second SMS");
    assert.equal(m2.to, "+31612345678", "an order naming nobody goes to the main contact");
  });

  it("a new purchase order: one e-mail to the supplier's contact the order names (she has only an e-mail address)", async function () {
    const id = String(sim.put("purchaseorder/PurchaseOrders", { OrderNumber: 8001, AmountDC: 990, Currency: "EUR", Supplier: SUPPLIER, SupplierName: "Parts BV", SupplierContact: SUPPLIER_SALES, ReceiptDate: "/Date(1767916800000)/", OrderStatus: 10 }).PurchaseOrderID);
    assert.deepEqual(await sim.notify("PurchaseOrders", "Create", id), [200]);
    const [mail] = await waitFor(() => (mailsWith("Purchase order 8001").length ? mailsWith("Purchase order 8001") : undefined), 20000, "the e-mail");
    assert.deepEqual(mail.to, ["sales@parts.example"]);
    assert.equal(mail.subject, "Purchase order 8001");
    await quiet();
    assert.equal(mailsWith("Purchase order 8001").length, 1);
    assert.equal(smsWith("purchase order 8001").length, 0, "not texted to the supplier's main contact");
  });

  it("a new goods delivery: one SMS to the delivery contact with the shipping method and tracking number", async function () {
    const id = String(sim.put("salesorder/GoodsDeliveries", { DeliveryNumber: 9001, DeliveryAccount: CUSTOMER, DeliveryContact: BUYER, ShippingMethodDescription: "PostNL", TrackingNumber: "3SABCD1234567", DeliveryDate: "/Date(1767571200000)/" }).EntryID);
    assert.deepEqual(await sim.notify("GoodsDeliveries", "Create", id), [200]);
    const [m] = await waitFor(() => (smsWith("delivery 9001").length ? smsWith("delivery 9001") : undefined), 20000, "the SMS");
    assert.equal(m.to, "+31687654321");
    assert.equal(m.body, "Bas Bakker, your delivery 9001 is on its way with PostNL, tracking number 3SABCD1234567.");
    for (const forge of ["lowercase", "secret"] as const) assert.deepEqual(await sim.notify("GoodsDeliveries", "Update", id, forge), [401]);
    await quiet();
    assert.equal(smsWith("delivery 9001").length, 1);
  });

  it("an opted-out contact and an account without contacts get nothing; both skips are audited with their reason", async function () {
    const sentBefore = stack.twilio.messages.length + stack.sendgrid.mails.length;
    const quietId = salesOrder(7101, OPTED_OUT);
    const nobodyId = salesOrder(7102, NOBODY);
    assert.deepEqual(await sim.notify("SalesOrders", "Create", quietId), [200]);
    assert.deepEqual(await sim.notify("SalesOrders", "Create", nobodyId), [200]);
    const skipped = await waitFor(async () => {
      const failed = (await auditOf(stack.nodeRed.url)).filter((r) => r.status === "skipped");
      return failed.length >= 2 ? failed : undefined;
    }, 20000, "two skips in the audit trail");
    const reasons = Object.fromEntries(skipped.map((r) => [r.erp?.id, r.error?.code]));
    assert.equal(reasons[quietId], "opted-out");
    assert.equal(reasons[nobodyId], "no-contact-found");
    await quiet();
    assert.equal(stack.twilio.messages.length + stack.sendgrid.mails.length, sentBefore, "nothing sent");
    assert.equal(smsWith("+31699998888").length + stack.twilio.messages.filter((m) => m.to === "+31699998888").length, 0);
  });
});
