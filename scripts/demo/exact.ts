/**
 * Exact Online's story (examples/exact/invoice-payment-reminder.json): on deploy the trigger subscribes SalesInvoices
 * and answers Exact's validation calls; a HashCode-signed webhook for a new invoice is fetched and enriched (account →
 * main contact) and the customer gets one reminder, by SMS to a mobile number or by e-mail when the contact has only an
 * address; a redelivery sends nothing; a forged delivery is refused with 401. Then (exact-orders.ts) the order
 * confirmation and delivery-alert examples: SMS, e-mail, and an opted-out contact audited.
 */
import { ExactSim } from "../../test/sims/exact";
import { DemoContext, FamilyDemo, check, deliverAndAudit, expect, printAudit, sleep } from "./common";
import { orders, prepareOrders } from "./exact-orders";

const ACME = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const ANNA = "2a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const BETA = "4b9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const BRAM = "5c9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";

function sim(ctx: DemoContext): ExactSim {
  const s = ctx.stack.erps.exact;
  if (!s) throw new Error("the Exact simulator is not running");
  return s;
}

/** A new sales invoice in Exact's formats; returns its InvoiceID. */
function invoice(s: ExactSim, n: number, account: string): string {
  return String(s.put("salesinvoice/SalesInvoices", { InvoiceNumber: n, AmountDC: 1512.5, Currency: "EUR", InvoiceTo: account, OrderedBy: account, Status: 20, PaymentReference: `RF${n}`, DueDate: "/Date(1743465600000)/" }).InvoiceID);
}
const smsFor = (ctx: DemoContext, n: number) => ctx.stack.twilio.messages.filter((m) => m.body.includes(`invoice ${n} `));
const mailsFor = (ctx: DemoContext, n: number) => ctx.stack.sendgrid.mails.filter((m) => m.subject.includes(`Invoice ${n}:`));

async function subscription(ctx: DemoContext): Promise<void> {
  const s = sim(ctx);
  ctx.out("1. On deploy the trigger subscribes SalesInvoices; Exact validates the callback with two empty POSTs:");
  const sub = await expect(ctx, () => [...s.subscriptions.values()].find((x) => x.Topic === "SalesInvoices"), 30000, "the SalesInvoices subscription");
  if (sub) ctx.out(`   WebhookSubscription ${String(sub.Topic)} → ${String(sub.CallbackURL)}`);
  const probes = await expect(ctx, () => {
    const p = s.log.filter((l) => l.kind === "probe");
    return p.length >= 2 ? p : undefined;
  }, 15000, "two validation calls");
  if (probes) ctx.out(`   validation calls answered: ${probes.map((p) => (p as { status: number }).status).join(", ")}`);
}

async function reminders(ctx: DemoContext): Promise<string[]> {
  const { out } = ctx;
  const s = sim(ctx);
  out();
  out("2. Invoice 25000201 for Acme BV (main contact Anna de Vries, mobile) is created; Exact sends a signed webhook:");
  const id = invoice(s, 25000201, ACME);
  out(`   webhook (HashCode over the raw body) → HTTP ${(await s.notify("SalesInvoices", "Create", id)).join(", ")}`);
  const sms = await expect(ctx, () => smsFor(ctx, 25000201)[0], 30000, "the SMS reminder");
  if (sms) out(`   ${sms.sid}  to ${sms.to}  "${sms.body}"`);
  out(`   the same change delivered again (Update, Create) → HTTP ${[...(await s.notify("SalesInvoices", "Update", id)), ...(await s.notify("SalesInvoices", "Create", id))].join(", ")}`);
  await expect(ctx, () => s.apiCalls().filter((e) => e.kind === "api" && decodeURIComponent(e.path).includes(id) && e.path.includes("SalesInvoices")).length >= 3, 15000, "the redeliveries fetched");
  await sleep(1500);
  out(`   reminders for 25000201: ${smsFor(ctx, 25000201).length} (a redelivery is journaled once and sends nothing)`);
  check(ctx, smsFor(ctx, 25000201).length === 1, "one SMS for invoice 25000201");

  out();
  out("3. Invoice 25000202 for Beta BV, whose contact Bram Smit has only an e-mail address:");
  await s.notify("SalesInvoices", "Create", invoice(s, 25000202, BETA));
  const mail = await expect(ctx, () => mailsFor(ctx, 25000202)[0], 30000, "the e-mail reminder");
  if (mail) out(`   e-mail through SendGrid to ${mail.to.join(", ")}: "${mail.subject}"`);

  out();
  out("4. A forged webhook for invoice 25000203 (signed with a guessed secret, in lower case, over re-encoded JSON):");
  const forged = invoice(s, 25000203, ACME);
  const answers = [...(await s.notify("SalesInvoices", "Create", forged, "secret")), ...(await s.notify("SalesInvoices", "Create", forged, "lowercase")), ...(await s.notify("SalesInvoices", "Create", forged, "reencoded"))];
  await sleep(1500);
  out(`   → HTTP ${answers.join(", ")}; reminders for 25000203: ${smsFor(ctx, 25000203).length}`);
  check(ctx, answers.length === 3 && answers.every((a) => a === 401) && smsFor(ctx, 25000203).length === 0, "forged webhooks refused with 401, nothing sent");
  return sms ? [sms.sid] : [];
}

export const exact: FamilyDemo = {
  family: "exact",
  title: "Exact Online (signed webhooks) → enrich account and contact → SMS or e-mail (reminders, orders, deliveries) → audit",
  erps: ["exact"],
  prepare(ctx) {
    const s = sim(ctx);
    s.put("crm/Accounts", { ID: ACME, Code: "            000042", Name: "Acme BV", Email: "ap@acme.example", MainContact: ANNA });
    s.put("crm/Contacts", { ID: ANNA, Account: ACME, FullName: "Anna de Vries", Mobile: "+31612345678", Email: "anna@acme.example" });
    s.put("crm/Accounts", { ID: BETA, Code: "            000043", Name: "Beta BV", MainContact: BRAM });
    s.put("crm/Contacts", { ID: BRAM, Account: BETA, FullName: "Bram Smit", Email: "bram@beta.example" });
    prepareOrders(s);
  },
  async story(ctx) {
    await subscription(ctx);
    const sids = [...(await reminders(ctx)), ...(await orders(ctx))];
    ctx.out();
    ctx.out("9. Twilio delivers the SMS; audit trail (the reminder e-mail too):");
    await deliverAndAudit(ctx, sids);
    const mail = mailsFor(ctx, 25000202)[0];
    if (mail) await printAudit(ctx, [mail.messageId]);
    const s = sim(ctx);
    ctx.out();
    ctx.out(`Exact calls: ${s.apiCalls().length} API calls, ${s.log.filter((l) => l.kind === "token").length} token request(s) (the pasted refresh token, rotated and saved before use).`);
  },
};
