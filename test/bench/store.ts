/**
 * `npm run bench:store` (`node dist/test/bench/store.js` after a build): the context store under a steady stream of
 * writes, as Node-RED's context API drives it (`set(scope, key, value, callback)`), one child process
 * per store so that RSS figures do not mix. Printed, never asserted:
 *
 * - set latency (call → callback) p50 / p99 / max, ms;
 * - CPU time per 1,000 writes, ms (all threads: LMDB commits on its own thread);
 * - the longest event-loop stall and how many times the loop was held for more than 50 ms, ms (perf_hooks.monitorEventLoopDelay): a synchronous whole-store
 *   rewrite shows up here;
 * - RSS and its anonymous part (RSS less the file pages LMDB maps, which the OS may drop at any time)
 *   at the start, every 20% and at the end, heap at the end, MB; the store's size on disk, MB.
 *
 * Workload (issue 6: "3,000 pushes, default localfilesystem store: every 30 s the store rewrites ~14 MB
 * synchronously, RSS 128→392 MB"): BENCH_STORE_WRITES (default 100,000) distinct ~300-byte audit-like
 * records into one scope at BENCH_STORE_RATE writes/s (default 2,500, so a run lasts 40 s and crosses
 * localfilesystem's 30 s flush), each store with the settings a user gets by default.
 * Cases: a baseline with no store (what the machine itself adds: on a shared machine the stall column
 * is mostly other processes), this package's store ("flush": callback after fsync; "commit": after commit), Node-RED's
 * localfilesystem (cache on, flushInterval 30 s: its default) and localfilesystem with `cache: false`
 * (commits each set by rewriting the scope file; BENCH_STORE_NOCACHE_WRITES, default 2,000, as its cost
 * grows with the store).
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";

interface ContextStore {
  open(): Promise<void>;
  close(): Promise<void>;
  set(scope: string, key: string, value: unknown, cb: (err?: Error | null) => void): void;
}

interface CaseResult {
  name: string;
  writes: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU time of the whole process (all threads) per 1,000 writes, ms: steadier than latency on a busy machine. */
  cpuPer1k: number;
  stallMs: number;
  /** How many times the event loop was held for more than 50 ms. */
  gaps50: number;
  closeMs: number;
  rss: number[];
  /** RSS less file-backed pages (LMDB maps its file: those pages are the OS page cache, reclaimable). */
  anon: number[];
  heap: number[];
  diskMb: number;
  errors: number;
}

/** No store at all: the callback fires on the next turn. Its stall and latency are the machine's noise floor. */
function nullStore(): ContextStore {
  return {
    open: async () => undefined,
    close: async () => undefined,
    set: (_s, _k, value, cb) => {
      JSON.stringify(value);
      setImmediate(() => cb(null));
    },
  };
}

const CASES: Record<string, { label: string; make: (dir: string) => ContextStore; writes: () => number }> = {
  baseline: {
    label: "baseline: no store (noise floor of this machine)",
    make: () => nullStore(),
    writes: () => Number(process.env.BENCH_STORE_WRITES ?? 100000),
  },
  "mlc-flush": {
    label: "ml-connector store (durability flush, default)",
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    make: (dir) => require("../../nodes/store")({ dir }),
    writes: () => Number(process.env.BENCH_STORE_WRITES ?? 100000),
  },
  "mlc-commit": {
    label: "ml-connector store (durability commit)",
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    make: (dir) => require("../../nodes/store")({ dir, durability: "commit" }),
    writes: () => Number(process.env.BENCH_STORE_WRITES ?? 100000),
  },
  "lfs-cache": {
    label: "localfilesystem (cache, flushInterval 30 s: default)",
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    make: (dir) => require("@node-red/runtime/lib/nodes/context/localfilesystem")({ dir, cache: true, flushInterval: 30 }),
    writes: () => Number(process.env.BENCH_STORE_WRITES ?? 100000),
  },
  "lfs-nocache": {
    label: "localfilesystem (cache: false)",
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    make: (dir) => require("@node-red/runtime/lib/nodes/context/localfilesystem")({ dir, cache: false }),
    writes: () => Number(process.env.BENCH_STORE_NOCACHE_WRITES ?? 2000),
  },
};

function record(i: number): Record<string, unknown> {
  return {
    v: {
      recordId: `r${i.toString(36).padStart(8, "0")}`,
      jobId: `j${(i * 2654435761).toString(16).padStart(32, "0").slice(0, 32)}`,
      sid: `SM${i.toString(16).padStart(32, "0")}`,
      to: "+1415***0132",
      channel: "sms",
      status: "delivered",
      history: [
        { status: "queued", at: "2026-12-07T01:00:00.000Z" },
        { status: "sent", at: "2026-12-07T01:00:01.000Z" },
        { status: "delivered", at: "2026-12-07T01:00:03.000Z" },
      ],
    },
    t: 1765069200000 + i,
    e: 1767661200000 + i,
  };
}

function pct(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** RssAnon from /proc/self/status in MB (Linux), else -1. */
function rssAnonMb(): number {
  try {
    const m = /RssAnon:\s+(\d+) kB/.exec(fs.readFileSync("/proc/self/status", "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : -1;
  } catch {
    return -1;
  }
}

function duMb(dir: string): number {
  let bytes = 0;
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const st = fs.statSync(path.join(dir, f));
    if (st.isFile()) bytes += st.blocks * 512;
  }
  return bytes / 1048576;
}

/** One case, in this (child) process. */
async function runCase(id: string): Promise<CaseResult> {
  const c = CASES[id];
  const writes = c.writes();
  const rate = Number(process.env.BENCH_STORE_RATE ?? 2500);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mlc-bench-${id}-`));
  const store = c.make(dir);
  await store.open();
  const mb = (n: number): number => Math.round(n / 1048576);
  const rss = [mb(process.memoryUsage().rss)];
  const anon = [rssAnonMb()];
  const heap = [mb(process.memoryUsage().heapUsed)];
  const lat = new Float64Array(writes);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  // Count the times the event loop was held for more than 50 ms (a 10 ms probe that came back late).
  let gaps50 = 0;
  let lastProbe = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    if (now - lastProbe > 60) gaps50++;
    lastProbe = now;
  }, 10);
  let issued = 0;
  let done = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(writes, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (issued < due) {
        const i = issued++;
        const start = performance.now();
        store.set("global", `au_${i.toString(16).padStart(10, "0")}`, record(i), (err) => {
          if (err) errors++;
          lat[i] = performance.now() - start;
          done++;
          if (done % Math.max(1, Math.floor(writes / 5)) === 0) {
            rss.push(mb(process.memoryUsage().rss));
            anon.push(rssAnonMb());
            heap.push(mb(process.memoryUsage().heapUsed));
          }
          if (done === writes) resolve();
        });
      }
      if (issued < writes) setTimeout(tick, 5);
    };
    tick();
  });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuPer1k = ((cpu.user + cpu.system) / 1000 / writes) * 1000;
  loop.disable();
  clearInterval(probe);
  const stallMs = loop.max / 1e6;
  const c0 = performance.now();
  await store.close(); // localfilesystem writes its cache here
  const closeMs = performance.now() - c0;
  const diskMb = duMb(dir);
  fs.rmSync(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(lat).sort();
  return { name: c.label, writes, seconds, p50: pct(sorted, 0.5), p99: pct(sorted, 0.99), max: sorted[sorted.length - 1], cpuPer1k, stallMs, gaps50, closeMs, rss, anon, heap, diskMb, errors };
}

function main(): void {
  const only = process.argv[2];
  if (only && CASES[only]) {
    runCase(only).then(
      (r) => process.stdout.write(JSON.stringify(r) + "\n"),
      (err: Error) => {
        process.stderr.write(`${only}: ${err.stack ?? err.message}\n`);
        process.exit(1);
      },
    );
    return;
  }
  const rate = Number(process.env.BENCH_STORE_RATE ?? 2500);
  process.stdout.write(`\ncontext store under ${rate} writes/s of ~300-byte records into one scope; node ${process.version}, ${os.cpus().length} cores, ${new Date().toISOString()}\n`);
  process.stdout.write(
    "store".padEnd(52) + "writes".padStart(8) + "s".padStart(7) + "p50 ms".padStart(9) + "p99 ms".padStart(9) + "max ms".padStart(9) + "cpu/1k ms".padStart(11) + "stall ms".padStart(10) + ">50ms".padStart(7) + "close ms".padStart(10) + "disk MB".padStart(9) + "  RSS MB (start → every 20% → end) | of which anonymous | heap MB at end\n",
  );
  for (const id of Object.keys(CASES)) {
    const out = execFileSync(process.execPath, [__filename, id], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20 });
    const r = JSON.parse(out.trim().split("\n").pop() as string) as CaseResult;
    process.stdout.write(
      r.name.padEnd(52) +
        String(r.writes).padStart(8) +
        r.seconds.toFixed(1).padStart(7) +
        r.p50.toFixed(2).padStart(9) +
        r.p99.toFixed(2).padStart(9) +
        r.max.toFixed(1).padStart(9) +
        r.cpuPer1k.toFixed(0).padStart(11) +
        r.stallMs.toFixed(1).padStart(10) +
        String(r.gaps50).padStart(7) +
        r.closeMs.toFixed(0).padStart(10) +
        r.diskMb.toFixed(1).padStart(9) +
        `  ${r.rss.join(" → ")} | ${r.anon.join(" → ")} | ${r.heap.at(-1)}` +
        (r.errors ? `  (${r.errors} errors)` : "") +
        "\n",
    );
  }
}

main();
