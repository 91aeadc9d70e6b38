/**
 * The quiet-hours hold queue: messages held durably (a committing context store through {@link KvBackend}) until the
 * recipient's business hours open, then handed back once each. An entry is deleted before it is handed back, so it
 * goes at most once even when two checks overlap or Node-RED dies right after.
 * Used by the SMS node when Twilio's own scheduling (SendAt) cannot be used (no Messaging Service, or the wait is
 * under 15 minutes or over 35 days: https://www.twilio.com/docs/messaging/features/message-scheduling).
 */
import { BusinessHours, nextSendTime, timeZoneForNumber } from "../quiet-hours";
import { BoundedStore, KvBackend } from "../store";

/** One held send: whatever the caller needs to send it later (parameters, msg), stored as it is, with `due`. */
export interface Held {
  /** When it may be sent, ms since epoch. */
  due: number;
}

/** Options of {@link HoldQueue}. Durations in ms. */
export interface HoldQueueOptions<T extends Held> {
  /** The key an item was held under (it is deleted by that key before it is released). */
  keyOf: (item: T) => string;
  /** Send one due item; a failure is the caller's to report (the item is not held again). */
  release: (item: T) => Promise<void>;
  /** A check failed (store error). */
  onError: (err: unknown) => void;
  /** After each check ({@link HoldQueue.count} is current). */
  onChecked?: () => void;
  /** Time between checks (default 15000). */
  checkMs?: number;
  /** How long an entry may wait (default 35 days), and how many may wait (default 10000). */
  ttlMs?: number;
  maxEntries?: number;
}

/** check() reports through onError; an onError that throws itself must not become an unhandled rejection. */
function ignore(): void {}

export class HoldQueue<T extends Held> {
  private readonly store: BoundedStore<T>;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Entries waiting, as of the last check or hold. */
  count = 0;

  /** @param backend committing key/value backend (the node's context store); prefix "held" */
  constructor(backend: KvBackend, private readonly o: HoldQueueOptions<T>) {
    this.store = new BoundedStore<T>(backend, { prefix: "held", ttlMs: o.ttlMs ?? 35 * 24 * 3600 * 1000, maxEntries: o.maxEntries ?? 10000 });
  }

  /** Check now, then every `checkMs` until {@link close}. Never rejects (errors go to onError). */
  start(): void {
    const loop = (): void => {
      if (this.closed) return;
      this.timer = setTimeout(() => void this.check().catch(ignore).finally(loop), this.o.checkMs ?? 15000);
    };
    void this.check().catch(ignore);
    loop();
  }

  /** Hold `item` until `item.due`; committed before this resolves. */
  async hold(item: T): Promise<void> {
    await this.store.set(this.o.keyOf(item), item);
    this.count++;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Hand back every due entry once. */
  private async check(): Promise<void> {
    if (this.closed) return;
    try {
      const now = Date.now();
      const entries = await this.store.entries();
      this.count = entries.length;
      for (const e of entries) {
        if (e.v.due > now || this.closed) continue;
        if (!(await this.store.delete(this.o.keyOf(e.v)))) continue; // another check took it
        this.count--;
        await this.o.release(e.v).catch(this.o.onError);
      }
      this.o.onChecked?.();
    } catch (err) {
      this.o.onError(err);
    }
  }
}

/** Twilio accepts SendAt more than 300 s and at most 35 days ahead (errors 35114, 35115); we schedule from 15 min, ms. */
export const SEND_AT_MIN_MS = 15 * 60 * 1000;
export const SEND_AT_MAX_MS = 35 * 24 * 3600 * 1000;

/** What to do with one message under quiet hours: send now, schedule with Twilio (SendAt), or hold here until `at`. */
export type QuietPlan = { kind: "now" } | { kind: "schedule"; at: Date } | { kind: "hold"; at: Date };

/**
 * Plan a message to `to` under business `hours` in the recipient's zone (`tz`, else the number's zone, else
 * `defaultTz`, else the runtime's). Twilio schedules it when a Messaging Service sends it, `mode` is not "hold" and
 * the wait is between {@link SEND_AT_MIN_MS} and {@link SEND_AT_MAX_MS}; otherwise it is held.
 */
export function quietPlan(hours: BusinessHours, to: string, o: { tz?: string; defaultTz?: string; viaService: boolean; mode?: string; now?: Date }): QuietPlan {
  const zone = o.tz || timeZoneForNumber(to) || o.defaultTz || Intl.DateTimeFormat().resolvedOptions().timeZone;
  const now = o.now ?? new Date();
  const at = nextSendTime(now, zone, hours);
  const delay = at.getTime() - now.getTime();
  if (delay <= 0) return { kind: "now" };
  if (o.mode !== "hold" && o.viaService && delay >= SEND_AT_MIN_MS && delay <= SEND_AT_MAX_MS) return { kind: "schedule", at };
  return { kind: "hold", at };
}
