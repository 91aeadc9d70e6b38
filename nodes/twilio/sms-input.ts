/**
 * `mlc-twilio-sms`: what one input message asks for: recipients, sender, body, media, WhatsApp Content template,
 * SendAt, quiet-hours time zone, all checked before any request (properties and request parts in
 * lib/twilio/sms-request.ts, re-exported here).
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling ; https://www.twilio.com/docs/content
 */
import { ValidationError } from "../lib/errors";
import { isTemplate, renderTemplate } from "../lib/template";
import { MAX_BODY_CHARS, MG_SID } from "../lib/twilio/sms-request";
import type { SmsProps, SmsRequest } from "../lib/twilio/sms-request";
import type { SmsSenderOptions } from "../lib/twilio/sms-sender";
import { evaluate, firstSet, messageJobId, num } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import type { TwilioConfigApi } from "./config";

export { mayRetry } from "../lib/twilio/recipients";
export { MAX_BODY_CHARS, MG_SID, channelOf, messageParams, quietHours } from "../lib/twilio/sms-request";
export type { SmsProps, SmsRequest } from "../lib/twilio/sms-request";

/** The node's sending settings (editor units: s; returned in ms), for lib/twilio/sms-sender.ts. */
export function senderSettings(config: SmsProps): Pick<SmsSenderOptions<NodeMessage>, "retries" | "reconcileWindowMs" | "poll" | "pollIntervalMs" | "pollTimeoutMs" | "defaultTz" | "quietMode"> {
  return {
    retries: num(config.retries, 0, 0, 10),
    reconcileWindowMs: num(config.reconcileWindow, 30, 1, 3600) * 1000,
    poll: Boolean(config.poll),
    pollIntervalMs: num(config.pollInterval, 10, 1, 3600) * 1000,
    pollTimeoutMs: num(config.pollTimeout, 3600, 10, 7 * 86400) * 1000,
    defaultTz: config.defaultTimezone,
    quietMode: config.quietMode,
  };
}

function asStringList(v: unknown, separators = /[\s,]+/): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (Array.isArray(v)) return v.flatMap((x) => asStringList(x, separators));
  return String(v)
    .split(separators)
    .map((s) => s.trim())
    .filter((s) => s !== "");
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
