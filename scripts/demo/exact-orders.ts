/**
 * The order side of Exact Online's story (examples/exact/order-confirmation.json, delivery-alert.json), told after the
 * invoice reminders of exact.ts: a sales order confirmed by SMS to the buyer the order names; a purchase order sent
 * for confirmation by e-mail to the supplier's contact, who has only an address; a goods delivery announced by SMS
 * with its tracking number; an order of a customer whose contact opted out sends nothing and is audited "opted-out".
 * mlc-exact-fetch picks the contact (msg.recipient); mlc-route splits SMS / e-mail / nobody.
 */
import { ExactSim } from "../../test/sims/exact";
import { DemoContext, audit, auditLine, check, expect, sleep } from "./common";

const ACME = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"; // exact.ts's customer (main contact Anna de Vries)
const BAS = "3b1e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const PARTS = "6c1e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const PIET = "7c1e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const SANNE = "8c1e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const QUIET = "9d1e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const QUINTEN = "ad1e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";

/** The parties of the order story (ACME itself is put by exact.ts). */
export function prepareOrders(s: ExactSim): void {
  s.put("crm/Contacts", { ID: BAS, Account: ACME, FullName: "Bas Bakker", BusinessMobile: "+31687654321" });
  s.put("crm/Accounts", { ID: PARTS, Code: "            000077", Name: "Parts BV", IsSupplier: true, MainContact: PIET });
  s.put("crm/Contacts", { ID: PIET, Account: PARTS, FullName: "Piet Parts", Mobile: "+31611112222" });
  s.put("crm/Contacts", { ID: SANNE, Account: PARTS, FullName: "Sanne Sales", BusinessEmail: "sales@parts.example" });
  s.put("crm/Accounts", { ID: QUIET, Name: "Quiet BV", MainContact: QUINTEN });
  s.put("crm/Contacts", { ID: QUINTEN, Account: QUIET, FullName: "Quinten", Mobile: "+31699998888", IsMailingExcluded: true });
}

function sim(ctx: DemoContext): ExactSim {
  const s = ctx.stack.erps.exact;
  if (!s) throw new Error("the Exact simulator is not running");
  return s;
}
const smsWith = (ctx: DemoContext, text: string) => ctx.stack.twilio.messages.filter((m) => m.body.includes(text));
const salesOrder = (s: ExactSim, n: number, account: string, contact?: string): string =>
  String(s.put("salesorder/SalesOrders", { OrderNumber: n, AmountDC: 250, Currency: "EUR", OrderedBy: account, InvoiceTo: account, DeliverTo: account, ...(contact ? { OrderedByContactPerson: contact } : {}), DeliveryDate: "/Date(1767571200000)/", YourRef: `PO-${n}`, Status: 12 }).OrderID);

/** Steps 5-8; returns the sids of the SMS sent. */
export async function orders(ctx: DemoContext): Promise<string[]> {
  const { out } = ctx;
  const s = sim(ctx);
  out();
  out("5. Sales order 7001 of Acme BV names its buyer Bas Bakker (a mobile number): the confirmation goes to him:");
  out(`   webhook → HTTP ${(await s.notify("SalesOrders", "Create", salesOrder(s, 7001, ACME, BAS))).join(", ")}`);
  const conf = await expect(ctx, () => smsWith(ctx, "order 7001")[0], 30000, "the order confirmation");
  if (conf) out(`   ${conf.sid}  to ${conf.to}  "${conf.body}"`);

  out();
  out("6. Purchase order 8001 to Parts BV names Sanne Sales, who has only an e-mail address:");
  const po = String(s.put("purchaseorder/PurchaseOrders", { OrderNumber: 8001, AmountDC: 990, Currency: "EUR", Supplier: PARTS, SupplierName: "Parts BV", SupplierContact: SANNE, ReceiptDate: "/Date(1767916800000)/", OrderStatus: 10 }).PurchaseOrderID);
  out(`   webhook → HTTP ${(await s.notify("PurchaseOrders", "Create", po)).join(", ")}`);
  const mail = await expect(ctx, () => ctx.stack.sendgrid.mails.find((m) => m.subject.includes("Purchase order 8001")), 30000, "the purchase-order e-mail");
  if (mail) out(`   e-mail through SendGrid to ${mail.to.join(", ")}: "${mail.subject}"`);

  out();
  out("7. Goods delivery 9001 to Acme BV (delivery contact Bas Bakker), shipped with PostNL:");
  const del = String(s.put("salesorder/GoodsDeliveries", { DeliveryNumber: 9001, DeliveryAccount: ACME, DeliveryContact: BAS, ShippingMethodDescription: "PostNL", TrackingNumber: "3SABCD1234567", DeliveryDate: "/Date(1767571200000)/" }).EntryID);
  out(`   webhook → HTTP ${(await s.notify("GoodsDeliveries", "Create", del)).join(", ")}`);
  const alert = await expect(ctx, () => smsWith(ctx, "delivery 9001")[0], 30000, "the delivery alert");
  if (alert) out(`   ${alert.sid}  to ${alert.to}  "${alert.body}"`);

  out();
  out("8. Sales order 7101 of Quiet BV, whose only contact is excluded from mailings (IsMailingExcluded):");
  const quiet = salesOrder(s, 7101, QUIET);
  out(`   webhook → HTTP ${(await s.notify("SalesOrders", "Create", quiet)).join(", ")}`);
  const skip = await expect(ctx, async () => (await audit(ctx)).find((r) => r.erp?.id === quiet), 30000, "the skip in the audit trail");
  await sleep(1000);
  if (skip) out(`   nothing sent (SMS about 7101: ${smsWith(ctx, "order 7101").length}); audit: ${auditLine(skip)}`);
  check(ctx, smsWith(ctx, "order 7101").length === 0 && skip?.error?.code === "opted-out", "order 7101 skipped and audited as opted-out");
  check(ctx, smsWith(ctx, "order 7001").length === 1 && smsWith(ctx, "delivery 9001").length === 1, "one confirmation and one delivery alert");
  return [conf, alert].flatMap((m) => (m ? [m.sid] : []));
}
