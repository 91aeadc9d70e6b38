/**
 * `npm run bench` (pacing part): the account's rate budget against a Twilio simulator that enforces the same limit
 * strictly, per sender and per account (429 / 20429 for the (N+1)th create in any sliding second).
 * For each budget it sends a burst through the real TwilioClient and prints, from the simulator's ledger (arrival
 * instants of the creates): messages created, 429s, the achieved rate (first to last arrival) and its distance
 * from the budget, and the most creates that arrived in any 1-second window. Figures only, nothing asserted.
 *
 * Then {@link segmentsBench}: long bodies, the sender paced in segments per second (1, 10 and 100 segments/s).
 *
 * MLC_BENCH_PACING_SECONDS (default 10) sets how long each budget runs (n = budget × seconds, at least 120). The client's
 * connections are warmed with reads first (a long-running Node-RED's steady state).
 */
import os from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { TwilioClient } from "../../nodes/lib/twilio/client";
import { TwilioSim, countSegments, maxInWindow } from "../sims/twilio";

interface Row {
  budget: number;
  n: number;
  created: number;
  rejected429: number;
  achieved: number;
  busiest: number;
  requeued: number;
  ms: number;
  /** Event-loop delay during the run (client and simulator share the loop), ms. */
  loopP99: number;
  loopMax: number;
}

async function run(budget: number, seconds: number): Promise<Row> {
  const n = Math.max(120, Math.round(budget * seconds));
  const sender = "+15005550006";
  const sim = new TwilioSim({ senderRatePerSecond: budget, ratePerSecond: budget });
  await sim.start();
  const client = new TwilioClient({
    credentials: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken },
    apiHost: sim.url,
    pacing: { ratePerSec: budget, maxConcurrent: budget >= 200 ? 20 : 5, senderRates: { longCode: budget } },
  });
  try {
    // warm the connections and code paths with reads (not counted by the create budget): the figures are the
    // steady state of a long-running Node-RED, not its first second
    await Promise.all(Array.from({ length: 20 }, () => client.fetchMessage("SM" + "0".repeat(32)).catch(() => undefined)));
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const t0 = performance.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => client.sendMessage({ to: `+1415${String(2000000 + i)}`, from: sender, body: `Bill ${i} needs approval` })),
    );
    const ms = performance.now() - t0;
    loop.disable();
    const starts = sim.createStarts({ admittedOnly: true });
    const achieved = starts.length > 1 ? ((starts.length - 1) / (starts[starts.length - 1] - starts[0])) * 1000 : 0;
    const lost = outcomes.filter((o) => o.status === "rejected").length;
    if (lost) process.stdout.write(`  (${lost} sends failed)\n`);
    return { budget, n, created: sim.messages.length, rejected429: sim.rejected429, achieved, busiest: maxInWindow(sim.createStarts()), requeued: client.budget.stats.requeued, ms, loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6 };
  } finally {
    await client.close();
    await sim.stop();
  }
}

/** Runs the pacing cases and prints one line each. */
export async function pacingBench(budgets = [10, 100, 500, 1000]): Promise<Row[]> {
  const seconds = Number(process.env.MLC_BENCH_PACING_SECONDS) || 10;
  process.stdout.write(`\npacing: burst of budget × ${seconds} s creates, simulator enforcing the budget per sender and per account (load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs)\n`);
  process.stdout.write("(a request is counted until its answer is back, so stalls of the event loop cost rate: see the loop delay columns)\n");
  process.stdout.write(
    "budget/s".padStart(9) + "sent".padStart(7) + "created".padStart(9) + "429s".padStart(6) + "requeued".padStart(10) + "achieved/s".padStart(12) + "vs budget".padStart(11) + "max in 1 s".padStart(12) + "loop p99/max ms".padStart(17) + "\n",
  );
  const rows: Row[] = [];
  for (const b of budgets) {
    const r = await run(b, seconds);
    rows.push(r);
    const dev = ((r.achieved - b) / b) * 100;
    process.stdout.write(
      String(b).padStart(9) +
        String(r.n).padStart(7) +
        String(r.created).padStart(9) +
        String(r.rejected429).padStart(6) +
        String(r.requeued).padStart(10) +
        r.achieved.toFixed(1).padStart(12) +
        `${dev >= 0 ? "+" : ""}${dev.toFixed(2)} %`.padStart(11) +
        String(r.busiest).padStart(12) +
        `${r.loopP99.toFixed(0)}/${r.loopMax.toFixed(0)}`.padStart(17) +
        "\n",
    );
  }
  return rows;
}

/** Bodies of 1, 2 (300 GSM-7 characters) and 3 (140 UCS-2 characters) segments, in turn. */
const BODIES = ["Bill {i} needs approval", "Bill {i} needs approval. " + "A".repeat(275), "Счёт {i} " + "Ж".repeat(131)];

/**
 * Long bodies: a sender paced in SEGMENTS per second (Twilio's long code ≈ 1/s, twilio.md §6.4) against the simulator
 * counting segments per sender. Prints messages, segments, 429s, segments/s achieved and the most segments the
 * simulator's sender delivered in any 1-second window (segment k of a message at arrival + k / rate).
 */
export async function segmentsBench(cases: { rate: number; messages: number }[]): Promise<void> {
  process.stdout.write("\npacing by segments: bodies of 1, 2 and 3 segments in turn, one long-code sender paced at its segment rate\n");
  process.stdout.write("seg rate/s".padStart(11) + "msgs".padStart(6) + "segments".padStart(10) + "429s".padStart(6) + "seg/s achieved".padStart(16) + "vs rate".padStart(10) + "max seg in 1 s".padStart(16) + "\n");
  for (const { rate, messages } of cases) {
    const sender = "+15005550006";
    const sim = new TwilioSim({ senderRatePerSecond: rate });
    await sim.start();
    const client = new TwilioClient({
      credentials: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken },
      apiHost: sim.url,
      pacing: { ratePerSec: 100, maxConcurrent: 5, senderRates: { longCode: rate } },
    });
    try {
      const bodies = Array.from({ length: messages }, (_, i) => BODIES[i % BODIES.length].replace("{i}", String(i)));
      await Promise.allSettled(bodies.map((body, i) => client.sendMessage({ to: `+1415${String(3000000 + i)}`, from: sender, body })));
      const admitted = sim.requests.filter((r) => r.method === "POST" && r.path.endsWith("/Messages.json") && r.status === 201);
      const units = admitted.flatMap((r) => {
        const body = typeof r.form?.Body === "string" ? r.form.Body : "";
        return Array.from({ length: countSegments(body) }, (_, k) => Math.round((r.startedAt + (k * 1000) / rate) * 1000));
      });
      const first = Math.min(...units);
      const last = Math.max(...units);
      const achieved = units.length > 1 ? ((units.length - 1) / (last - first)) * 1e6 : 0;
      const dev = ((achieved - rate) / rate) * 100;
      process.stdout.write(
        String(rate).padStart(11) + String(admitted.length).padStart(6) + String(units.length).padStart(10) + String(sim.rejected429).padStart(6) +
          achieved.toFixed(2).padStart(16) + `${dev >= 0 ? "+" : ""}${dev.toFixed(2)} %`.padStart(10) + String(maxInWindow(units, 1e6)).padStart(16) + "\n",
      );
    } finally {
      await client.close();
      await sim.stop();
    }
  }
}

if (require.main === module) {
  const seconds = Number(process.env.MLC_BENCH_PACING_SECONDS) || 10;
  pacingBench()
    .then(() => segmentsBench([{ rate: 1, messages: 6 }, { rate: 10, messages: Math.max(30, Math.round((10 * seconds) / 2)) }, { rate: 100, messages: Math.max(300, 50 * seconds) }]))
    .catch((err: unknown) => {
      process.stderr.write(`pacing bench failed: ${String(err)}\n`);
      process.exitCode = 1;
    });
}
