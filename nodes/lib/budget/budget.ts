/**
 * A rate budget for any API: one per vendor account (config node), shared by every request made through it, so a
 * burst queues instead of meeting 429s (design.md, "Budgets are shared and kept").
 *
 * What it keeps:
 * - Windows per second, per minute and per day ({@link Limits}), each an exact sliding window ({@link SlidingWindow}):
 *   no window of the vendor's arrivals ever holds more than its limit. Requests are counted when they leave, and
 *   retries are counted like first attempts. Per-second starts are spread evenly; per-minute and per-day ones may
 *   go at once.
 * - A concurrency cap (`maxConcurrent`), adaptive: halved after a 429 (at most once per round of requests), grown
 *   back by one per round of successes (AIMD).
 * - Keyed sub-budgets inside the budget (`keyLimits`: Twilio's per-sender rates; per endpoint or per division).
 *   Keys are served FIFO each; across keys the oldest request that may go now goes first, so a slow key never
 *   holds up another. A request may weigh several units in its key's windows (`run(key, fn, weight)`: Twilio's
 *   SMS segments, see {@link SlidingWindow.nextAt}); the budget's own windows count every request once.
 * - The API's own counters, from response headers (`rateHeaders`, e.g. {@link EXACT_ONLINE_RATE_HEADERS}): a
 *   counter with nothing remaining holds every start until its reset ({@link ServerAllowance}).
 * - Refusals: a {@link RateLimitedError} from a request (429, or 503 with `Retry-After`, see {@link pacedRequest})
 *   puts it back at the head of its key's queue and pauses the scope for `Retry-After` (else a full-jitter backoff
 *   250 ms · 2^n, ≤ 8 s); it goes again through the same budget, never dropped. Only a non-retryable error, or
 *   refusals for longer than `maxRequeueMs`, reach the caller.
 *
 * How a request is let go: a concurrency slot and every window, pause and counter of the budget and of its key are
 * checked at the same instant and the request leaves right then, so the instant counted is the instant it leaves.
 * One timer wakes the budget for the earliest request that may go later; a wake-up grants every start then due.
 */
import { MlcError, RateLimitedError } from "../errors";
import { HeaderBag, RateHeaderRule, ServerAllowance, readRateHeaders } from "./headers";
import { Fifo, SlidingWindow } from "./window";

/** Rates of a budget or of one key; absent or 0 = no limit of that length. Fractions allowed (0.5/s = 1 per 2 s). */
export interface Limits {
  /** Requests per second (per `windowMs`, see {@link BudgetOptions.windowMs}). */
  perSecond?: number;
  /** Requests per minute (60000 ms). */
  perMinute?: number;
  /** Requests per day (86400000 ms, sliding, not calendar). */
  perDay?: number;
}

/** Timer functions (injectable for tests); default the global setTimeout/clearTimeout. */
export interface BudgetTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface BudgetOptions {
  /** Rates of the whole budget. Default none. */
  limits?: Limits;
  /** Requests in flight at once (counted and others). Default 5. */
  maxConcurrent?: number;
  /** Rates of one key (called once per key while it has state); undefined = the budget's rates only. Key "" has none. */
  keyLimits?: (key: string) => Limits | undefined;
  /** Where header readings and refusal pauses apply: the whole budget (default) or the request's key. */
  scope?: "budget" | "key";
  /**
   * Response headers that carry the API's counters (fed through {@link Budget.noteResponse}). Default none. A counter
   * at 0 holds every request until its reset, however far (a daily counter: until the API's midnight). Resets are
   * placed on our clock: if ours is behind the API's, the first request after a reset may still meet a 429, which
   * re-queues it (backoff, then the 429's own headers) — the request is late, never lost or sent twice.
   */
  rateHeaders?: readonly RateHeaderRule[];
  /** Length of the "per second" window, ms. Default 1000. */
  windowMs?: number;
  /** Margin added to every window, ms, for clock-rate and rounding differences with the vendor. Default 2. */
  marginMs?: number;
  /** Wait after a header counter's reset before the next start, ms (our clock against the vendor's). Default 100. */
  resetMarginMs?: number;
  /** How far ahead of its even-spacing slot a per-second start may go to catch up a late timer, ms. Default 25. */
  burstMs?: number;
  /** Shortest timer wait, ms: starts due sooner go together with those due meanwhile. Default 4. */
  quantumMs?: number;
  /** How long a request keeps being re-queued after refusals before the RateLimitedError reaches the caller, ms. Default 600000. */
  maxRequeueMs?: number;
  /** Monotonic clock, ms. Default `performance.now()`. */
  now?: () => number;
  /** Wall clock, Unix epoch ms (to place header resets on the monotonic clock). Default `Date.now()`. */
  epochNow?: () => number;
  /** Timers, default the global ones (looked up at call time). */
  timers?: BudgetTimers;
  /** Random source for the backoff jitter, [0, 1). Default Math.random. */
  random?: () => number;
  /** Message of the MlcError "closed" that queued requests get from {@link Budget.close}. */
  closedMessage?: string;
}

/** What the budget has done so far (for status and benchmarks). */
export interface BudgetStats {
  /** Counted requests let go (first attempts and re-queued ones). */
  starts: number;
  /** Requests put back in the queue after a refusal. */
  requeued: number;
  /** Requests waiting for their turn now. */
  queued: number;
  /** Requests (counted and others) in flight now. */
  inFlight: number;
  /** Requests allowed in flight now (≤ maxConcurrent; lowered after 429s, raised again by successes). */
  allowed: number;
}

/** An opaque handle on one request attempt (see {@link Budget.currentAttempt}). */
export type BudgetAttempt = object;

interface Attempt {
  /** The allowance the answer's headers feed, and its count right after this request started. */
  feed: ServerAllowance;
  base: number;
  /** When the transport had the answer (before the caller's own processing), ms. */
  answeredAt?: number;
  /** Time the vendor said it spent on the request, ms, when it said. */
  serverMs?: number;
}

interface Job {
  seq: number;
  key: string;
  /** Units the key's windows spend (Twilio: SMS segments); the budget's own windows count 1. */
  weight: number;
  fn: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** When the job was first queued (ms). */
  since: number;
  /** Refusals met so far. */
  refused: number;
  /** Instant the current attempt started. */
  startedAt: number;
  attempt?: Attempt;
}

/** The rates, pause and header allowance of the whole budget or of one key. */
class Scope {
  pausedUntil = -Infinity;
  /** Requests of this scope in flight. */
  private open = 0;
  readonly allowance = new ServerAllowance();
  constructor(readonly windows: SlidingWindow[]) {}

  nextAt(now: number, resetMarginMs: number, weight = 1): number {
    let at = Math.max(now, this.pausedUntil, this.allowance.nextAt(now, resetMarginMs));
    for (const w of this.windows) at = Math.max(at, w.nextAt(now, weight));
    return at;
  }

  begin(now: number, weight = 1): void {
    for (const w of this.windows) w.begin(now, weight);
    this.allowance.begin();
    this.open++;
  }

  end(arrival: number, weight = 1): void {
    for (const w of this.windows) w.end(arrival, weight);
    this.open = Math.max(0, this.open - 1);
  }

  idle(now: number, resetMarginMs: number): boolean {
    return this.open === 0 && this.pausedUntil <= now && this.allowance.idle(now, resetMarginMs) && this.windows.every((w) => w.idle(now));
  }
}

interface Lane {
  scope: Scope;
  queue: Fifo<Job>;
}

const globalTimers: BudgetTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

const MINUTE_MS = 60000;
const DAY_MS = 86400000;

/** Resolved options (defaults applied). */
type Settings = Required<Omit<BudgetOptions, "limits" | "keyLimits" | "rateHeaders" | "closedMessage">> & Pick<BudgetOptions, "keyLimits" | "closedMessage"> & { rateHeaders: readonly RateHeaderRule[] };

function settings(opts: BudgetOptions): Settings {
  return {
    maxConcurrent: Math.max(1, Math.floor(opts.maxConcurrent ?? 5)),
    keyLimits: opts.keyLimits,
    scope: opts.scope ?? "budget",
    rateHeaders: opts.rateHeaders ?? [],
    windowMs: opts.windowMs ?? 1000,
    marginMs: opts.marginMs ?? 2,
    resetMarginMs: opts.resetMarginMs ?? 100,
    burstMs: opts.burstMs ?? 25,
    quantumMs: Math.max(0, opts.quantumMs ?? 4),
    maxRequeueMs: opts.maxRequeueMs ?? 600000,
    now: opts.now ?? (() => performance.now()),
    epochNow: opts.epochNow ?? (() => Date.now()),
    timers: opts.timers ?? globalTimers,
    random: opts.random ?? Math.random,
    closedMessage: opts.closedMessage,
  };
}

/**
 * A rate budget (see module doc). `run` for requests the API counts, `other` for requests only the concurrency cap
 * applies to (e.g. Twilio's reads).
 */
export class Budget {
  protected readonly cfg: Settings;
  private readonly all: Scope;
  private readonly lanes = new Map<string, Lane>();
  private readonly otherWaiters: (() => void)[] = [];
  /** The attempt whose `fn` is being called (set only during its synchronous part, see {@link currentAttempt}). */
  private current?: Attempt;
  private inFlight = 0;
  /** Requests allowed in flight now (AIMD, see module doc). */
  private allowed: number;
  private lastCutAt = -Infinity;
  private waiting = 0;
  private seq = 0;
  private starts = 0;
  private requeued = 0;
  private timer: unknown;
  private timerAt = Infinity;
  private pumping = false;
  private closed = false;

  constructor(opts: BudgetOptions = {}) {
    this.cfg = settings(opts);
    this.allowed = this.cfg.maxConcurrent;
    this.all = new Scope(this.windows(opts.limits));
  }

  /** Requests waiting for their turn. */
  get queued(): number {
    return this.waiting;
  }

  /** Counters so far. */
  get stats(): BudgetStats {
    return { starts: this.starts, requeued: this.requeued, queued: this.waiting, inFlight: this.inFlight, allowed: this.slots() };
  }

  /** Requests the API's counters (response headers) still allow per counter, for the budget or one key (scope "key"). */
  remaining(key?: string): Record<string, number> {
    return (this.cfg.scope === "key" ? this.lanes.get(key ?? "")?.scope.allowance : this.all.allowance)?.snapshot() ?? {};
  }

  /**
   * Run a counted request within the budget: a concurrency slot and the rates of the budget and of `key`, all at the
   * instant `fn` is called. A {@link RateLimitedError} from `fn` re-queues it (see module doc).
   * @param key the sub-budget (Twilio sender, endpoint, division); undefined = the budget's rates only
   * @param weight units the key's rates spend on it (an integer ≥ 1, e.g. Twilio SMS segments; default 1); the
   *   budget's own rates count it once
   * @throws whatever `fn` throws (non-retryable), RateLimitedError after `maxRequeueMs` of refusals, MlcError "closed" after close()
   */
  run<T>(key: string | undefined, fn: () => Promise<T>, weight = 1): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    const k = key ?? "";
    const w = Number.isFinite(weight) ? Math.max(1, Math.floor(weight)) : 1;
    return new Promise<T>((resolve, reject) => {
      this.lane(k).queue.push({ seq: this.seq++, key: k, weight: w, fn, resolve: resolve as (v: unknown) => void, reject, since: this.cfg.now(), refused: 0, startedAt: 0 });
      this.waiting++;
      this.pump();
    });
  }

  /** Run a request the API does not count, within the concurrency cap only. Waiting ones go before queued counted ones. */
  async other<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw this.closedError();
    if (this.inFlight >= this.slots()) await new Promise<void>((r) => this.otherWaiters.push(r));
    else this.inFlight++;
    try {
      return await this.call(fn, { feed: this.all.allowance, base: this.all.allowance.count });
    } finally {
      this.release();
    }
  }

  /**
   * The attempt whose `fn` is being called, for the transport to hand back to {@link noteResponse} /
   * {@link noteServerTime}. Only defined during the synchronous part of `fn` (read it before the first await);
   * elsewhere undefined. An opaque token; no AsyncLocalStorage, so no async_hooks cost for the rest of Node-RED.
   */
  currentAttempt(): BudgetAttempt | undefined {
    return this.current;
  }

  /**
   * The transport has the answer of `attempt`: feed its rate headers (`rateHeaders`) to the budget and note the
   * instant (the window counts the request as arriving no later than this).
   * @param serverMs time the vendor says it spent on the request, ms (NaN/undefined when it did not say)
   */
  noteResponse(attempt: BudgetAttempt | undefined, headers: HeaderBag, serverMs?: number): void {
    const a = attempt as Attempt | undefined;
    if (!a) return;
    this.noteServerTime(a, serverMs ?? NaN);
    if (!this.cfg.rateHeaders.length) return;
    const epoch = this.cfg.epochNow();
    const now = this.cfg.now();
    for (const r of readRateHeaders(headers, this.cfg.rateHeaders, epoch)) a.feed.observe(r, a.base, now + (r.resetAt - epoch));
    this.pump();
  }

  /**
   * The answer of `attempt` is in, and the vendor says it spent `ms` on the request (e.g. Twilio-Request-Duration;
   * NaN when absent): the request reached the vendor at least that long before the answer came back, which narrows
   * the instant the windows count. Without it the settle instant is counted.
   */
  noteServerTime(attempt: BudgetAttempt | undefined, ms: number): void {
    const a = attempt as Attempt | undefined;
    if (!a || a.answeredAt !== undefined) return;
    a.answeredAt = this.cfg.now();
    if (Number.isFinite(ms) && ms > 0) a.serverMs = ms;
  }

  /** Reject every queued request (MlcError "closed") and stop the timer. In-flight requests finish on their own. */
  close(): void {
    this.closed = true;
    this.clearTimer();
    const err = this.closedError();
    for (const lane of this.lanes.values()) for (const job of lane.queue.drain()) job.reject(err);
    this.waiting = 0;
    this.lanes.clear();
  }

  private closedError(): MlcError {
    return new MlcError(this.cfg.closedMessage ?? "The client was closed (redeploy or shutdown) before this request could leave", { code: "closed", retryable: true });
  }

  /** The sliding windows of `limits` (none for absent or non-positive rates). */
  private windows(limits: Limits | undefined): SlidingWindow[] {
    const { windowMs, burstMs } = this.cfg;
    const out: SlidingWindow[] = [];
    const add = (rate: number | undefined, length: number, burst: number): void => {
      if (rate === undefined || !Number.isFinite(rate) || rate <= 0) return;
      // N starts per window: a rate of 0.5 per window is 1 start per two windows.
      const limit = Math.max(1, Math.floor(rate));
      out.push(new SlidingWindow(limit, (limit / rate) * length, this.cfg.marginMs, burst));
    };
    add(limits?.perSecond !== undefined ? (limits.perSecond * windowMs) / 1000 : undefined, windowMs, burstMs);
    add(limits?.perMinute, MINUTE_MS, Infinity);
    add(limits?.perDay, DAY_MS, Infinity);
    return out;
  }

  private lane(key: string): Lane {
    let lane = this.lanes.get(key);
    if (!lane) {
      const limits = key && this.cfg.keyLimits ? this.cfg.keyLimits(key) : undefined;
      this.lanes.set(key, (lane = { scope: new Scope(this.windows(limits)), queue: new Fifo<Job>() }));
    }
    return lane;
  }

  /** The scope that header readings and refusal pauses of `key` apply to. */
  private feedScope(key: string): Scope {
    return this.cfg.scope === "key" ? this.lane(key).scope : this.all;
  }

  private slots(): number {
    return Math.max(1, Math.floor(this.allowed));
  }

  private release(): void {
    const next = this.inFlight <= this.slots() ? this.otherWaiters.shift() : undefined;
    if (next) return next(); // the slot passes straight to a waiting request of `other`
    this.inFlight--;
    this.pump();
  }

  /** Let go every request that may go now; arm one timer for the earliest one that may go later. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      for (;;) {
        if (this.inFlight >= this.slots() || this.waiting === 0) return;
        const now = this.cfg.now();
        const { best, earliest } = this.pick(now);
        if (!best) return this.arm(earliest, now);
        this.start(best, now);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** The oldest queue head that may go at `now`, else the earliest instant one may. */
  private pick(now: number): { best?: Job; earliest: number } {
    const allAt = this.all.nextAt(now, this.cfg.resetMarginMs);
    let best: Job | undefined;
    let earliest = Infinity;
    for (const [key, lane] of this.lanes) {
      const job = lane.queue.peek();
      if (!job) {
        this.forget(key, lane, now);
        continue;
      }
      const at = Math.max(allAt, lane.scope.nextAt(now, this.cfg.resetMarginMs, job.weight));
      if (at <= now) {
        if (!best || job.seq < best.seq) best = job;
      } else if (at < earliest) earliest = at;
    }
    return { best, earliest };
  }

  private start(job: Job, now: number): void {
    const lane = this.lane(job.key);
    lane.queue.shift();
    this.waiting--;
    this.all.begin(now);
    lane.scope.begin(now, job.weight);
    job.startedAt = now;
    const feed = this.feedScope(job.key).allowance;
    job.attempt = { feed, base: feed.count };
    this.inFlight++;
    this.starts++;
    this.call(job.fn, job.attempt).then(
      (v) => this.succeeded(job, v),
      (err: unknown) => this.failed(job, err),
    );
  }

  /**
   * Call `fn` with `attempt` as the current attempt during its synchronous part (restored afterwards, should `fn`
   * itself start another request synchronously); a throw becomes a rejection.
   */
  private call<T>(fn: () => Promise<T>, attempt: Attempt): Promise<T> {
    const outer = this.current;
    try {
      this.current = attempt;
      return fn();
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.current = outer;
    }
  }

  /** Drop the state of a key with nothing queued once its windows have passed (bounded memory with many keys). */
  private forget(key: string, lane: Lane, now: number): void {
    if (lane.queue.length || !lane.scope.idle(now, this.cfg.resetMarginMs)) return;
    this.lanes.delete(key);
  }

  /** The request settled: count it in its windows at its latest possible arrival (see {@link SlidingWindow}). */
  private settle(job: Job): void {
    const a = job.attempt;
    const answered = a?.answeredAt ?? this.cfg.now();
    // a duration header has millisecond resolution: keep 2 ms of it as slack
    const arrival = Math.max(job.startedAt, answered - Math.max(0, (a?.serverMs ?? 0) - 2));
    this.all.end(arrival);
    this.lanes.get(job.key)?.scope.end(arrival, job.weight);
  }

  private succeeded(job: Job, v: unknown): void {
    this.settle(job);
    this.allowed = Math.min(this.cfg.maxConcurrent, this.allowed + 1 / this.allowed);
    this.release();
    job.resolve(v);
  }

  private failed(job: Job, err: unknown): void {
    this.settle(job);
    if (err instanceof RateLimitedError && !this.closed && this.cfg.now() - job.since < this.cfg.maxRequeueMs) {
      this.requeue(job, err);
      this.release();
      return;
    }
    this.release();
    job.reject(err);
  }

  /** Back at the head of its key's queue; the scope pauses for Retry-After, else full-jitter backoff (250 ms · 2^n, ≤ 8 s). */
  private requeue(job: Job, err: RateLimitedError): void {
    const now = this.cfg.now();
    const delay =
      err.retryAfterMs !== undefined && err.retryAfterMs >= 0 ? err.retryAfterMs : Math.floor(this.cfg.random() * Math.min(8000, 250 * 2 ** Math.min(job.refused, 10)));
    job.refused++;
    this.requeued++;
    if (job.startedAt >= this.lastCutAt) {
      this.allowed = Math.max(1, this.allowed / 2);
      this.lastCutAt = now;
    }
    const scope = this.feedScope(job.key);
    scope.pausedUntil = Math.max(scope.pausedUntil, now + delay);
    this.lane(job.key).queue.unshift(job);
    this.waiting++;
  }

  private arm(at: number, now: number): void {
    if (!Number.isFinite(at)) return;
    at = Math.max(at, now + this.cfg.quantumMs);
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = this.cfg.timers.set(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(this.cfg.quantumMs, at - now));
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.cfg.timers.clear(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
