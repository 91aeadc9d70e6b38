/**
 * `mlc-twilio-sms` properties and what one input message asks for: recipients, sender, body, media, WhatsApp Content
 * template, SendAt, quiet-hours time zone, all checked before any request.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling ; https://www.twilio.com/docs/content
 */
import type { TwilioChannel } from "../lib/envelope";
import { ValidationError } from "../lib/errors";
import { BusinessHours, isTimeZone, nextSendTime, parseDays } from "../lib/quiet-hours";
import { isTemplate, renderTemplate } from "../lib/template";
import type { SendMessageParams } from "../lib/twilio/client";
import { configString } from "../shared/config";
import { evaluate, firstSet, messageJobId } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import type { TwilioConfigApi } from "./config";

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

export { mayRetry } from "../lib/twilio/recipients";

export function channelOf(to: string, media: string[]): TwilioChannel {
  if (to.startsWith("whatsapp:")) return "whatsapp";
  return media.length ? "mms" : "sms";
}

function asStringList(v: unknown, separators = /[\s,]+/): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (Array.isArray(v)) return v.flatMap((x) => asStringList(x, separators));
  return String(v)
    .split(separators)
    .map((s) => s.trim())
    .filter((s) => s !== "");
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

/**
 * Read and check what `msg` asks for.
 * @throws ValidationError invalid_phone (no recipient), body_too_long, no_sender, empty_body, bad_content, bad_send_at,
 *   no_public_url (callback without a public base URL)
 */
export async function readSmsRequest(RED: RedAPI, node: RedNode, config: SmsProps, cfg: TwilioConfigApi, msg: NodeMessage): Promise<SmsRequest> {
  const prop = async (value: string | undefined, type: string | undefined): Promise<unknown> => (value ? evaluate(RED, node, value, type, msg) : undefined);
  const jobId = messageJobId(msg);
  const recipients = asStringList(firstSet(await prop(config.to, config.toType), msg.to), /[,;\n]+/);
  if (recipients.length === 0) throw new ValidationError("No recipient: To is empty", { code: "invalid_phone" });
  const fromValue = String(firstSet(await prop(config.from, config.fromType), msg.from as string, msg.messagingServiceSid as string, cfg.messagingServiceSid, cfg.from) ?? "");
  const bodyTemplate = firstSet(config.body, typeof msg.body === "string" ? msg.body : undefined, typeof msg.payload === "string" ? msg.payload : undefined);
  const body = bodyTemplate === undefined ? undefined : isTemplate(bodyTemplate) ? renderTemplate(bodyTemplate, msg) : bodyTemplate;
  const media = asStringList(firstSet(await prop(config.mediaUrl, config.mediaUrlType), msg.mediaUrl));
  const contentSid = String(firstSet(config.contentSid, msg.contentSid as string) ?? "");
  const rawVars = firstSet(await prop(config.contentVariables, config.contentVariablesType), msg.contentVariables);
  const contentVariables = rawVars === undefined ? undefined : typeof rawVars === "string" ? rawVars : JSON.stringify(rawVars);
  const rawSendAt = firstSet(await prop(config.sendAt, config.sendAtType), msg.sendAt as string);
  if (body !== undefined && Array.from(body).length > MAX_BODY_CHARS) {
    throw new ValidationError(`Body is ${Array.from(body).length} characters; Twilio accepts at most ${MAX_BODY_CHARS} (error 21617). Nothing was sent`, { code: "body_too_long" });
  }
  if (!fromValue) throw new ValidationError("No sender: set From or a Messaging Service SID here, in msg.from, or in the Twilio account", { code: "no_sender" });
  if ((body === undefined || body.trim() === "") && media.length === 0 && !contentSid) throw new ValidationError("Nothing to send: Body, MediaUrl and Content SID are empty", { code: "empty_body" });
  if (contentSid && !/^HX[0-9a-fA-F]{32}$/.test(contentSid)) throw new ValidationError("Content SID must be HX followed by 32 hex characters", { code: "bad_content" });
  let sendAt: Date | undefined;
  if (rawSendAt !== undefined) {
    sendAt = rawSendAt instanceof Date ? rawSendAt : new Date(String(rawSendAt));
    if (Number.isNaN(sendAt.getTime())) throw new ValidationError("SendAt is not a date-time", { code: "bad_send_at" });
    if (!MG_SID.test(fromValue)) throw new ValidationError("Scheduled sends (SendAt) need a Messaging Service SID as sender", { code: "bad_send_at" });
  }
  const endpoint = (config.callback ?? "").trim();
  const extra: Record<string, unknown> = {};
  if (contentSid) extra.contentSid = contentSid;
  if (contentVariables !== undefined) extra.contentVariables = contentVariables;
  return {
    jobId,
    recipients,
    fromValue,
    body,
    media,
    extra,
    sendAt,
    statusCallback: endpoint && !config.poll ? cfg.endpointUrl(`/twilio/${endpoint}`, { j: jobId }) : undefined,
    urgent: msg.urgent === true || msg.priority === "urgent",
    tz: config.quiet && config.timezone ? await evaluate(RED, node, config.timezone, config.timezoneType, msg) : undefined,
  };
}

/** Create parameters of one recipient `to` (E.164 or whatsapp:…) of request `r`, optionally scheduled at `when`. */
export function messageParams(r: SmsRequest, to: string, channel: TwilioChannel, when?: Date): SendMessageParams {
  const viaService = MG_SID.test(r.fromValue);
  const from = !viaService && channel === "whatsapp" && !r.fromValue.startsWith("whatsapp:") ? `whatsapp:${r.fromValue}` : r.fromValue;
  const extra = when ? { ...r.extra, sendAt: when, scheduleType: "fixed" } : { ...r.extra };
  return { to, ...(viaService ? { messagingServiceSid: r.fromValue } : { from }), body: r.body, mediaUrl: r.media, statusCallback: r.statusCallback, extra };
}
