/**
 * The payments side of Sage Intacct's story (examples/intacct/payments-cleared.json), told after the bill approvals
 * of intacct.ts: the trigger polls APPYMT; a payment that cleared texts the vendor (the vendor's contact read from
 * Intacct, its free-text number turned into E.164 by mlc-route); a payment not cleared, or the cleared one saved
 * again, texts nobody. The SMS node polls Twilio for the status, as the bill approval does.
 */
import { IntacctSim } from "../../test/sims/intacct";
import { DemoContext, check, expect } from "./common";

/** The vendor paid in this story. */
export function preparePayments(s: IntacctSim): void {
  s.upsert("VENDOR", { RECORDNO: "21", VENDORID: "V2100", NAME: "Harbor Supply", "DISPLAYCONTACT.CELLPHONE": "(415) 555-0143", WHENMODIFIED: "01/01/2025 00:00:00" });
}

function sim(ctx: DemoContext): IntacctSim {
  const s = ctx.stack.erps.intacct;
  if (!s) throw new Error("the Intacct simulator is not running");
  return s;
}
const paymentPolls = (s: IntacctSim): number => s.log.filter((l) => l.functions.includes("readByQuery") && l.outcome === "ok" && ((l as { objects?: string[] }).objects?.includes("APPYMT") ?? false)).length;
const texts = (ctx: DemoContext, doc: string) => ctx.stack.twilio.messages.filter((m) => m.body.includes(`payment ${doc} `));

function pay(s: IntacctSim, no: string, doc: string, cleared: "T" | "F"): void {
  s.upsert("APPYMT", { RECORDNO: no, VENDORID: "V2100", DOCNUMBER: doc, STATE: "C", CLEARED: cleared, CLRDATE: cleared === "T" ? "03/12/2025" : "", TOTALENTERED: "1250.00", CURRENCY: "USD", WHENMODIFIED: s.timeText() });
}

/** Step 4; returns the sid of the vendor's SMS. */
export async function payments(ctx: DemoContext): Promise<string[]> {
  const { out } = ctx;
  const s = sim(ctx);
  await expect(ctx, () => paymentPolls(s) >= 1, 60000, "the APPYMT poll running");
  out();
  out("4. Two payments to Harbor Supply (V2100, cell phone \"(415) 555-0143\"): CHK-5001 cleared, CHK-5002 not yet:");
  pay(s, "7001", "CHK-5001", "T");
  pay(s, "7002", "CHK-5002", "F");
  const sms = await expect(ctx, () => texts(ctx, "CHK-5001")[0], 60000, "the payment-cleared SMS");
  if (sms) out(`   ${sms.sid}  to ${sms.to}  "${sms.body}"`);
  pay(s, "7001", "CHK-5001", "T"); // saved again: read again by the next poll
  const from = paymentPolls(s);
  await expect(ctx, () => paymentPolls(s) >= from + 2, 60000, "two more APPYMT polls");
  out(`   CHK-5001 saved again, two more polls: SMS about CHK-5001 ${texts(ctx, "CHK-5001").length}, about CHK-5002 ${texts(ctx, "CHK-5002").length}`);
  check(ctx, texts(ctx, "CHK-5001").length === 1 && texts(ctx, "CHK-5002").length === 0, "one SMS for the cleared payment, none for the other");
  return sms ? [sms.sid] : [];
}
