/**
 * The state machine of placed calls waiting for their outcome (no Node-RED here; the call node feeds it).
 *
 * A tracked call ends once, with one {@link CallResult}: from an accepted call status (status callback through the
 * account's status channel, lib/twilio/bus.ts, or this tracker's own polling of the Call resource), from the
 * keypress posted to the Gather action, or from the give-up timer. Polling is lib/twilio/status-poller.ts, shared
 * with the SMS node. Statuses that arrive before the create's answer
 * (Twilio may call back before it answers the POST) are kept a short while in a bounded LRU map and applied when
 * the call is tracked. A polled call is polled on after its outcome until a final status (so its audit record gets
 * there too), its later statuses published but never a second outcome.
 *
 * Vendor: call statuses https://www.twilio.com/docs/voice/api/call-resource#call-status-values ;
 * `<Gather>` action parameters https://www.twilio.com/docs/voice/twiml/gather#action ;
 * AMD results https://www.twilio.com/docs/voice/answering-machine-detection
 */
import { LRUCache } from "lru-cache";
import type { AcceptedStatus } from "./bus";
import { TwilioCall, isMachine } from "./calls";
import { isFinalStatus, isStatusAdvance } from "./status";
import { StatusPoller } from "./status-poller";

/** How a tracked call ended. */
export type CallResult = "acknowledged" | "answered" | "no-input" | "machine" | "no-answer" | "busy" | "failed" | "canceled";

/** Wrong keys allowed before the call ends as "no-input": one retry prompt. */
export const MAX_GATHER_ATTEMPTS = 2;

/** One call being tracked; `data` is the caller's (the msg to emit, voice and prompts). */
export interface TrackedCall<T> {
  /** Correlation id in the Gather action URL. */
  corr: string;
  sid: string;
  jobId: string;
  status: string;
  answeredBy?: string;
  /** A keypress acknowledgement was asked for. */
  ack: boolean;
  /** Learn the outcome by polling the Call resource. */
  poll: boolean;
  data: T;
}

/** Options of {@link CallTracker}. Durations in ms. */
export interface CallTrackerOptions<T> {
  /** A call without outcome after this long ends as "no-input" (answered) or "no-answer". */
  giveUpMs: number;
  /** Time between polling rounds (calls tracked with `poll`). */
  pollIntervalMs: number;
  /** The confirming key. */
  ackDigit: string;
  /** Fetch a call (lib/twilio/calls.ts fetchCall). */
  fetch: (sid: string) => Promise<TwilioCall>;
  /** Hand a polled status to the account's status channel (it comes back through {@link CallTracker.onStatus}). */
  publish: (s: AcceptedStatus) => void;
  /** The call ended (called once per call, never after close). */
  onOutcome: (c: TrackedCall<T>, result: CallResult, digits?: string) => void;
  /** A poll failed (reported once per call) or a polling round failed. */
  onPollError: (err: unknown, c?: TrackedCall<T>) => void;
  /** Early statuses kept (default 200) and for how long (default 60000 ms). */
  earlyMax?: number;
  earlyTtlMs?: number;
}

/** What to answer a Gather action with. */
export type GatherReply<T> =
  /** Unknown, expired or already resolved call: say goodbye, emit nothing. */
  | { kind: "unknown" }
  | { kind: "thanks"; call: TrackedCall<T> }
  | { kind: "retry"; call: TrackedCall<T> }
  | { kind: "goodbye"; call: TrackedCall<T> };

interface Entry<T> {
  call: TrackedCall<T>;
  attempts: number;
  expiry: NodeJS.Timeout;
}

export class CallTracker<T> {
  private readonly bySid = new Map<string, Entry<T>>();
  private readonly byCorr = new Map<string, Entry<T>>();
  private readonly early: LRUCache<string, AcceptedStatus>;
  private readonly poller: StatusPoller<TwilioCall, TrackedCall<T>>;
  private closed = false;

  constructor(private readonly o: CallTrackerOptions<T>) {
    this.early = new LRUCache<string, AcceptedStatus>({ max: o.earlyMax ?? 200, ttl: o.earlyTtlMs ?? 60000 });
    this.poller = new StatusPoller<TwilioCall, TrackedCall<T>>({
      kind: "call",
      intervalMs: o.pollIntervalMs,
      fetch: o.fetch,
      // News against what the call already knows (a callback may have told it), or a first machine answer.
      changed: (w, c) => isStatusAdvance(w.data.status, c.status, "call") || (isMachine(c.answeredBy) && c.answeredBy !== w.data.answeredBy),
      onChange: (w, c) => this.publishPolled(w.data, c),
      onError: (err, w) => {
        if (!w.errorReported) o.onPollError(err, w.data);
      },
    });
  }

  /** Calls being tracked. */
  get size(): number {
    return this.bySid.size;
  }

  /** Track a placed call; a final status that arrived before it is applied at once. */
  track(call: TrackedCall<T>): void {
    if (this.closed) return;
    const e: Entry<T> = {
      call,
      attempts: 0,
      expiry: setTimeout(() => {
        const s = this.bySid.get(call.sid)?.call.status;
        this.resolve(call, s === "in-progress" || s === "answered" ? "no-input" : "no-answer");
      }, this.o.giveUpMs),
    };
    this.bySid.set(call.sid, e);
    this.byCorr.set(call.corr, e);
    if (call.poll) this.poller.add(call.sid, call.status, call);
    const early = this.early.get(call.sid);
    this.early.delete(call.sid);
    if (early) this.onStatus(early);
  }

  /** An accepted status of the account (status callback or polling). */
  onStatus(s: AcceptedStatus): void {
    if (s.kind !== "call" || this.closed) return;
    const e = this.bySid.get(s.sid);
    const answeredBy = one(s.fields.AnsweredBy);
    if (!e) {
      if (isFinalStatus(s.status) || isMachine(answeredBy)) this.early.set(s.sid, s);
      return;
    }
    const c = e.call;
    if (answeredBy) c.answeredBy = answeredBy;
    if (isStatusAdvance(c.status, s.status, "call")) c.status = s.status;
    if (isMachine(c.answeredBy)) return this.resolve(c, "machine");
    if (!isFinalStatus(c.status)) return;
    if (c.status === "completed") return this.resolve(c, c.ack ? "no-input" : "answered");
    this.resolve(c, c.status as CallResult);
  }

  /**
   * The Gather action of call `corr` posted `digits` ("" after the timeout).
   * @param callSid the CallSid Twilio posted (a mismatch counts as unknown)
   */
  gather(corr: string, callSid: string | undefined, digits: string, answeredBy?: string): GatherReply<T> {
    const e = this.byCorr.get(corr);
    if (!e || (callSid && callSid !== e.call.sid)) return { kind: "unknown" };
    const c = e.call;
    if (answeredBy) c.answeredBy = answeredBy;
    if (isStatusAdvance(c.status, "in-progress", "call")) c.status = "in-progress";
    e.attempts++;
    if (digits === this.o.ackDigit) {
      this.resolve(c, "acknowledged", digits);
      return { kind: "thanks", call: c };
    }
    if (digits !== "" && e.attempts < MAX_GATHER_ATTEMPTS) return { kind: "retry", call: c };
    this.resolve(c, isMachine(c.answeredBy) ? "machine" : "no-input", digits || undefined);
    return { kind: "goodbye", call: c };
  }

  /** Stop everything: timers cleared, nothing emitted afterwards. */
  close(): void {
    this.closed = true;
    this.poller.close();
    for (const e of this.bySid.values()) clearTimeout(e.expiry);
    this.bySid.clear();
    this.byCorr.clear();
    this.early.clear();
  }

  /** End call `c` once with `result`. */
  private resolve(c: TrackedCall<T>, result: CallResult, digits?: string): void {
    const e = this.bySid.get(c.sid);
    if (!e || this.closed) return;
    clearTimeout(e.expiry);
    this.bySid.delete(c.sid);
    this.byCorr.delete(c.corr);
    // The outcome is known, but the call's record still needs its final status: a polled call is polled on to it
    // (at most giveUpMs more); its later statuses are published like any other, with no second outcome.
    if (c.poll && !isFinalStatus(c.status)) this.poller.add(c.sid, c.status, c, Date.now() + this.o.giveUpMs);
    else this.poller.remove(c.sid);
    this.o.onOutcome(c, result, digits);
  }

  /** A polled change goes out as an accepted status on the account channel (and comes back through onStatus). */
  private publishPolled(p: TrackedCall<T>, c: TwilioCall): void {
    // Only calls still watched get here (resolve() stops or re-arms the watch), including resolved ones polled on.
    if (this.closed) return;
    const fields: Record<string, string> = { CallSid: c.sid, CallStatus: c.status, To: c.to, From: c.from, CallbackSource: "mlc-poll" };
    if (c.answeredBy) fields.AnsweredBy = c.answeredBy;
    if (c.duration !== null) fields.CallDuration = String(c.duration);
    this.o.publish({ kind: "call", sid: c.sid, status: c.status, jobId: p.jobId, fields });
  }
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
