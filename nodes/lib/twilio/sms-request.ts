/**
 * An SMS node's properties and one request's parts, without Node-RED: sender kinds, the channel of a recipient,
 * quiet hours (validated at deploy) and the create parameters of one recipient. The adapter
 * (nodes/twilio/sms-input.ts) evaluates the message and re-exports these.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling ; https://www.twilio.com/docs/content
 */
import { configString } from "../config-value";
import type { TwilioChannel } from "../envelope";
import { ValidationError } from "../errors";
import { BusinessHours, isTimeZone, nextSendTime, parseDays } from "../quiet-hours";
import type { SendMessageParams } from "./client";
import type { SmsSend } from "./sms-sender";

/** Editor properties of `mlc-twilio-sms`. */
export interface SmsProps extends Record<string, unknown> {
  name?: string;
  twilio?: string;
  to?: string;
  toType?: string;
  from?: string;
  fromType?: string;
  body?: string;
  mediaUrl?: string;
  mediaUrlType?: string;
  /** Name of the mlc-twilio-status endpoint ("" = no status callback). */
  callback?: string;
  /** WhatsApp/RCS Content template SID (HX…) and its variables (JSON object or string). */
  contentSid?: string;
  contentVariables?: string;
  contentVariablesType?: string;
  /** Scheduled send time (ISO 8601); needs a Messaging Service sender. */
  sendAt?: string;
  sendAtType?: string;
  /** Quiet hours. */
  quiet?: boolean;
  hoursStart?: string;
  hoursEnd?: string;
  hoursDays?: string;
  /** Recipient time zone (IANA), e.g. msg.contact.TimeZone; empty → from the number, else defaultTimezone. */
  timezone?: string;
  timezoneType?: string;
  defaultTimezone?: string;
  /** "schedule" (Twilio SendAt when possible, else hold) or "hold". */
  quietMode?: "schedule" | "hold";
  /** Poll the message until a final status (s between polls, s until giving up). */
  poll?: boolean;
  pollInterval?: string | number;
  pollTimeout?: string | number;
  /** Extra attempts for retryable failures (rate limit after the client's retries, unreachable, unknown outcome confirmed absent). */
  retries?: string | number;
  /** Context store for held messages and the send ledger ("" = default). */
  store?: string;
  /**
   * Audit trail written before each create (claim before send), so every send has a record with its ERP link even
   * when Node-RED dies mid-send; written only when an mlc-audit node uses a trail of that name. Default "default".
   */
  auditTrail?: string;
  /** How long a create whose outcome is unknown is looked up before it counts as absent, s (default 30). */
  reconcileWindow?: string | number;
}

/** Twilio refuses a body longer than 1,600 characters (error 21617); refused here before any request. */
export const MAX_BODY_CHARS = 1600;

export const MG_SID = /^MG[0-9a-fA-F]{32}$/;

/** sms, mms (with media) or whatsapp (a `whatsapp:` recipient). */
export function channelOf(to: string, media: string[]): TwilioChannel {
  if (to.startsWith("whatsapp:")) return "whatsapp";
  return media.length ? "mms" : "sms";
}

/** Read the quiet hours of `config` (validated at deploy). @throws ValidationError bad_config / missing_env */
export function quietHours(config: SmsProps): BusinessHours | undefined {
  if (!config.quiet) return undefined;
  const hours = { start: config.hoursStart || "08:00", end: config.hoursEnd || "20:00", days: parseDays(config.hoursDays || "1-5") };
  configString(config.defaultTimezone, "Default zone"); // an unset ${VAR} is named, not called a bad zone
  nextSendTime(new Date(), config.defaultTimezone || "UTC", hours);
  if (config.defaultTimezone && !isTimeZone(config.defaultTimezone)) throw new ValidationError(`"${config.defaultTimezone}" is not an IANA time zone`, { code: "bad_config" });
  return hours;
}

/** What one input asks for (before recipients are normalised). */
export interface SmsRequest {
  jobId: string;
  /** Raw recipients, one message each. */
  recipients: string[];
  /** E.164 number, `whatsapp:` address or Messaging Service SID. */
  fromValue: string;
  body?: string;
  media: string[];
  /** Create parameters shared by every recipient (contentSid, contentVariables). */
  extra: Record<string, unknown>;
  sendAt?: Date;
  statusCallback?: string;
  urgent: boolean;
  /** Recipient time zone property (quiet hours), when set. */
  tz?: unknown;
}

/** Create parameters of one recipient `to` (E.164 or whatsapp:…) of request `r`, optionally scheduled at `when`. */
export function messageParams(r: SmsRequest, to: string, channel: TwilioChannel, when?: Date): SendMessageParams {
  const viaService = MG_SID.test(r.fromValue);
  const from = !viaService && channel === "whatsapp" && !r.fromValue.startsWith("whatsapp:") ? `whatsapp:${r.fromValue}` : r.fromValue;
  const extra = when ? { ...r.extra, sendAt: when, scheduleType: "fixed" } : { ...r.extra };
  return { to, ...(viaService ? { messagingServiceSid: r.fromValue } : { from }), body: r.body, mediaUrl: r.media, statusCallback: r.statusCallback, extra };
}

/** The send of request `r` to one recipient, for lib/twilio/sms-sender.ts. */
export function smsSend(r: SmsRequest, to: string, channel: TwilioChannel): SmsSend {
  const tz = typeof r.tz === "string" ? r.tz.trim() : undefined;
  return { jobId: r.jobId, sendAt: r.sendAt, urgent: r.urgent, tz, viaService: MG_SID.test(r.fromValue), params: (when) => messageParams(r, to, channel, when) };
}
