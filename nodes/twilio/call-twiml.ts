/**
 * `mlc-twilio-call` properties, settings read at deploy, and the call content (TwiML or URL) built per message.
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather
 */
import { ValidationError } from "../lib/errors";
import { renderTemplate } from "../lib/template";
import type { CallResult } from "../lib/twilio/call-tracker";
import { AckPrompts, GatherSpec, MAX_TWIML_CHARS, SayVoice, speechTwiml } from "../lib/twilio/calls";
import { speechView } from "../lib/twilio/speech";
import { evaluate, firstSet, num } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";

export interface CallProps extends Record<string, unknown> {
  name?: string;
  twilio?: string;
  to?: string;
  toType?: string;
  from?: string;
  fromType?: string;
  /** Mustache template of the spoken text (twimlMode "say"). */
  message?: string;
  /** Twilio voice ("Polly.Joanna", "alice"). */
  voice?: string;
  /** BCP 47 language of the voice and of the amount/date helpers ("en-US"). */
  language?: string;
  /** Speak the message twice (default true). */
  repeat?: boolean | string;
  /** "say" (default): speak `message`; "twiml": TwiML document from `twiml`; "url": TwiML URL from `twiml`. */
  twimlMode?: string;
  twiml?: string;
  twimlType?: string;
  /** Ask for a keypress acknowledgement (say mode only). */
  ack?: boolean | string;
  /** Seconds to wait for the key (default 8). */
  ackTimeout?: string | number;
  /** The confirming key (default "1"). */
  ackDigit?: string;
  /** Answering machine detection (MachineDetection=Enable). */
  amd?: boolean | string;
  /** Endpoint name of the mlc-twilio-status node receiving call progress (default "status"). */
  callback?: string;
  /** This node's endpoint name; Gather actions go to /mlc/twilio/<endpoint>/gather (default "call"). */
  endpoint?: string;
  /** Poll the Call resource instead of receiving status callbacks. */
  poll?: boolean | string;
  /** Seconds between polls (default 5). */
  pollInterval?: string | number;
  /** Seconds after which a call without final outcome is given up (default 600). */
  pollTimeout?: string | number;
  /** How long a create whose outcome is unknown is looked up before it counts as absent, s (default 30). */
  reconcileWindow?: string | number;
  /** Context store of the send ledger ("" = default). */
  store?: string;
}

/** `msg.ack` on outputs 2 and 3. */
export interface CallAck {
  result: CallResult;
  /** Key(s) pressed, when any. */
  digits?: string;
  /** AMD result, when detection ran. */
  answeredBy?: string;
  /** ISO 8601 time the outcome was known. */
  at: string;
}

function bool(v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null || v === "") return dflt;
  return v === true || v === "true";
}

function promptsFrom(v: unknown): AckPrompts | undefined {
  if (!v || typeof v !== "object") return undefined;
  const out: AckPrompts = {};
  for (const k of ["confirm", "goodbye", "thanks", "retry"] as const) {
    const s = (v as Record<string, unknown>)[k];
    if (typeof s === "string" && s.trim()) out[k] = s;
  }
  return out;
}

/** Absolute http(s) URL with a hostname Twilio accepts (no underscores). */
function isTwimlUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === "https:" || u.protocol === "http:") && !u.hostname.includes("_");
  } catch {
    return false;
  }
}


/** Settings of one call node, read once at deploy. Durations in ms. */
export interface CallSettings {
  endpoint: string;
  callback: string;
  voice: SayVoice;
  mode: "say" | "twiml" | "url";
  ack: boolean;
  ackTimeoutSec: number;
  ackDigit: string;
  amd: boolean;
  repeat: boolean;
  poll: boolean;
  pollIntervalMs: number;
  giveUpMs: number;
  reconcileWindowMs: number;
}

export function callSettings(config: CallProps): CallSettings {
  const callback = (config.callback ?? "status").trim();
  const mode = config.twimlMode === "twiml" || config.twimlMode === "url" ? config.twimlMode : "say";
  const ack = bool(config.ack, false) && mode === "say";
  const ackTimeoutSec = num(config.ackTimeout, 8, 1, 60);
  return {
    endpoint: (config.endpoint || "call").trim(),
    callback,
    voice: { voice: (config.voice ?? "Polly.Joanna").trim() || undefined, language: (config.language ?? "en-US").trim() || undefined },
    mode,
    ack,
    ackTimeoutSec,
    ackDigit: String(config.ackDigit ?? "1").trim() || "1",
    amd: bool(config.amd, false),
    repeat: bool(config.repeat, true),
    // Without a status endpoint there is no other way to learn how the call ended.
    poll: bool(config.poll, false) || callback === "",
    pollIntervalMs: num(config.pollInterval, 5, 1, 3600) * 1000,
    giveUpMs: Math.max(num(config.pollTimeout, 600, 1, 86400), ack ? ackTimeoutSec : 0) * 1000,
    reconcileWindowMs: num(config.reconcileWindow, 30, 1, 3600) * 1000,
  };
}

/** What a call says: inline TwiML or a TwiML URL, and the Gather when an acknowledgement is asked for. */
export interface CallContent {
  twiml?: string;
  url?: string;
  gather?: GatherSpec;
  prompts?: AckPrompts;
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
