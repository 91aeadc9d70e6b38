/**
 * `mlc-twilio-call`: what one message asks for: the callee and caller id, the call content (TwiML or URL); its
 * properties and the settings read at deploy are in lib/twilio/call-settings.ts (re-exported here).
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather
 */
import { ValidationError } from "../lib/errors";
import { maskPhone, toE164 } from "../lib/phone";
import { renderTemplate } from "../lib/template";
import type { CallResult } from "../lib/twilio/call-tracker";
import { MAX_TWIML_CHARS, speechTwiml } from "../lib/twilio/calls";
import { CallSettings, isTwimlUrl, promptsFrom } from "../lib/twilio/call-settings";
import type { CallContent, CallProps } from "../lib/twilio/call-settings";

export { callSettings } from "../lib/twilio/call-settings";
export type { CallContent, CallProps, CallSettings } from "../lib/twilio/call-settings";
import { speechView } from "../lib/twilio/speech";
import { evaluate, firstSet } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import type { TwilioConfigApi } from "./config";

export interface CallAck {
  result: CallResult;
  /** Key(s) pressed, when any. */
  digits?: string;
  /** AMD result, when detection ran. */
  answeredBy?: string;
  /** ISO 8601 time the outcome was known. */
  at: string;
}

/**
 * Build the call content of `msg`.
 * @param gatherUrl absolute Gather action URL of this call (say mode with acknowledgement)
 * @throws ValidationError empty_speech | twiml_too_long | bad_twiml
 */
export async function callTwiml(RED: RedAPI, node: RedNode, config: CallProps, s: CallSettings, msg: NodeMessage, gatherUrl: () => string): Promise<CallContent> {
  const prompts = promptsFrom(msg.prompts);
  if (s.mode === "say") {
    const template = firstSet(config.message, typeof msg.message === "string" ? msg.message : undefined, typeof msg.payload === "string" ? msg.payload : undefined);
    const text = template === undefined ? "" : renderTemplate(template, speechView(msg, s.voice.language)).trim();
    if (!text) throw new ValidationError("Nothing to say: the message is empty", { code: "empty_speech" });
    const gather = s.ack ? { action: gatherUrl(), timeoutSec: s.ackTimeoutSec, digit: s.ackDigit, prompts } : undefined;
    let twiml = speechTwiml({ ...s.voice, message: text, repeat: s.repeat, gather });
    if (twiml.length > MAX_TWIML_CHARS && s.repeat) twiml = speechTwiml({ ...s.voice, message: text, repeat: false, gather });
    if (twiml.length > MAX_TWIML_CHARS) throw new ValidationError(`The spoken message is too long for one call (${text.length} characters)`, { code: "twiml_too_long" });
    return { twiml, gather, prompts };
  }
  const value = await evaluate(RED, node, config.twiml, config.twimlType, msg);
  const text = typeof value === "string" ? value.trim() : "";
  if (s.mode === "twiml") {
    if (!/<Response[\s/>]/.test(text)) throw new ValidationError("TwiML must be a <Response> document", { code: "bad_twiml" });
    return { twiml: text, prompts };
  }
  if (!isTwimlUrl(text)) throw new ValidationError("TwiML URL must be an absolute http(s) URL whose host has no underscore", { code: "bad_twiml" });
  return { url: text, prompts };
}

/** Callee and caller id of one call; `to` is what an error may show (masked until it is valid E.164). */
export interface CallParties {
  to: string;
  from: string;
}

/**
 * Read the callee (E.164; `onTo` gets the masked raw value first, for the failure description) and the caller id.
 * @throws ValidationError invalid_phone (also a `whatsapp:` address), no_sender (none, or a Messaging Service SID)
 */
export async function readCallParties(RED: RedAPI, node: RedNode, config: CallProps, cfg: TwilioConfigApi, msg: NodeMessage, onTo: (shown: string) => void): Promise<CallParties> {
  const rawTo = firstSet(config.to ? await evaluate(RED, node, config.to, config.toType ?? "msg", msg) : undefined, msg.to);
  onTo(typeof rawTo === "string" ? maskPhone(rawTo) : "");
  const to = toE164(rawTo as string, cfg.defaultRegion);
  onTo(to);
  if (to.includes(":")) throw new ValidationError(`"${maskPhone(to)}" is not a phone number a call can reach`, { code: "invalid_phone" });
  const from = String(firstSet(config.from ? await evaluate(RED, node, config.from, config.fromType, msg) : undefined, msg.from as string, cfg.from) ?? "").trim();
  if (!from || /^MG/i.test(from)) throw new ValidationError("No caller id: set From here, in msg.from or in the Twilio account (a Messaging Service cannot place calls)", { code: "no_sender" });
  return { to, from };
}
