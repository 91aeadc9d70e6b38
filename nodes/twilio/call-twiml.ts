/**
 * `mlc-twilio-call`: the call content (TwiML or URL) built per message; its properties and the settings read at
 * deploy are in lib/twilio/call-settings.ts (re-exported here).
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather
 */
import { ValidationError } from "../lib/errors";
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
