/**
 * `npm run bench` (Business Central part): what the BC client costs against {@link BcSim}, per alert and per hour.
 * - webhook path: N changed invoices → one notification POST → `changes()` reads each record: BC calls per alert;
 * - collection path: a burst over BC's 1,000-change batch limit → one `collection` notification → re-queried with
 *   `Prefer: odata.maxpagesize=500`: calls per alert;
 * - poll path (fallback for entity sets that are not webhook-enabled): one listing per poll, calls per alert for a
 *   few changes per poll, and calls per empty poll;
 * - sign-in: Entra tokens per hour over 24 simulated hours with one call a minute (lifetimes 60–90 min, renewed 5 min
 *   before expiry);
 * - subscription upkeep: what keeping one webhook subscription alive costs over 7 simulated days (renewed a day before
 *   BC's 3-day expiry, each renewal repeating the handshake), in BC calls per day; and the polling fallback's cost per
 *   hour at the trigger's default 60 s interval, with or without changes.
 * Figures only, nothing asserted (the unit tests assert the behaviour).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BcClient, BcNotification } from "../../nodes/lib/bc/client";
import { BcSubscriptionState, BcSubscriptions, handshakeAnswer, readNotifications } from "../../nodes/lib/bc/webhook";
import { odataV4Time } from "../../nodes/lib/poll/conditions";
import { WatermarkWindow } from "../../nodes/lib/poll/window";
import { BcSim } from "../sims/bc";

const SECRET = "bench-client-state";

async function receiver(onBatch: (items: BcNotification[]) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const hs = handshakeAnswer(new URL(req.url ?? "/", "http://x").searchParams);
      const batch = hs ? undefined : readNotifications(Buffer.concat(chunks), SECRET);
      if (batch) onBatch(batch.genuine);
      const a = hs ?? batch?.answer ?? { status: 500, headers: {}, body: "" };
      res.writeHead(a.status, a.headers).end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bc`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

function client(sim: BcSim, now?: () => number): BcClient {
  return new BcClient({ tenant: sim.tenant, environment: sim.environment, companyId: sim.companyId, clientId: sim.clientId, clientSecret: sim.clientSecret, authorityHost: sim.authorityHost, apiHost: sim.apiHost, tls: { ca: BcSim.caPem }, now });
}

async function pushPath(sim: BcSim, changes: number): Promise<string> {
  const items: BcNotification[] = [];
  const rx = await receiver((b) => items.push(...b));
  const c = client(sim);
  try {
    await c.subscribe("salesInvoices", rx.url, SECRET);
    for (let i = 0; i < changes; i++) sim.upsert("salesInvoices", { number: `B${i}`, status: "Open" });
    await sim.flush();
    const before = sim.apiCalls().length;
    let alerts = 0;
    for (const n of items) for await (const ev of c.changes(n)) if (ev) alerts++;
    const calls = sim.apiCalls().length - before;
    const kind = items.some((n) => n.changeType === "collection") ? "collection" : "per record";
    return `${String(changes).padStart(5)} changes, ${kind.padEnd(10)}: ${alerts} alerts, ${calls} BC calls, ${(calls / alerts).toFixed(3)} calls/alert`;
  } finally {
    await c.close();
    await rx.close();
  }
}

async function pollPath(sim: BcSim, polls: number, perPoll: number): Promise<string> {
  const c = client(sim);
  const w = new WatermarkWindow({ overlapMs: 0, modifiedField: "lastModifiedDateTime", timeCondition: odataV4Time });
  let state = WatermarkWindow.initial(new Date(Date.now() - 1000).toISOString());
  let alerts = 0;
  const before = sim.apiCalls().length;
  try {
    for (let p = 0; p < polls; p++) {
      for (let i = 0; i < perPoll; i++) sim.upsert("purchaseOrders", { number: `P${p}-${i}` });
      const events = [];
      for await (const ev of c.pollRead("purchaseOrders", w.filterFor(state, 0, Date.now() + 1))) events.push(ev);
      const r = w.accept(state, events);
      alerts += r.fresh.length;
      state = r.next;
    }
  } finally {
    await c.close();
  }
  const calls = sim.apiCalls().length - before;
  return `${polls} polls × ${perPoll} changes: ${alerts} alerts, ${calls} BC calls, ${alerts ? (calls / alerts).toFixed(3) : "-"} calls/alert, ${(calls / polls).toFixed(2)} calls/poll`;
}

async function tokensPerHour(sim: BcSim, hours: number): Promise<string> {
  const start = Date.now();
  let t = start;
  const c = client(sim, () => t);
  const before = sim.tokensIssued;
  try {
    for (let minute = 0; minute < hours * 60; minute++) {
      t = start + minute * 60_000;
      sim.offsetMs = minute * 60_000;
      await c.companies();
    }
  } finally {
    await c.close();
    sim.offsetMs = 0;
  }
  const tokens = sim.tokensIssued - before;
  const refused = sim.apiCalls((l) => l.status === 401).length;
  return `${hours} simulated hours, 1 call/min: ${tokens} tokens = ${(tokens / hours).toFixed(2)} logins/hour, ${refused} calls met a 401`;
}

async function upkeep(sim: BcSim, days: number): Promise<string> {
  const rx = await receiver(() => undefined);
  const start = Date.now();
  let t = start;
  const c = client(sim, () => t);
  let saved: BcSubscriptionState | undefined;
  const subs = new BcSubscriptions({ client: c, notificationUrl: rx.url, clientState: SECRET, load: () => Promise.resolve(saved), save: (st) => Promise.resolve(void (saved = st)), now: () => t });
  try {
    let next = (await subs.ensure(["salesInvoices"])).nextRenewalAt ?? Infinity;
    const before = sim.apiCalls().length;
    for (let hour = 1; hour <= days * 24; hour++) {
      t = start + hour * 3600_000;
      sim.offsetMs = t - start;
      sim.advance(0);
      if (t >= next) next = (await subs.renewDue()) ?? Infinity;
    }
    const renewals = sim.apiCalls((l) => l.method === "PATCH" && l.path.includes("/subscriptions(")).length;
    const all = sim.apiCalls().length - before;
    const handshakes = sim.log.filter((l) => l.kind === "handshake").length - 1;
    return `${days} simulated days: ${renewals} renewals, ${handshakes} handshakes passed, ${sim.subs.size} subscription alive, ${(all / days).toFixed(2)} BC calls/day`;
  } finally {
    sim.offsetMs = 0;
    await c.close();
    await rx.close();
  }
}

async function main(): Promise<void> {
  const sim = new BcSim();
  await sim.start();
  try {
    process.stdout.write("Business Central client (BcSim)\n");
    process.stdout.write(`  webhook   ${await pushPath(sim, 50)}\n`);
    sim.reset();
    process.stdout.write(`  webhook   ${await pushPath(sim, 1500)}\n`);
    sim.reset();
    process.stdout.write(`  poll      ${await pollPath(sim, 20, 5)}\n`);
    sim.reset();
    process.stdout.write(`  poll      ${await pollPath(sim, 20, 1)}\n`);
    sim.reset();
    process.stdout.write(`  poll      ${await pollPath(sim, 20, 0)}\n`);
    process.stdout.write("  poll      fallback cost at the default 60 s interval: 60 BC calls/hour per entity set, changes or not (≤ 1.0/alert only while every poll finds a change)\n");
    sim.reset();
    process.stdout.write(`  upkeep    ${await upkeep(sim, 7)}\n`);
    sim.reset();
    process.stdout.write(`  sign-in   ${await tokensPerHour(sim, 24)}\n`);
  } finally {
    await sim.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exitCode = 1;
});
