/**
 * `mlc-twilio-call`: places one voice call per input message and reports, later, whether the person
 * acknowledged it. The message is a Mustache template spoken with `<Say>` (with `amount`, `date` and `spell`
 * helpers for IVR-friendly amounts, dates and reference numbers); optionally a `<Gather>` asks for one key
 * ("Press 1 to confirm") and posts the result, signed, to this node's endpoint
 * `<httpNodeRoot>/mlc/twilio/<endpoint>/gather`. Call progress comes from the mlc-twilio-status node
 * (through lib/twilio/bus) or, in poll mode, from fetching the Call resource.
 *
 * Outputs: [1] placed, [2] acknowledged (msg.ack.result "acknowledged"; "answered" without acknowledgement),
 * [3] not acknowledged (msg.ack.result "no-answer" | "busy" | "failed" | "canceled" | "no-input" | "machine").
 * Pending calls live in memory only: they do not survive a restart or redeploy.
 *
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather ; https://www.twilio.com/docs/voice/answering-machine-detection
 */
import type { TwilioMeta } from "../lib/envelope";
import { MlcError, TwilioError, ValidationError } from "../lib/errors";
import { randomId } from "../lib/ids";
import { maskPhone, toE164 } from "../lib/phone";
import { renderTemplate } from "../lib/template";
import { AcceptedStatus, onStatus, publishStatus } from "../lib/twilio/bus";
import {
  AckPrompts,
  GatherSpec,
  MAX_TWIML_CHARS,
  SayVoice,
  TwilioCall,
  createCall,
  fetchCall,
  goodbyeTwiml,
  isMachine,
  retryTwiml,
  speechTwiml,
  thanksTwiml,
} from "../lib/twilio/calls";
import { speechView } from "../lib/twilio/speech";
import { isFinalStatus, isStatusAdvance } from "../lib/twilio/status";
import { InboundRequest, InboundResponse, mountDispatcher, registerEndpoint } from "../shared/dispatcher";
import { Status, evaluate, firstSet, messageJobId, num, onClose, onInput, registerNode, reportError, t } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { twilioConfig } from "./config";
import { checkTwilioWebhook, one } from "./webhook";

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
}

/** `msg.ack` on outputs 2 and 3. */
export interface CallAck {
  result: "acknowledged" | "answered" | "no-input" | "machine" | "no-answer" | "busy" | "failed" | "canceled";
  /** Key(s) pressed, when any. */
  digits?: string;
  /** AMD result, when detection ran. */
  answeredBy?: string;
  /** ISO 8601 time the outcome was known. */
  at: string;
}

/** Wrong keys allowed before the call ends as "no-input": one retry prompt. */
const MAX_GATHER_ATTEMPTS = 2;
/** Early final statuses kept for calls whose create has not returned yet. */
const EARLY_MAX = 200;
const EARLY_TTL_MS = 60000;

interface Pending {
  corr: string;
  sid: string;
  jobId: string;
  /** Clone of the placed msg (with msg.twilio), emitted later with msg.ack. */
  msg: NodeMessage;
  status: string;
  answeredBy?: string;
  ack: boolean;
  voice: SayVoice;
  gather?: GatherSpec;
  prompts?: AckPrompts;
  attempts: number;
  poll: boolean;
  pollErrorReported: boolean;
  expiry: NodeJS.Timeout;
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

const TWIML = { "Content-Type": "text/xml; charset=utf-8" };

/**
 * Register `mlc-twilio-call` (properties: {@link CallProps}; outputs: placed, acknowledged, not acknowledged with
 * msg.ack as {@link CallAck}). Serves `/mlc/twilio/<endpoint>/gather` while acknowledgement is on.
 */
export function registerCall(RED: RedAPI): void {
  mountDispatcher(RED.httpNode, RED);
  registerNode<CallProps>(RED, "mlc-twilio-call", (node, config) => {
    const endpoint = (config.endpoint || "call").trim();
    const callback = (config.callback ?? "status").trim();
    const voice: SayVoice = { voice: (config.voice ?? "Polly.Joanna").trim() || undefined, language: (config.language ?? "en-US").trim() || undefined };
    const mode = config.twimlMode === "twiml" || config.twimlMode === "url" ? config.twimlMode : "say";
    const ack = bool(config.ack, false) && mode === "say";
    const ackTimeout = num(config.ackTimeout, 8, 1, 60);
    const ackDigit = String(config.ackDigit ?? "1").trim() || "1";
    const amd = bool(config.amd, false);
    const repeat = bool(config.repeat, true);
    // Without a status endpoint there is no other way to learn how the call ended.
    const poll = bool(config.poll, false) || callback === "";
    const pollIntervalMs = num(config.pollInterval, 5, 1, 3600) * 1000;
    const giveUpMs = Math.max(num(config.pollTimeout, 600, 1, 86400), ack ? ackTimeout : 0) * 1000;

    let placed = 0;
    let acked = 0;
    let nacked = 0;
    const counts = (): string =>
      t(RED, "mlc-twilio-call.status.counts", { placed, ack: acked, nack: nacked }, `placed ${placed}, ack ${acked}, no ${nacked}`);
    const showCounts = (): void => node.status((nacked > 0 ? Status.warn : placed > 0 ? Status.ok : Status.idle)(counts()));

    const bySid = new Map<string, Pending>();
    const byCorr = new Map<string, Pending>();
    /** Final statuses of sids not (yet) pending: a callback may beat the create's response. */
    const early = new Map<string, { s: AcceptedStatus; at: number }>();
    let pollTimer: NodeJS.Timeout | undefined;
    let polling = false;
    let closed = false;

    const forget = (p: Pending): void => {
      clearTimeout(p.expiry);
      bySid.delete(p.sid);
      byCorr.delete(p.corr);
      if (pollTimer && ![...bySid.values()].some((x) => x.poll)) {
        clearInterval(pollTimer);
        pollTimer = undefined;
      }
    };

    /** Emit the outcome of a pending call once, on output 2 (acknowledged/answered) or 3. */
    const resolve = (p: Pending, result: CallAck["result"], digits?: string): void => {
      if (!bySid.has(p.sid) || closed) return;
      forget(p);
      const out = p.msg;
      const meta = out.twilio as TwilioMeta;
      out.twilio = { ...meta, status: p.status } satisfies TwilioMeta;
      const a: CallAck = { result, at: new Date().toISOString() };
      if (digits) a.digits = digits;
      if (p.answeredBy) a.answeredBy = p.answeredBy;
      out.ack = a;
      const positive = result === "acknowledged" || result === "answered";
      if (positive) acked++;
      else nacked++;
      showCounts();
      node.send(positive ? [null, out, null] : [null, null, out]);
    };

    /** A status accepted by mlc-twilio-status (or published by our own polling). */
    const onCallStatus = (s: AcceptedStatus): void => {
      if (s.kind !== "call" || closed) return;
      const p = bySid.get(s.sid);
      if (!p) {
        if (isFinalStatus(s.status) || isMachine(one(s.fields.AnsweredBy))) {
          const now = Date.now();
          early.delete(s.sid);
          early.set(s.sid, { s, at: now });
          for (const [sid, e] of early) {
            if (early.size <= EARLY_MAX && now - e.at < EARLY_TTL_MS) break;
            early.delete(sid);
          }
        }
        return;
      }
      const answeredBy = one(s.fields.AnsweredBy);
      if (answeredBy) p.answeredBy = answeredBy;
      if (isStatusAdvance(p.status, s.status, "call")) p.status = s.status;
      if (isMachine(p.answeredBy)) return resolve(p, "machine");
      if (!isFinalStatus(p.status)) return;
      if (p.status === "completed") return resolve(p, p.ack ? "no-input" : "answered");
      resolve(p, p.status as CallAck["result"]);
    };
    const unsubscribe = onStatus(onCallStatus);

    /** One polling round over every pending call in poll mode; each new status is published on the bus. */
    const pollOnce = async (): Promise<void> => {
      if (polling || closed) return;
      polling = true;
      try {
        const cfg = twilioConfig(RED, config.twilio);
        for (const p of [...bySid.values()].filter((x) => x.poll)) {
          let c: TwilioCall;
          try {
            c = await fetchCall(cfg.client(), p.sid);
          } catch (err) {
            if (!p.pollErrorReported) {
              p.pollErrorReported = true;
              reportError(RED, node, err, { topic: "mlc-twilio-call/poll", sid: p.sid, jobId: p.jobId });
            }
            continue;
          }
          if (closed || !bySid.has(p.sid)) continue;
          const newAmd = c.answeredBy && c.answeredBy !== p.answeredBy && isMachine(c.answeredBy);
          if (!isStatusAdvance(p.status, c.status, "call") && !newAmd) continue;
          const fields: Record<string, string> = { CallSid: c.sid, CallStatus: c.status, To: c.to, From: c.from, CallbackSource: "mlc-poll" };
          if (c.answeredBy) fields.AnsweredBy = c.answeredBy;
          if (c.duration !== null) fields.CallDuration = String(c.duration);
          publishStatus({ kind: "call", sid: c.sid, status: c.status, jobId: p.jobId, fields });
        }
      } catch (err) {
        reportError(RED, node, err, { topic: "mlc-twilio-call/poll" });
      } finally {
        polling = false;
      }
    };

    const track = (p: Pending): void => {
      bySid.set(p.sid, p);
      byCorr.set(p.corr, p);
      if (p.poll && !pollTimer) pollTimer = setInterval(() => void pollOnce(), pollIntervalMs);
      const e = early.get(p.sid);
      early.delete(p.sid);
      if (e && Date.now() - e.at < EARLY_TTL_MS) onCallStatus(e.s);
    };

    /** Gather action: Twilio posts the key pressed (or nothing, after the timeout). Answered with TwiML. */
    const gatherHandler = async (req: InboundRequest): Promise<InboundResponse> => {
      const check = checkTwilioWebhook(RED, node, config.twilio, req);
      if (!check.ok) {
        return check.response;
      }
      const f = check.fields;
      const corr = new URLSearchParams(req.rawQuery).get("c") ?? "";
      const p = byCorr.get(corr);
      const callSid = one(f.CallSid);
      if (!p || (callSid && callSid !== p.sid)) {
        // Unknown (restarted, expired, already resolved): end politely, emit nothing.
        return { status: 200, headers: TWIML, body: goodbyeTwiml(voice) };
      }
      const answeredBy = one(f.AnsweredBy);
      if (answeredBy) p.answeredBy = answeredBy;
      if (isStatusAdvance(p.status, "in-progress", "call")) p.status = "in-progress";
      const digits = (one(f.Digits) ?? "").trim();
      p.attempts++;
      if (digits === ackDigit) {
        resolve(p, "acknowledged", digits);
        return { status: 200, headers: TWIML, body: thanksTwiml(p.voice, p.prompts) };
      }
      if (digits !== "" && p.attempts < MAX_GATHER_ATTEMPTS && p.gather) {
        return { status: 200, headers: TWIML, body: retryTwiml(p.voice, p.gather) };
      }
      resolve(p, isMachine(p.answeredBy) ? "machine" : "no-input", digits || undefined);
      return { status: 200, headers: TWIML, body: goodbyeTwiml(p.voice, p.prompts) };
    };

    let release: (() => void) | undefined;
    let endpointError: unknown;
    if (ack) {
      try {
        release = registerEndpoint(RED.httpNode, `/twilio/${endpoint}/gather`, node.id, gatherHandler);
      } catch (err) {
        endpointError = err;
        reportError(RED, node, err, { topic: "mlc-twilio-call/start", endpoint });
      }
    }
    if (!endpointError) {
      try {
        twilioConfig(RED, config.twilio); // a missing or failed account shows here at deploy, not as "ready"
        node.status(Status.idle(t(RED, "mlc-twilio-call.status.ready", undefined, "ready")));
      } catch (err) {
        reportError(RED, node, err, { topic: "mlc-twilio-call/start" });
      }
    }

    onInput(RED, node, async (msg, { send, status }) => {
      if (endpointError) throw endpointError;
      if (ack && !/^[0-9*#]$/.test(ackDigit)) throw new ValidationError(`Acknowledgement key "${ackDigit}" must be one of 0-9, * or #`, { code: "bad_config" });
      const cfg = twilioConfig(RED, config.twilio);
      const erp = msg.erp as { jobId?: string; id?: string } | undefined;
      const jobId = messageJobId(msg);
      const fail = (err: unknown, to: string): never => {
        const code = err instanceof TwilioError ? err.twilioCode : undefined;
        const unknown = (err as { outcomeUnknown?: boolean }).outcomeUnknown;
        msg.twilio = { sid: "", status: unknown ? "unknown" : "failed", to, channel: "voice", jobId, ...(code ? { errorCode: code } : {}) } satisfies TwilioMeta;
        if (err instanceof MlcError) err.recordId = erp?.id;
        status(Status.error(counts()));
        throw err;
      };

      const rawTo = firstSet(config.to ? await evaluate(RED, node, config.to, config.toType ?? "msg", msg) : undefined, msg.to);
      let to: string;
      try {
        to = toE164(rawTo as string, cfg.defaultRegion);
        if (to.includes(":")) throw new ValidationError(`"${maskPhone(to)}" is not a phone number a call can reach`, { code: "invalid_phone" });
      } catch (err) {
        return fail(err, typeof rawTo === "string" ? maskPhone(rawTo) : "");
      }
      const from = String(firstSet(config.from ? await evaluate(RED, node, config.from, config.fromType, msg) : undefined, msg.from as string, cfg.from) ?? "").trim();
      if (!from || /^MG/i.test(from)) return fail(new ValidationError("No caller id: set From here, in msg.from or in the Twilio account (a Messaging Service cannot place calls)", { code: "no_sender" }), to);

      const corr = randomId("c");
      let twiml: string | undefined;
      let url: string | undefined;
      let gather: GatherSpec | undefined;
      const prompts = promptsFrom(msg.prompts);
      try {
        if (mode === "say") {
          const template = firstSet(config.message, typeof msg.message === "string" ? msg.message : undefined, typeof msg.payload === "string" ? msg.payload : undefined);
          const text = template === undefined ? "" : renderTemplate(template, speechView(msg, voice.language)).trim();
          if (!text) throw new ValidationError("Nothing to say: the message is empty", { code: "empty_speech" });
          if (ack) gather = { action: cfg.endpointUrl(`/twilio/${endpoint}/gather`, { c: corr }), timeoutSec: ackTimeout, digit: ackDigit, prompts };
          twiml = speechTwiml({ ...voice, message: text, repeat, gather });
          if (twiml.length > MAX_TWIML_CHARS && repeat) twiml = speechTwiml({ ...voice, message: text, repeat: false, gather });
          if (twiml.length > MAX_TWIML_CHARS) throw new ValidationError(`The spoken message is too long for one call (${text.length} characters)`, { code: "twiml_too_long" });
        } else {
          const value = await evaluate(RED, node, config.twiml, config.twimlType, msg);
          const text = typeof value === "string" ? value.trim() : "";
          if (mode === "twiml") {
            if (!/<Response[\s/>]/.test(text)) throw new ValidationError("TwiML must be a <Response> document", { code: "bad_twiml" });
            twiml = text;
          } else {
            if (!isTwimlUrl(text)) throw new ValidationError("TwiML URL must be an absolute http(s) URL whose host has no underscore", { code: "bad_twiml" });
            url = text;
          }
        }
      } catch (err) {
        return fail(err, to);
      }
      let statusCallback: string | undefined;
      try {
        statusCallback = poll ? undefined : cfg.endpointUrl(`/twilio/${callback}`, { j: jobId });
      } catch (err) {
        return fail(err, to);
      }

      status(Status.busy(t(RED, "mlc-twilio-call.status.calling", undefined, "calling")));
      let call: TwilioCall;
      try {
        call = await createCall(cfg.client(), {
          to,
          from,
          ...(twiml !== undefined ? { twiml } : { url }),
          statusCallback,
          machineDetection: amd ? "Enable" : undefined,
        });
      } catch (err) {
        return fail(err, to);
      }
      placed++;
      msg.twilio = { sid: call.sid, status: call.status, to: call.to || to, channel: "voice", jobId } satisfies TwilioMeta;
      if (!closed) {
        const p: Pending = {
          corr,
          sid: call.sid,
          jobId,
          msg: RED.util.cloneMessage(msg),
          status: call.status,
          ack,
          voice,
          gather,
          prompts,
          attempts: 0,
          poll,
          pollErrorReported: false,
          expiry: setTimeout(() => {
            const q = bySid.get(call.sid);
            if (q) resolve(q, q.status === "in-progress" || q.status === "answered" ? "no-input" : "no-answer");
          }, giveUpMs),
        };
        track(p);
      }
      showCounts();
      send([msg, null, null]);
    });

    onClose(node, () => {
      closed = true;
      unsubscribe();
      if (pollTimer) clearInterval(pollTimer);
      pollTimer = undefined;
      for (const p of bySid.values()) clearTimeout(p.expiry);
      bySid.clear();
      byCorr.clear();
      early.clear();
      release?.();
    });
  });
}
