/**
 * Acumatica's story (examples/acumatica/): bills pushed (each notification three times, as Acumatica may), a voided
 * card payment found by the poller, Twilio's signed status callbacks (one duplicated, one late, one forged), the audit
 * trail and the delivery written back into each bill's note.
 */
import { billRow } from "../../test/harness/stack";
import { signTwilioRequest } from "../../test/sims/twilio";
import { DemoContext, FamilyDemo, audit, auditLine, check, expect, sleep } from "./common";

const BILLS = ["000123", "000124", "000121"];
const PAYMENT = "000313";

async function pushAndPoll(ctx: DemoContext): Promise<void> {
  const { stack, out } = ctx;
  const bill = (nbr: string): Record<string, unknown> => stack.acumatica.get("Bill", ["Bill", nbr]) as Record<string, unknown>;
  out("1. Acumatica pushes 'bills pending approval' (every notification delivered 3 times, as Acumatica may):");
  const rows = [
    billRow(bill("000123"), "Contoso Freight LLC", "EP00000001"),
    billRow(bill("000124"), "Contoso Freight LLC", "EP00000003"),
    billRow(bill("000121"), "Bayside Office Supply", "EP00000001"),
  ];
  for (const r of rows) out(`   bill ${r.ReferenceNbr}  ${String(r.Amount).padStart(9)} ${r.CurrencyID}  approver ${r.ApproverID}  ${r.Description}`);
  const answers = await stack.pushBills(rows, 3);
  out(`   webhook answers: ${answers.join(", ")}${answers.includes(503) ? "  (503 = the flow was still starting; Acumatica retries)" : ""}`);
  await expect(ctx, () => mine(ctx).length >= 1, 15000, "the bill SMS");
  await sleep(1000);

  out();
  out("2. A card payment is voided in Acumatica; the poller (every POLL_INTERVAL s) picks it up:");
  stack.acumatica.upsert("Payment", {
    Type: "Payment", ReferenceNbr: PAYMENT, CustomerID: "C000017", PaymentAmount: 412.75, Status: "Voided",
    PaymentMethod: "VISA", CurrencyID: "USD", Description: "Card declined (insufficient funds)", ApplicationDate: "2025-03-12T00:00:00+00:00",
  });
  out(`   payment ${PAYMENT}  412.75 USD  Voided  Card declined (insufficient funds)`);
  await expect(ctx, () => mine(ctx).some((m) => m.body.includes(PAYMENT)), 15000, "the payment SMS");
  await sleep(2500);
}

/** The SMS about this story's bills and payment (other families' stories share the Twilio simulator). */
function mine(ctx: DemoContext): { sid: string; to: string; body: string; statusCallback?: string | null }[] {
  return ctx.stack.twilio.messages.filter((m) => [...BILLS, PAYMENT].some((n) => m.body.includes(n)));
}

async function statuses(ctx: DemoContext): Promise<void> {
  const { stack, out } = ctx;
  const sent = mine(ctx);
  out(`3. SMS sent through Twilio (${sent.length}):`);
  for (const m of sent) out(`   ${m.sid}  to ${m.to}  "${m.body}"`);
  check(ctx, sent.length === 2, "2 SMS: one for bill 000123, one for payment 000313");

  out();
  out("4. Twilio reports delivery (signed status callbacks, one out of order, one duplicated):");
  const [first, second] = sent;
  if (first) {
    await stack.twilio.sendStatusCallbacks(first.sid, ["sent"], { duplicate: true });
    await stack.twilio.sendStatusCallbacks(first.sid, ["delivered"]);
    await stack.twilio.sendStatusCallbacks(first.sid, ["sent"]);
    out(`   ${first.sid}: sent (twice), delivered, then a late 'sent'`);
  }
  if (second) {
    await stack.twilio.deliver(second.sid, "undelivered", { errorCode: 30003 });
    out(`   ${second.sid}: sent, undelivered (30003 unreachable handset)`);
  }
  const url = `${stack.env.PUBLIC_BASE_URL}/mlc/twilio/status`;
  const params = { MessageSid: first?.sid ?? "", MessageStatus: "failed" };
  const forged = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signTwilioRequest("guess", url, params) },
    body: new URLSearchParams(params).toString(),
  });
  out(`   a forged callback claiming 'failed' → HTTP ${forged.status}`);
  check(ctx, forged.status === 403, "the forged status callback refused with 403");
  await sleep(1500);
}

async function trail(ctx: DemoContext): Promise<void> {
  const { stack, out } = ctx;
  out("5. Audit trail (recipients masked):");
  for (const m of mine(ctx)) for (const r of await audit(ctx, m.sid)) out(`   ${auditLine(r)}`);
  out("   failed sends (for replay):");
  for (const r of (await audit(ctx)).filter((f) => f.erp?.system === "acumatica")) {
    out(`   ${r.erp?.entity ?? "?"} ${r.erp?.id ?? "?"}  ${r.status}  ${r.error ? `${r.error.code}: ${r.error.message}` : ""}`);
  }
  out();
  out("6. Delivery written back to Acumatica (bill notes):");
  for (const nbr of BILLS) out(`   bill ${nbr}: ${String((stack.acumatica.get("Bill", ["Bill", nbr]) as Record<string, unknown>).note ?? "") || "(no note)"}`);
  out();
  out("Bill 000121 is below APPROVAL_THRESHOLD (1000), so nobody was texted for it; bill 000124's approver has no valid mobile number,");
  out("so that one message failed with a clear error while the others went through; 3 deliveries of each notification gave 1 SMS.");
}

export const acumatica: FamilyDemo = {
  family: "acumatica",
  title: "Acumatica → dedupe → Twilio SMS → delivery status → audit → bill note",
  async story(ctx) {
    await pushAndPoll(ctx);
    ctx.out();
    await statuses(ctx);
    ctx.out();
    await trail(ctx);
  },
};
