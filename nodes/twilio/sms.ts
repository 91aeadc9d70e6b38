/**
 * `mlc-twilio-sms`: sends one SMS/MMS/WhatsApp message per input message through the Messages API.
 * To, From / Messaging Service, Body (Mustache over msg) and MediaUrl come from the editor or msg; the
 * recipient is normalised to E.164; a StatusCallback URL pointing at the chosen mlc-twilio-status
 * endpoint, carrying the jobId, is added automatically.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
 */
import type { TwilioChannel, TwilioMeta } from "../lib/envelope";
import { MlcError, TwilioError, ValidationError } from "../lib/errors";
import { randomId } from "../lib/ids";
import { toE164, maskPhone } from "../lib/phone";
import { isTemplate, renderTemplate } from "../lib/template";
import { Status, evaluate, firstSet, onInput, t } from "../shared/node";
import { registerNode } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { twilioConfig } from "./config";

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
}

const MG_SID = /^MG[0-9a-fA-F]{32}$/;

function channelOf(to: string, media: string[]): TwilioChannel {
  if (to.startsWith("whatsapp:")) return "whatsapp";
  return media.length ? "mms" : "sms";
}

function asStringList(v: unknown): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (Array.isArray(v)) return v.map(String).filter((s) => s.trim() !== "");
  return String(v)
    .split(/[\s,]+/)
    .filter((s) => s !== "");
}

export function registerSms(RED: RedAPI): void {
  registerNode<SmsProps>(RED, "mlc-twilio-sms", (node, config) => {
    let sent = 0;
    let failed = 0;
    const counts = (): string => t(RED, "mlc-twilio-sms.status.counts", { sent, failed }, `sent ${sent}, failed ${failed}`);
    node.status(Status.idle(t(RED, "mlc-twilio-sms.status.ready", undefined, "ready")));

    onInput(RED, node, async (msg, { send, status }) => {
      const cfg = twilioConfig(RED, config.twilio);
      const jobId = String(firstSet((msg.erp as { jobId?: string } | undefined)?.jobId, msg.jobId as string) ?? randomId("j"));
      const rawTo = firstSet(config.to ? await evaluate(RED, node, config.to, config.toType, msg) : undefined, msg.to);
      let to: string;
      try {
        to = toE164(rawTo as string, cfg.defaultRegion);
      } catch (err) {
        failed++;
        msg.twilio = { sid: "", status: "failed", to: typeof rawTo === "string" ? maskPhone(rawTo) : "", channel: "sms", jobId } satisfies TwilioMeta;
        status(Status.error(counts()));
        if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
        throw err;
      }
      const fromValue = String(firstSet(config.from ? await evaluate(RED, node, config.from, config.fromType, msg) : undefined, msg.from as string, msg.messagingServiceSid as string, cfg.messagingServiceSid, cfg.from) ?? "");
      const bodyTemplate = firstSet(config.body, typeof msg.body === "string" ? msg.body : undefined, typeof msg.payload === "string" ? msg.payload : undefined);
      const body = bodyTemplate === undefined ? undefined : isTemplate(bodyTemplate) ? renderTemplate(bodyTemplate, msg) : bodyTemplate;
      const media = asStringList(firstSet(config.mediaUrl ? await evaluate(RED, node, config.mediaUrl, config.mediaUrlType, msg) : undefined, msg.mediaUrl));
      if (!fromValue) throw new ValidationError("No sender: set From or a Messaging Service SID here, in msg.from, or in the Twilio account", { code: "no_sender" });
      if ((body === undefined || body.trim() === "") && media.length === 0) throw new ValidationError("Nothing to send: Body and MediaUrl are empty", { code: "empty_body" });
      const endpoint = (config.callback ?? "").trim();
      const statusCallback = endpoint ? cfg.endpointUrl(`/twilio/${endpoint}`, { j: jobId }) : undefined;
      const channel = channelOf(to, media);
      let from = fromValue;
      if (!MG_SID.test(fromValue) && channel === "whatsapp" && !fromValue.startsWith("whatsapp:")) from = `whatsapp:${fromValue}`;

      status(Status.busy(t(RED, "mlc-twilio-sms.status.sending", undefined, "sending")));
      try {
        const m = await cfg.client().sendMessage({
          to,
          ...(MG_SID.test(fromValue) ? { messagingServiceSid: fromValue } : { from }),
          body,
          mediaUrl: media,
          statusCallback,
        });
        sent++;
        msg.twilio = { sid: m.sid, status: m.status, to: m.to, channel, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}) } satisfies TwilioMeta;
        status(Status.ok(counts()));
        send(msg);
      } catch (err) {
        failed++;
        const code = err instanceof TwilioError ? err.twilioCode : undefined;
        msg.twilio = { sid: "", status: (err as { outcomeUnknown?: boolean }).outcomeUnknown ? "unknown" : "failed", to, channel, jobId, ...(code ? { errorCode: code } : {}) } satisfies TwilioMeta;
        if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
        status(Status.error(counts()));
        throw err;
      }
    });
  });
}

export type { NodeMessage };
