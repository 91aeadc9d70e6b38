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

  /**
   * Earliest instant (ms, same clock as `now`) at or after `now` when one more start of `weight` units is allowed;
   * Infinity = after a settle.
   *
   * A request of weight w (Twilio: an SMS of w segments, which its sender delivers one segment per emission
   * interval I = span / limit) is counted as w units, the k-th at its arrival + k · I (see {@link end}); in-flight
   * units count in every window. Weight 1 is the plain sliding window. For 1 < w ≤ limit the request starts no
   * earlier than the last counted unit, and unit k then needs at most limit − open − min(k, limit − 1) − 1 counted
   * units after its own instant − span (exact: its own units fill any window evenly). Heavier requests (w > limit)
   * wait until at most limit − open − limit counted units lie after `at − span`, wherever they are.
   */
  nextAt(now: number, weight = 1): number {
    this.prune(now);
    const units = Math.min(weight, this.limit);
    const room = this.limit - this.open - (units - 1);
    if (room <= 0) return Infinity;
    let at = Math.max(now, this.tat - this.burstMs);
    const size = this.times.length - this.head;
    if (weight > 1 && weight <= this.limit) {
      if (size > 0) at = Math.max(at, this.times[this.times.length - 1]);
      for (let k = 0; k < weight; k++) {
        const allowed = this.limit - this.open - Math.min(k, this.limit - 1) - 1;
        if (size > allowed) at = Math.max(at, this.times[this.head + size - allowed - 1] + this.span - k * this.interval);
      }
      return at;
    }
    // at most room − 1 counted units may lie after at − span
    if (size >= room) at = Math.max(at, this.times[this.head + size - room] + this.span);
    return at;
  }

  /** A request of `weight` units starts at `t` (counted as arriving "now" until it settles). */
  begin(t: number, weight = 1): void {
    this.open += weight;
    this.tat = Math.max(this.tat, t) + weight * this.interval;
  }

  /** The request settled; it reached the vendor at `latestArrival` at the latest; its units are spread an interval apart. */
  end(latestArrival: number, weight = 1): void {
    this.open = Math.max(0, this.open - weight);
    for (let k = 0; k < weight; k++) this.insert(latestArrival + k * this.interval);
  }

  private insert(t: number): void {
    let i = this.times.length;
    while (i > this.head && this.times[i - 1] > t) i--;
    if (i === this.times.length) this.times.push(t);
    else this.times.splice(i, 0, t);
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
