/**
 * One rate budget across instances: a gate every counted request of a {@link Budget} passes through when several
 * Node-RED processes share an account (Twilio: the account's creates per second and each sender's rate). Each instance
 * keeps its own {@link Budget} (queues, concurrency, 429 re-queue); the gate makes the rate shared.
 *
 * The same exact sliding window as the local one ({@link SlidingWindow}), kept in the shared store (Redis: a sorted set
 * per key, changed only by Lua scripts, on Redis's clock, `TIME`):
 * - a request may start when fewer than `limit` requests of each of its keys can have reached the vendor within the
 *   last `windowMs + marginMs`; it is entered at once, counted as arriving "now" while in flight;
 * - when its answer is back it is re-counted at its latest possible arrival (the start on Redis's clock plus the time
 *   to the answer, measured here), so no window of the vendor's arrivals holds more than `limit`, whatever the network;
 * - a request whose instance died in flight counts as arriving `maxFlightMs` after it started (then leaves the window).
 * Starts are not spread within the window (the window alone keeps the limit); a full window waits exactly until its
 * oldest arrival leaves it (the store says when; while that one is still in flight, the gate asks again after 5 ms).
 *
 * Chosen over a GCRA in Redis (one timestamp per key, cheaper): a GCRA knows only start instants, so it cannot count
 * a request at its arrival, and a slow request could make two arrivals closer than its spacing; being exact that way
 * would need a margin per request, which costs rate. Measured too (test/bench/gcra.ts, 300 SMS over two instances at
 * 10/s): this window 10.06/s, 0 × 429, 7.9 Redis round trips per SMS; a GCRA 9.86/s with 10.1 round trips (burst 1)
 * or 14 × 429 (burst 10). test/bench/redis.ts prints what this gate achieves in the pipeline.
 */
import { randomUUID } from "node:crypto";

/** The shared store's side of the gate (nodes/store/redis.ts implements it with two Lua scripts). */
export interface SharedRateStore {
  /**
   * Enter request `id` under every key if each holds at most its limit minus the request's weight (default 1; capped at
   * the limit) within `spanMs`, atomically.
   * @returns ok: entered, at `now` (store clock, ms); else `waitMs`: when to try again (≥ 1)
   */
  reserve(keys: string[], limits: number[], spansMs: number[], flightMs: number, id: string, weights?: number[]): Promise<{ ok: boolean; now: number; waitMs: number }>;
  /** Re-count `id` (its `weights[i]` units, capped at `limits[i]`, under each key) as arrived at `atMs` (store clock). */
  settle(keys: string[], id: string, atMs: number, weights?: number[], limits?: number[]): Promise<void>;
}

export interface SharedRateGateOptions {
  /** Separates budgets sharing one store (the Twilio Account SID). */
  prefix: string;
  /** Window length, ms. Default 1000. */
  windowMs?: number;
  /** Margin added to the window, ms (clock-rate differences with the vendor). Default 2. */
  marginMs?: number;
  /** How long a request that never settles (its instance died) counts, ms: at least the client's timeout. Default 30000 (twice Twilio's default 15 s). */
  maxFlightMs?: number;
  /** Monotonic clock, ms (time to the answer). Default performance.now(). */
  now?: () => number;
}

/** A rate under one key of the gate; `perSecond` 0 or less = no limit under that key. */
export interface SharedLimit {
  key: string;
  perSecond: number;
  /**
   * Units this request spends under the key (Twilio sender rates: the message's SMS segments), default 1. Capped at
   * the key's per-window limit: a request larger than a whole window counts as one full window across instances.
   */
  weight?: number;
}

export class SharedRateGate {
  private readonly windowMs: number;
  private readonly marginMs: number;
  private readonly flight: number;
  private readonly now: () => number;
  /** Store round trips so far (for the benchmark). */
  calls = 0;

  constructor(
    private readonly store: SharedRateStore,
    private readonly opts: SharedRateGateOptions,
  ) {
    this.windowMs = opts.windowMs ?? 1000;
    this.marginMs = opts.marginMs ?? 2;
    this.flight = opts.maxFlightMs ?? 30000;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Wait until every limit allows one more request, run `fn`, then count it at its latest possible arrival.
   * @throws what `fn` throws; what the store throws while reserving (unreachable: nothing was sent)
   */
  async pass<T>(limits: SharedLimit[], fn: () => Promise<T>): Promise<T> {
    const active = limits.filter((l) => l.perSecond > 0);
    if (active.length === 0) return fn();
    const keys = active.map((l) => `${this.opts.prefix}|${l.key}`);
    // per window: floor(rate) requests; a rate below 1 is 1 request per (window / rate)
    const per = active.map((l) => l.perSecond * (this.windowMs / 1000));
    const counts = per.map((p) => Math.max(1, Math.floor(p)));
    const spans = per.map((p) => (p >= 1 ? this.windowMs : this.windowMs / p) + this.marginMs);
    const weights = active.map((l) => l.weight ?? 1);
    const id = randomUUID();
    let entered: number;
    let t0: number;
    for (;;) {
      this.calls++;
      t0 = this.now(); // before the script runs: entered + (answer − t0) bounds the arrival from above
      const r = await this.store.reserve(keys, counts, spans, this.flight, id, weights);
      if (r.ok) {
        entered = r.now + 1; // the store's clock is read in whole ms (floored)
        break;
      }
      await new Promise((res) => setTimeout(res, r.waitMs));
    }
    const settle = (): void => {
      this.calls++;
      this.store.settle(keys, id, entered + Math.ceil(this.now() - t0), weights, counts).catch(() => undefined); // unsettled: counted maxFlightMs
    };
    try {
      const out = await fn();
      settle();
      return out;
    } catch (err) {
      settle();
      throw err;
    }
  }
}
