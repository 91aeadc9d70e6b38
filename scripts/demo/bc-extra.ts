/**
 * The rest of Business Central's story (examples/bc/payment-receipt-sms.json, credit-limit-warning.json,
 * vendor-bank-details-verify.json), told between the approval and the overdue steps of bc.ts: a payment applied to an
 * invoice texts the customer one receipt; a posted invoice that puts a customer over its credit limit warns the
 * controller once a day; a vendor whose bank details changed (payments on hold) is released only after the approver
 * confirms the Verify passcode: a wrong code writes nothing, the right one PATCHes the vendor with If-Match.
 */
import { BcRow, BcSim } from "../../test/sims/bc";
import { DemoContext, check, expect, sleep } from "./common";

const CONTROLLER = "+14155550199"; // CONTROLLER_PHONE in the demo's environment

function sim(ctx: DemoContext): BcSim {
  const s = ctx.stack.erps.bc;
  if (!s) throw new Error("the Business Central simulator is not running");
  return s;
}
const inMonth = (): string => new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
const texts = (ctx: DemoContext, re: RegExp) => ctx.stack.twilio.messages.filter((m) => re.test(m.body));

/** Let BC send what its batch window holds; print the answers. */
async function notify(ctx: DemoContext, what: string): Promise<void> {
  const answers = (await sim(ctx).flush()).map((d) => d.status);
  ctx.out(`   ${what} → HTTP ${answers.length ? answers.join(", ") : "(nothing to send)"}`);
}

/** Step 4: payment receipt. Returns the receipt's sid. */
export async function receipt(ctx: DemoContext): Promise<string[]> {
  const { out } = ctx;
  const s = sim(ctx);
  out();
  out("4. A payment is applied to invoice PS-INV3001 of Trey Research (the invoice becomes Paid): one receipt SMS:");
  const cust = s.upsert("customers", { number: "C00050", displayName: "Trey Research", phoneNumber: "+14155550111", balanceDue: 420, creditLimit: 10000, currencyCode: "USD" });
  const inv = s.upsert("salesInvoices", { number: "PS-INV3001", status: "Open", customerId: cust.id, customerName: "Trey Research", remainingAmount: 420, totalAmountIncludingTax: 420, currencyCode: "USD", phoneNumber: "+14155550111", dueDate: inMonth() });
  await notify(ctx, "notification: invoice posted (Open)");
  s.upsert("salesInvoices", { id: inv.id, status: "Paid", remainingAmount: 0 });
  await notify(ctx, "notification: invoice Paid");
  const sms = await expect(ctx, () => texts(ctx, /PS-INV3001/)[0], 30000, "the payment receipt");
  if (sms) out(`   ${sms.sid}  to ${sms.to}  "${sms.body}"`);
  s.upsert("salesInvoices", { id: inv.id, promisedPayDate: new Date().toISOString().slice(0, 10) });
  await notify(ctx, "a later change to the paid invoice");
  await sleep(1500);
  out(`   receipts for PS-INV3001: ${texts(ctx, /PS-INV3001/).length} (once per invoice)`);
  check(ctx, texts(ctx, /PS-INV3001/).length === 1, "one receipt for PS-INV3001");
  return sms ? [sms.sid] : [];
}

/** Step 5: credit-limit warning. Returns the warning's sid. */
export async function creditLimit(ctx: DemoContext): Promise<string[]> {
  const { out } = ctx;
  const s = sim(ctx);
  out();
  out("5. Posting invoice PS-INV3101 puts Lakeside Bikes (C00042, limit 5000) at 5820.75 USD: the controller is warned:");
  const cust = s.upsert("customers", { number: "C00042", displayName: "Lakeside Bikes Ltd.", phoneNumber: "+14155550120", balanceDue: 3420.75, creditLimit: 5000, currencyCode: "USD" });
  await notify(ctx, "notification: customer (under its limit)");
  (s.rows.get("customers")?.get(cust.id) as BcRow).balanceDue = 5820.75; // a calculated field: BC notifies about the invoice
  s.upsert("salesInvoices", { number: "PS-INV3101", status: "Open", customerId: cust.id, customerName: "Lakeside Bikes Ltd.", remainingAmount: 2400, totalAmountIncludingTax: 2400, currencyCode: "USD", phoneNumber: "+14155550120", dueDate: inMonth() });
  await notify(ctx, "notification: invoice posted");
  const sms = await expect(ctx, () => texts(ctx, /^Credit limit: Lakeside/)[0], 30000, "the credit-limit warning");
  if (sms) out(`   ${sms.sid}  to ${sms.to}  "${sms.body}"`);
  s.upsert("customers", { id: cust.id, creditLimit: 4000 });
  await notify(ctx, "the limit lowered the same day (still over)");
  await sleep(1500);
  out(`   warnings about C00042: ${texts(ctx, /^Credit limit: Lakeside/).length} (once per customer per day)`);
  check(ctx, texts(ctx, /^Credit limit: Lakeside/).length === 1 && sms?.to === CONTROLLER, "one warning, to the controller");
  return sms ? [sms.sid] : [];
}

async function confirm(ctx: DemoContext, vendorId: string, code: string): Promise<string> {
  const r = await fetch(`${ctx.stack.nodeRed.url}/examples/bc/vendor-bank/confirm`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ vendorId, code }) });
  return `HTTP ${r.status} ${await r.text()}`;
}

/** Step 6: Verify-gated write-back of a vendor's payment hold. */
export async function bankDetails(ctx: DemoContext): Promise<void> {
  const { out, stack } = ctx;
  const s = sim(ctx);
  const patches = () => s.apiCalls((c) => c.method === "PATCH" && c.path.includes("/vendors("));
  out();
  out("6. AP changes the bank account of vendor V00010 Contoso Freight and holds its payments (blocked = Payment):");
  const v = s.upsert("vendors", { number: "V00010", displayName: "Contoso Freight", phoneNumber: "+14155550130", blocked: "_x0020_", balance: 0, currencyCode: "USD" });
  await notify(ctx, "notification: vendor created (no hold)");
  s.upsert("vendors", { id: v.id, blocked: "Payment" });
  await notify(ctx, "notification: vendor on hold");
  const ver = await expect(ctx, () => stack.twilio.verifications.find((x) => x.to === CONTROLLER && x.status === "pending"), 30000, "the Verify passcode");
  if (!ver) return;
  out(`   Verify passcode sent to the approver ${ver.to} (${ver.sid})`);
  out(`   a wrong code → ${await confirm(ctx, v.id, ver.code === "000000" ? "111111" : "000000")}; PATCHes to the vendor: ${patches().length}`);
  check(ctx, patches().length === 0, "nothing written after a wrong code");
  out(`   the right code → ${await confirm(ctx, v.id, ver.code)}`);
  const etag = String(patches()[0]?.headers["if-match"] ?? "");
  const held = String((s.rows.get("vendors")?.get(v.id) as BcRow).blocked);
  out(`   PATCH vendors(${v.id.slice(0, 8)}…) with If-Match ${etag || "(none)"}: blocked is now "${held}"`);
  check(ctx, patches().length === 1 && held === "_x0020_", "one PATCH lifting the hold after the approved code");
}
