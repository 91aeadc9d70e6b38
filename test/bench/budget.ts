/**
 * `npm run bench` (budget part): the kit's rate budget fed by response headers against {@link RateHeaderSim}, an API
 * that counts requests in fixed windows and answers with Exact Online's `X-RateLimit-*` headers (429 over the limit).
 * The simulator's "minute" is shortened to MLC_BENCH_BUDGET_WINDOW_MS (default 1000 ms) so a run covers several
 * windows; the budget knows nothing of the limit but what the headers say. For each allowance per window it sends a
 * burst of allowance × 5 GETs through the HttpClient and `pacedRequest`, and prints: requests served, 429s, re-queues,
 * the busiest window, the share of the windows' allowance used, and the wait after each reset until the next request
 * arrived (median, ms). Figures only, nothing asserted.
 */
import os from "node:os";
import { Budget, EXACT_ONLINE_RATE_HEADERS, pacedRequest } from "../../nodes/lib/budget";
import { HttpClient } from "../../nodes/lib/http";
import { RateHeaderSim } from "../sims/rate-headers";

interface Row {
  perWindow: number;
  n: number;
  served: number;
  rejected429: number;
  requeued: number;
  busiest: number;
  used: number;
  resetWaitMs: number;
}

async function run(perWindow: number, windowMs: number, concurrency: number): Promise<Row> {
  const sim = new RateHeaderSim({ perMinute: perWindow, minuteMs: windowMs });
  await sim.start();
  const http = new HttpClient({ timeoutMs: 10000 });
  const budget = new Budget({ maxConcurrent: concurrency, rateHeaders: EXACT_ONLINE_RATE_HEADERS });
  try {
    const n = perWindow * 5;
    const url = `${sim.url}/api/v1/123456/items`;
    await Promise.allSettled(Array.from({ length: n }, () => pacedRequest(budget, http, { method: "GET", url })));
    const served = sim.served();
    const perIndex = new Map<number, number[]>();
    for (const at of served) {
      const i = Math.floor(at / windowMs);
      perIndex.set(i, [...(perIndex.get(i) ?? []), at]);
    }
    const indexes = [...perIndex.keys()].sort((a, b) => a - b);
    // windows between the first and the last were open for their whole length: how much of them was used
    const full = indexes.slice(1, -1);
    const used = full.length ? full.reduce((s, i) => s + (perIndex.get(i)?.length ?? 0), 0) / (full.length * perWindow) : NaN;
    const waits = indexes.slice(1).map((i) => Math.min(...(perIndex.get(i) ?? [])) - i * windowMs).sort((a, b) => a - b);
    return {
      perWindow,
      n,
      served: served.length,
      rejected429: sim.rejected429,
      requeued: budget.stats.requeued,
      busiest: Math.max(...[...perIndex.values()].map((v) => v.length)),
      used,
      resetWaitMs: waits.length ? waits[Math.floor(waits.length / 2)] : NaN,
    };
  } finally {
    budget.close();
    await http.close();
    await sim.stop();
  }
}

/** Runs the budget cases and prints one line each. */
export async function budgetBench(allowances = [10, 60, 300]): Promise<Row[]> {
  const windowMs = Number(process.env.MLC_BENCH_BUDGET_WINDOW_MS) || 1000;
  process.stdout.write(`\nbudget: header-fed (X-RateLimit-*) burst of allowance × 5 GETs, simulator windows of ${windowMs} ms, concurrency 4 (load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs)\n`);
  process.stdout.write("allowance".padStart(10) + "sent".padStart(7) + "served".padStart(8) + "429s".padStart(6) + "requeued".padStart(10) + "max/window".padStart(12) + "used".padStart(9) + "reset→next ms".padStart(15) + "\n");
  const rows: Row[] = [];
  for (const a of allowances) {
    const r = await run(a, windowMs, 4);
    rows.push(r);
    process.stdout.write(
      String(a).padStart(10) +
        String(r.n).padStart(7) +
        String(r.served).padStart(8) +
        String(r.rejected429).padStart(6) +
        String(r.requeued).padStart(10) +
        String(r.busiest).padStart(12) +
        `${(r.used * 100).toFixed(1)} %`.padStart(9) +
        r.resetWaitMs.toFixed(0).padStart(15) +
        "\n",
    );
  }
  return rows;
}

if (require.main === module) {
  budgetBench().catch((err: unknown) => {
    process.stderr.write(`budget bench failed: ${String(err)}\n`);
    process.exitCode = 1;
  });
}
