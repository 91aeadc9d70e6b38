/**
 * A call node's settings, read once at deploy from its properties without Node-RED: endpoints, voice, TwiML mode,
 * keypress acknowledgement, answering machine detection, polling and reconcile windows (ms), and the checks of
 * acknowledgement prompts and TwiML URLs.
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather
 */
import { num } from "../config-value";
import type { AckPrompts, GatherSpec, SayVoice } from "./calls";

/** Editor properties of `mlc-twilio-call`. */
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
function bool(v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null || v === "") return dflt;
  return v === true || v === "true";
}

export function promptsFrom(v: unknown): AckPrompts | undefined {
  if (!v || typeof v !== "object") return undefined;
  const out: AckPrompts = {};
  for (const k of ["confirm", "goodbye", "thanks", "retry"] as const) {
    const s = (v as Record<string, unknown>)[k];
    if (typeof s === "string" && s.trim()) out[k] = s;
  }
  return out;
}

/** Absolute http(s) URL with a hostname Twilio accepts (no underscores). */
export function isTwimlUrl(text: string): boolean {
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

/** The settings of a call node's properties: defaults and bounds applied, seconds turned into ms. */
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

