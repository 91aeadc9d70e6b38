/**
 * Pacing: one rate budget per Twilio account (config node), shared by every node that sends through it,
 * so a burst queues instead of meeting 429/20429 ("too many concurrent requests", not processed).
 * Two levels: an account-wide budget (requests per second and concurrent requests) and, inside it, a
 * per-sender budget whose rate depends on the sender type (long code, toll-free, short code, Messaging
 * Service, WhatsApp). Grants are FIFO; spacing is measured from the actual previous start, so no
 * second ever sees more than the configured number of starts.
 * Twilio: https://support.twilio.com/hc/en-us/articles/115002943027 (sender throughput);
 * https://www.twilio.com/docs/api/errors/20429
 */

/** Sender types with their own rate. */
export type SenderType = "longCode" | "tollFree" | "shortCode" | "messagingService" | "whatsapp" | "other";

/** Per-second rates, 0 or absent = only the account budget applies. */
export type SenderRates = Partial<Record<SenderType, number>>;

export interface PacingOptions {
  /** Account-wide starts per second (creates of messages, calls, verifications). Default 10. */
  ratePerSec?: number;
  /** Account-wide requests in flight at once (any request). Default 5. */
  maxConcurrent?: number;
  /** Rates per sender type. */
  senderRates?: SenderRates;
  now?: () => number;
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

/** A FIFO spacer: each grant starts at least `intervalMs` after the previous grant actually started. */
class Spacer {
  private last = -Infinity;
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly intervalMs: number, private readonly now: () => number) {}

  /** Resolves when the caller may start. */
  acquire(): Promise<void> {
    const turn = this.tail.then(async () => {
      const wait = this.last + this.intervalMs - this.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.last = this.now();
    });
    this.tail = turn.catch(() => undefined);
    return turn;
  }
}

/** A FIFO counting semaphore. */
class Slots {
  private free: number;
  private readonly waiters: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((r) => this.waiters.push(r));
  }
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.free++;
  }
  get waiting(): number {
    return this.waiters.length;
  }
}

export class RateBudget {
  private readonly account?: Spacer;
  private readonly slots: Slots;
  private readonly senders = new Map<string, Spacer>();
  private readonly opts: Required<Omit<PacingOptions, "senderRates">> & { senderRates: SenderRates };
  private pending = 0;

  constructor(opts: PacingOptions = {}) {
    this.opts = { ratePerSec: 10, maxConcurrent: 5, senderRates: {}, now: () => performance.now(), ...opts };
    if (this.opts.ratePerSec > 0) this.account = new Spacer(1000 / this.opts.ratePerSec, this.opts.now);
    this.slots = new Slots(Math.max(1, Math.floor(this.opts.maxConcurrent)));
  }

  /** Requests waiting for their turn. */
  get queued(): number {
    return this.pending;
  }

  /**
   * Run a create (message, call, verification) within the budget: sender spacing, account spacing,
   * then a concurrency slot, held until `fn` settles.
   */
  async create<T>(sender: string | undefined, fn: () => Promise<T>): Promise<T> {
    this.pending++;
    try {
      const rate = this.opts.senderRates[senderType(sender)];
      if (sender && rate && rate > 0) {
        let s = this.senders.get(sender);
        if (!s) this.senders.set(sender, (s = new Spacer(1000 / rate, this.opts.now)));
        await s.acquire();
      }
      await this.account?.acquire();
      await this.slots.acquire();
    } finally {
      this.pending--;
    }
    try {
      return await fn();
    } finally {
      this.slots.release();
    }
  }

  /** Run any other request (fetch, list) within the concurrency limit only. */
  async other<T>(fn: () => Promise<T>): Promise<T> {
    await this.slots.acquire();
    try {
      return await fn();
    } finally {
      this.slots.release();
    }
  }
}
