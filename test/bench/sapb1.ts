/**
 * `node dist/test/bench/sapb1.js`: what SAP Business One polling costs, on the kit's Poller and the SapB1Client
 * against the Service Layer simulator (plain HTTP here: TLS cost is not what is measured), over one simulated hour
 * (virtual clock shared by the Poller and the simulator's session timeout). Figures only, nothing asserted.
 *
 * 1. "created" alerts on PurchaseInvoices at several arrival patterns, 60 s polls (and 40 min polls, past the 30 min
 *    SessionTimeout: every poll meets an expired session).
 * 2. The steady state of the three examples on one connection (one session): purchase invoices (created), invoices
 *    overdue by 30 days, items below their warehouse minimum, all polled every 60 s, on a company with 2,000
 *    inventory items and 150 overdue invoices; invoices arrive in bursts, stock dips now and then, most polls quiet.
 *
 * How quiet polls count: a poll that finds nothing still costs its calls (one per page read). They are a fixed cost of
 * watching, per poll interval, whatever the alert rate; so each row prints the calls of polls that delivered alerts
 * per alert (the cost an alert adds: the "≤ 1.1 calls per alert") apart from the quiet polls' calls (the cost
 * of watching: calls per quiet poll × polls per hour), and the two together per alert. Logins are counted per hour and
 * per session lifetime (a session lives until 30 min without a request). The examples' optional write-back of the
 * delivery status is one PATCH per status written, not counted here.
 */
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { PollRead, Poller } from "../../nodes/lib/poll/poller";
import { PollState, WatermarkWindow } from "../../nodes/lib/poll/window";
import { SapB1Client } from "../../nodes/lib/sapb1/client";
import { EventContext, updateWindow } from "../../nodes/lib/sapb1/events";
import { updateReader } from "../../nodes/lib/sapb1/poll";
import { lowStockWindow, overdueWindow } from "../../nodes/lib/sapb1/scan";
import { SapB1Sim } from "../sims/sapb1";

const START = Date.parse("2024-03-01T08:00:00Z");
const pad2 = (n: number): string => String(n).padStart(2, "0");
const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** One watch: a Poller plus the bookkeeping of calls and alerts per poll. */
interface Watch {
  name: string;
  /** Path the watch reads, e.g. "/b1s/v2/PurchaseInvoices". */
  path: string;
  poller: Poller;
  alerts: number;
  busyCalls: number;
  quietCalls: number;
  quietPolls: number;
}

interface Clock {
  now: number;
}

function watch(name: string, entity: string, clock: Clock, pieces: { window: WatermarkWindow; read: (r: PollRead) => AsyncIterable<ErpEventMsg> }, intervalMin = 1): Watch {
  const start = clock.now;
  const store: { state?: PollState } = {};
  const w: Watch = { name, path: `/b1s/v2/${entity}`, alerts: 0, busyCalls: 0, quietCalls: 0, quietPolls: 0, poller: undefined as unknown as Poller };
  w.poller = new Poller({
    window: pieces.window,
    intervalMs: intervalMin * 60_000,
    startFrom: start,
    load: async () => store.state,
    save: async (st) => {
      store.state = st;
    },
    read: pieces.read,
    deliver: (evs) => {
      w.alerts += evs.length;
    },
    onError: () => undefined,
    now: () => clock.now,
  });
  return w;
}

/** Run one poll of `w` and book its calls as busy (alerts delivered) or quiet. */
async function tick(w: Watch, sim: SapB1Sim): Promise<number> {
  const calls = (): number => sim.dataRequests.filter((r) => r.path === w.path).length;
  const c0 = calls();
  const a0 = w.alerts;
  const t0 = performance.now();
  await w.poller.tick();
  const ms = performance.now() - t0;
  if (w.alerts > a0) w.busyCalls += calls() - c0;
  else {
    w.quietCalls += calls() - c0;
    w.quietPolls++;
  }
  return ms;
}

function row(scenario: string, w: Watch, logins: number, extra: Record<string, string | number> = {}): Record<string, string | number> {
  const per = (n: number): string => (w.alerts ? (n / w.alerts).toFixed(2) : "-");
  return {
    scenario,
    watch: w.name,
    alerts: w.alerts,
    "calls/alert (polls with alerts)": per(w.busyCalls),
    "quiet polls": w.quietPolls,
    "calls/quiet poll": w.quietPolls ? (w.quietCalls / w.quietPolls).toFixed(1) : "-",
    "calls/alert (all)": per(w.busyCalls + w.quietCalls),
    "logins/hour": logins,
    ...extra,
  };
}

function putInvoice(sim: SapB1Sim, entry: number, at: number): void {
  const d = new Date(at);
  const date = day(at);
  const time = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
  sim.put("PurchaseInvoices", { DocEntry: entry, DocNum: 7000 + entry, CardCode: "V1", DocDate: date, DocTotal: 100, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: date, UpdateDate: date, UpdateTime: time });
}

/** Scenario 1: purchase invoices only; `perPoll(i)` new invoices before poll i. */
async function invoicesOnly(name: string, intervalMin: number, perPoll: (i: number) => number): Promise<Record<string, string | number>> {
  const clock = { now: START };
  const sim = new SapB1Sim({ tls: false, now: () => clock.now });
  await sim.start();
  const client = new SapB1Client({ url: sim.url, companyDb: sim.companyDb, username: sim.username, password: sim.password });
  const ctx: EventContext = { entity: "PurchaseInvoices", tenant: sim.companyDb, timeZone: "UTC" };
  const w = watch("purchase invoices (created)", "PurchaseInvoices", clock, { window: updateWindow("UTC"), read: updateReader(client, ctx, "created") }, intervalMin);
  const wall: number[] = [];
  let entry = 0;
  try {
    for (let i = 0; i * intervalMin < 60; i++) {
      for (let k = perPoll(i); k > 0; k--) putInvoice(sim, ++entry, clock.now + 10_000 + ((entry * 7) % 40) * 1000);
      clock.now += intervalMin * 60_000;
      wall.push(await tick(w, sim));
    }
  } finally {
    await w.poller.stop();
    await client.close();
    await sim.stop();
  }
  wall.sort((a, b) => a - b);
  return row(name, w, sim.logins.length, { "poll ms (median)": wall[Math.floor(wall.length / 2)].toFixed(1) });
}

/**
 * Scenario 2: the three examples on one connection, a realistic hour from 23:30 (so that invoices fall due at
 * midnight), after a first poll of each watch that is not counted (it sets the start watermark and alerts what the
 * scans find already overdue or low: the start, not the steady state).
 */
async function threeExamples(): Promise<Record<string, string | number>[]> {
  const start = Date.parse("2024-03-01T23:30:00Z");
  const clock = { now: start };
  const sim = new SapB1Sim({ tls: false, now: () => clock.now });
  await sim.start();
  const client = new SapB1Client({ url: sim.url, companyDb: sim.companyDb, username: sim.username, password: sim.password });
  const ctx = (entity: string): EventContext => ({ entity, tenant: sim.companyDb, timeZone: "UTC" });
  // 2,000 inventory items, each stocked in two warehouses above its minimum
  for (let i = 0; i < 2000; i++) {
    const wh = (code: string) => ({ WarehouseCode: code, InStock: 40, MinimalStock: 10 });
    sim.put("Items", { ItemCode: `I${String(i).padStart(5, "0")}`, ItemName: `Item ${i}`, InventoryItem: "tYES", QuantityOnStock: 80, MinInventory: 0, ItemWarehouseInfoCollection: [wh("01"), wh("02")] });
  }
  // 150 invoices overdue by more than 30 days for weeks already (alerted at the uncounted first poll), and 6 due on
  // 2024-02-01, overdue by 30 days from midnight
  const invoice = (n: number, due: string) => ({ DocEntry: n, DocNum: 40_000 + n, CardCode: "C1", DocDueDate: due, DocTotal: 500, PaidToDate: 0, DocCurrency: "USD", DocumentStatus: "bost_Open", Cancelled: "tNO", UpdateDate: "2023-12-01", UpdateTime: "10:00:00" });
  for (let i = 0; i < 150; i++) sim.put("Invoices", invoice(10_000 + i, day(start - (40 + (i % 60)) * 86_400_000)));
  for (let i = 0; i < 6; i++) sim.put("Invoices", invoice(20_000 + i, "2024-02-01"));
  const watches = [
    watch("purchase invoices (created)", "PurchaseInvoices", clock, { window: updateWindow("UTC"), read: updateReader(client, ctx("PurchaseInvoices"), "created") }),
    watch("invoices overdue 30 days", "Invoices", clock, overdueWindow(client, ctx("Invoices"), 30)),
    watch("stock below minimum", "Items", clock, lowStockWindow(client, ctx("Items"))),
  ];
  // bursts of purchase invoices at these polls (minute → count): 36 in 6 bursts; stock dips at these polls
  const bursts: Record<number, number> = { 3: 6, 11: 4, 19: 10, 30: 3, 42: 8, 55: 5 };
  const dips: Record<number, number> = { 7: 2, 25: 1, 48: 3 };
  let entry = 0;
  let dipped = 0;
  try {
    for (const w of watches) await tick(w, sim); // the start: not counted
    for (const w of watches) Object.assign(w, { alerts: 0, busyCalls: 0, quietCalls: 0, quietPolls: 0 });
    for (let i = 0; i < 60; i++) {
      for (let k = bursts[i] ?? 0; k > 0; k--) putInvoice(sim, ++entry, clock.now + 5_000 + k * 1000);
      for (let k = dips[i] ?? 0; k > 0; k--) {
        const item = sim.data.Items.get(`I${String(100 + dipped++ * 37).padStart(5, "0")}`);
        if (item) (item.ItemWarehouseInfoCollection as { InStock: number }[])[0].InStock = 3;
      }
      clock.now += 60_000;
      for (const w of watches) await tick(w, sim);
    }
  } finally {
    for (const w of watches) await w.poller.stop();
    await client.close();
    await sim.stop();
  }
  const logins = sim.logins.length; // the first poll's Login included: one session for the whole run
  const rows = watches.map((w) => row("three examples, one session, 60 s polls", w, logins));
  const all: Watch = { name: "all three", path: "", poller: watches[0].poller, alerts: 0, busyCalls: 0, quietCalls: 0, quietPolls: 0 };
  for (const w of watches) {
    all.alerts += w.alerts;
    all.busyCalls += w.busyCalls;
    all.quietCalls += w.quietCalls;
    all.quietPolls += w.quietPolls;
  }
  rows.push(row("three examples, one session, 60 s polls", all, logins));
  return rows;
}

async function main(): Promise<void> {
  const rows: Record<string, string | number>[] = [];
  rows.push(await invoicesOnly("60 s polls, 1 new invoice per poll", 1, () => 1));
  rows.push(await invoicesOnly("60 s polls, 5 per poll", 1, () => 5));
  rows.push(await invoicesOnly("60 s polls, 150 per poll (2 pages of 100)", 1, () => 150));
  rows.push(await invoicesOnly("60 s polls, 1 invoice every 5th poll", 1, (i) => (i % 5 === 4 ? 1 : 0)));
  rows.push(await invoicesOnly("40 min polls (past the 30 min timeout), 10 per poll", 40, () => 10));
  console.log("SAP Business One polling, one simulated hour: purchase invoices ('created' alerts)");
  console.table(rows);
  console.log("The three examples on one connection (one session), a realistic hour after the first poll: 2,000 items, 150 invoices long overdue, 6 falling due at midnight, 36 new purchase invoices in 6 bursts, 6 stock dips");
  console.table(await threeExamples());
  console.log("Quiet polls: a poll that delivers nothing still reads its pages; that cost is per poll interval, not per alert.");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
