/**
 * SAP Business One's story (examples/sapb1/): the Service Layer (HTTPS, self-signed certificate trusted through
 * SAPB1_CA, one Login kept) is polled. A new purchase invoice texts AP and the SMS status is written back into the
 * invoice's U_NotifyStatus; an invoice overdue by OVERDUE_DAYS calls AR (press 1 to acknowledge); an item below its
 * warehouse minimum texts purchasing; each once, across many polls.
 */
import { DemoContext, FamilyDemo, check, deliverAndAudit, expect, printAudit, sleep } from "./common";

const AR = "+14155550199";
const pad = (n: number): string => String(n).padStart(2, "0");
const day = (offsetDays: number): string => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
function stamp(ms: number): { UpdateDate: string; UpdateTime: string } {
  const d = new Date(ms);
  return { UpdateDate: d.toISOString().slice(0, 10), UpdateTime: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` };
}
const smsAbout = (ctx: DemoContext, re: RegExp) => ctx.stack.twilio.messages.filter((m) => re.test(m.body));

async function alerts(ctx: DemoContext): Promise<string[]> {
  const { out, stack } = ctx;
  out("1. Item A00001 (Helmet) is down to 2 in warehouse 01, minimum 5:");
  const low = await expect(ctx, () => smsAbout(ctx, /A00001/)[0], 60000, "the reorder SMS");
  if (low) out(`   ${low.sid}  to ${low.to}  "${low.body}"`);

  out();
  out("2. A/R invoice 7007 (Lakeside Bikes, 700 USD still due) is 40 days past its due date (OVERDUE_DAYS 30):");
  const call = await expect(ctx, () => stack.twilio.calls.find((c) => c.to === AR), 60000, "the overdue call");
  if (call) {
    const answered = await stack.twilio.answerCall(call.sid, { digits: "1" });
    out(`   ${call.sid}  to ${call.to}  hears: "${call.said[0] ?? ""}"`);
    out(`   AR presses 1 → keypress webhook HTTP ${answered.status}: acknowledged`);
    await stack.twilio.progressCall(call.sid, "completed");
  }

  out();
  out("3. Purchase invoice 9001 from Acme Supplies is entered (UpdateTime has minutes only: it is read once its minute has passed):");
  const ap = await expect(ctx, () => smsAbout(ctx, /purchase invoice 9001 /)[0], 120000, "the purchase invoice SMS");
  if (ap) out(`   ${ap.sid}  to ${ap.to}  "${ap.body}"`);
  const ids = [low, ap].filter((m) => m !== undefined).map((m) => m.sid);
  return call ? [...ids, call.sid] : ids;
}

export const sapb1: FamilyDemo = {
  family: "sapb1",
  title: "SAP Business One (polled Service Layer) → SMS, call → audit → status written to U_NotifyStatus",
  prepare(ctx) {
    const sim = ctx.stack.sapb1;
    // stamped after the deploy (the triggers start from "now"), so each is read as a new change
    sim.put("PurchaseInvoices", { DocEntry: 1, DocNum: 9001, CardCode: "V1", CardName: "Acme Supplies", DocDate: day(0), DocDueDate: day(30), DocTotal: 1250, DocCurrency: "USD", PaidToDate: 0, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: day(0), ...stamp(Date.now() + 1000) });
    sim.put("Invoices", { DocEntry: 7, DocNum: 7007, CardCode: "C1", CardName: "Lakeside Bikes", DocDate: day(-60), DocDueDate: day(-40), DocTotal: 800, DocCurrency: "USD", PaidToDate: 100, DocumentStatus: "bost_Open", Cancelled: "tNO", ...stamp(Date.now() - 86_400_000) });
    sim.put("Items", { ItemCode: "A00001", ItemName: "Helmet", InventoryItem: "tYES", QuantityOnStock: 2, MinInventory: 0, ItemWarehouseInfoCollection: [{ WarehouseCode: "01", InStock: 2, MinimalStock: 5 }] });
  },
  async story(ctx) {
    const sim = ctx.stack.sapb1;
    const sids = await alerts(ctx);
    ctx.out();
    ctx.out("4. Twilio delivers the SMS; audit trail:");
    const [sms, call] = [sids.filter((s) => s.startsWith("SM")), sids.filter((s) => s.startsWith("CA"))];
    await deliverAndAudit(ctx, sms);
    await printAudit(ctx, call);
    ctx.out();
    ctx.out("5. The SMS status written back to the purchase invoice (PATCH U_NotifyStatus):");
    const note = await expect(ctx, () => String(sim.data.PurchaseInvoices?.get("1")?.U_NotifyStatus ?? "") || undefined, 30000, "the status written back");
    ctx.out(`   PurchaseInvoices(1).U_NotifyStatus = "${note ?? ""}"`);
    const polled = sim.dataRequests.length;
    await expect(ctx, () => sim.dataRequests.length > polled + 6, 60000, "more polls");
    await sleep(500);
    const counts = [smsAbout(ctx, /A00001/).length, ctx.stack.twilio.calls.filter((c) => c.to === AR).length, smsAbout(ctx, /purchase invoice 9001 /).length];
    ctx.out(`   after ${sim.dataRequests.length - polled} more polls: reorder SMS ${counts[0]}, overdue calls ${counts[1]}, AP SMS ${counts[2]}`);
    check(ctx, counts.every((n) => n === 1), "each alert once");
    ctx.out();
    ctx.out(`Service Layer: ${sim.dataRequests.length} data requests, ${sim.logins.length} Login (B1SESSION and ROUTEID kept), ${sim.violations.length} violations of the reference notes.`);
  },
};
