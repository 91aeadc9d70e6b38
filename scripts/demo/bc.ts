/**
 * Business Central's story (examples/bc/): the trigger subscribes purchaseInvoices itself (BC's validationToken
 * handshake answered), a posted purchase invoice above APPROVAL_THRESHOLD texts the approver once after BC's
 * notification (clientState checked on every item, the record read since notifications carry no data), a forged
 * notification is refused with 401; the daily overdue-invoice run texts each customer with an open invoice past due
 * once (BC's unquoted date literal in `$filter`), a second run the same day texts nobody. One Entra token throughout.
 * Between them (bc-extra.ts): a payment receipt, a credit-limit warning and the Verify-gated vendor release.
 */
import { BcSim } from "../../test/sims/bc";
import { DemoContext, FamilyDemo, check, deliverAndAudit, expect, sleep } from "./common";
import { bankDetails, creditLimit, receipt } from "./bc-extra";

function sim(ctx: DemoContext): BcSim {
  const s = ctx.stack.erps.bc;
  if (!s) throw new Error("the Business Central simulator is not running");
  return s;
}
const day = (offset: number): string => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
const purchaseSub = (s: BcSim) => [...s.subs.values()].find((x) => x.entitySet === "purchaseInvoices");
const smsAbout = (ctx: DemoContext, re: RegExp) => ctx.stack.twilio.messages.filter((m) => re.test(m.body));

async function webhook(ctx: DemoContext): Promise<string[]> {
  const { out } = ctx;
  const s = sim(ctx);
  out("1. On deploy the trigger subscribes purchaseInvoices; BC checks the URL with a validationToken handshake:");
  const sub = await expect(ctx, () => purchaseSub(s), 30000, "the purchaseInvoices subscription");
  for (const h of s.log.filter((l) => l.kind === "handshake")) out(`   handshake POST ${h.url}?validationToken=… → HTTP ${h.status}${h.ok ? ", token echoed" : ""}`);
  if (sub) out(`   subscription ${sub.subscriptionId.slice(0, 8)}… on ${sub.entitySet}, expires ${new Date(sub.expiresAt).toISOString()} (renewed before the 3 days run out)`);

  out();
  out("2. Three purchase invoices change in BC (APPROVAL_THRESHOLD 1000); BC notifies Node-RED:");
  s.upsert("purchaseInvoices", { number: "PI-2001", status: "Open", vendorName: "Contoso Freight", totalAmountIncludingTax: 5400, currencyCode: "USD", dueDate: day(30) });
  s.upsert("purchaseInvoices", { number: "PI-2002", status: "Open", vendorName: "Small Supplies", totalAmountIncludingTax: 120, currencyCode: "USD", dueDate: day(30) });
  s.upsert("purchaseInvoices", { number: "PI-2003", status: "Draft", vendorName: "Draft Vendor", totalAmountIncludingTax: 9000, currencyCode: "USD", dueDate: day(30) });
  out("   PI-2001  5400 USD  Open  Contoso Freight\n   PI-2002   120 USD  Open  Small Supplies\n   PI-2003  9000 USD  Draft Draft Vendor");
  out(`   notification (3 items, clientState on each) → HTTP ${(await s.flush()).map((d) => d.status).join(", ")}`);
  const sms = await expect(ctx, () => smsAbout(ctx, /PI-200\d/)[0], 30000, "the approval SMS");
  if (sms) out(`   ${sms.sid}  to ${sms.to}  "${sms.body}"`);
  await sleep(1500);
  out(`   SMS about purchase invoices: ${smsAbout(ctx, /PI-200\d/).length} (PI-2002 below the threshold, PI-2003 not posted)`);
  check(ctx, smsAbout(ctx, /PI-200\d/).length === 1, "one SMS, for PI-2001");

  out();
  out("3. A forged notification (a guessed clientState) for PI-2003:");
  const forged = await forge(ctx, sub?.notificationUrl);
  await sleep(1000);
  out(`   → HTTP ${forged}; nothing read, nothing sent (SMS about PI-2003: ${smsAbout(ctx, /PI-2003/).length})`);
  check(ctx, forged === 401 && smsAbout(ctx, /PI-2003/).length === 0, "the forged notification refused with 401");
  check(ctx, !s.log.some((l) => l.kind === "sub-deleted"), "the subscription kept");
  return sms ? [sms.sid] : [];
}

/** POST a notification as BC would, but with a clientState the sender guessed. */
async function forge(ctx: DemoContext, url: string | undefined): Promise<number> {
  const s = sim(ctx);
  const pi = [...(s.rows.get("purchaseInvoices")?.values() ?? [])].find((r) => r.number === "PI-2003");
  if (!url || !pi) return 0;
  const sub = purchaseSub(s);
  if (!sub) return 0;
  const item = { subscriptionId: sub.subscriptionId, clientState: "guessed", expirationDateTime: new Date(sub.expiresAt).toISOString(), resource: `/api/v2.0/companies(${s.companyId})/purchaseInvoices(${pi.id})`, changeType: "updated", lastModifiedDateTime: new Date().toISOString() };
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ value: [item] }) });
  return r.status;
}

async function overdue(ctx: DemoContext): Promise<string[]> {
  const { out, stack } = ctx;
  const s = sim(ctx);
  out();
  out("7. The daily overdue-invoice run (an inject node, every day at 09:00; pressed now):");
  s.upsert("salesInvoices", { number: "PS-INV1001", status: "Open", dueDate: day(-10), remainingAmount: 1250, currencyCode: "USD", customerName: "Lakeside Bikes Ltd.", phoneNumber: "+14155550101" });
  s.upsert("salesInvoices", { number: "PS-INV1002", status: "Open", dueDate: day(-1), remainingAmount: 80.5, currencyCode: "USD", customerName: "Fabrikam Inc.", phoneNumber: "+14155550102" });
  s.upsert("salesInvoices", { number: "PS-INV1003", status: "Open", dueDate: day(5), remainingAmount: 300, currencyCode: "USD", customerName: "Not yet due", phoneNumber: "+14155550103" });
  s.upsert("salesInvoices", { number: "PS-INV1004", status: "Paid", dueDate: day(-20), remainingAmount: 0, currencyCode: "USD", customerName: "Paid", phoneNumber: "+14155550104" });
  out("   PS-INV1001 open, 10 days late; PS-INV1002 open, 1 day late; PS-INV1003 not yet due; PS-INV1004 paid");
  await stack.nodeRed.inject("bc11000000000001");
  const sent = await expect(ctx, () => (smsAbout(ctx, /PS-INV100/).length >= 2 ? smsAbout(ctx, /PS-INV100/) : undefined), 30000, "two overdue reminders");
  for (const m of sent ?? []) out(`   ${m.sid}  to ${m.to}  "${m.body}"`);
  const list = s.apiCalls((c) => c.path.endsWith("/salesInvoices"));
  if (list[0]) out(`   the listing's filter: ${decodeURIComponent(list[0].query.replace(/\+/g, " "))}`);
  await stack.nodeRed.inject("bc11000000000001");
  await expect(ctx, () => s.apiCalls((c) => c.path.endsWith("/salesInvoices")).length >= 2, 15000, "the second listing");
  await sleep(1500);
  out(`   pressed again the same day: reminders ${smsAbout(ctx, /PS-INV100/).length} (once per invoice per day)`);
  check(ctx, smsAbout(ctx, /PS-INV100/).length === 2, "two overdue reminders, none twice");
  return (sent ?? []).map((m) => m.sid);
}

export const bc: FamilyDemo = {
  family: "bc",
  title: "Business Central (webhook subscriptions, daily list) → SMS, Verify → audit, write-back",
  erps: ["bc"],
  async story(ctx) {
    const sids = [...(await webhook(ctx)), ...(await receipt(ctx)), ...(await creditLimit(ctx))];
    await bankDetails(ctx);
    sids.push(...(await overdue(ctx)));
    ctx.out();
    ctx.out("8. Twilio delivers the SMS; audit trail:");
    await deliverAndAudit(ctx, sids);
    const s = sim(ctx);
    ctx.out();
    ctx.out(`BC calls: ${s.apiCalls().length} API calls, ${s.tokensIssued} Entra token (client credentials through @azure/msal-node), ${s.subs.size} subscription(s).`);
  },
};
