/**
 * Outbound voice calls: create and fetch the Call resource through the account's {@link TwilioClient}
 * (pacing budget, host override, typed errors), and the TwiML the call node speaks, built with the twilio
 * package's own `twiml.VoiceResponse` so every ERP text is XML-escaped by the builder.
 *
 * Vendor documents: Call resource https://www.twilio.com/docs/voice/api/call-resource ;
 * `<Say>` https://www.twilio.com/docs/voice/twiml/say ; `<Gather>` https://www.twilio.com/docs/voice/twiml/gather ;
 * answering machine detection https://www.twilio.com/docs/voice/answering-machine-detection
 */
import twilio from "twilio";
import { ValidationError } from "../errors";
import type { GatherReply } from "./call-tracker";
import { TwilioClient, mapTwilioError } from "./client";
import { SendLedger, SendOnceResult, sendOnce } from "./ledger";

/** Call progress events Twilio can report to a StatusCallback (one repeated `StatusCallbackEvent` key each). */
export const CALL_PROGRESS_EVENTS = ["initiated", "ringing", "answered", "completed"] as const;

/** Twilio's limit on the inline `Twiml` parameter, characters. */
export const MAX_TWIML_CHARS = 4000;

/** Call as our nodes use it (subset of Twilio's Call resource, camelCase). */
export interface TwilioCall {
  /** "CA" + 32 hex. */
  sid: string;
  /** queued, ringing, in-progress, completed, busy, failed, no-answer, canceled. */
  status: string;
  to: string;
  from: string;
  /** AMD result (human, machine_start, machine_end_beep, machine_end_silence, machine_end_other, fax, unknown); null without AMD. */
  answeredBy: string | null;
  /** Length of the answered call in seconds (Twilio sends a string); null while the call is not over. */
  duration: number | null;
}

/** Parameters of a call create (POST /2010-04-01/Accounts/{AccountSid}/Calls.json). */
export interface CreateCallParams {
  /** E.164. */
  to: string;
  /** E.164 Twilio number or verified caller id. */
  from: string;
  /** Inline TwiML (≤ 4000 characters). Exactly one of `twiml` and `url`. */
  twiml?: string;
  /** Absolute URL returning the TwiML. */
  url?: string;
  /** Absolute URL for call progress callbacks. */
  statusCallback?: string;
  /** Progress events reported to `statusCallback`; default all of {@link CALL_PROGRESS_EVENTS} when a callback is set. */
  statusCallbackEvent?: string[];
  /** "Enable" (AnsweredBy as soon as known) or "DetectMessageEnd"; omitted = no AMD. */
  machineDetection?: "Enable" | "DetectMessageEnd";
  /** Ring time before "no-answer", seconds (Twilio default 60, max 600). */
  timeout?: number;
}

function toCall(c: Record<string, unknown>): TwilioCall {
  const d = c.duration;
  const n = d === undefined || d === null || d === "" ? NaN : Number(d);
  return {
    sid: String(c.sid),
    status: String(c.status),
    to: String(c.to ?? ""),
    from: String(c.from ?? ""),
    answeredBy: ((c.answeredBy ?? c.answered_by) as string | null | undefined) ?? null,
    duration: Number.isFinite(n) ? n : null,
  };
}

/**
 * Place a call within the account's pacing budget (sender = `from`).
 * @throws ValidationError code "bad_call" when neither or both of twiml/url are given or the TwiML is over 4000
 *   characters; TwilioError (21211 invalid To, 21210/21212 bad From, 21215 geo permission, 13224…), AuthError,
 *   RateLimitedError (20429 after retries), TimeoutError (outcomeUnknown: the call may exist; never placed again blindly)
 */
export async function createCall(client: TwilioClient, p: CreateCallParams): Promise<TwilioCall> {
  if ((p.twiml === undefined) === (p.url === undefined)) throw new ValidationError("A call needs either TwiML or a TwiML URL", { code: "bad_call" });
  if (p.twiml !== undefined && p.twiml.length > MAX_TWIML_CHARS) {
    throw new ValidationError(`TwiML is ${p.twiml.length} characters; Twilio accepts at most ${MAX_TWIML_CHARS}`, { code: "bad_call" });
  }
  try {
    const c = await client.budget.create(p.from, () =>
      client.rest.calls.create({
        to: p.to,
        from: p.from,
        ...(p.twiml !== undefined ? { twiml: p.twiml } : { url: p.url as string }),
        ...(p.statusCallback ? { statusCallback: p.statusCallback, statusCallbackEvent: p.statusCallbackEvent ?? [...CALL_PROGRESS_EVENTS], statusCallbackMethod: "POST" } : {}),
        ...(p.machineDetection ? { machineDetection: p.machineDetection } : {}),
        ...(p.timeout !== undefined ? { timeout: p.timeout } : {}),
      }),
    );
    return toCall(c as unknown as Record<string, unknown>);
  } catch (err) {
    throw mapTwilioError(err);
  }
}

/** Fetch a call (GET …/Calls/{Sid}.json) within the concurrency budget. @throws as createCall (404 → TwilioError 20404) */
export async function fetchCall(client: TwilioClient, sid: string): Promise<TwilioCall> {
  try {
    const c = await client.budget.other(() => client.rest.calls(sid).fetch());
    return toCall(c as unknown as Record<string, unknown>);
  } catch (err) {
    throw mapTwilioError(err);
  }
}

/** Query of {@link findRecentCall}. */
export interface RecentCallQuery {
  /** E.164 callee. */
  to: string;
  /** E.164 caller id. */
  from: string;
  /** The create may have left at or after this time (ms since epoch is `since.getTime()`). */
  since: Date;
  /** Clock difference tolerated between us and Twilio, ms (default 60000). */
  skewMs?: number;
  /** Pages of 50 read at most (default 10). */
  maxPages?: number;
  /** Calls already accounted for by another send (a ledger's known sids) are passed over. */
  skip?: (sid: string) => boolean;
}

/**
 * Newest call from `from` to `to` created at or after `since - skewMs` that `skip` does not exclude, or null: the
 * lookup that settles a call create whose outcome is unknown. Lists the account's calls filtered by To and From
 * (GET …/Calls.json?To=&From=, newest first, within the concurrency budget) and compares `date_created` here:
 * Twilio's `StartTime` filter would miss a call still queued or ringing (its start_time is empty until dialled).
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#read-multiple-call-resources
 * @throws TwilioError / AuthError / TimeoutError as fetchCall
 */
export async function findRecentCall(client: TwilioClient, q: RecentCallQuery): Promise<TwilioCall | null> {
  try {
    const after = q.since.getTime() - (q.skewMs ?? 60000);
    type Page = { instances: Record<string, unknown>[]; nextPage(): Promise<Page | undefined> };
    let page: Page | undefined = (await client.budget.other(() => client.rest.calls.page({ to: q.to, from: q.from, pageSize: 50 }))) as unknown as Page;
    for (let n = 0; page && n < (q.maxPages ?? 10); n++) {
      for (const raw of page.instances) {
        const d = raw.dateCreated ?? raw.date_created;
        const created = d instanceof Date ? d.getTime() : typeof d === "string" ? Date.parse(d) : NaN;
        if (Number.isFinite(created) && created < after) return null; // newest first: nothing older can match
        const c = toCall(raw);
        if (q.skip?.(c.sid)) continue;
        return c;
      }
      const current: Page = page;
      page = await client.budget.other(() => current.nextPage());
    }
    return null;
  } catch (err) {
    throw mapTwilioError(err);
  }
}

/** Voice of every `<Say>`: Twilio voice name ("Polly.Joanna", "alice") and BCP 47 language ("en-US"). */
export interface SayVoice {
  voice?: string;
  language?: string;
}

/** Texts spoken around the message when an acknowledgement is asked for (English defaults). */
export interface AckPrompts {
  /** After the message, inside `<Gather>`; "__digit__" is replaced. Default "Press 1 to confirm." */
  confirm?: string;
  /** When the caller pressed nothing in time. Default "No input received. Goodbye." */
  goodbye?: string;
  /** After the right key. Default "Thank you. Your confirmation has been recorded. Goodbye." */
  thanks?: string;
  /** After a wrong key, before asking again. Default "Sorry, that key is not valid." */
  retry?: string;
}

export const DEFAULT_PROMPTS: Required<AckPrompts> = {
  confirm: "Press __digit__ to confirm.",
  goodbye: "No input received. Goodbye.",
  thanks: "Thank you. Your confirmation has been recorded. Goodbye.",
  retry: "Sorry, that key is not valid.",
};

/** Spoken form of a key: "1", "star", "pound". */
function keyName(digit: string): string {
  return digit === "*" ? "star" : digit === "#" ? "pound" : digit;
}

function prompt(text: string, digit: string): string {
  return text.replace(/__digit__/g, keyName(digit));
}

/** What the `<Gather>` of an acknowledgement call looks like. */
export interface GatherSpec {
  /** Absolute URL Twilio posts the result to (a call created with Twiml has no document URL to be relative to). */
  action: string;
  /** Seconds to wait for the key after the last prompt. */
  timeoutSec: number;
  /** The key that confirms ("0"–"9", "*", "#"). */
  digit: string;
  prompts?: AckPrompts;
}

export interface SpeechTwimlOptions extends SayVoice {
  /** Text to speak (plain text; the builder escapes it). */
  message: string;
  /** Speak the message (and the confirm prompt) a second time after a 1 s pause. */
  repeat?: boolean;
  /** Ask for a keypress acknowledgement. */
  gather?: GatherSpec;
}

function sayAttrs(v: SayVoice): Record<string, string> {
  const a: Record<string, string> = {};
  if (v.voice) a.voice = v.voice;
  if (v.language) a.language = v.language;
  return a;
}

function gatherAttrs(g: GatherSpec): Record<string, unknown> {
  // finishOnKey "" so "#" can itself be the confirming key; numDigits 1 ends the Gather on the first key.
  return { input: ["dtmf"], numDigits: 1, timeout: g.timeoutSec, finishOnKey: "", action: g.action, method: "POST", actionOnEmptyResult: true };
}

/**
 * TwiML for a spoken notification.
 * Without `gather`: `<Response><Say voice language>message</Say>[<Pause length="1"/><Say>message</Say>]</Response>`.
 * With `gather` (reference §4.1): `<Response><Gather input="dtmf" numDigits="1" timeout=… action="<absolute>" method="POST"
 * actionOnEmptyResult="true"><Say>message</Say><Say>Press 1 to confirm.</Say>[<Pause/>…again]</Gather><Say>goodbye</Say></Response>`.
 * Without actionOnEmptyResult a timeout would fall through without calling `action`; the goodbye after the Gather is only
 * reached if Twilio does not call it.
 * @returns the XML document (with declaration), as Twilio's `Twiml` parameter takes it
 */
export function speechTwiml(o: SpeechTwimlOptions): string {
  const r = new twilio.twiml.VoiceResponse();
  const voice = sayAttrs(o);
  const times = o.repeat ? 2 : 1;
  if (!o.gather) {
    for (let i = 0; i < times; i++) {
      if (i > 0) r.pause({ length: 1 });
      r.say(voice as never, o.message);
    }
    return r.toString();
  }
  const p = { ...DEFAULT_PROMPTS, ...(o.gather.prompts ?? {}) };
  const g = r.gather(gatherAttrs(o.gather) as never);
  for (let i = 0; i < times; i++) {
    if (i > 0) g.pause({ length: 1 });
    g.say(voice as never, o.message);
    g.say(voice as never, prompt(p.confirm, o.gather.digit));
  }
  r.say(voice as never, p.goodbye);
  return r.toString();
}

/** TwiML answering the right key: thanks, then the call ends. */
export function thanksTwiml(v: SayVoice, prompts?: AckPrompts): string {
  const r = new twilio.twiml.VoiceResponse();
  r.say(sayAttrs(v) as never, { ...DEFAULT_PROMPTS, ...(prompts ?? {}) }.thanks);
  return r.toString();
}

/** TwiML answering a wrong key while a retry is left: "not valid", the confirm prompt again in a new Gather. */
export function retryTwiml(v: SayVoice, g: GatherSpec): string {
  const p = { ...DEFAULT_PROMPTS, ...(g.prompts ?? {}) };
  const r = new twilio.twiml.VoiceResponse();
  const gather = r.gather(gatherAttrs(g) as never);
  gather.say(sayAttrs(v) as never, `${p.retry} ${prompt(p.confirm, g.digit)}`);
  r.say(sayAttrs(v) as never, p.goodbye);
  return r.toString();
}

/** TwiML ending the call after no (or no valid) key: goodbye, hang up. */
export function goodbyeTwiml(v: SayVoice, prompts?: AckPrompts): string {
  const r = new twilio.twiml.VoiceResponse();
  r.say(sayAttrs(v) as never, { ...DEFAULT_PROMPTS, ...(prompts ?? {}) }.goodbye);
  r.hangup();
  return r.toString();
}

/** True for an AMD result that is not a person (machine_start, machine_end_*, fax). */
export function isMachine(answeredBy: string | null | undefined): boolean {
  return typeof answeredBy === "string" && (answeredBy.startsWith("machine") || answeredBy === "fax");
}

/** When this module was loaded (≈ process start): a call claimed before it may have been placed before a crash. */
const LOADED_AT = Date.now();

/** How {@link placeCallOnce} settles an unknown outcome. */
export interface PlaceOnceOptions {
  /** How long after the create a lookup may find the call, ms. */
  windowMs: number;
  /** True once the node closed (nothing is placed any more). */
  aborted: () => boolean;
}

/**
 * Place a call at most once per ledger key (ledger.ts sendOnce, serialised per key): a claimed call whose outcome is
 * unknown is looked up (Calls by To and From, created since the claim, {@link findRecentCall}) before it is placed
 * again; its sid is recorded in the ledger.
 * @returns sendOnce's result: "created", "duplicate" (this key already placed a call) or "reconciled" (found)
 * @throws what {@link createCall} and {@link findRecentCall} throw; TimeoutError (outcomeUnknown) while unresolved
 */
export function placeCallOnce(client: TwilioClient, ledger: SendLedger, key: string, p: CreateCallParams, o: PlaceOnceOptions): Promise<SendOnceResult<TwilioCall>> {
  return ledger.serial(key, () =>
    sendOnce({
      ledger,
      key,
      create: () => createCall(client, p),
      lookup: (since) => findRecentCall(client, { to: p.to, from: p.from, since: new Date(since), skip: (sid) => ledger.knows(sid) }),
      windowMs: o.windowMs,
      loadedAt: LOADED_AT,
      aborted: o.aborted,
    }),
  );
}

/** What a tracked call keeps for its Gather answers. */
export interface CallVoice {
  voice: SayVoice;
  gather?: GatherSpec;
  prompts?: AckPrompts;
}

/** The TwiML answering a Gather action: thanks, ask again, or goodbye (`fallback` voice for an unknown call). */
export function gatherReplyTwiml(r: GatherReply<CallVoice>, fallback: SayVoice): string {
  if (r.kind === "unknown") return goodbyeTwiml(fallback); // restarted, expired or resolved
  const d = r.call.data;
  if (r.kind === "thanks") return thanksTwiml(d.voice, d.prompts);
  if (r.kind === "retry" && d.gather) return retryTwiml(d.voice, d.gather);
  return goodbyeTwiml(d.voice, d.prompts);
}
