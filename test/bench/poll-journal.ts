/**
 * `node dist/test/bench/poll-journal.js` (after a build): what journaling polled events costs (issue 7: a poll
 * watermark moves only past events that were committed). One poll's fresh events are committed (one by one, or all at once as the trigger does, which lets LMDB batch them) to the
 * push journal (lib/journal.ts, key `p|<jobId>`, as nodes/shared/trigger.ts does before emitting them) on the
 * package's store (LMDB, default durability "flush" = fsync per commit, and "commit"), then the watermark is saved
 * once. Printed, never asserted: ms per poll of BENCH_POLL_EVENTS (default 100, 1000) events, ms per event, events/s.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import type { ErpEventMsg } from "../../nodes/lib/envelope";
import { PushJournal } from "../../nodes/lib/journal";
import type { KvBackend } from "../../nodes/lib/store";
// eslint-disable-next-line @typescript-eslint/no-require-imports
const mlcStore = require("../../nodes/store") as (config: Record<string, unknown>) => {
  open(): Promise<void>;
  close(): Promise<void>;
  get(scope: string, key: string, cb: (err: Error | null, v?: unknown) => void): void;
  set(scope: string, key: string, value: unknown, cb: (err?: Error | null) => void): void;
  keys(scope: string, cb: (err: Error | null, keys?: string[]) => void): void;
};

function backendOn(store: ReturnType<typeof mlcStore>, scope: string): KvBackend {
  return {
    get: (k) => new Promise((res, rej) => store.get(scope, k, (e, v) => (e ? rej(e) : res(v)))),
    set: (k, v) => new Promise((res, rej) => store.set(scope, k, v, (e) => (e ? rej(e) : res()))),
    keys: () => new Promise((res, rej) => store.keys(scope, (e, k) => (e ? rej(e) : res(k ?? [])))),
  };
}

function event(i: number): ErpEventMsg {
  const modifiedAt = new Date(Date.UTC(2025, 2, 1) + i * 1000).toISOString();
  const erp = { system: "acumatica" as const, tenant: "AcmeProd", entity: "Payment", id: `Payment/${String(i).padStart(6, "0")}`, action: "updated" as const, modifiedAt, jobId: `j${i.toString(16).padStart(24, "0")}` };
  return { topic: "acumatica/Payment/updated", payload: { ReferenceNbr: String(i).padStart(6, "0"), PaymentAmount: 100 + i, Status: "Voided", Description: "Card declined" }, erp };
}

async function run(durability: string, events: number, mode: "one by one" | "together"): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-bench-poll-"));
  const store = mlcStore({ dir, durability });
  await store.open();
  try {
    const backend = backendOn(store, "n1:f1");
    const journal = new PushJournal(backend, { prefix: "pn" });
    await journal.ready;
    const t0 = performance.now();
    const evs = Array.from({ length: events }, (_, i) => event(i));
    if (mode === "together") await Promise.all(evs.map((ev) => journal.accept(`p|${ev.erp.jobId}`, [ev])));
    else for (const ev of evs) await journal.accept(`p|${ev.erp.jobId}`, [ev]);
    const tJournal = performance.now() - t0;
    await backend.set("mlc_acumatica_poll", { watermark: new Date().toISOString(), seenAtWatermark: [], recent: [] });
    const total = performance.now() - t0;
    return `  ${durability.padEnd(6)} ${mode.padEnd(10)} ${String(events).padStart(5)} events: journal ${tJournal.toFixed(0)} ms (${(tJournal / events).toFixed(2)} ms/event, ${Math.round((events * 1000) / tJournal)} events/s), with the watermark save ${total.toFixed(0)} ms`;
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const sizes = process.env.BENCH_POLL_EVENTS ? [Number(process.env.BENCH_POLL_EVENTS)] : [100, 1000];
  console.log("poll journaling (one poll's fresh events committed one by one, then the watermark):");
  for (const durability of ["flush", "commit"]) for (const mode of ["one by one", "together"] as const) for (const n of sizes) console.log(await run(durability, n, mode));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
