/**
 * The exact sliding window under every rate of a {@link Budget} (moved here from `lib/twilio/pacing.ts`, unchanged
 * in behaviour), and the queue the budget keeps per key.
 */

/**
 * At most `limit` requests reaching the vendor in any window of `windowMs + marginMs`, however long each takes to
 * get there; starts spread evenly by a GCRA with emission interval (windowMs + marginMs) / limit and tolerance `burstMs`
 * (`burstMs` = Infinity: no spreading, the whole `limit` may go at once, as for per-minute and per-day windows).
 *
 * A request reaches the vendor somewhere between the instant it leaves and the instant its answer comes back (minus the
 * time the vendor says it spent, e.g. Twilio-Request-Duration). The window counts each request at that latest possible
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

  /** @param limit starts per window (≥ 1) @param windowMs window length, ms @param marginMs added to the window, ms @param burstMs GCRA tolerance, ms */
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
    return this.open === 0 && this.times.length === this.head && (this.tat <= now || this.burstMs === Infinity);
  }

  private prune(now: number): void {
    while (this.head < this.times.length && this.times[this.head] <= now - this.span) this.head++;
    if (this.head > 256 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }
}

/** A FIFO queue with O(1) push, shift and unshift (a re-queued request goes back to the head). */
export class Fifo<T> {
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
