/**
 * Ordering of Twilio statuses. Callbacks arrive out of order and repeat; the most advanced status wins
 * and a final status is never replaced by an earlier one (a late `sent` after `delivered`).
 * Message statuses: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
 * Call statuses: https://www.twilio.com/docs/voice/api/call-resource#call-status-values
 */

const MESSAGE_RANK: Record<string, number> = {
  accepted: 0, scheduled: 0, queued: 1, sending: 2, sent: 3, partially_delivered: 4,
  delivered: 5, undelivered: 5, failed: 5, canceled: 5, read: 6,
  receiving: 1, received: 5,
};
const CALL_RANK: Record<string, number> = {
  queued: 1, initiated: 2, ringing: 3, "in-progress": 4, answered: 4,
  completed: 5, busy: 5, "no-answer": 5, failed: 5, canceled: 5,
};

/** Statuses after which nothing but a read receipt can follow. */
export const FINAL_STATUSES = new Set(["delivered", "undelivered", "failed", "canceled", "read", "received", "completed", "busy", "no-answer"]);

/** Statuses that mean the notification did not reach the person. */
export const FAILED_STATUSES = new Set(["undelivered", "failed", "canceled", "busy", "no-answer", "unknown", "error"]);

export function statusRank(status: string, kind: "message" | "call" = "message"): number {
  const table = kind === "call" ? CALL_RANK : MESSAGE_RANK;
  return table[status] ?? -1;
}

/**
 * Whether `next` may replace `current`.
 * - unknown current: always;
 * - final current: only a higher rank (delivered → read);
 * - otherwise: only a strictly higher rank.
 */
export function isStatusAdvance(current: string | undefined, next: string, kind: "message" | "call" = "message"): boolean {
  if (current === undefined) return true;
  return statusRank(next, kind) > statusRank(current, kind);
}

export function isFinalStatus(status: string): boolean {
  return FINAL_STATUSES.has(status);
}
