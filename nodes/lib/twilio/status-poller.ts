/**
 * Status polling of Twilio resources (Messages and Calls), written once: for Node-RED instances that Twilio's status
 * callbacks cannot reach. One timer per poller; each round fetches every watched resource once (the fetches go through
 * the account's concurrency budget), reports each change, and stops watching a resource at a final status or at its
 * deadline. The timer runs only while something is watched.
 *
 * Vendor: Message status values https://www.twilio.com/docs/messaging/api/message-resource#message-status-values ;
 * Call status values https://www.twilio.com/docs/voice/api/call-resource#call-status-values
 */
import { isFinalStatus, isStatusAdvance } from "./status";

/** One watched resource. */
export interface Watched<T> {
  sid: string;
  /** Last status seen (advanced by the caller's `changed`). */
  status: string;
  /** Stop watching after this time, ms since epoch (Infinity = until final or removed). */
  deadline: number;
  /** The caller's context (jobId, recipient, channel…). */
  data: T;
  /** A fetch error of this resource was already reported. */
  errorReported: boolean;
}

/** Options of {@link StatusPoller}. Durations in ms. */
export interface StatusPollerOptions<F extends { status: string }, T> {
  /** Which status ladder `status` follows. */
  kind: "message" | "call";
  /** Time between rounds. */
  intervalMs: number;
  /** Fetch the resource (TwilioClient.fetchMessage, lib/twilio/calls.ts fetchCall). */
  fetch: (sid: string) => Promise<F>;
  /** Whether `fetched` is news for `w` (a new AMD result…); default: its status is an advance over `w.status`. */
  changed?: (w: Watched<T>, fetched: F) => boolean;
  /** Called for each change, after `w.status` took the fetched status. */
  onChange: (w: Watched<T>, fetched: F) => void;
  /** A fetch failed; the resource stays watched until its deadline. */
  onError: (err: unknown, w: Watched<T>) => void;
  now?: () => number;
}

export class StatusPoller<F extends { status: string }, T> {
  private readonly watched = new Map<string, Watched<T>>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;

  constructor(private readonly o: StatusPollerOptions<F, T>) {}

  /** Resources watched now. */
  get size(): number {
    return this.watched.size;
  }

  /** Watch `sid` from status `status` until a final status or `deadline` (ms since epoch). */
  add(sid: string, status: string, data: T, deadline = Infinity): void {
    if (this.closed) return;
    this.watched.set(sid, { sid, status, deadline, data, errorReported: false });
    this.arm();
  }

  /** Stop watching `sid` (its outcome is known some other way). */
  remove(sid: string): void {
    this.watched.delete(sid);
  }

  /** Stop for good: nothing is fetched or reported afterwards. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  private arm(): void {
    if (this.timer || this.closed || this.watched.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // round() reports through onError; an onError that throws itself has no one left to tell, and must not
      // become an unhandled rejection (it would stop Node-RED).
      void this.round()
        .catch(() => undefined)
        .finally(() => this.arm());
    }, this.o.intervalMs);
  }

  /** One round over every watched resource; never rejects (errors go to onError). */
  private async round(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    const now = this.o.now ?? Date.now;
    try {
      for (const w of [...this.watched.values()]) {
        if (this.closed) return;
        if (now() >= w.deadline) {
          this.watched.delete(w.sid);
          continue;
        }
        await this.pollOne(w);
      }
    } finally {
      this.running = false;
    }
  }

  private async pollOne(w: Watched<T>): Promise<void> {
    let f: F;
    try {
      f = await this.o.fetch(w.sid);
    } catch (err) {
      this.o.onError(err, w);
      w.errorReported = true;
      return;
    }
    if (this.closed || this.watched.get(w.sid) !== w) return;
    const changed = this.o.changed ? this.o.changed(w, f) : isStatusAdvance(w.status, f.status, this.o.kind);
    if (isStatusAdvance(w.status, f.status, this.o.kind)) w.status = f.status;
    if (isFinalStatus(w.status)) this.watched.delete(w.sid);
    if (!changed) return;
    try {
      this.o.onChange(w, f);
    } catch (err) {
      this.o.onError(err, w);
    }
  }
}
