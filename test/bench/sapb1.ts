/**
 * `node dist/test/bench/sapb1.js`: what SAP Business One polling costs, on the kit's Poller and the SapB1Client
 * against the Service Layer simulator (plain HTTP here: TLS cost is not what is measured), over one simulated hour
 * (virtual clock shared by the Poller and the simulator's session timeout). For each scenario it prints: alerts
 * delivered, Service Layer data calls, calls per alert, Logins in the hour, and the wall time per poll (median, ms).
 * Scenarios: purchase invoices arriving at several rates with the default 60 s interval, and a 40 min interval (past
 * the 30 min SessionTimeout: every poll meets an expired session). Figures only, nothing asserted.
 */
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { Poller } from "../../nodes/lib/poll/poller";
import { PollState } from "../../nodes/lib/poll/window";
import { SapB1Client } from "../../nodes/lib/sapb1/client";
import { updateWindow } from "../../nodes/lib/sapb1/events";
import { updateReader } from "../../nodes/lib/sapb1/poll";
import { SapB1Sim } from "../sims/sapb1";

interface Scenario {
  name: string;
  intervalMin: number;
  /** New purchase invoices per poll. */
  perPoll: number;
}

const pad2 = (n: number): string => String(n).padStart(2, "0");

async function run(s: Scenario): Promise<Record<string, string | number>> {
  const start = Date.parse("2024-03-01T08:00:00Z");
  let now = start;
  const sim = new SapB1Sim({ tls: false, now: () => now });
  await sim.start();
  const client = new SapB1Client({ url: sim.url, companyDb: sim.companyDb, username: sim.username, password: sim.password });
  const store: { state?: PollState } = {};
  const got: ErpEventMsg[] = [];
  const ctx = { entity: "PurchaseInvoices", tenant: sim.companyDb, timeZone: "UTC" };
  const poller = new Poller({
    window: updateWindow("UTC"),
    intervalMs: s.intervalMin * 60_000,
    startFrom: start,
    load: async () => store.state,
    save: async (st) => {
      store.state = st;
    },
    read: updateReader(client, ctx, "created"),
    deliver: (evs) => {
      got.push(...evs);
    },
    onError: () => undefined,
    now: () => now,
  });
  const wall: number[] = [];
  let entry = 0;
  let carry = 0;
  try {
    for (let t = 0; t < 60; t += s.intervalMin) {
      carry += s.perPoll;
      for (; carry >= 1; carry--) {
        entry++;
        const at = new Date(now + 10_000 + ((entry * 7) % 40) * 1000);
        const time = `${pad2(at.getUTCHours())}:${pad2(at.getUTCMinutes())}:${pad2(at.getUTCSeconds())}`;
        const date = at.toISOString().slice(0, 10);
        sim.put("PurchaseInvoices", { DocEntry: entry, DocNum: 7000 + entry, CardCode: "V1", DocDate: date, DocTotal: 100, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: date, UpdateDate: date, UpdateTime: time });
      }
      now += s.intervalMin * 60_000;
      const t0 = performance.now();
      await poller.tick();
      wall.push(performance.now() - t0);
    }
  } finally {
    await poller.stop();
    await client.close();
    await sim.stop();
  }
  const calls = sim.dataRequests.filter((r) => r.method === "GET").length;
  wall.sort((a, b) => a - b);
  return {
    scenario: s.name,
    alerts: got.length,
    expected: entry,
    calls,
    "calls/alert": got.length ? (calls / got.length).toFixed(2) : "-",
    "logins/hour": sim.logins.length,
    "poll ms (median)": wall[Math.floor(wall.length / 2)].toFixed(1),
  };
}

async function main(): Promise<void> {
  const scenarios: Scenario[] = [
    { name: "60 s polls, 1 new invoice per poll", intervalMin: 1, perPoll: 1 },
    { name: "60 s polls, 5 new invoices per poll", intervalMin: 1, perPoll: 5 },
    { name: "60 s polls, 150 per poll (2 pages of 100)", intervalMin: 1, perPoll: 150 },
    { name: "60 s polls, 1 new invoice every 5 polls", intervalMin: 1, perPoll: 0.2 },
    { name: "40 min polls (past the 30 min timeout), 10 per poll", intervalMin: 40, perPoll: 10 },
  ];
  const rows = [];
  for (const s of scenarios) rows.push(await run(s));
  console.log("SAP Business One polling, one simulated hour (PurchaseInvoices, 'created' alerts)");
  console.table(rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
