/**
 * Pacing: one rate budget per Twilio account (config node), shared by every node that sends through it,
 * so a burst queues instead of meeting 429/20429 ("too many concurrent requests", not processed).
 *
 * A thin Twilio layer on the family kit's generic {@link Budget} (`nodes/lib/budget/`), which keeps the exact
 * sliding windows, the concurrency cap (adaptive after 429s), the re-queue of refused creates at the head of their
 * sender's queue (after `Retry-After`, else a jittered backoff) and the FIFO-per-key scheduling. What is Twilio's:
 * - two levels: an account-wide budget (creates per second and requests in flight) and, inside it, a per-sender
 *   budget (a key per `From`) whose rate defaults from the sender type (Twilio's documented defaults, see
 *   {@link DEFAULT_SENDER_RATES}); a 429 pauses only that sender. The sender's rate is spent in SMS segments (a
 *   300-character GSM-7 body is 2), as Twilio's queue delivers them; the account's rate counts requests;
 * - `Twilio-Request-Duration`, which the transport hands to {@link Budget.noteServerTime} so the windows count each
 *   create at the latest instant it can have reached Twilio.
 *
 * Twilio: https://support.twilio.com/hc/en-us/articles/115002943027 (sender throughput);
 * https://www.twilio.com/docs/api/errors/20429 ; WhatsApp: https://www.twilio.com/docs/whatsapp/best-practices-and-faqs
 */
import { Budget, BudgetAttempt, BudgetStats, BudgetTimers } from "../budget";
import type { SharedRateGate } from "../budget/gate";

export { SlidingWindow } from "../budget";

/** Sender types with their own rate. */
export type SenderType = "longCode" | "tollFree" | "shortCode" | "messagingService" | "whatsapp" | "other";

/** Per-second rates per sender type: absent = {@link DEFAULT_SENDER_RATES}, 0 = only the account budget applies. */
export type SenderRates = Partial<Record<SenderType, number>>;

/**
 * Twilio's documented default throughput per sender, message segments per second (0 = no per-sender limit):
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
export type PacingTimers = BudgetTimers;

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
  /** Instances sharing the account (a shared store): the account's and each sender's rate across all of them. */
  shared?: SharedRateGate;
}

/** What the budget has done so far (for status and benchmarks); "starts" are creates. */
export type PacingStats = BudgetStats;

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

/** An opaque handle on one create attempt (see {@link RateBudget.currentAttempt}). */
export type PacingAttempt = BudgetAttempt;

/**
 * The account's rate budget. `create` for anything that creates a billable resource (counted against the
 * rates), `other` for reads (concurrency only).
 */
export class RateBudget extends Budget {
  private readonly senderRates: SenderRates;

  constructor(opts: PacingOptions = {}) {
    const { ratePerSec, senderRates: givenRates, shared, ...rest } = opts;
    const senderRates: SenderRates = { ...(givenRates ?? {}) };
    super({
      ...rest,
      limits: { perSecond: ratePerSec ?? 10 },
      keyLimits: (sender) => ({ perSecond: senderRate(sender, senderRates) }),
      scope: "key",
      closedMessage: "The Twilio account's client was closed (redeploy or shutdown) before this request could leave",
    });
    this.senderRates = senderRates;
    this.shared = shared;
    this.accountRate = ratePerSec ?? 10;
  }

  private readonly shared?: SharedRateGate;
  private readonly accountRate: number;

  /** The per-sender rate that applies to `sender`, per second (0 = none). */
  rateFor(sender: string | undefined): number {
    return senderRate(sender, this.senderRates);
  }

  /**
   * Run a create (message, call, verification) within the budget: a concurrency slot and the account's and the
   * sender's rates, all at the instant `fn` is called. A {@link RateLimitedError} from `fn` re-queues it at the head of
   * the sender's queue and pauses that sender (see {@link Budget}).
   * @param sender the `From` (E.164, short code, `whatsapp:+…`) or Messaging Service SID; undefined = account budget only
   * @param segments what the create spends of the SENDER's rate: its SMS segment count (segments.ts messageSegments;
   *   Twilio's sender rates are segments per second), default 1. The account's rate counts each create (request) once.
   * @throws whatever `fn` throws (non-retryable), RateLimitedError after `maxRequeueMs` of 429s, MlcError "closed" after close()
   */
  create<T>(sender: string | undefined, fn: () => Promise<T>, segments = 1): Promise<T> {
    const gate = this.shared;
    if (!gate) return this.run(sender, fn, segments);
    // The shared gate (lib/budget/gate.ts) counts the create once under the account and its segments under the sender.
    const limits = [{ key: "account", perSecond: this.accountRate }, ...(sender ? [{ key: `sender:${sender}`, perSecond: this.rateFor(sender), weight: segments }] : [])];
    return this.run(sender, () => gate.pass(limits, fn), segments);
  }
}
