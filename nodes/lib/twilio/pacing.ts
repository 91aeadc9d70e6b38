/**
 * Pacing: one rate budget per Twilio account (config node), shared by every node that sends through it,
 * so a burst queues instead of meeting 429/20429 ("too many concurrent requests", not processed).
 *
 * Two levels: an account-wide budget (creates per second and requests in flight) and, inside it, a
 * per-sender budget whose rate defaults from the sender type (Twilio's documented defaults, see
 * {@link DEFAULT_SENDER_RATES}).
 *
 * How a create is let go (the scheduler):
 * - A create first needs a concurrency slot, then its turn in the rate budget; both are checked at the same
 *   instant and the request leaves right then, so the instant counted is the instant the request leaves
 *   (a slot wait can never bunch up requests that were spaced earlier).
 * - Each rate (account, sender) is a sliding window: at most N requests reach Twilio in any window of
 *   `windowMs` (+ a small margin `marginMs`), counting each request at the latest instant it can have reached
 *   Twilio (see {@link SlidingWindow}), so neither the network nor a stalled event loop can squeeze N + 1
 *   arrivals into one second.
 * - Inside the window, starts are spread evenly (GCRA, emission interval (window + margin) / N) with a small
 *   burst tolerance `burstMs`, so a late timer is caught up instead of lost, and at high rates one timer
 *   wake-up grants every start that is due (no sub-millisecond setTimeout per request).
 * - Retries are counted like first attempts: a 429 ({@link RateLimitedError}) puts the create back at the
 *   head of its sender's queue, pauses that sender for `Retry-After` (or a jittered backoff when Twilio sent
 *   none), and it goes again through the same budget. Only a non-retryable error, or 429s for longer than
 *   `maxRequeueMs`, reach the caller.
 * - Senders are served FIFO; across senders the oldest create that may go now goes first (a 1/s long code
 *   never holds up a short code).
 *
 * Twilio: https://support.twilio.com/hc/en-us/articles/115002943027 (sender throughput);
 * https://www.twilio.com/docs/api/errors/20429 ; WhatsApp: https://www.twilio.com/docs/whatsapp/best-practices-and-faqs
 */
import { MlcError, RateLimitedError } from "../errors";

/** Sender types with their own rate. */
export type SenderType = "longCode" | "tollFree" | "shortCode" | "messagingService" | "whatsapp" | "other";

/** Per-second rates per sender type: absent = {@link DEFAULT_SENDER_RATES}, 0 = only the account budget applies. */
export type SenderRates = Partial<Record<SenderType, number>>;

/**
 * Twilio's documented default throughput per sender, messages per second (0 = no per-sender limit):
 * US/CA long code 1 MPS, US toll-free 3 MPS, short code 100 MPS (support article 115002943027), WhatsApp text
 * 10 MPS (WhatsApp best practices and FAQs). A Messaging Service spreads over its pool and alphanumeric or other
 * senders have no documented default, so they only get the account budget.
 */
export const DEFAULT_SENDER_RATES: Readonly<Record<SenderType, number>> = Object.freeze({
  longCode: 1,
  tollFree: 3,
  shortCode: 100,
  messagingService: 0,
  whatsapp: 10,
  other: 0,
});

/** Timer functions (injectable for tests); default the global setTimeout/clearTimeout. */
export interface PacingTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface PacingOptions {
  /** Account-wide creates per second (messages, calls, verifications), 0 = none. Default 10. */
  ratePerSec?: number;
  /** Account-wide requests in flight at once (any request). Default 5. */
  maxConcurrent?: number;
  /** Rates per sender type, per second; absent types take {@link DEFAULT_SENDER_RATES}, 0 = no per-sender limit. */
  senderRates?: SenderRates;
  /** Length of the rate window, ms. Default 1000 (rates are per second). */
  windowMs?: number;
  /**
   * Margin added to every window, ms, for clock-rate and header-rounding differences between Twilio and us.
   * Costs `marginMs / windowMs` of throughput (0.2 % by default). Default 2.
   */
  marginMs?: number;
  /** How far ahead of its even-spacing slot a start may go to catch up a late timer, ms. Default 25. */
  burstMs?: number;
  /**
   * Shortest timer wait, ms: a start due sooner waits this long and goes together with the starts that fall due
   * meanwhile (one wake-up grants them all; the sliding window still holds exactly). Default 4.
   */
  quantumMs?: number;
  /** How long a create keeps being re-queued after 429s before the RateLimitedError reaches the caller, ms. Default 600000 (10 min). */
  maxRequeueMs?: number;
  /** Monotonic clock, ms. Default `performance.now()`. */
  now?: () => number;
  /** Timers, default the global ones (looked up at call time). */
  timers?: PacingTimers;
  /** Random source for the 429 backoff jitter, [0, 1). Default Math.random. */
  random?: () => number;
}

/** What the budget has done so far (for status and benchmarks). */
export interface PacingStats {
  /** Creates let go (first attempts and re-queued ones). */
  starts: number;
  /** Creates put back in the queue after a 429. */
  requeued: number;
  /** Creates waiting for their turn now. */
  queued: number;
  /** Requests (creates and others) in flight now. */
  inFlight: number;
  /** Requests allowed in flight now (≤ maxConcurrent; lowered after 429s, raised again by successes). */
  allowed: number;
}

/** Classify a sender: "MG…" service, "whatsapp:" channel, 5–6 digit short code, +1 8xx toll-free, else long code. */
export function senderType(from: string | undefined): SenderType {
  if (!from) return "other";
  if (/^MG[0-9a-fA-F]{32}$/.test(from)) return "messagingService";
  if (from.startsWith("whatsapp:")) return "whatsapp";
  if (/^\d{5,6}$/.test(from)) return "shortCode";
  if (/^\+1(800|833|844|855|866|877|888)\d{7}$/.test(from)) return "tollFree";
  if (/^\+\d{6,15}$/.test(from)) return "longCode";
  return "other";
}

/**
 * The rate of one sender under `rates` (per second; 0 = none): the configured rate for its type when one is
 * given (0 included), else Twilio's default for the type.
 */
export function senderRate(from: string | undefined, rates: SenderRates = {}): number {
  const type = senderType(from);
  const configured = rates[type];
  return configured !== undefined && Number.isFinite(configured) && configured >= 0 ? configured : DEFAULT_SENDER_RATES[type];
}

/**
 * At most `limit` requests reaching the vendor in any window of `windowMs + marginMs`, however long each takes to
 * get there; starts spread evenly by a GCRA with emission interval (windowMs + marginMs) / limit and tolerance `burstMs`.
 *
 * A request reaches the vendor somewhere between the instant it leaves and the instant its answer comes back (minus the
 * time the vendor says it spent, Twilio-Request-Duration). The window counts each request at that latest possible
 * arrival, and a request still in flight as "now" for as long as it is in flight, so no window of the vendor's
 * arrivals can hold more than `limit`, whatever the network, a cold first connection or a stalled event loop does.
 * Proof sketch: at every start t, fewer than `limit` earlier requests can have arrived after t − window; a window
 * holding `limit` + 1 arrivals would contradict this for the one of them that started last.
 */
export class SlidingWindow {
  /** Latest-possible arrival instants of settled requests younger than the window, sorted. */
  private times: number[] = [];
  private head = 0;
  private open = 0;
  private tat = -Infinity;
  private readonly span: number;
  private readonly interval: number;

  constructor(readonly limit: number, windowMs: number, marginMs: number, private readonly burstMs: number) {
    this.span = windowMs + marginMs;
    this.interval = this.span / limit;
  }

  /** Earliest instant (ms, same clock as `now`) at or after `now` when one more start is allowed; Infinity = after a settle. */
  nextAt(now: number): number {
    this.prune(now);
    const room = this.limit - this.open;
    if (room <= 0) return Infinity;
    let at = Math.max(now, this.tat - this.burstMs);
    const size = this.times.length - this.head;
    // at most room − 1 settled requests may have arrived after at − span
    if (size >= room) at = Math.max(at, this.times[this.head + size - room] + this.span);
    return at;
  }

  /** A request starts at `t` (counted as arriving "now" until it settles). */
  begin(t: number): void {
    this.open++;
    this.tat = Math.max(this.tat, t) + this.interval;
  }

  /** The request started by {@link begin} settled; it reached the vendor at `latestArrival` at the latest. */
  end(latestArrival: number): void {
    this.open = Math.max(0, this.open - 1);
    let i = this.times.length;
    while (i > this.head && this.times[i - 1] > latestArrival) i--;
    if (i === this.times.length) this.times.push(latestArrival);
    else this.times.splice(i, 0, latestArrival);
  }

  /** True when nothing is in flight or left in the window (the limiter can be forgotten). */
  idle(now: number): boolean {
    this.prune(now);
    return this.open === 0 && this.times.length === this.head && this.tat <= now;
  }

  private prune(now: number): void {
    while (this.head < this.times.length && this.times[this.head] <= now - this.span) this.head++;
    if (this.head > 256 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}

/** An opaque handle on one create attempt (see {@link RateBudget.currentAttempt}). */
export type PacingAttempt = object;

interface Job {
  seq: number;
  key: string;
  fn: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** When the job was first queued (ms). */
  since: number;
  /** 429s met so far. */
  rateLimited: number;
  /** Instant the current attempt started. */
  startedAt: number;
  /** Time the vendor said it spent on the current attempt, ms (Twilio-Request-Duration), when it said. */
  serverMs?: number;
  /** When the transport had the answer of the current attempt (before the SDK's own processing). */
  answeredAt?: number;
}

/** A FIFO queue with O(1) push, shift and unshift. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
  unshift(v: T): void {
    if (this.head > 0) this.items[--this.head] = v;
    else this.items.unshift(v);
  }
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

const globalTimers: PacingTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * The account's rate budget. `create` for anything that creates a billable resource (counted against the
 * rates), `other` for reads (concurrency only).
 */
export class RateBudget {
  private readonly account?: SlidingWindow;
  private readonly maxConcurrent: number;
  private readonly senderRates: SenderRates;
  private readonly windowMs: number;
  private readonly marginMs: number;
  private readonly burstMs: number;
  private readonly maxRequeueMs: number;
  private readonly quantumMs: number;
  private readonly now: () => number;
  private readonly timers: PacingTimers;
  private readonly random: () => number;
  private readonly senders = new Map<string, SlidingWindow | null>();
  private readonly queues = new Map<string, Fifo<Job>>();
  private readonly pausedUntil = new Map<string, number>();
  private readonly otherWaiters: (() => void)[] = [];
  /** The create whose `fn` is being called (set only during the synchronous part of the call, see {@link currentAttempt}). */
  private current?: Job;
  private inFlight = 0;
  /**
   * Requests allowed in flight now (AIMD): halves on a 429 (Twilio's 20429 means too many concurrent requests), at
   * most once per round of requests, and grows by one per round of successes back to `maxConcurrent`.
   */
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

  constructor(opts: PacingOptions = {}) {
    const rate = opts.ratePerSec ?? 10;
    this.windowMs = opts.windowMs ?? 1000;
    this.marginMs = opts.marginMs ?? 2;
    this.burstMs = opts.burstMs ?? 25;
    this.maxRequeueMs = opts.maxRequeueMs ?? 600000;
    this.quantumMs = Math.max(0, opts.quantumMs ?? 4);
    this.now = opts.now ?? (() => performance.now());
    this.timers = opts.timers ?? globalTimers;
    this.random = opts.random ?? Math.random;
    this.senderRates = { ...(opts.senderRates ?? {}) };
    this.maxConcurrent = Math.max(1, Math.floor(opts.maxConcurrent ?? 5));
    this.allowed = this.maxConcurrent;
    if (rate > 0) this.account = this.window(rate);
  }

  private window(ratePerSec: number): SlidingWindow {
    // N starts per window: a rate of 0.5/s over a 1000 ms window is 1 start per 2000 ms.
    const perWindow = (ratePerSec * this.windowMs) / 1000;
    const limit = Math.max(1, Math.floor(perWindow));
    const windowMs = (limit / perWindow) * this.windowMs;
    return new SlidingWindow(limit, windowMs, this.marginMs, this.burstMs);
  }

  /** Creates waiting for their turn. */
  get queued(): number {
    return this.waiting;
  }

  /** Counters so far. */
  get stats(): PacingStats {
    return { starts: this.starts, requeued: this.requeued, queued: this.waiting, inFlight: this.inFlight, allowed: this.slots() };
  }

  /** The per-sender rate that applies to `sender`, per second (0 = none). */
  rateFor(sender: string | undefined): number {
    return senderRate(sender, this.senderRates);
  }

  /**
   * Run a create (message, call, verification) within the budget: a concurrency slot and the account's and the
   * sender's rates, all at the instant `fn` is called. A {@link RateLimitedError} from `fn` re-queues it (see module doc).
   * @param sender the `From` (E.164, short code, `whatsapp:+…`) or Messaging Service SID; undefined = account budget only
   * @throws whatever `fn` throws (non-retryable), RateLimitedError after `maxRequeueMs` of 429s, MlcError "closed" after close()
   */
  create<T>(sender: string | undefined, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    const key = sender ?? "";
    return new Promise<T>((resolve, reject) => {
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = new Fifo<Job>()));
      q.push({ seq: this.seq++, key, fn, resolve: resolve as (v: unknown) => void, reject, since: this.now(), rateLimited: 0, startedAt: 0 });
      this.waiting++;
      this.pump();
    });
  }

  /** Run any other request (fetch, list) within the concurrency limit only. Waiting reads go before waiting creates. */
  async other<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw closedError();
    if (this.inFlight >= this.slots()) await new Promise<void>((r) => this.otherWaiters.push(r));
    else this.inFlight++;
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /** Reject every queued create (MlcError "closed") and stop the timer. In-flight requests finish on their own. */
  close(): void {
    this.closed = true;
    this.clearTimer();
    const err = closedError();
    for (const q of this.queues.values()) for (const job of q.drain()) job.reject(err);
    this.waiting = 0;
    this.queues.clear();
  }

  private slots(): number {
    return Math.max(1, Math.floor(this.allowed));
  }

  private release(): void {
    const next = this.inFlight <= this.slots() ? this.otherWaiters.shift() : undefined;
    if (next) return next(); // the slot passes straight to a waiting read
    this.inFlight--;
    this.pump();
  }

  private limiterFor(key: string): SlidingWindow | null {
    let s = this.senders.get(key);
    if (s === undefined) {
      const rate = key ? this.rateFor(key) : 0;
      s = rate > 0 ? this.window(rate) : null;
      this.senders.set(key, s);
    }
    return s;
  }

  /** Let go every create that may go now; arm one timer for the earliest one that may go later. */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      for (;;) {
        if (this.inFlight >= this.slots() || this.waiting === 0) return;
        const now = this.now();
        const accountAt = this.account ? this.account.nextAt(now) : now;
        let best: Job | undefined;
        let earliest = Infinity;
        for (const [key, q] of this.queues) {
          const job = q.peek();
          if (!job) {
            this.forget(key, q, now);
            continue;
          }
          const at = Math.max(accountAt, this.limiterFor(key)?.nextAt(now) ?? now, this.pausedUntil.get(key) ?? now);
          if (at <= now) {
            if (!best || job.seq < best.seq) best = job;
          } else if (at < earliest) earliest = at;
        }
        if (!best) {
          this.arm(earliest, now);
          return;
        }
        this.queues.get(best.key)?.shift();
        this.waiting--;
        this.account?.begin(now);
        this.limiterFor(best.key)?.begin(now);
        best.startedAt = now;
        best.serverMs = undefined;
        best.answeredAt = undefined;
        this.inFlight++;
        this.starts++;
        this.run(best);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Drop the state of a sender with nothing queued once its window has passed (bounded memory with many senders). */
  private forget(key: string, q: Fifo<Job>, now: number): void {
    if (q.length) return;
    const s = this.senders.get(key);
    if (s && !s.idle(now)) return;
    if ((this.pausedUntil.get(key) ?? 0) > now) return;
    this.queues.delete(key);
    this.senders.delete(key);
    this.pausedUntil.delete(key);
  }

  /**
   * The create attempt whose `fn` is being called, for the transport to hand back to {@link noteServerTime}. Only
   * defined during the synchronous part of `fn` (the twilio SDK reaches the transport synchronously); elsewhere
   * undefined. An opaque token; no AsyncLocalStorage, so no async_hooks cost for the rest of Node-RED.
   */
  currentAttempt(): PacingAttempt | undefined {
    return this.current;
  }

  /**
   * Called by the transport as soon as the answer of `attempt` is in, with the time the vendor says it spent on the
   * request (Twilio-Request-Duration, in ms; NaN when absent): the request reached the vendor at least that long before
   * the answer came back, which narrows the instant the window counts. Without it the settle instant is counted.
   */
  noteServerTime(attempt: PacingAttempt | undefined, ms: number): void {
    const job = attempt as Job | undefined;
    if (!job || job.answeredAt !== undefined) return;
    job.answeredAt = this.now();
    if (Number.isFinite(ms) && ms > 0) job.serverMs = ms;
  }

  /** The create settled: count it in its windows at its latest possible arrival (see {@link SlidingWindow}). */
  private settle(job: Job): void {
    const answered = job.answeredAt ?? this.now();
    // the header has millisecond resolution: keep 2 ms of it as slack
    const arrival = Math.max(job.startedAt, answered - Math.max(0, (job.serverMs ?? 0) - 2));
    this.account?.end(arrival);
    this.senders.get(job.key)?.end(arrival);
  }

  private run(job: Job): void {
    let p: Promise<unknown>;
    try {
      this.current = job;
      p = job.fn();
    } catch (err) {
      p = Promise.reject(err);
    } finally {
      this.current = undefined;
    }
    p.then(
      (v) => {
        this.settle(job);
        this.allowed = Math.min(this.maxConcurrent, this.allowed + 1 / this.allowed);
        this.release();
        job.resolve(v);
      },
      (err: unknown) => {
        this.settle(job);
        if (err instanceof RateLimitedError && !this.closed && this.now() - job.since < this.maxRequeueMs) {
          this.requeue(job, err);
          this.release();
          return;
        }
        this.release();
        job.reject(err);
      },
    );
  }

  /** Back at the head of its sender's queue; the sender pauses for Retry-After, else full-jitter backoff (250 ms · 2^n, ≤ 8 s). */
  private requeue(job: Job, err: RateLimitedError): void {
    const delay =
      err.retryAfterMs !== undefined && err.retryAfterMs >= 0 ? err.retryAfterMs : Math.floor(this.random() * Math.min(8000, 250 * 2 ** Math.min(job.rateLimited, 10)));
    job.rateLimited++;
    this.requeued++;
    if (job.startedAt >= this.lastCutAt) {
      this.allowed = Math.max(1, this.allowed / 2);
      this.lastCutAt = this.now();
    }
    const until = this.now() + delay;
    if (until > (this.pausedUntil.get(job.key) ?? -Infinity)) this.pausedUntil.set(job.key, until);
    let q = this.queues.get(job.key);
    if (!q) this.queues.set(job.key, (q = new Fifo<Job>()));
    q.unshift(job);
    this.waiting++;
  }

  private arm(at: number, now: number): void {
    if (!Number.isFinite(at)) return;
    at = Math.max(at, now + this.quantumMs);
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
    }, Math.max(this.quantumMs, at - now));
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}

function closedError(): MlcError {
  return new MlcError("The Twilio account's client was closed (redeploy or shutdown) before this request could leave", { code: "closed", retryable: true });
}
