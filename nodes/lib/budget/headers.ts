/**
 * The header feed of a {@link Budget}: what an API says about its own counters in every answer, read into
 * readings, and the allowance those readings leave (remaining 0 → nothing more until the reset).
 *
 * Exact Online (reference: `exact-online.md` §5; Exact's "API rate limits" page; picqer/exact-php-client
 * `Connection.php` `extractRateLimits`): `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (daily
 * allowance, reset as Unix epoch ms) and `X-RateLimit-Minutely-Limit/-Remaining/-Reset` (the same per minute); when
 * the minutely allowance is spent only the minutely headers are sent.
 */

/** How one API names one of its counters in response headers. Header names lower-case. */
export interface RateHeaderRule {
  /** Name of the counter in readings and stats, e.g. "minutely". */
  name: string;
  /** Header with the counter's limit (informational), e.g. `x-ratelimit-minutely-limit`. */
  limit?: string;
  /** Header with the requests left until the reset, e.g. `x-ratelimit-minutely-remaining`. */
  remaining: string;
  /** Header with the reset instant, e.g. `x-ratelimit-minutely-reset`. */
  reset: string;
  /** Unit of the reset header: Unix epoch ms, Unix epoch s, or seconds from now. */
  resetUnit: "epochMs" | "epochS" | "deltaS";
}

/** Exact Online's two counters: per minute and per day, resets in Unix epoch ms (exact-online.md §5). */
export const EXACT_ONLINE_RATE_HEADERS: readonly RateHeaderRule[] = Object.freeze([
  { name: "minutely", limit: "x-ratelimit-minutely-limit", remaining: "x-ratelimit-minutely-remaining", reset: "x-ratelimit-minutely-reset", resetUnit: "epochMs" },
  { name: "daily", limit: "x-ratelimit-limit", remaining: "x-ratelimit-remaining", reset: "x-ratelimit-reset", resetUnit: "epochMs" },
]);

/** One counter as an answer reported it. */
export interface RateReading {
  name: string;
  /** Requests the API will still accept before `resetAt` (counting the answered request). */
  remaining: number;
  /** When the counter resets, Unix epoch ms. */
  resetAt: number;
  /** The counter's limit, when sent. */
  limit?: number;
}

/** Response headers as the HTTP client gives them (lower-case names). */
export type HeaderBag = Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): number | undefined {
  const raw = headers[name];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || !/^\s*\d+(\.\d+)?\s*$/.test(v)) return undefined;
  return Number(v);
}

/**
 * The readings in `headers` under `rules`; a counter whose remaining or reset header is absent or not a
 * non-negative number is left out (never guessed).
 * @param epochNow current time, Unix epoch ms (for `deltaS` resets)
 */
export function readRateHeaders(headers: HeaderBag, rules: readonly RateHeaderRule[], epochNow: number = Date.now()): RateReading[] {
  const out: RateReading[] = [];
  for (const rule of rules) {
    const remaining = header(headers, rule.remaining);
    const reset = header(headers, rule.reset);
    if (remaining === undefined || reset === undefined) continue;
    const resetAt = rule.resetUnit === "epochMs" ? reset : rule.resetUnit === "epochS" ? reset * 1000 : epochNow + reset * 1000;
    const limit = rule.limit ? header(headers, rule.limit) : undefined;
    out.push(limit === undefined ? { name: rule.name, remaining: Math.floor(remaining), resetAt } : { name: rule.name, remaining: Math.floor(remaining), resetAt, limit });
  }
  return out;
}

interface Held {
  remaining: number;
  /** Starts counted in this allowance when the reading's request started (its own start included). */
  base: number;
  /** The reset, epoch ms (to tell windows apart) and on the budget's monotonic clock (to wait). */
  resetEpoch: number;
  resetAt: number;
}

/**
 * What the API's own counters still allow, from the newest readings. Conservative: a reading of `remaining` R from a
 * request that started when `base` starts had been counted allows R − (starts since then) more until its reset,
 * since every later start may have reached the API after the answered request did.
 */
export class ServerAllowance {
  private begun = 0;
  private readonly held = new Map<string, Held>();

  /** Starts counted so far (a request's `base` is this value right after its own start). */
  get count(): number {
    return this.begun;
  }

  /** One more request leaves; returns its `base`. */
  begin(): number {
    return ++this.begun;
  }

  /**
   * Take a reading answered to a request whose start made the count `base`. A reading of an older window (earlier
   * reset) is ignored; within one window the lower allowance is kept.
   * @param resetAt the reset on the budget's monotonic clock, ms
   */
  observe(r: RateReading, base: number, resetAt: number): void {
    const old = this.held.get(r.name);
    const next: Held = { remaining: r.remaining, base, resetEpoch: r.resetAt, resetAt };
    if (!old || r.resetAt > old.resetEpoch || (r.resetAt === old.resetEpoch && this.left(next) < this.left(old))) this.held.set(r.name, next);
  }

  /** Earliest instant (monotonic ms) at or after `now` when the readings allow one more start; `now` when they do. */
  nextAt(now: number, marginMs: number): number {
    let at = now;
    for (const [name, h] of this.held) {
      if (h.resetAt + marginMs <= now) this.held.delete(name);
      else if (this.left(h) <= 0) at = Math.max(at, h.resetAt + marginMs);
    }
    return at;
  }

  /** Requests left per counter now (for stats). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, h] of this.held) out[name] = Math.max(0, this.left(h));
    return out;
  }

  /** True when no reading is held past `now` (the allowance can be forgotten). */
  idle(now: number, marginMs: number): boolean {
    this.nextAt(now, marginMs);
    return this.held.size === 0;
  }

  private left(h: Held): number {
    return h.remaining - (this.begun - h.base);
  }
}
