/**
 * Backoff arithmetic shared by every client: capped exponential backoff with full jitter
 * ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015), honouring a server's `Retry-After`
 * (RFC 9110 §10.2.3: delay-seconds or an HTTP-date).
 */

/** How often and how long a client waits between attempts. All durations in ms. */
export interface RetryPolicy {
  /** Total attempts including the first (1 = never retry). */
  maxAttempts: number;
  /** Base of the exponential curve, ms. */
  baseDelayMs: number;
  /** Cap of a computed delay, ms. */
  maxDelayMs: number;
  /** Longest `Retry-After` the client is willing to sleep through, ms; longer asks give up at once. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 250, maxDelayMs: 8000, maxRetryAfterMs: 60000 };

/**
 * Delay before retry number `attempt` (0-based: the wait after the first failure is attempt 0), ms.
 * With `retryAfterMs` the server's ask wins (it knows its own window); otherwise full jitter:
 * uniform in [0, min(maxDelayMs, baseDelayMs × 2^attempt)].
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/**
 * Parse a `Retry-After` header value into ms, or undefined when absent or unparseable.
 * @param value delay-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT")
 * @param now current time in ms since the epoch (for HTTP-date values)
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === "") return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v.trim()) * 1000);
  // Every HTTP-date form (IMF-fixdate, RFC 850, asctime) starts with a day name; Date.parse alone would
  // also take "-3" or "7 days" as dates.
  if (!/^[A-Za-z]{3}/.test(v.trim())) return undefined;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Promise-based sleep that an AbortSignal can cut short (rejects with the signal's reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** What {@link withRetry} does after a failed attempt: give up (throw), or wait and try again. */
export type RetryDecision = false | { retryAfterMs?: number };

/** Options of {@link withRetry}. */
export interface WithRetryOptions {
  policy: RetryPolicy;
  /**
   * Whether the failure of attempt `attempt` (0-based) may be retried: false throws it, `{}` waits the policy's
   * backoff, `{retryAfterMs}` the server's ask (a longer ask than `policy.maxRetryAfterMs` throws at once).
   * May do async work first (e.g. look up whether a create happened) and may throw a different error.
   */
  decide: (err: unknown, attempt: number) => RetryDecision | Promise<RetryDecision>;
  /** Stops the waiting (rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Injected for tests; default {@link sleep}. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * The package's one retry loop: run `attempt` up to `policy.maxAttempts` times, asking `decide` after each failure.
 * Callers decide what is safe to repeat (only requests the server did not process, or whose absence was proven).
 * @param attempt called with the 0-based attempt number
 * @returns the first successful result
 * @throws the last error (or what `decide` threw) once no attempt is left or `decide` says false
 */
export async function withRetry<T>(attempt: (n: number) => Promise<T>, o: WithRetryOptions): Promise<T> {
  const wait = o.sleep ?? sleep;
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const d = await o.decide(err, n);
      if (d === false || n + 1 >= o.policy.maxAttempts) throw err;
      if (d.retryAfterMs !== undefined && d.retryAfterMs > o.policy.maxRetryAfterMs) throw err;
      await wait(backoffDelay(n, o.policy, d.retryAfterMs), o.signal);
    }
  }
}
