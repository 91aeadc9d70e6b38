/**
 * Accepted Twilio statuses, one channel per Twilio account (Account SID). `mlc-twilio-status` publishes every
 * status it accepts (signature checked with that account's Auth Token, deduplicated, ordered) on the channel of its
 * config node's Account SID; send nodes of the same account (a call waiting for its final status to decide "not
 * answered", an e-mail waiting for SendGrid's events) subscribe to that channel only. A status of one account never
 * reaches a node of another account, even when both share a status endpoint name in different flows.
 * Nothing is persisted: after a restart, pending waits are gone (documented in the nodes' help).
 */
import { EventEmitter } from "node:events";

/** One accepted status. */
export interface AcceptedStatus {
  kind: "message" | "call";
  sid: string;
  status: string;
  jobId: string;
  errorCode?: number;
  /** All callback parameters as received (AnsweredBy, CallDuration, Digits…). */
  fields: Record<string, string | string[]>;
}

/** Channels by Account SID; a channel is dropped when its last subscriber leaves. */
const channels = new Map<string, EventEmitter>();

/**
 * Publish `s` to the subscribers of `accountSid` (AC + 32 hex; the config node's Account SID). Subscribers run
 * synchronously; one that throws does not stop the others (its error is reported through `process.emitWarning`).
 */
export function publishStatus(accountSid: string, s: AcceptedStatus): void {
  channels.get(accountSid)?.emit("status", s);
}

/**
 * Subscribe to the accepted statuses of one account.
 * @param accountSid the Account SID of the subscriber's Twilio config node
 * @returns the unsubscribe function (idempotent)
 */
export function onStatus(accountSid: string, fn: (s: AcceptedStatus) => void): () => void {
  let ch = channels.get(accountSid);
  if (!ch) {
    ch = new EventEmitter();
    ch.setMaxListeners(0);
    channels.set(accountSid, ch);
  }
  const safe = (s: AcceptedStatus): void => {
    try {
      fn(s);
    } catch (err) {
      process.emitWarning(`mlc status subscriber failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  ch.on("status", safe);
  const own = ch;
  return () => {
    own.off("status", safe);
    if (own.listenerCount("status") === 0 && channels.get(accountSid) === own) channels.delete(accountSid);
  };
}
