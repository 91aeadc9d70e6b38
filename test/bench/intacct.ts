/**
 * `node dist/test/bench/intacct.js`: what Sage Intacct polling costs, in gateway calls (Intacct bills every function
 * as an API transaction) and sessions, against the strict simulator on a virtual clock (the client's and the
 * simulator's clocks are moved together; nothing waits for real time).
 *
 * Scenario: the kit's Poller on APBILL (`readByQuery`, WHENMODIFIED window, Submitted / Partially Approved) every
 * MLC_BENCH_INTACCT_POLL_S (default 60 s) for MLC_BENCH_INTACCT_HOURS (default 3) virtual hours; bills arrive at
 * MLC_BENCH_INTACCT_ALERTS_PER_HOUR (default 120) from 25 vendors; each alert is enriched with its vendor's bill
 * approver through `client.get` with the fetch node's default cache (3600 s), as the bill-approval example does. Sessions last MLC_BENCH_INTACCT_SESSION_MIN
 * (default 60) minutes and slide with each call. Prints: alerts, gateway calls (polls, enrichment, logins), calls per
 * alert (all, and enrichment only), getAPISession per hour, and violations of the reference's traps (should be 0).
 * A second row keeps vendor answers only 300 s (the default before: every alert missed the cache, 1.50 calls per
 * alert); a third polls less often than the session lasts (sessions expire idle): one login per poll, no failed call.
 * Figures only, nothing asserted.
 */
import { IntacctClient } from "../../nodes/lib/intacct/client";
import { intacctPollRead, intacctWindow, stateFilter } from "../../nodes/lib/intacct/events";
import { Poller } from "../../nodes/lib/poll/poller";
import { PollState } from "../../nodes/lib/poll/window";
import { IntacctSim } from "../sims/intacct";

const env = (k: string, d: number): number => (Number.isFinite(Number(process.env[k])) && process.env[k] ? Number(process.env[k]) : d);

interface Row {
  label: string;
  alerts: number;
  polls: number;
  calls: number;
  enrichCalls: number;
  logins: number;
  hours: number;
  failedSessionCalls: number;
  violations: number;
}

async function run(label: string, pollS: number, hours: number, alertsPerHour: number, sessionMin: number, cacheS = 3600): Promise<Row> {
  const sim = new IntacctSim();
  await sim.start();
  sim.sessionDurationMs = sessionMin * 60_000;
  let skew = 0;
  const now = () => Date.now() + skew;
  const client = new IntacctClient({ ...sim.clientOptions(), now });
  for (let v = 0; v < 25; v++) sim.upsert("VENDOR", { RECORDNO: String(v + 1), VENDORID: `V${1000 + v}`, NAME: `Vendor ${v}`, BILLAPPROVERID: `U${v % 4}`, "DISPLAYCONTACT.CELLPHONE": `+1415555${String(1000 + v)}`, WHENMODIFIED: "01/01/2025 00:00:00" });
  let state: PollState | undefined;
  let alerts = 0;
  let enrichCalls = 0;
  const poller = new Poller({
    window: intacctWindow({ timeZone: sim.timeZone, overlapMs: 60_000, userFilter: stateFilter(["Submitted", "Partially Approved"]) }),
    intervalMs: pollS * 1000,
    startFrom: now(),
    now,
    load: async () => state,
    save: async (s) => {
      state = s;
    },
    read: intacctPollRead(client, sim.companyId, { object: "APBILL", fields: ["RECORDID", "VENDORID", "TOTALENTERED"] }),
    deliver: async (evs) => {
      for (const ev of evs) {
        alerts++;
        const before = client.requests;
        await client.get("VENDOR", "VENDORID", String(ev.payload.VENDORID), ["VENDORID", "NAME", "BILLAPPROVERID"], cacheS * 1000);
        enrichCalls += client.requests - before;
      }
    },
    onError: () => undefined,
  });
  const polls = Math.round((hours * 3600) / pollS);
  let billNo = 0;
  let due = 0;
  for (let p = 0; p < polls; p++) {
    due += (alertsPerHour * pollS) / 3600;
    for (; due >= 1; due--) {
      billNo++;
      sim.upsert("APBILL", { RECORDNO: String(billNo), RECORDID: `INV-${billNo}`, VENDORID: `V${1000 + ((billNo * 7) % 25)}`, STATE: "Submitted", TOTALENTERED: "1250.00", WHENMODIFIED: sim.timeText(now() - 5000) });
    }
    await poller.tick();
    skew += pollS * 1000;
    sim.clockOffsetMs = skew;
  }
  const row: Row = {
    label,
    alerts,
    polls,
    calls: sim.log.length,
    enrichCalls,
    logins: sim.logins,
    hours,
    failedSessionCalls: sim.log.filter((l) => l.outcome === "auth-failure").length,
    violations: sim.violations.length,
  };
  await client.close();
  await sim.stop();
  return row;
}

async function main(): Promise<void> {
  const pollS = env("MLC_BENCH_INTACCT_POLL_S", 60);
  const hours = env("MLC_BENCH_INTACCT_HOURS", 3);
  const rate = env("MLC_BENCH_INTACCT_ALERTS_PER_HOUR", 120);
  const session = env("MLC_BENCH_INTACCT_SESSION_MIN", 60);
  const rows = [
    await run(`poll ${pollS} s, session ${session} min (defaults)`, pollS, hours, rate, session),
    await run(`poll ${pollS} s, session ${session} min, cache 300 s`, pollS, hours, rate, session, 300),
    await run(`poll 900 s, session 10 min (idle expiry)`, 900, hours, rate, 10),
  ];
  console.log(`\nIntacct polling cost (virtual clock, ${hours} h, ${rate} alerts/h, 25 vendors, enrichment cache 3600 s, the fetch node's default, unless said)`);
  console.log("scenario                                           alerts  polls  calls  calls/alert  enrich/alert  logins/h  failed-session  violations");
  for (const r of rows) {
    console.log(
      `${r.label.padEnd(50)} ${String(r.alerts).padStart(6)} ${String(r.polls).padStart(6)} ${String(r.calls).padStart(6)} ${(r.calls / Math.max(1, r.alerts)).toFixed(2).padStart(12)} ${(r.enrichCalls / Math.max(1, r.alerts)).toFixed(2).padStart(13)} ${(r.logins / r.hours).toFixed(2).padStart(9)} ${String(r.failedSessionCalls).padStart(15)} ${String(r.violations).padStart(11)}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
