/**
 * Sage Intacct's story (examples/intacct/bill-approval-sms.json): the XML API has no push, so the trigger polls APBILL
 * on WHENMODIFIED in the company's time zone. A bill submitted above APPROVAL_THRESHOLD texts the approver once; one
 * below it, the same bill saved again, or recreated from Purchasing with a new RECORDNO texts nobody; a bill above
 * CALL_THRESHOLD calls the approver, who presses 1; a cleared AP payment texts the vendor (intacct-payments.ts).
 * Delivery is followed by polling Twilio; one API session throughout.
 */
import { IntacctSim } from "../../test/sims/intacct";
import { INTACCT_APPROVER, INTACCT_APPROVER_USER, INTACCT_CALL_THRESHOLD } from "../../test/harness/erp-sims";
import { DemoContext, FamilyDemo, check, deliverAndAudit, expect, printAudit } from "./common";
import { payments, preparePayments } from "./intacct-payments";

function sim(ctx: DemoContext): IntacctSim {
  const s = ctx.stack.erps.intacct;
  if (!s) throw new Error("the Intacct simulator is not running");
  return s;
}
/** APBILL polls (where the simulator's log names the object: other examples poll APPYMT on their own). */
const readByQueries = (s: IntacctSim): number =>
  s.log.filter((l) => l.functions.includes("readByQuery") && l.outcome === "ok" && ((l as { objects?: string[] }).objects?.includes("APBILL") ?? true)).length;

/** A bill as Intacct stores it (values as text), modified now in the company's time. */
function submit(s: IntacctSim, ref: string, amount: string, recordNo: string, state = "Submitted"): void {
  s.upsert("APBILL", { RECORDNO: recordNo, RECORDID: ref, VENDORID: "V1007", VENDORNAME: "Blue Ridge Paper", STATE: state, TOTALENTERED: amount, CURRENCY: "USD", WHENMODIFIED: s.timeText() });
}

async function polls(ctx: DemoContext, n: number): Promise<void> {
  const s = sim(ctx);
  const from = readByQueries(s);
  await expect(ctx, () => readByQueries(s) >= from + n, 60000, `${n} more APBILL polls`);
}

const texts = (ctx: DemoContext, ref: string) => ctx.stack.twilio.messages.filter((m) => m.body.includes(`bill ${ref} `));

async function bills(ctx: DemoContext): Promise<void> {
  const { out } = ctx;
  const s = sim(ctx);
  await expect(ctx, () => readByQueries(s) >= 2, 60000, "the APBILL poll running");
  out(`1. Two AP bills are submitted for approval (APPROVAL_THRESHOLD 1000); the trigger polls readByQuery on WHENMODIFIED (${s.timeZone}):`);
  submit(s, "INV-88231", "1250.00", "4411");
  submit(s, "INV-100", "250.00", "4412");
  out("   bill INV-88231  1250.00 USD  Blue Ridge Paper  Submitted");
  out("   bill INV-100     250.00 USD  Blue Ridge Paper  Submitted");
  const sms = await expect(ctx, () => texts(ctx, "INV-88231")[0], 60000, "the approval SMS");
  if (sms) out(`   ${sms.sid}  to ${sms.to}  "${sms.body}"`);
  await polls(ctx, 2);
  check(ctx, texts(ctx, "INV-100").length === 0, "no SMS for INV-100 (below the threshold)");
  out(`   INV-100 is below the threshold: ${texts(ctx, "INV-100").length} SMS`);

  out();
  out("2. The same bill saved again, then deleted and recreated from Purchasing (a new RECORDNO, same vendor + number):");
  submit(s, "INV-88231", "1250.00", "4411");
  await polls(ctx, 2);
  s.remove("APBILL", "4411");
  submit(s, "INV-88231", "1250.00", "4999");
  await polls(ctx, 3);
  out(`   SMS about INV-88231 so far: ${texts(ctx, "INV-88231").length} (keyed on vendor + invoice number and state, not RECORDNO)`);
  check(ctx, texts(ctx, "INV-88231").length === 1, "one SMS for INV-88231");
}

async function call(ctx: DemoContext): Promise<string | undefined> {
  const { out, stack } = ctx;
  out();
  out(`3. A bill of 25,000.00 USD (above CALL_THRESHOLD ${INTACCT_CALL_THRESHOLD}) calls the approver instead:`);
  const before = stack.twilio.calls.length;
  submit(sim(ctx), "INV-9001", "25000.00", "4413");
  const c = await expect(ctx, () => stack.twilio.calls.slice(before).find((x) => x.to === INTACCT_APPROVER), 60000, "the approval call");
  if (!c) return undefined;
  const answered = await stack.twilio.answerCall(c.sid, { digits: "1" });
  out(`   ${c.sid}  to ${c.to}  hears: "${c.said[0] ?? ""}"`);
  out(`   the approver presses 1 → keypress webhook HTTP ${answered.status}: acknowledged, no SMS`);
  await stack.twilio.progressCall(c.sid, "completed");
  check(ctx, texts(ctx, "INV-9001").length === 0, "no SMS for the acknowledged call");
  return c.sid;
}

export const intacct: FamilyDemo = {
  family: "intacct",
  title: "Sage Intacct (polled XML API) → approver SMS or call with keypress, payments cleared → delivery polled → audit",
  erps: ["intacct"],
  prepare(ctx) {
    // the vendor's bill approver, whom the example's routing maps to APPROVER_PHONE
    sim(ctx).upsert("VENDOR", { RECORDNO: "1", VENDORID: "V1007", NAME: "Blue Ridge Paper", BILLAPPROVERID: INTACCT_APPROVER_USER, WHENMODIFIED: "01/01/2025 00:00:00" });
    preparePayments(sim(ctx));
  },
  async story(ctx) {
    await bills(ctx);
    const callSid = await call(ctx);
    const paid = await payments(ctx);
    ctx.out();
    ctx.out("5. Twilio delivers the SMS; the SMS nodes poll the status (no public URL needed); audit trail:");
    await deliverAndAudit(ctx, [...texts(ctx, "INV-88231").map((m) => m.sid), ...paid]);
    if (callSid) await printAudit(ctx, [callSid]);
    const s = sim(ctx);
    ctx.out();
    ctx.out(`Intacct calls: ${s.log.length} gateway requests, ${s.logins} getAPISession (one API session kept for the whole run).`);
  },
};
