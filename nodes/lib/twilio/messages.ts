/**
 * One message send, at most once: the steps the SMS node runs per recipient, without Node-RED.
 *
 * {@link deliverMessage}: claim in the send ledger → audit record (pending, with the ERP link) → create with the
 * retry policy → ledger sid → audit sid. A key already sent is not sent again; a key claimed by an attempt that never
 * settled (crash, timeout) is reconciled by lookup first and re-sent only when proven absent.
 * {@link createMessage}: one create through the package's retry loop (lib/retry.ts withRetry): 429 and refused
 * connections are retried; an unknown outcome (timeout after the request left, 5xx) is looked up until Twilio has had
 * the reconcile window to finish it, and only a lookup that proves the message absent lets a retry send again.
 *
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource ;
 * list filters (To, From, DateSent) https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
 */
import { AUDIT_OUTCOME_UNKNOWN, AUDIT_PENDING, AuditTrail } from "../audit";
import { MlcError, RateLimitedError, TimeoutError, TwilioError } from "../errors";
import { DEFAULT_RETRY_POLICY, withRetry } from "../retry";
import type { SendMessageParams, TwilioClient, TwilioMessage } from "./client";
import { ReconcileResult, SendLedger, isUnknownOutcome, reconcileSend } from "./ledger";

/** A created (or found) message; `reconciled` when a lookup found it after an unknown outcome. */
export type SentMessage = TwilioMessage & { reconciled?: boolean };

/** Options shared by {@link createMessage} and {@link deliverMessage}. Durations in ms. */
export interface MessageSendOptions {
  client: () => TwilioClient;
  /** The node's send ledger (its known sids are passed over by lookups). */
  ledger: SendLedger;
  /** Extra attempts for retryable failures (0–10). */
  retries: number;
  /** How long an unknown create is looked up before it counts as absent. */
  windowMs: number;
  /** The node is closing: lookups stop (the outcome stays unknown). */
  aborted: () => boolean;
  /** Twilio answered 21610 (the recipient replied STOP): add it to the account's opt-out list. */
  onOptedOut: (to: string) => Promise<void>;
}

/**
 * Look a message up until `windowFrom + windowMs` (lookup by To, From or Messaging Service, body, created since
 * `since`, skipping sids the ledger knows). @throws the last lookup error when the final lookup fails
 */
export function lookupMessage(o: MessageSendOptions, params: SendMessageParams, since: number, windowFrom: number): Promise<ReconcileResult<TwilioMessage>> {
  return reconcileSend(
    async () => o.client().findRecentMessage({ to: params.to, body: params.body, from: params.from ?? params.messagingServiceSid, since: new Date(since), skip: (sid) => o.ledger.knows(sid) }),
    { since: windowFrom, windowMs: o.windowMs, aborted: o.aborted },
  );
}

/**
 * One create with the retry policy (see the module comment).
 * @throws TwilioError (21610 after `onOptedOut`), RateLimitedError after the retries, TimeoutError (outcomeUnknown)
 *   when the outcome could not be settled, MlcError code "not_sent" (retryable) when the message proved absent and no
 *   retry is left, and the client's other typed errors
 */
export function createMessage(o: MessageSendOptions, params: SendMessageParams): Promise<SentMessage> {
  const attempt = async (): Promise<SentMessage> => {
    const startedAt = Date.now();
    try {
      return await o.client().sendMessage(params);
    } catch (err) {
      if (err instanceof TwilioError && err.optedOut) {
        await o.onOptedOut(params.to);
        throw err;
      }
      if (!isUnknownOutcome(err)) throw err;
      const r = await lookupMessage(o, params, startedAt, Date.now());
      if (r.outcome === "found") return { ...r.message, reconciled: true };
      if (r.outcome === "unsettled") throw new TimeoutError("Outcome of the create is unknown (not settled before the node closed)", { outcomeUnknown: true });
      // Proven absent after the window: a new attempt cannot double-send.
      const text = err instanceof Error ? err.message : String(err);
      throw new MlcError(`The create failed (${text}) and Twilio has no such message after ${o.windowMs / 1000} s: not sent`, { code: "not_sent", retryable: true, status: err instanceof MlcError ? err.status : undefined, cause: err });
    }
  };
  return withRetry(attempt, {
    policy: { ...DEFAULT_RETRY_POLICY, maxAttempts: o.retries + 1, maxRetryAfterMs: Infinity },
    decide: (err) => {
      if (err instanceof RateLimitedError) return { retryAfterMs: err.retryAfterMs === undefined ? undefined : Math.min(err.retryAfterMs, DEFAULT_RETRY_POLICY.maxRetryAfterMs) };
      return err instanceof MlcError && (err.code === "connect_failed" || err.code === "not_sent") ? {} : false;
    },
  });
}

/** What one recipient's send is about, for the ledger and the audit record. */
export interface MessageJob {
  /** Ledger key (lib/twilio/ledger.ts ledgerKey). */
  key: string;
  jobId: string;
  channel: string;
  /** The msg.erp of the event (the audit record's ERP link). */
  erp?: Record<string, unknown>;
  /** When this process started (a claim older than that may have left before a crash), ms since epoch. */
  loadedAt: number;
}

/** Result of {@link deliverMessage}. */
export interface Delivered {
  sid: string;
  status: string;
  to: string;
  errorCode?: number | null;
  /** Already sent for this key: nothing was sent now. */
  duplicate?: boolean;
  /** Found by a lookup after an unknown outcome. */
  reconciled?: boolean;
}

/**
 * Send `params` at most once per `job.key`, writing the audit `trail` (when given) before and after the create.
 * @throws as {@link createMessage}; TimeoutError (outcomeUnknown) while an earlier attempt's outcome is unknown. A
 *   failure that left nothing at Twilio releases the claim (audit "failed"); an unknown one keeps it (audit
 *   "outcome_unknown") so the next attempt reconciles first
 */
export async function deliverMessage(o: MessageSendOptions, trail: AuditTrail | undefined, params: SendMessageParams, job: MessageJob): Promise<Delivered> {
  const audit = async (status: string, extra: { sid?: string; error?: { code: string; message: string } } = {}): Promise<void> => {
    await trail?.record({ jobId: job.jobId, erp: job.erp, channel: job.channel, to: params.to, status, ...extra });
  };
  // The claim and the pending audit record both precede the create: issued together, they share one commit.
  const { result: claim, committed } = await o.ledger.claimIssued(job.key);
  if (claim.outcome !== "claimed") await committed; // nothing was written
  if (claim.outcome === "sent" && claim.entry.sid) {
    await audit(claim.entry.status ?? "queued", { sid: claim.entry.sid });
    return { sid: claim.entry.sid, status: claim.entry.status ?? "queued", to: params.to, duplicate: true };
  }
  if (claim.outcome === "unknown") {
    await audit(AUDIT_OUTCOME_UNKNOWN);
    const r = await lookupMessage(o, params, claim.entry.at, Math.max(claim.entry.at, job.loadedAt));
    if (r.outcome === "found") {
      await o.ledger.settle(job.key, r.message.sid, r.message.status);
      await audit(r.message.status, { sid: r.message.sid });
      return { sid: r.message.sid, status: r.message.status, to: params.to, reconciled: true };
    }
    if (r.outcome === "unsettled") throw new TimeoutError("Outcome of an earlier send is unknown (not settled before the node closed)", { outcomeUnknown: true });
    await o.ledger.reclaim(job.key); // proven absent: this attempt owns the send
  }
  await Promise.all([committed, audit(AUDIT_PENDING)]);
  let m: SentMessage;
  try {
    m = await createMessage(o, params);
  } catch (err) {
    if (err instanceof TimeoutError && err.outcomeUnknown) {
      await audit(AUDIT_OUTCOME_UNKNOWN); // stays claimed: the next attempt (replay) reconciles first
    } else if (err instanceof MlcError && (err.code === "closed" || err.code === "client_closed")) {
      // The client closed (redeploy, stop) before the create left: the record stays "pending" for the node's next
      // instance (nodes/twilio/handoff.ts) or the journal's replay, which continue it.
      await o.ledger.release(job.key);
    } else {
      await o.ledger.release(job.key); // Twilio created nothing: a later attempt may send
      // Same code and text as a Catch → mlc-audit would record, so both land on one record.
      await audit("failed", { error: { code: err instanceof MlcError ? err.code : "error", message: err instanceof Error ? err.message : String(err) } });
    }
    throw err;
  }
  // Both record the answer; neither protects the other (a crash between them is reconciled by lookup), so one commit.
  await Promise.all([o.ledger.settle(job.key, m.sid, m.status), audit(m.status, { sid: m.sid })]);
  return { sid: m.sid, status: m.status, to: m.to, errorCode: m.errorCode, ...(m.reconciled ? { reconciled: true } : {}) };
}
