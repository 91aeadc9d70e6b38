/**
 * `node dist/test/bench/gcra.js`: the shared Twilio budget measured before choosing (issue 13 §4 "measure before
 * choosing"). Two instances (two TwilioClients, each with its own Redis connection and local 10/s budget) send 300 SMS
 * together at a 10/s account budget, against the Twilio simulator enforcing 10/s per account and sender strictly, with:
 * - the sliding window the package ships (nodes/lib/budget/gate.ts on nodes/store/redis.ts: a sorted set per key,
 *   each create re-counted at its latest possible arrival);
 * - a GCRA (one "theoretical arrival time" per key in Redis, one Lua script per create, nothing after the answer),
 *   with burst 1 (strict spacing of 100 ms) and burst 10 (10 at once, then one per 100 ms), plugged into the same gate
 *   (its settle step does nothing and costs no round trip).
 * Printed per variant: achieved rate, busiest second of arrivals at the simulator vs the budget, 429s, Redis round
 * trips per SMS. Figures only, nothing asserted (bench only: the GCRA is not in the package).
 */
import { Redis } from "ioredis";
import { SharedRateGate, type SharedRateStore } from "../../nodes/lib/budget/gate";
import { TwilioClient } from "../../nodes/lib/twilio/client";
import { RedisEngine } from "../../nodes/store/redis";
import { RedisServer, findRedisServer, REDIS_APT_HINT } from "../harness/redis";
import { TwilioSim, maxInWindow } from "../sims/twilio";

/** GCRA over several keys at once, on Redis's clock. KEYS: TAT keys; ARGV: per key the emission interval T and tolerance tau (ms). */
const GCRA_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
local tats = {}
for i = 1, #KEYS do
  local tau = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  if tat - tau - now > wait then wait = tat - tau - now end
end
if wait > 0 then return {0, now, math.ceil(wait)} end
for i = 1, #KEYS do
  local T = tonumber(ARGV[2 * i - 1])
  local tau = tonumber(ARGV[2 * i])
  local tat = tats[i] + T
  redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil(tat - now + tau + 1000))
end
return {1, now, 0}
`;

/** A {@link SharedRateStore} that is a GCRA: `limits[i]` per `spansMs[i]`, burst `burst` (≤ limit). */
class GcraStore implements SharedRateStore {
  roundTrips = 0;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly burst: number,
  ) {}

  async reserve(keys: string[], limits: number[], spansMs: number[]): Promise<{ ok: boolean; now: number; waitMs: number }> {
    const args: number[] = [];
    keys.forEach((_, i) => {
      const T = spansMs[i] / limits[i];
      args.push(T, (Math.min(this.burst, limits[i]) - 1) * T);
    });
    this.roundTrips++;
    const [ok, now, wait] = (await this.redis.eval(GCRA_LUA, keys.length, ...keys.map((k) => `${this.prefix}${k}`), ...args)) as number[];
    return { ok: ok === 1, now, waitMs: Math.max(1, wait) };
  }

  async settle(): Promise<void> {
    // a GCRA knows only starts: nothing to re-count
  }
}

interface Row {
  variant: string;
  achieved: number;
  busiest: number;
  rejected429: number;
  tripsPerSms: number;
  ms: number;
}

async function variant(name: string, make: (prefix: string) => Promise<{ gate: SharedRateGate; trips: () => number; close: () => Promise<void> }>): Promise<Row> {
  const sim = new TwilioSim({ senderRatePerSecond: 10, ratePerSecond: 10 });
  await sim.start();
  const parts = [await make(`${name}:`), await make(`${name}:`)];
  const clients = parts.map(
    (p) =>
      new TwilioClient({
        credentials: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken },
        apiHost: sim.url,
        pacing: { ratePerSec: 10, maxConcurrent: 5, senderRates: { longCode: 10 }, shared: p.gate },
      }),
  );
  const N = 300;
  const t0 = performance.now();
  await Promise.allSettled(Array.from({ length: N }, (_, i) => clients[i % 2].sendMessage({ to: `+1415${String(3000000 + i)}`, from: "+15005550006", body: `Bill ${i} needs approval` })));
  const ms = performance.now() - t0;
  const starts = sim.createStarts({ admittedOnly: true });
  const row: Row = {
    variant: name,
    achieved: ((starts.length - 1) / (starts[starts.length - 1] - starts[0])) * 1000,
    busiest: maxInWindow(starts),
    rejected429: sim.rejected429,
    tripsPerSms: parts.reduce((s, p) => s + p.trips(), 0) / N,
    ms,
  };
  for (const c of clients) await c.close();
  for (const p of parts) await p.close();
  await sim.stop();
  return row;
}

export async function gcraBench(): Promise<Row[]> {
  const bin = findRedisServer();
  if (!bin) throw new Error(REDIS_APT_HINT);
  const redis = new RedisServer(bin);
  await redis.start();
  const rows: Row[] = [];
  try {
    rows.push(
      await variant("sliding-window", async (prefix) => {
        const e = new RedisEngine({ url: redis.url, prefix });
        await e.open();
        const gate = new SharedRateGate(e.rates, { prefix: "AC" });
        return { gate, trips: () => gate.calls, close: () => e.close() };
      }),
    );
    for (const burst of [1, 10]) {
      rows.push(
        await variant(`gcra-burst-${burst}`, async (prefix) => {
          const r = new Redis(redis.url, { lazyConnect: false });
          const store = new GcraStore(r, prefix, burst);
          const gate = new SharedRateGate(store, { prefix: "AC" });
          return { gate, trips: () => store.roundTrips, close: async () => void (await r.quit()) };
        }),
      );
    }
  } finally {
    await redis.stop();
  }
  process.stdout.write("shared Twilio budget, 300 SMS over 2 instances, budget 10/s, Twilio enforcing 10/s per account and sender\n");
  process.stdout.write("variant            achieved/s  busiest-second  429s  redis-round-trips/SMS  ms\n");
  for (const r of rows) {
    process.stdout.write(`${r.variant.padEnd(18)} ${r.achieved.toFixed(2).padStart(10)}  ${String(r.busiest).padStart(14)}  ${String(r.rejected429).padStart(4)}  ${r.tripsPerSms.toFixed(2).padStart(21)}  ${Math.round(r.ms)}\n`);
  }
  return rows;
}

if (require.main === module) {
  gcraBench().catch((err: unknown) => {
    process.stderr.write(`gcra bench failed: ${String(err)}\n`);
    process.exitCode = 1;
  });
}
