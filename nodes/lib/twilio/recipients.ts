/**
 * The outcome of one input sent to several recipients, for the push journal (lib/journal.ts): an event is settled
 * (its journal entry may go) once no recipient is left to a retry or a replay, that is every recipient was sent,
 * held durably or refused for good. Also how a failed recipient is described on its msg (`msg.twilio`).
 * Pure (no Node-RED).
 */
import type { TwilioChannel, TwilioMeta } from "../envelope";
import { MlcError, TimeoutError, TwilioError, ValidationError } from "../errors";
import { jobSettled } from "../journal";

/** Whether a failed send may succeed when retried or replayed (outcome unknown, or a retryable error). */
export function mayRetry(err: unknown): boolean {
  return (err instanceof TimeoutError && err.outcomeUnknown) || (err instanceof MlcError && err.retryable);
}

/**
 * `msg.twilio` for a recipient that failed: status "unknown" when the create may have left, else "failed"; the
 * Twilio error code (21610 for an opted-out recipient).
 */
export function failedRecipient(err: unknown, to: string, channel: TwilioChannel, jobId: string): TwilioMeta {
  const code = err instanceof TwilioError ? err.twilioCode : err instanceof ValidationError && err.code === "opted_out" ? 21610 : undefined;
  return { sid: "", status: err instanceof TimeoutError && err.outcomeUnknown ? "unknown" : "failed", to, channel, jobId, ...(code ? { errorCode: code } : {}) };
}

/** A recipient's failure and the msg that describes it. */
export interface RecipientFailure<M> {
  err: unknown;
  out: M;
}

/** Settles events in the push journal; one per node (it remembers failures already accounted for). */
export class EventSettlement {
  /** Recipient failures already counted in the journal decision of their input. */
  private readonly accounted = new WeakSet<object>();

  /**
   * After every recipient of event `jobId` was tried: settle it unless a failure may still be retried.
   * @returns the error to throw (the only recipient failed), else undefined (the failures are reported one by one)
   */
  settle<M>(jobId: string, recipients: number, failures: RecipientFailure<M>[]): unknown {
    if (!failures.some((f) => mayRetry(f.err))) jobSettled(jobId);
    for (const f of failures) if (f.err instanceof Object) this.accounted.add(f.err);
    return recipients === 1 && failures.length === 1 ? failures[0].err : undefined;
  }

  /** An input failed as a whole: a refusal no retry can fix (bad number, body too long…) also settles its event. */
  inputFailed(erpJobId: unknown, err: unknown): void {
    if (typeof erpJobId === "string" && !mayRetry(err) && !(err instanceof Object && this.accounted.has(err))) jobSettled(erpJobId);
  }
}
