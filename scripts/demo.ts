/**
 * `npm run demo`: the main job on the built-in simulators. Starts the Acumatica and Twilio simulators,
 * a Node-RED on http://127.0.0.1:1880 (MLC_DEMO_PORT to change) with this package and the Acumatica
 * examples deployed, feeds it realistic bills and payments, drives Twilio's delivery statuses, and
 * prints what happened: SMS sent, statuses, audit trail, notes written back on the bills.
 * In a terminal it keeps running (open the editor) until Ctrl+C; otherwise, or with --exit, it stops.
 */
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT, waitFor } from "../test/harness/nodered";
import { billRow, FlowNode, startStack } from "../test/harness/stack";
import { signTwilioRequest } from "../test/sims/twilio";

const out = (line = ""): void => {
  process.stdout.write(line + "\n");
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const PROBE: FlowNode[] = [
  { id: "d3m0000000000000", type: "tab", label: "demo: audit viewer", info: "GET /demo/audit lists failed sends; GET /demo/audit?jobId=… one job's records." },
  { id: "d3m0000000000001", type: "http in", z: "d3m0000000000000", url: "/demo/audit", method: "get", upload: false, swaggerDoc: "", x: 120, y: 60, wires: [["d3m0000000000002"]] },
  { id: "d3m0000000000002", type: "switch", z: "d3m0000000000000", property: "req.query.jobId", propertyType: "msg", rules: [{ t: "nempty" }, { t: "else" }], checkall: "false", outputs: 2, x: 300, y: 60, wires: [["d3m0000000000003"], ["d3m0000000000005"]] },
  { id: "d3m0000000000003", type: "change", z: "d3m0000000000000", rules: [{ t: "set", p: "payload", pt: "msg", to: "req.query.jobId", tot: "msg" }], x: 480, y: 40, wires: [["d3m0000000000004"]] },
  { id: "d3m0000000000004", type: "mlc-audit", z: "d3m0000000000000", name: "by jobId", operation: "get", trail: "default", store: "", maxRecords: "10000", ttl: "30", x: 660, y: 40, wires: [["d3m0000000000006"]] },
  { id: "d3m0000000000005", type: "mlc-audit", z: "d3m0000000000000", name: "failed sends", operation: "failed", trail: "default", store: "", maxRecords: "10000", ttl: "30", x: 480, y: 100, wires: [["d3m0000000000006"]] },
  { id: "d3m0000000000006", type: "http response", z: "d3m0000000000000", statusCode: "", headers: {}, x: 860, y: 60, wires: [] },
];

interface AuditView {
  jobId: string;
  sid?: string;
  status: string;
  to: string;
  channel: string;
  erp?: { entity: string; id: string };
  history: { status: string; at: string; errorCode?: number }[];
  error?: { code: string; message: string };
}

async function main(): Promise<void> {
  const port = Number(process.env.MLC_DEMO_PORT || 1880);
  const userDir = path.join(REPO_ROOT, ".demo", "user");
  fs.rmSync(path.join(REPO_ROOT, ".demo"), { recursive: true, force: true });
  out("ml-connector demo: Acumatica → dedupe → Twilio SMS → delivery status → audit");
  out("Starting the Acumatica and Twilio simulators and Node-RED …");
  const stack = await startStack({ userDir, port, install: "link", pollIntervalSec: 1, extraFlows: PROBE });
  const nr = stack.nodeRed;
  out(`  Node-RED       ${nr.url}  (examples deployed from examples/acumatica/)`);
  out(`  Acumatica sim  ${stack.acumatica.url}`);
  out(`  Twilio sim     ${stack.twilio.url}`);
  out();

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
  await waitFor(() => stack.twilio.messages.length >= 1, 15000, "bill SMS");
  await sleep(1000);

  out();
  out("2. A card payment is voided in Acumatica; the poller (every 1 s) picks it up:");
  stack.acumatica.upsert("Payment", {
    Type: "Payment", ReferenceNbr: "000313", CustomerID: "C000017", PaymentAmount: 412.75, Status: "Voided",
    PaymentMethod: "VISA", CurrencyID: "USD", Description: "Card declined (insufficient funds)", ApplicationDate: "2025-03-12T00:00:00+00:00",
  });
  out("   payment 000313  412.75 USD  Voided  Card declined (insufficient funds)");
  await waitFor(() => stack.twilio.messages.some((m) => m.body.includes("000313")), 15000, "payment SMS");
  await sleep(2500);

  out();
  out(`3. SMS sent through Twilio (simulator ledger: ${stack.twilio.messages.length} messages):`);
  for (const m of stack.twilio.messages) out(`   ${m.sid}  to ${m.to}  "${m.body}"`);

  out();
  out("4. Twilio reports delivery (signed status callbacks, one out of order, one duplicated):");
  const [first, second] = stack.twilio.messages;
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
  const forged = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signTwilioRequest("guess", url, { MessageSid: first?.sid ?? "", MessageStatus: "failed" }) },
    body: new URLSearchParams({ MessageSid: first?.sid ?? "", MessageStatus: "failed" }).toString(),
  });
  out(`   a forged callback claiming 'failed' → HTTP ${forged.status}`);
  await sleep(1500);

  out();
  out("5. Audit trail (recipients masked):");
  for (const m of stack.twilio.messages) {
    const jobId = new URL(String(m.statusCallback)).searchParams.get("j") ?? "";
    const recs = (await (await fetch(`${nr.url}/demo/audit?jobId=${jobId}`)).json()) as AuditView[];
    for (const r of recs) out(`   ${r.erp?.entity ?? "?"} ${r.erp?.id ?? "?"}  ${r.channel} to ${r.to}  ${r.history.map((h) => h.status + (h.errorCode ? `(${h.errorCode})` : "")).join(" → ")}`);
  }
  const failed = (await (await fetch(`${nr.url}/demo/audit`)).json()) as AuditView[];
  out("   failed sends (for replay):");
  for (const r of failed) out(`   ${r.erp?.entity ?? "?"} ${r.erp?.id ?? "?"}  ${r.status}  ${r.error ? `${r.error.code}: ${r.error.message}` : ""}`);

  out();
  out("6. Delivery written back to Acumatica (bill notes):");
  for (const nbr of ["000123", "000124", "000121"]) out(`   bill ${nbr}: ${String(bill(nbr).note ?? "") || "(no note)"}`);
  out();
  out("Bill 000121 is below APPROVAL_THRESHOLD (1000), so nobody was texted for it; bill 000124's approver has no valid mobile number,");
  out("so that one message failed with a clear error while the others went through; 3 deliveries of each notification gave 1 SMS.");

  const keepRunning = process.stdin.isTTY && !process.argv.includes("--exit") && !process.env.CI;
  if (keepRunning) {
    out();
    out(`Node-RED is still running: open ${nr.url} to look at the flows. Ctrl+C stops everything.`);
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
  }
  await stack.stop();
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
