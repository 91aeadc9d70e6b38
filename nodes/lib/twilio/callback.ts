/**
 * Reading Twilio's webhooks once their signature was checked, without Node-RED: a status callback of a message or
 * a call (MessageSid/SmsSid/CallSid, MessageStatus/SmsStatus/CallStatus, ErrorCode, To, and the jobId our callback
 * URL carries as `j`) and the sender of an inbound message.
 * Vendor: https://www.twilio.com/docs/messaging/guides/track-outbound-message-status ;
 * https://www.twilio.com/docs/voice/api/call-resource#statuscallback
 */
import type { TwilioMeta } from "../envelope";
import { toE164 } from "../phone";

/** Webhook fields as the dispatcher parsed them (a repeated field is an array; the first value counts). */
export type WebhookFields = Record<string, string | string[] | undefined>;

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A status callback as {@link parseStatusCallback} reads it. */
export interface StatusCallback {
  sid: string;
  /** Lower case. */
  status: string;
  kind: "message" | "call";
  /** The jobId carried in the callback URL ("" when none). */
  jobId: string;
  /** NaN when absent. */
  errorCode: number;
  /** Raw recipient. */
  to: string;
}

/**
 * The callback of a message or a call.
 * @param rawQuery the callback URL's query string (without "?")
 * @returns undefined when it names no sid or no status (answer 400)
 */
export function parseStatusCallback(fields: WebhookFields, rawQuery: string): StatusCallback | undefined {
  const callSid = one(fields.CallSid);
  const sid = one(fields.MessageSid) ?? one(fields.SmsSid) ?? callSid;
  const status = (one(fields.MessageStatus) ?? one(fields.SmsStatus) ?? one(fields.CallStatus) ?? "").toLowerCase();
  if (!sid || !status) return undefined;
  const kind = callSid && !fields.MessageSid ? "call" : "message";
  return { sid, status, kind, jobId: new URLSearchParams(rawQuery).get("j") ?? "", errorCode: Number(one(fields.ErrorCode)), to: one(fields.To) ?? "" };
}

/** `msg.twilio` for an accepted status callback (channel voice, whatsapp or sms; errorCode when positive). */
export function callbackMeta(c: StatusCallback): TwilioMeta {
  return {
    sid: c.sid,
    status: c.status,
    to: c.to,
    channel: c.kind === "call" ? "voice" : c.to.startsWith("whatsapp:") ? "whatsapp" : "sms",
    jobId: c.jobId,
    ...(Number.isFinite(c.errorCode) && c.errorCode > 0 ? { errorCode: c.errorCode } : {}),
  };
}

/** The sender of an inbound message in E.164; short codes and alphanumeric senders stay as they are. */
export function inboundSender(fromRaw: string): string {
  try {
    return toE164(fromRaw);
  } catch {
    return fromRaw;
  }
}
