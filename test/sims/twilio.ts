/**
 * Local Twilio simulator for the ml-connector test suites.
 *
 * A small `node:http` server (bound to 127.0.0.1, port 0 = ephemeral) that behaves like the parts of the Twilio REST API
 * 2010-04-01 that ml-connector uses, and that can fire signed status callbacks the way Twilio does.
 *
 * Followed documents (see /work/shared/reference/twilio.md for the digest):
 * - Messages resource: https://www.twilio.com/docs/messaging/api/message-resource
 *   (OpenAPI `twilio_api_v2010.json`, operations CreateMessage / FetchMessage / ListMessage)
 * - Errors: https://www.twilio.com/docs/api/errors (body `{code,message,more_info,status}`)
 * - Test credentials / magic numbers: https://www.twilio.com/docs/iam/test-credentials
 * - Status callbacks: https://www.twilio.com/docs/messaging/guides/track-outbound-message-status and
 *   https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks
 * - Webhook signatures: https://www.twilio.com/docs/usage/webhooks/webhooks-security
 * - Concurrency limit 429 / 20429: https://www.twilio.com/docs/api/errors/20429
 * - Calls: https://www.twilio.com/docs/voice/api/call-resource (OpenAPI `CreateCall` / `FetchCall` / `ListCall`),
 *   call progress events https://www.twilio.com/docs/voice/api/call-resource#statuscallbackevent,
 *   `<Gather>` https://www.twilio.com/docs/voice/twiml/gather, AMD https://www.twilio.com/docs/voice/answering-machine-detection
 * - Verify v2: https://www.twilio.com/docs/verify/api/verification and …/verification-check (OpenAPI `twilio_verify_v2.json`),
 *   error codes https://www.twilio.com/docs/verify/api/error-codes
 * - Incoming message webhook: https://www.twilio.com/docs/messaging/guides/webhook-request; default opt-out keywords:
 *   https://support.twilio.com/hc/en-us/articles/223134027
 * - Message scheduling: https://www.twilio.com/docs/messaging/features/message-scheduling (errors 35111, 35114, 35115, 35118)
 *
 * Deliberately not modelled: XML responses, media sub-resources, message/call update and delete (so no cancel of a
 * scheduled message), FallbackUrl, Verify channels `sna`/`auto`, regional hosts. Everything is "test credentials"
 * style: every configured account behaves like an account using Twilio's test credentials (magic numbers apply).
 * Verify lives on the same server as the 2010 API (`/v2/Services/…`), so one host override serves both.
 *
 * The simulator is quiet: it never writes to the console. Pass `log` to see what it does.
 */
import type http from "node:http";
import crypto from "node:crypto";
import { SimServer, readBody, sendRequest, splitUrl, writeJson } from "./http-server";

// ---------------------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------------------

/** A Twilio account: `accountSid` = `AC` + 32 hex, `authToken` = 32 hex (the primary Auth Token; signs webhooks). */
export interface TwilioSimAccount {
  accountSid: string;
  authToken: string;
  /** Shown as `friendly_name` by `GET /2010-04-01/Accounts/{Sid}.json`. Default "ml-connector test account". */
  friendlyName?: string;
}

/**
 * An API key (https://www.twilio.com/docs/iam/api-keys/key-resource-v1): `sid` = `SK` + 32 hex, `secret`, and the
 * account it belongs to. REST calls authenticate with `sid:secret` while the path still names `accountSid`.
 */
export interface TwilioSimApiKey {
  sid: string;
  secret: string;
  accountSid: string;
  /**
   * Key type. `"standard"` (default) may use everything except the Accounts and Keys resources, so
   * `GET /Accounts/{Sid}.json` answers 401 / 20003 as Twilio does (twilio-python issue #259: "you can't use a Key
   * Secret to get an Account"); `"main"` may fetch the account.
   */
  keyType?: "standard" | "main";
}

/** Constructor options. Every field is optional; see the defaults on each field. */
export interface TwilioSimOptions {
  /** Accounts accepted. Default: one account, {@link DEFAULT_ACCOUNT}. The first one is `defaultAccount`. */
  accounts?: TwilioSimAccount[];
  /** API keys accepted. Default: one standard key for the first account ({@link DEFAULT_API_KEY} when accounts are default). */
  apiKeys?: TwilioSimApiKey[];
  /**
   * Senders owned by every account (E.164 numbers, short codes, alphanumeric IDs or `whatsapp:+…`): a `From` outside
   * this list fails with 21606. Twilio's magic test sender `+15005550006` is always accepted. Default `["+15005550006"]`.
   * The first sender is also the one "picked from the pool" for Messaging Service sends without `From`.
   */
  senders?: string[];
  /** Messaging Service SIDs (`MG` + 32 hex) that exist. Default: one, {@link DEFAULT_MESSAGING_SERVICE_SID}. */
  messagingServices?: string[];
  /**
   * Recipients that have opted out (replied STOP) for every account: sends to them fail 400 / 21610. Also see `optOut()`
   * and `sendInbound()` (a STOP keyword opts out for that account only).
   */
  optOuts?: string[];
  /**
   * Per-account REST concurrency limit: a request arriving while this many requests of the same account are still in
   * flight is answered 429 / 20429 without `Retry-After`, and is not processed (no message created). Default: no limit.
   */
  concurrencyLimit?: number;
  /** Processing time added to every REST request before it is answered, in milliseconds. Default 0. */
  latencyMs?: number;
  /** Total timeout for one status-callback POST, in milliseconds (Twilio's default total timeout is 15000). */
  callbackTimeoutMs?: number;
  /**
   * Whether a `#fragment` of the StatusCallback URL (Twilio connection overrides such as `#rc=2`) is part of the
   * signed URL. HTTP clients never send fragments, so default `false` (the signature covers the URL without it).
   * Twilio does not document this (reference "Open questions" 3); flip it to test the other behaviour.
   */
  signUrlFragment?: boolean;
  /** Optional logger, one line per event. The simulator never logs to the console. */
  log?: (line: string) => void;
  /**
   * Verify v2 Service SIDs (`VA` + 32 hex) that exist, usable by every account. Default: one,
   * {@link DEFAULT_VERIFY_SERVICE_SID}. Another SID in the path answers 404 / 20404.
   */
  verifyServices?: string[];
  /**
   * Per-account create rate: a create (POST Messages, Calls or Verifications) that would be the (N+1)th admitted create
   * of the same account within any sliding 1000 ms window of the simulator clock is answered 429 / 20429 (no
   * `Retry-After` on the 2010 API, `Retry-After: 1` on Verify) and nothing is created. Creates rejected this way do not
   * count toward the window; creates that fail validation do. Default: no rate limit. Independent of `concurrencyLimit`.
   */
  ratePerSecond?: number;
  /**
   * Per-sender SEGMENT rate of Messages (the strict carrier-style limit of a sender, e.g. 1 for a US long code that
   * delivers about 1 segment/s, twilio.md §6.4): an admitted message of n segments ({@link countSegments}; MMS and
   * WhatsApp count 1) is delivered one segment every 1000/N ms from its arrival, and a `POST …/Messages.json` whose
   * segments would put more than N segments of the same `From` (or of the `MessagingServiceSid` when no `From` is
   * given) in any sliding 1000 ms window is answered 429 / 20429 (no `Retry-After`) and nothing is created. For
   * one-segment bodies this is N messages in any 1000 ms window. A number applies to every sender; a record sets it per sender (senders not
   * in it are unlimited). Measured on the request's arrival instant {@link SimRequest.startedAt}, like `ratePerSecond`;
   * rejected creates do not count. (Real Twilio queues a sender's excess instead; this is the strict model a pacer must
   * satisfy exactly.) Default: no per-sender limit.
   */
  senderRatePerSecond?: number | Record<string, number>;
  /**
   * The simulator clock, in ms since the epoch: a function (called whenever the simulator needs "now"), or a number
   * (a frozen clock starting there). Default `Date.now`. {@link TwilioSim.advanceClock} moves either forward. It dates
   * resources and callbacks, and drives Verify expiry (10 min), `SendAt` windows, `DateSent` filters and `ratePerSecond`.
   */
  now?: number | (() => number);
}

/** A message in the ledger (`TwilioSim.messages`), in the simulator's camelCase form of the Twilio Message resource. */
export interface SimMessage {
  /** `SM` + 32 hex (`MM` + 32 hex when media is attached). */
  sid: string;
  accountSid: string;
  /** E.164 or channel address as sent. */
  to: string;
  /** `null` for a Messaging Service send without `From` until a sender is picked (first callback past `accepted`). */
  from: string | null;
  messagingServiceSid: string | null;
  body: string;
  /** Every `MediaUrl` value, in request order. */
  mediaUrl: string[];
  /** The literal StatusCallback URL given at creation, or `null`. */
  statusCallback: string | null;
  /** Current (most advanced) status, see `MESSAGE_STATUSES`. */
  status: string;
  /** Error code of a failed/undelivered message (Twilio `error_code`), else `null`. */
  errorCode: number | null;
  /** RFC 2822, e.g. `Thu, 24 Aug 2023 05:01:45 +0000`. */
  dateCreated: string;
  /**
   * Every status reported for this message, in order: the initial status from the 201 response first, then one entry
   * per status callback sent (duplicates not repeated), even when a late callback did not change `status`.
   */
  history: string[];
  /** RFC 2822 time of the last change. */
  dateUpdated: string;
  /** RFC 2822 time the message reached `sent` (or later), else `null`. */
  dateSent: string | null;
  /** Number of SMS segments, as a string like Twilio's `num_segments` ("0" for a Messaging Service send until a sender is picked). */
  numSegments: string;
  /** Price as Twilio shows it once sent (negative decimal string, USD), else `null`. */
  price: string | null;
  contentSid: string | null;
  /** `ContentVariables` as sent (a JSON object string), or `null`. */
  contentVariables: string | null;
  /** `outbound-api` for messages created through the API, `inbound` for `sendInbound()` messages. */
  direction: "outbound-api" | "inbound";
  /** `SendAt` of a scheduled message (`ScheduleType=fixed`) normalised to ISO 8601 `YYYY-MM-DDTHH:MM:SSZ`, else `null`. */
  sendAt: string | null;
  /** Every form parameter of the create request (repeated keys as arrays). */
  params: Record<string, string | string[]>;
}

/** One REST request as seen by the simulator (`TwilioSim.requests`), recorded when it is answered. */
export interface SimRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** HTTP status answered; 0 when the connection was dropped by an injected fault. */
  status: number;
  /**
   * How the request authenticated: `account` (AccountSid:AuthToken), `apikey` (SK…:secret), `none` (no Authorization
   * header), `bad` (wrong credentials, or credentials of another account than the one in the path).
   */
  auth: "account" | "apikey" | "none" | "bad";
  /** Parsed form body (repeated keys as arrays); only for `application/x-www-form-urlencoded` bodies. */
  form?: Record<string, string | string[]>;
  /** Raw query string without `?` ("" when none). */
  query: string;
  /** Username of the Basic credentials (AC… or SK…), when present. */
  credentialSid?: string;
  /** Request headers (lower-case names); `authorization` is replaced by "[redacted]". */
  headers: Record<string, string>;
  /** Twilio error code answered, when the answer was an error. */
  code?: number;
  /** SID of the message created by this request, if any (also set when the connection was dropped after creating it). */
  messageSid?: string;
  /** SID of the call created by this request, if any. */
  callSid?: string;
  /** SID of the verification created (or re-sent) by this request, if any. */
  verificationSid?: string;
  /** Time the request arrived, ms since epoch. */
  at: number;
  /**
   * Arrival instant on the rate clock, ms since epoch with sub-millisecond resolution (`performance.timeOrigin +
   * performance.now()`, monotonic) unless the `now` option is given (then the simulator clock); `advanceClock` offsets
   * included. The rate limits count this instant; {@link maxInWindow} over these gives the busiest second.
   */
  startedAt: number;
}

/**
 * What an outgoing webhook request was: a message status callback, a call progress callback, the TwiML fetch of a call's
 * `Url`, a `<Gather>` action request, an incoming-message webhook, or an async AMD callback.
 */
export type CallbackKind = "message-status" | "call-status" | "twiml" | "gather-action" | "incoming-message" | "amd-status";

/** Result of one outgoing webhook request (status callback, TwiML fetch, Gather action, incoming message). */
export interface CallbackResult {
  /**
   * The literal URL called (the StatusCallback / Url / action, fragment included as given). For a GET webhook, the URL
   * with the parameters appended as query string (that is what GET webhooks sign).
   */
  url: string;
  /** HTTP status answered by the receiver; 0 when the request failed (connection refused, timeout…). */
  status: number;
  /** Response body of the receiver (utf-8). */
  body: string;
  /** The form parameters sent. */
  params: Record<string, string>;
  /** The `X-Twilio-Signature` header sent ("" when `omitSignature`). */
  signature: string;
  /** The URL string the signature was computed over (the literal URL, without `#fragment` unless `signUrlFragment`). */
  signedUrl: string;
  /** The `I-Twilio-Idempotency-Token` header sent (UUID v4; identical for a duplicate re-send). */
  idempotencyToken: string;
  /** Every request header sent, lower-case names. */
  headers: Record<string, string>;
  /** Network error message when `status` is 0. */
  error?: string;
  /** True for the second copy sent by `duplicate`. */
  duplicate: boolean;
  /** What the request was (see {@link CallbackKind}). */
  kind: CallbackKind;
  /** HTTP method used (`POST` unless the resource asked for `GET`). */
  method: "GET" | "POST";
}

/**
 * A fault for the next create requests (`injectFault`): POST …/Messages.json by default, or the create named by `on`.
 * Applied after authentication (and the `ratePerSecond` check) succeeded.
 * - `{status: 429, code?: 20429, retryAfter?: seconds}`: answer 429 (+ `Retry-After` header when given); not processed.
 * - `{status: 500}` / `{status: 503}` (any status): answer that status with Twilio's error body (default codes 20500 /
 *   20503; 20429 for 429); not processed unless `createMessage: true` (an "outcome unknown" 5xx that did create it).
 * - `{dropConnection: true}`: process the request normally (the message IS created when valid), then destroy the
 *   socket without answering: the client sees a reset, i.e. an unknown outcome.
 * - `{delayMs}`: wait that many milliseconds before answering (alone: the request is processed first, so a client that
 *   times out leaves a created message behind). Combines with the other kinds.
 */
export interface SimFault {
  status?: number;
  code?: number;
  message?: string;
  /** Seconds, sent as the `Retry-After` header. */
  retryAfter?: number;
  dropConnection?: boolean;
  /** Milliseconds. */
  delayMs?: number;
  /** With `status`: create the message (call, verification) anyway before answering the error. */
  createMessage?: boolean;
  /**
   * The create reached Twilio but is processed only after this many ms (then answered, if the client still waits):
   * a lookup before then finds nothing. A client that times out earlier must not take that as "absent".
   */
  processAfterMs?: number;
  /** The request is never processed: the socket is destroyed unanswered and nothing is created. */
  discard?: boolean;
  /**
   * Which create the fault hits: `messages` (default; POST …/Messages.json), `calls` (POST …/Calls.json) or
   * `verifications` (POST /v2/Services/{Sid}/Verifications). Faults for other targets stay queued.
   */
  on?: "messages" | "calls" | "verifications";
}

/** Options of `sendStatusCallbacks`. */
export interface StatusCallbackOptions {
  /** Send every callback twice with the same body, signature and `I-Twilio-Idempotency-Token` (a webhook retry). */
  duplicate?: boolean;
  /** `ErrorCode` for `failed`/`undelivered` (defaults: undelivered 30003, failed 30001). */
  errorCode?: number;
  /** Corrupt the signature (same length, one character changed): the callback is forged. */
  tamper?: boolean;
  /** Sign with this key instead of the account's Auth Token (e.g. an API key secret, or another region's token). */
  signWithToken?: string;
  /** Extra form parameters to add (Twilio adds parameters without notice; validators must sign whatever arrives). */
  extraParams?: Record<string, string>;
  /** Send to this URL instead of the message's StatusCallback (e.g. a Messaging Service callback URL). */
  url?: string;
  /** Leave out the `X-Twilio-Signature` header. */
  omitSignature?: boolean;
}

/** A call in the ledger (`TwilioSim.calls`), the simulator's camelCase form of the Call resource. */
export interface SimCall {
  /** `CA` + 32 hex. */
  sid: string;
  accountSid: string;
  to: string;
  from: string;
  /** `Url` given at creation (wins over `Twiml` when both are given, as Twilio documents), else `null`. */
  url: string | null;
  /** HTTP method for `Url` (`Method`, default `POST`). */
  method: "GET" | "POST";
  /** Inline `Twiml` (only when no `Url` was given), else `null`. */
  twiml: string | null;
  applicationSid: string | null;
  statusCallback: string | null;
  /**
   * `StatusCallbackEvent` values subscribed (repeated keys; space-separated values are split too). Empty = none given,
   * which means Twilio sends only `completed`.
   */
  statusCallbackEvents: string[];
  statusCallbackMethod: "GET" | "POST";
  /** Ring timeout in seconds (`Timeout`, default 60, capped at 600). */
  timeout: number;
  /** `MachineDetection` (`Enable` | `DetectMessageEnd`) or `null`. */
  machineDetection: string | null;
  /** `AsyncAmd=true`. */
  asyncAmd: boolean;
  asyncAmdStatusCallback: string | null;
  /** Resource status (`queued, ringing, in-progress, completed, busy, failed, no-answer, canceled`). */
  status: string;
  /** Every `CallStatus` the call went through, in order, starting with `queued` (`initiated` included). */
  history: string[];
  /** Progress events already reached (`initiated`, `ringing`, `answered`, `completed`), whether or not a callback went out. */
  events: string[];
  /** `AnsweredBy` once known (only when machine detection was requested), else `null`. */
  answeredBy: string | null;
  /** Call duration in seconds once completed, else `null`. */
  durationSec: number | null;
  /** RFC 2822. */
  dateCreated: string;
  dateUpdated: string;
  /** RFC 2822 time the call was initiated, else `null`. */
  startTime: string | null;
  /** RFC 2822 time the call ended, else `null`. */
  endTime: string | null;
  /** Negative decimal string (USD) for an answered, completed call, else `null`. */
  price: string | null;
  /** Each `<Say>` the callee heard (XML entities decoded, whitespace collapsed), in order, across every document played. */
  said: string[];
  /** `said` joined with single spaces ("" before `answerCall`). */
  spokenText: string;
  /** Digits submitted to the last `<Gather>` (`Digits` as posted), `null` when none were. */
  digits: string | null;
  /** The TwiML documents played, in order (the call's document, then each Gather action response). */
  documents: string[];
  /** Number of call-progress callbacks sent so far (the next `SequenceNumber`). */
  sequence: number;
  /** Every form parameter of the create request (repeated keys as arrays). */
  params: Record<string, string | string[]>;
}

/** How `progressCall` ends a call (the final `CallStatus`). */
export type CallOutcome = "completed" | "busy" | "no-answer" | "failed" | "canceled";

/** A `<Gather>` verb as read from TwiML (attribute values as written; defaults per the Gather docs). */
export interface SimGather {
  /** `action` as written, or `null` when absent (Twilio then uses the document URL). */
  action: string | null;
  /** `method`, default `POST`. */
  method: "GET" | "POST";
  /** `input`, default `dtmf`. */
  input: string;
  /** `numDigits`, or `null`. */
  numDigits: number | null;
  /** `finishOnKey`, default `#` (`""` disables it). */
  finishOnKey: string;
  /** `timeout` in seconds, default 5. */
  timeout: number;
  /** `actionOnEmptyResult="true"`. */
  actionOnEmptyResult: boolean;
  /** `<Say>` texts nested in the Gather. */
  said: string[];
}

/** What `answerCall` did. */
export interface AnswerCallResult {
  /** The TwiML document of the call (inline `Twiml`, or the body the `Url` answered; "" when the fetch failed). */
  twiml: string;
  /** The signed request that fetched `Url` (`kind: "twiml"`), or `null` for inline TwiML. */
  twimlFetch: CallbackResult | null;
  /** The first `<Gather>` of the document, or `null`. */
  gather: SimGather | null;
  /** The Gather action request (`kind: "gather-action"`), or `null` when none was made. */
  action: CallbackResult | null;
  /** The parameters posted to the action (`{}` when none). */
  posted: Record<string, string>;
  /** HTTP status the action answered; 0 when no action request was made or it failed at network level. */
  status: number;
  /** The `<Say>` texts heard during this answer (also appended to `SimCall.said`). */
  said: string[];
  /** Why the call could not go on (TwiML fetch failed, document parse failure 12100, no usable action URL), if so. */
  error?: string;
}

/** Verification status values (Verify v2). */
export type SimVerificationStatus = "pending" | "approved" | "canceled" | "max_attempts_reached" | "expired";

/** A verification in the ledger (`TwilioSim.verifications`); kept after Twilio would have deleted it (`deleted: true`). */
export interface SimVerification {
  /** `VE` + 32 hex. */
  sid: string;
  serviceSid: string;
  accountSid: string;
  /** E.164 number, or e-mail address for the `email` channel. */
  to: string;
  /** Channel of the latest send (`sms` | `call` | `email` | `whatsapp`). */
  channel: string;
  /** The code sent (6 digits, or `CustomCode`). Tests read it here. */
  code: string;
  status: SimVerificationStatus;
  /** Legacy `valid` flag: true once approved. */
  valid: boolean;
  /** One entry per send (first send + re-sends), as in `send_code_attempts`. `time` is ISO 8601. */
  sendCodeAttempts: { time: string; channel: string; attemptSid: string }[];
  /** Checks made with a wrong code. */
  wrongChecks: number;
  /** ISO 8601 `YYYY-MM-DDTHH:MM:SSZ`. */
  dateCreated: string;
  dateUpdated: string;
  /** Simulator-clock ms after which the code is expired (creation + 10 min). */
  expiresAt: number;
  /** True once Twilio would have deleted it (approved, canceled, expired, max check attempts): API answers 404 / 20404. */
  deleted: boolean;
  /** Form parameters of the first create request. */
  params: Record<string, string | string[]>;
}

/** An incoming message for `sendInbound`. */
export interface SimInboundMessage {
  /** The sender (E.164 or `whatsapp:+…`). */
  from: string;
  /** The account's number that receives it. */
  to: string;
  body: string;
  /** Force `OptOutType` (otherwise detected from a single-keyword body, case-insensitive). */
  optOutType?: "STOP" | "START" | "HELP";
  /** Receiving account (default: the first account); signs the webhook with its Auth Token. */
  accountSid?: string;
  /** Added as `MessagingServiceSid` when the receiving number belongs to a Messaging Service. */
  messagingServiceSid?: string;
}

// ---------------------------------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------------------------------

/** The 2010 API version string used in paths, `api_version` and the `ApiVersion` callback parameter. */
export const API_VERSION = "2010-04-01";

/** Default account: `AC` + 32 × "1" and a fixed 32-hex Auth Token. */
export const DEFAULT_ACCOUNT: Readonly<TwilioSimAccount> = Object.freeze({
  accountSid: "AC" + "1".repeat(32),
  authToken: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
  friendlyName: "ml-connector test account",
});

/** Default (standard) API key of the default account: `SK` + 32 × "2". */
export const DEFAULT_API_KEY: Readonly<TwilioSimApiKey> = Object.freeze({
  sid: "SK" + "2".repeat(32),
  secret: "simSecretAbcdefghijklmnopqrstuv0",
  accountSid: DEFAULT_ACCOUNT.accountSid,
  keyType: "standard" as const,
});

/** Default Verify Service SID: `VA` + 32 × "4". */
export const DEFAULT_VERIFY_SERVICE_SID = "VA" + "4".repeat(32);

/** Verify: a code is valid for 10 minutes (ms). */
export const VERIFY_TTL_MS = 10 * 60 * 1000;

/** Verify: sends allowed per verification (the 6th answers 429 / 60203). */
export const VERIFY_MAX_SENDS = 5;

/** Verify: check attempts allowed per verification (a check after 5 wrong ones answers 429 / 60202). */
export const VERIFY_MAX_CHECKS = 5;

/** Default opt-out keywords on long codes and toll-free numbers (reference §7); a single-word body, case-insensitive. */
export const OPT_OUT_KEYWORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"] as const;
/** Default opt-in keywords (reference §7). */
export const OPT_IN_KEYWORDS = ["START", "YES", "UNSTOP"] as const;
/** Default help keywords (reference §7). */
export const HELP_KEYWORDS = ["HELP", "INFO"] as const;

/** Call progress events (OpenAPI `call_enum_event`). */
export const CALL_EVENTS = ["initiated", "ringing", "answered", "completed"] as const;

/** Twilio's magic test sender: "From=+15005550006 succeeds" (test credentials). */
export const MAGIC_VALID_SENDER = "+15005550006";

/** Default Messaging Service SID: `MG` + 32 × "3". */
export const DEFAULT_MESSAGING_SERVICE_SID = "MG" + "3".repeat(32);

/** Message status enum of the Message resource (OpenAPI `message_enum_status`). */
export const MESSAGE_STATUSES = [
  "queued",
  "sending",
  "sent",
  "failed",
  "delivered",
  "undelivered",
  "receiving",
  "received",
  "accepted",
  "scheduled",
  "read",
  "partially_delivered",
  "canceled",
] as const;

/** Progress rank used by the "most advanced status wins" rule (higher = later in the lifecycle). */
const STATUS_RANK: Record<string, number> = {
  scheduled: 0,
  accepted: 1,
  queued: 2,
  sending: 3,
  receiving: 3,
  sent: 4,
  received: 5,
  partially_delivered: 5,
  delivered: 6,
  undelivered: 6,
  failed: 6,
  canceled: 6,
  read: 7,
};

/** Terminal statuses that are never overwritten (a `read` receipt may still follow `delivered`). */
const FINAL_FAILURES = new Set(["failed", "undelivered", "canceled"]);

/** Human text of the asynchronous error codes the simulator uses (Twilio `error_message`). */
const ASYNC_ERROR_MESSAGES: Record<number, string> = {
  30001: "Queue overflow",
  30003: "Unreachable destination handset",
  30005: "Unknown destination handset",
  30006: "Landline or unreachable carrier",
  30007: "Message filtered",
  30008: "Unknown error",
  30036: "Validity Period Expired",
};

const E164 = /^\+[1-9]\d{1,14}$/;
const MG_SID = /^MG[0-9a-fA-F]{32}$/;
const HX_SID = /^HX[0-9a-fA-F]{32}$/;
const AP_SID = /^AP[0-9a-fA-F]{32}$/;
const VE_SID = /^VE[0-9a-fA-F]{32}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const VERIFY_CHANNELS = new Set(["sms", "call", "email", "whatsapp"]);
/** Largest `SendAt` lead time: 35 days in seconds (ERR/35115). */
const MAX_SCHEDULE_S = 35 * 24 * 3600;
/** Smallest `SendAt` lead time in seconds (ERR/35114). */
const MIN_SCHEDULE_S = 300;
const MAX_BODY_CHARS = 1600;
const MAX_MEDIA = 10;
const MAX_REQUEST_BYTES = 1024 * 1024;

/**
 * The most instants of `times` (ms, any order) inside one window of `windowMs` (default 1000): max over i of
 * #{ t : times[i] ≤ t < times[i] + windowMs }, i.e. the busiest sliding second. 0 for no instants.
 */
export function maxInWindow(times: readonly number[], windowMs = 1000): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------------------------
// Signature
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Twilio's `X-Twilio-Signature` algorithm (https://www.twilio.com/docs/usage/webhooks/webhooks-security), written
 * independently of the `twilio` package so the two cross-check each other:
 * base64( HMAC-SHA1( key = authToken, data = url + for each param name in case-sensitive code-unit order: name + value ) ).
 * Repeated keys (array values) are de-duplicated and sorted, each emitted as name + value, as the SDKs do.
 * @param authToken the account's primary Auth Token
 * @param url the full URL exactly as called (scheme, host, port if written, path, whole query string)
 * @param params decoded form parameters ({} for GET / JSON bodies)
 * @returns the 28-character base64 signature
 */
export function signTwilioRequest(authToken: string, url: string, params: Record<string, string | string[]>): string {
  let data = url;
  for (const name of Object.keys(params).sort()) {
    const value = params[name];
    if (Array.isArray(value)) {
      for (const v of Array.from(new Set(value)).sort()) data += name + v;
    } else {
      data += name + value;
    }
  }
  return crypto.createHmac("sha1", Buffer.from(authToken, "utf8")).update(Buffer.from(data, "utf8")).digest("base64");
}

/**
 * Constant-time check of an `X-Twilio-Signature` value against {@link signTwilioRequest} for exactly this URL
 * (no port/normalisation variants). Returns false for a missing/empty signature.
 */
export function checkTwilioSignature(
  authToken: string,
  signature: string | undefined,
  url: string,
  params: Record<string, string | string[]>,
): boolean {
  if (!signature) return false;
  const expected = Buffer.from(signTwilioRequest(authToken, url, params));
  const given = Buffer.from(signature);
  return expected.length === given.length && crypto.timingSafeEqual(expected, given);
}

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/** RFC 2822 date as the 2010 API writes it: `Thu, 24 Aug 2023 05:01:45 +0000`. */
export function rfc2822(date: Date = new Date()): string {
  return date.toUTCString().replace(/GMT$/, "+0000");
}

/** `RawDlrDoneDate` form: `YYMMDDhhmm` (UTC). */
function rawDlrDoneDate(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return (
    p(date.getUTCFullYear() % 100) + p(date.getUTCMonth() + 1) + p(date.getUTCDate()) + p(date.getUTCHours()) + p(date.getUTCMinutes())
  );
}

function hex32(): string {
  return crypto.randomBytes(16).toString("hex");
}

const GSM7_BASIC = new Set(
  Array.from(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
  ),
);
const GSM7_EXTENDED = new Set(Array.from("^{}\\[~]|€\f"));

/**
 * SMS segment count: GSM-7 (extension characters count double) 160 chars in one segment, 153 per part above;
 * otherwise UCS-2 counted in UTF-16 units, 70 in one segment, 67 per part above. Empty body (media only) = 1.
 */
export function countSegments(body: string): number {
  if (body.length === 0) return 1;
  let septets = 0;
  let gsm = true;
  for (const ch of body) {
    if (GSM7_BASIC.has(ch)) septets += 1;
    else if (GSM7_EXTENDED.has(ch)) septets += 2;
    else {
      gsm = false;
      break;
    }
  }
  if (gsm) return septets <= 160 ? 1 : Math.ceil(septets / 153);
  const units = body.length;
  return units <= 70 ? 1 : Math.ceil(units / 67);
}

/**
 * The per-sender segment gate of {@link TwilioSimOptions.senderRatePerSecond}: `times` are the sender's segment
 * instants younger than 1000 ms before `now` (sorted; later ones are segments still queued at the sender); a message
 * of `segments` arriving at `now` adds one every 1000/`limit` ms. Returns the new sorted instants, or null when some
 * 1000 ms window would hold more than `limit` (at least 1) segments.
 */
function senderSegments(times: number[], now: number, segments: number, limit: number): number[] | null {
  const step = 1000 / limit;
  const max = Math.max(1, Math.floor(limit));
  const merged = [...times, ...Array.from({ length: segments }, (_, k) => now + k * step)].sort((a, b) => a - b);
  for (let j = 0, i = 0; j < merged.length; j++) {
    while (merged[i] <= merged[j] - 1000) i++;
    if (j - i + 1 > max) return null;
  }
  return merged;
}

/** Parse an `application/x-www-form-urlencoded` body; repeated keys become arrays (in order). */
function parseForm(text: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(text)) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

/** `StatusCallbackEvent` values: repeated keys, each possibly space-separated; de-duplicated, in order. */
function callEvents(params: Record<string, string | string[]>): string[] {
  return Array.from(new Set(all(params, "StatusCallbackEvent").flatMap((v) => v.split(/\s+/)).filter((e) => e !== "")));
}

function first(params: Record<string, string | string[]>, name: string): string | undefined {
  const v = params[name];
  return Array.isArray(v) ? v[0] : v;
}

function all(params: Record<string, string | string[]>, name: string): string[] {
  const v = params[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Append `params` to the query of `url` (before any `#fragment`), as Twilio does for GET webhooks. */
function appendQuery(url: string, params: Record<string, string>): string {
  const hash = url.indexOf("#");
  const base = hash >= 0 ? url.slice(0, hash) : url;
  const frag = hash >= 0 ? url.slice(hash) : "";
  const q = new URLSearchParams(params).toString();
  if (!q) return url;
  return base + (base.includes("?") ? (base.endsWith("?") || base.endsWith("&") ? "" : "&") : "?") + q + frag;
}

function stripChannel(address: string): string {
  return address.startsWith("whatsapp:") ? address.slice("whatsapp:".length) : address;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Validate a StatusCallback value like Twilio (error 21609): absolute http(s) URL, ≤ 4000 chars, hostname without `_`. */
function isValidCallbackUrl(value: string): boolean {
  if (value.length === 0 || value.length > 4000) return false;
  const m = /^(https?):\/\/([^/?#]*)/i.exec(value);
  if (!m) return false;
  const authority = m[2];
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  const host = hostPort.startsWith("[") ? hostPort.slice(0, hostPort.indexOf("]") + 1) : hostPort.split(":")[0];
  if (!host || host.includes("_")) return false;
  try {
    new URL(value);
  } catch {
    return false;
  }
  return true;
}

interface TwilioErrorSpec {
  status: number;
  code: number;
  message: string;
}

/** The two collections of the 2010 API the simulator serves. */
type Collection2010 = "Messages" | "Calls";

/** What a create answers: a success body, or a Twilio error (with extra headers). */
type CreateOutcome = { status: number; payload: unknown } | { error: TwilioErrorSpec; headers?: Record<string, string> };

/**
 * Where a `<Gather action>` goes: the literal absolute http(s) URL; a relative one resolved against the document URL;
 * no action = the document URL. `null` when there is nothing to resolve against (inline TwiML).
 */
function resolveAction(action: string | null, documentUrl: string | null): string | null {
  if (action === null || action === "") return documentUrl;
  if (/^https?:\/\//i.test(action)) return action;
  if (documentUrl === null) return null;
  try {
    return new URL(action, documentUrl).toString();
  } catch {
    return null;
  }
}

function err(status: number, code: number, message: string): TwilioErrorSpec {
  return { status, code, message };
}

/** Twilio's 2010 API error body. */
function errorBody(e: TwilioErrorSpec): Record<string, unknown> {
  return { code: e.code, message: e.message, more_info: `https://www.twilio.com/docs/errors/${e.code}`, status: e.status };
}

/** ISO 8601 without milliseconds, as Verify writes dates: `2015-07-30T20:00:00Z`. */
function iso8601(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Parse an ISO 8601 date-time with zone (`YYYY-MM-DDTHH:MM:SS[.sss](Z|±hh:mm)`); `null` when it is not one. */
function parseIsoDateTime(v: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(v)) return null;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/** `(415) 867-5308` for +1 numbers, else the address as given (Call `to_formatted` / `from_formatted`). */
function formatNumber(n: string): string {
  const m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(n);
  return m ? `(${m[1]}) ${m[2]}-${m[3]}` : n;
}

function isWhatsApp(address: string): boolean {
  return address.startsWith("whatsapp:");
}

/** True when `v` is a JSON string of an object (ContentVariables, error 21656 otherwise). */
function isJsonObject(v: string): boolean {
  try {
    const x: unknown = JSON.parse(v);
    return typeof x === "object" && x !== null && !Array.isArray(x);
  } catch {
    return false;
  }
}

function httpMethod(v: string | undefined, fallback: "GET" | "POST" = "POST"): "GET" | "POST" | null {
  if (v === undefined || v === "") return fallback;
  const u = v.toUpperCase();
  return u === "GET" || u === "POST" ? u : null;
}

/** A parsed XML element (TwiML). */
interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: (XmlElement | string)[];
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decode XML character/entity references; a bare `&` or an unknown entity throws (Twilio: 12100 Document parse failure). */
function decodeXml(raw: string): string {
  let out = "";
  let i = 0;
  while (i < raw.length) {
    const amp = raw.indexOf("&", i);
    if (amp < 0) {
      out += raw.slice(i);
      break;
    }
    out += raw.slice(i, amp);
    const semi = raw.indexOf(";", amp);
    const ref = semi > amp ? raw.slice(amp + 1, semi) : "";
    let ch: string | undefined;
    if (/^#x[0-9a-fA-F]{1,6}$/.test(ref)) ch = String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    else if (/^#\d{1,7}$/.test(ref)) ch = String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    else ch = XML_ENTITIES[ref];
    if (ch === undefined) throw new Error(`bare '&' or unknown entity at offset ${amp}`);
    out += ch;
    i = semi + 1;
  }
  return out;
}

/**
 * A minimal, strict XML reader for TwiML: elements, attributes (quoted), text, CDATA, comments and the XML
 * declaration. DOCTYPE/entity declarations are refused. Throws an Error describing the first problem (the simulator
 * reports it as Twilio's 12100 "Document parse failure").
 */
function parseXml(text: string): XmlElement {
  const doc: XmlElement = { name: "#document", attrs: {}, children: [] };
  const stack: XmlElement[] = [doc];
  const tagRe = /<(\/?)([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/y;
  const attrRe = /([A-Za-z_][\w.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
  const addText = (t: string) => {
    const top = stack[stack.length - 1];
    if (top === doc) {
      if (t.trim()) throw new Error("text outside the root element");
    } else top.children.push(t);
  };
  let i = 0;
  while (i < text.length) {
    const lt = text.indexOf("<", i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (chunk) addText(decodeXml(chunk));
    if (lt < 0) break;
    if (text.startsWith("<?", lt)) {
      const end = text.indexOf("?>", lt);
      if (end < 0) throw new Error("unterminated processing instruction");
      i = end + 2;
      continue;
    }
    if (text.startsWith("<!--", lt)) {
      const end = text.indexOf("-->", lt + 4);
      if (end < 0) throw new Error("unterminated comment");
      i = end + 3;
      continue;
    }
    if (text.startsWith("<![CDATA[", lt)) {
      const end = text.indexOf("]]>", lt);
      if (end < 0) throw new Error("unterminated CDATA section");
      addText(text.slice(lt + 9, end));
      i = end + 3;
      continue;
    }
    if (text.startsWith("<!", lt)) throw new Error("DOCTYPE and other declarations are not allowed");
    tagRe.lastIndex = lt;
    const m = tagRe.exec(text);
    if (!m) throw new Error(`malformed tag at offset ${lt}`);
    const [whole, close, name, attrText, selfClose] = m;
    if (close) {
      if (selfClose || attrText.trim()) throw new Error(`malformed end tag </${name}>`);
      const top = stack.pop();
      if (!top || top === doc || top.name !== name) throw new Error(`unexpected </${name}>`);
    } else {
      const attrs: Record<string, string> = {};
      for (const a of attrText.matchAll(attrRe)) attrs[a[1]] = decodeXml(a[2] ?? a[3] ?? "");
      const el: XmlElement = { name, attrs, children: [] };
      const parent = stack[stack.length - 1];
      if (parent === doc && doc.children.length > 0) throw new Error("more than one root element");
      parent.children.push(el);
      if (!selfClose) stack.push(el);
    }
    i = lt + whole.length;
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack[stack.length - 1].name}>`);
  const root = doc.children[0];
  if (root === undefined || typeof root === "string") throw new Error("no root element");
  return root;
}

/** Text content of an element (nested SSML included), whitespace collapsed. */
function textOf(el: XmlElement): string {
  return el.children
    .map((c) => (typeof c === "string" ? c : textOf(c)))
    .join("")
    .replace(/\s+/g, " ")
    .trim();
}

function elements(el: XmlElement): XmlElement[] {
  return el.children.filter((c): c is XmlElement => typeof c !== "string");
}

/** Read a `<Gather>` element with the defaults documented at https://www.twilio.com/docs/voice/twiml/gather. */
function readGather(el: XmlElement): SimGather {
  const a = el.attrs;
  const numDigits = a.numDigits !== undefined ? Number.parseInt(a.numDigits, 10) : NaN;
  const timeout = a.timeout !== undefined ? Number.parseInt(a.timeout, 10) : NaN;
  return {
    action: a.action ?? null,
    method: (a.method ?? "POST").toUpperCase() === "GET" ? "GET" : "POST",
    input: a.input ?? "dtmf",
    numDigits: Number.isFinite(numDigits) && numDigits > 0 ? numDigits : null,
    finishOnKey: a.finishOnKey ?? "#",
    timeout: Number.isFinite(timeout) && timeout >= 0 ? timeout : 5,
    actionOnEmptyResult: (a.actionOnEmptyResult ?? "").toLowerCase() === "true",
    said: elements(el)
      .filter((c) => c.name === "Say")
      .map(textOf),
  };
}

type AuthKind = SimRequest["auth"];

interface AuthResult {
  kind: AuthKind;
  credentialSid?: string;
  /** Account the credentials belong to (when valid). */
  accountSid?: string;
  apiKey?: TwilioSimApiKey;
}

// ---------------------------------------------------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------------------------------------------------

/**
 * The simulator. Typical use:
 * ```ts
 * const sim = new TwilioSim();
 * const base = await sim.start();            // "http://127.0.0.1:<port>"
 * // … point the code under test at `base` instead of https://api.twilio.com …
 * await sim.deliver(sim.messages[0].sid);    // signed callbacks sent, delivered
 * await sim.stop();
 * ```
 * Routes (all under Basic auth):
 * - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` create (form body) → 201 Message JSON
 * - `GET  /2010-04-01/Accounts/{AccountSid}/Messages.json?To=&From=&DateSent=&PageSize=&Page=` list → 200 page envelope
 * - `GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json` fetch → 200 / 404 (20404)
 * - `GET  /2010-04-01/Accounts/{AccountSid}.json` fetch account → 200 (`status: "active"`, `type: "Full"`)
 * - `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` create (form) → 201 Call JSON (`queued`, `outbound-api`)
 * - `GET  /2010-04-01/Accounts/{AccountSid}/Calls.json?To=&From=&Status=&PageSize=&Page=` list → 200 page envelope
 * - `GET  /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json` fetch → 200 / 404 (20404)
 * - `POST /v2/Services/{ServiceSid}/Verifications` start (or re-send) → 201 Verification JSON
 * - `GET|POST /v2/Services/{ServiceSid}/Verifications/{Sid}` fetch / update `Status=canceled|approved` → 200 / 404
 * - `POST /v2/Services/{ServiceSid}/VerificationCheck` check → 200 (approved or pending) / 404 / 429 (60202)
 * Anything else → 404 (20404); a known path with another method → 405 (20004).
 *
 * Driving methods: `sendStatusCallbacks`/`deliver` (messages), `progressCall`/`answerCall` (calls),
 * `expireVerification` (Verify), `sendInbound` (incoming messages, opt-out keywords).
 */
export class TwilioSim {
  /** Message ledger in creation order. */
  readonly messages: SimMessage[] = [];
  /** Every REST request seen, in the order they were answered. */
  readonly requests: SimRequest[] = [];
  /** First configured account. */
  readonly defaultAccount: TwilioSimAccount;
  /** First configured API key (when `apiKeys: []` was passed, a key that is NOT accepted). */
  readonly defaultApiKey: TwilioSimApiKey;
  /** Every outgoing webhook request made (status callbacks, TwiML fetches, Gather actions, inbound messages), in order. */
  readonly callbacks: CallbackResult[] = [];
  /** Call ledger in creation order. */
  readonly calls: SimCall[] = [];
  /** Verification ledger in creation order; entries stay after Twilio would delete them (`deleted: true`). */
  readonly verifications: SimVerification[] = [];
  /** Incoming messages sent with `sendInbound`, in order (`direction: "inbound"`, status `received`). */
  readonly inboundMessages: SimMessage[] = [];

  private readonly accounts: TwilioSimAccount[];
  private readonly apiKeys: TwilioSimApiKey[];
  private readonly senders: Set<string>;
  private readonly senderList: string[];
  private readonly services: Set<string>;
  private readonly initialOptOuts: string[];
  private readonly optOuts = new Set<string>();
  private readonly faults: SimFault[] = [];
  private readonly inFlight = new Map<string, number>();
  private readonly opts: TwilioSimOptions;
  private readonly verifyServiceSet: Set<string>;
  /** Opt-outs recorded per account (STOP keywords through `sendInbound`, or `optOut(number, accountSid)`). */
  private readonly accountOptOuts = new Map<string, Set<string>>();
  /** Admitted create times (rate clock, ms) per account, for `ratePerSecond`. */
  private readonly createTimes = new Map<string, number[]>();
  /** Segment delivery instants (rate clock, ms; future ones for long bodies) per account and sender, for `senderRatePerSecond`. */
  private readonly senderTimes = new Map<string, number[]>();
  private readonly concurrencyKeys = new WeakMap<SimRequest, string>();
  private rejected429Count = 0;
  private clockOffset = 0;
  private readonly server = new SimServer({
    name: "TwilioSim",
    handler: (req, res) => this.handle(req, res),
    onError: (e) => {
      this.log(`internal error: ${String(e)}`);
      return errorBody(err(500, 20500, "Internal Server Error"));
    },
  });

  constructor(opts: TwilioSimOptions = {}) {
    this.opts = opts;
    this.accounts = (opts.accounts ?? [{ ...DEFAULT_ACCOUNT }]).map((a) => ({ ...a }));
    if (this.accounts.length === 0) throw new Error("TwilioSim: at least one account is required");
    this.defaultAccount = this.accounts[0];
    const defaultKey: TwilioSimApiKey =
      this.defaultAccount.accountSid === DEFAULT_ACCOUNT.accountSid
        ? { ...DEFAULT_API_KEY }
        : { sid: "SK" + hex32(), secret: hex32(), accountSid: this.defaultAccount.accountSid, keyType: "standard" };
    this.apiKeys = (opts.apiKeys ?? [defaultKey]).map((k) => ({ ...k }));
    this.defaultApiKey = this.apiKeys[0] ?? defaultKey;
    this.senderList = [...(opts.senders ?? [MAGIC_VALID_SENDER])];
    this.senders = new Set(this.senderList);
    this.services = new Set(opts.messagingServices ?? [DEFAULT_MESSAGING_SERVICE_SID]);
    this.initialOptOuts = [...(opts.optOuts ?? [])];
    for (const n of this.initialOptOuts) this.optOuts.add(stripChannel(n));
    this.verifyServiceSet = new Set(opts.verifyServices ?? [DEFAULT_VERIFY_SERVICE_SID]);
  }

  /** The simulator clock in ms since the epoch (option `now`, default `Date.now()`, plus every `advanceClock`). */
  now(): number {
    const n = this.opts.now;
    const base = typeof n === "function" ? n() : typeof n === "number" ? n : Date.now();
    return base + this.clockOffset;
  }

  /** Move the simulator clock forward by `ms` milliseconds (e.g. past a Verify code's 10-minute lifetime). */
  advanceClock(ms: number): void {
    this.clockOffset += ms;
  }

  /** Number of 429 answers given so far (rate limit, concurrency limit, injected faults, Verify 60202/60203). */
  get rejected429(): number {
    return this.rejected429Count;
  }

  /** Verify Service SIDs that exist (option `verifyServices`). */
  get verifyServices(): string[] {
    return [...this.verifyServiceSet];
  }

  /** Start listening on 127.0.0.1, ephemeral port. Resolves the base URL `http://127.0.0.1:<port>`. Idempotent. */
  async start(): Promise<string> {
    if (!this.server.listening) this.log(`listening on ${await this.server.start()}`);
    return this.server.url;
  }

  /** Close the server and destroy every open socket (keep-alive included). Idempotent. */
  async stop(): Promise<void> {
    if (!this.server.listening) return;
    await this.server.stop();
    this.log("stopped");
  }

  /** Base URL `http://127.0.0.1:<port>`; throws before `start()`. */
  get url(): string {
    return this.server.url;
  }

  /**
   * Queue `fault` for the next `count` (default 1) create requests that pass authentication: `POST …/Messages.json`,
   * or the create named by `fault.on`. Faults of one target are consumed in FIFO order, one per request. See {@link SimFault}.
   */
  injectFault(fault: SimFault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push({ ...fault });
  }

  /** Number of injected faults not consumed yet. */
  get pendingFaults(): number {
    return this.faults.length;
  }

  /**
   * Record an opt-out (the recipient replied STOP): later sends to `number` fail 400 / 21610 — from every account, or
   * only from `accountSid` when given.
   */
  optOut(number: string, accountSid?: string): void {
    const n = stripChannel(number);
    if (accountSid === undefined) this.optOuts.add(n);
    else {
      let set = this.accountOptOuts.get(accountSid);
      if (!set) this.accountOptOuts.set(accountSid, (set = new Set()));
      set.add(n);
    }
  }

  /**
   * Undo `optOut` (the recipient replied START): without `accountSid` the number is removed everywhere; with it, from
   * that account's opt-outs and from the every-account list.
   */
  optIn(number: string, accountSid?: string): void {
    const n = stripChannel(number);
    this.optOuts.delete(n);
    if (accountSid === undefined) for (const set of this.accountOptOuts.values()) set.delete(n);
    else this.accountOptOuts.get(accountSid)?.delete(n);
  }

  /** Whether sends from `accountSid` (default: the first account) to `number` fail 21610. */
  isOptedOut(number: string, accountSid: string = this.defaultAccount.accountSid): boolean {
    const n = stripChannel(number);
    return this.optOuts.has(n) || (this.accountOptOuts.get(accountSid)?.has(n) ?? false);
  }

  /** The ledger entry for `sid` (outbound or inbound message), or undefined. */
  getMessage(sid: string): SimMessage | undefined {
    return this.messages.find((m) => m.sid === sid) ?? this.inboundMessages.find((m) => m.sid === sid);
  }

  /** The call ledger entry for `sid`, or undefined. */
  getCall(sid: string): SimCall | undefined {
    return this.calls.find((c) => c.sid === sid);
  }

  /**
   * The newest verification whose SID or `to` equals `sidOrTo` (one not deleted preferred), or undefined. Read
   * `.code` to complete a check in a test.
   */
  getVerification(sidOrTo: string): SimVerification | undefined {
    this.sweepExpired();
    const matches = this.verifications.filter((v) => v.sid === sidOrTo || v.to === sidOrTo);
    return [...matches].reverse().find((v) => !v.deleted) ?? matches[matches.length - 1];
  }

  /**
   * Clear messages, calls, verifications, inbound messages, requests, callbacks, faults, the rate window and the 429
   * counter and every `advanceClock` offset (the clock follows the `now` option again); restore the opt-out list given
   * in the options (per-account opt-outs are dropped). Keeps the server running.
   */
  reset(): void {
    this.messages.length = 0;
    this.requests.length = 0;
    this.callbacks.length = 0;
    this.faults.length = 0;
    this.calls.length = 0;
    this.verifications.length = 0;
    this.inboundMessages.length = 0;
    this.createTimes.clear();
    this.senderTimes.clear();
    this.accountOptOuts.clear();
    this.rejected429Count = 0;
    this.clockOffset = 0;
    this.optOuts.clear();
    for (const n of this.initialOptOuts) this.optOuts.add(stripChannel(n));
  }

  /**
   * Fire status callbacks for message `sid`, one per entry of `statuses`, in the order given (out-of-order sequences
   * are allowed: that is how Twilio behaves), awaiting each. Each is a form POST to the message's StatusCallback
   * (or `options.url`) with `MessageSid, SmsSid, MessageStatus, SmsStatus, AccountSid, From, To, ApiVersion`
   * (+ `MessagingServiceSid` when used, `ErrorCode` for failed/undelivered, `RawDlrDoneDate` YYMMDDhhmm for
   * delivered/undelivered), headers `Content-Type: application/x-www-form-urlencoded`, `User-Agent: TwilioProxy/1.1`,
   * `Accept: *\/*`, `X-Twilio-Signature` (over the literal URL incl. query, with the account's Auth Token),
   * `I-Twilio-Idempotency-Token` (fresh UUID v4 per callback, reused by `duplicate`), `X-Home-Region: us1`.
   *
   * Before each POST the resource is updated with the "most advanced status wins" rule (a late `sent` never replaces
   * `delivered`; failed/undelivered/canceled are final), and the status is appended to `history`.
   * Without a StatusCallback (and no `options.url`) the statuses are applied and nothing is sent (result `[]`).
   * Receiver failures do not throw: the result has `status: 0` and `error`.
   * @throws Error for an unknown SID or a status outside `MESSAGE_STATUSES`.
   */
  async sendStatusCallbacks(sid: string, statuses: string[], options: StatusCallbackOptions = {}): Promise<CallbackResult[]> {
    const msg = this.getMessage(sid);
    if (!msg) throw new Error(`TwilioSim: unknown message ${sid}`);
    for (const s of statuses) {
      if (!(MESSAGE_STATUSES as readonly string[]).includes(s)) throw new Error(`TwilioSim: unknown message status ${s}`);
    }
    const account = this.accounts.find((a) => a.accountSid === msg.accountSid);
    const token = options.signWithToken ?? account?.authToken ?? "";
    const target = options.url ?? msg.statusCallback;
    const results: CallbackResult[] = [];
    for (const status of statuses) {
      const now = new Date(this.now());
      const errorCode =
        status === "failed" || status === "undelivered" ? (options.errorCode ?? (status === "failed" ? 30001 : 30003)) : null;
      this.applyStatus(msg, status, errorCode, now);
      if (!target) continue;
      const params: Record<string, string> = {
        SmsSid: msg.sid,
        SmsStatus: status,
        MessageStatus: status,
        To: msg.to,
        MessageSid: msg.sid,
        AccountSid: msg.accountSid,
      };
      if (msg.messagingServiceSid) params.MessagingServiceSid = msg.messagingServiceSid;
      if (msg.from !== null) params.From = msg.from;
      params.ApiVersion = API_VERSION;
      if (errorCode !== null) params.ErrorCode = String(errorCode);
      if (status === "delivered" || status === "undelivered") params.RawDlrDoneDate = rawDlrDoneDate(now);
      Object.assign(params, options.extraParams ?? {});

      const signedUrl = this.opts.signUrlFragment ? target : target.split("#")[0];
      let signature = options.omitSignature ? "" : signTwilioRequest(token, signedUrl, params);
      if (options.tamper && signature) signature = tamperSignature(signature);
      const idempotencyToken = crypto.randomUUID();
      const copies = options.duplicate ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        const r = await this.postCallback(target, params, signature, signedUrl, idempotencyToken, i > 0, "message-status");
        results.push(r);
        this.callbacks.push(r);
      }
    }
    return results;
  }

  /**
   * Drive a message to a final status with the usual callback sequence (initial status excluded, as Twilio sends no
   * callback for it): `sent, <final>` for delivered/undelivered, `failed` alone (never handed to a carrier); a
   * Messaging Service message (initial `accepted`) first gets `queued`. Default final `delivered`.
   */
  deliver(sid: string, final: "delivered" | "undelivered" | "failed" = "delivered", options: StatusCallbackOptions = {}): Promise<CallbackResult[]> {
    const msg = this.getMessage(sid);
    if (!msg) return Promise.reject(new Error(`TwilioSim: unknown message ${sid}`));
    const seq: string[] = [];
    if (msg.status === "accepted" || msg.status === "scheduled") seq.push("queued");
    if (final !== "failed") seq.push("sent");
    seq.push(final);
    return this.sendStatusCallbacks(sid, seq, options);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Calls
  // -------------------------------------------------------------------------------------------------------------------

  /**
   * Drive call `sid` to its end, `outcome` being the final `CallStatus`. Progress events reached on the way, skipping
   * those already reached (e.g. by `answerCall`): `completed` → initiated, ringing, answered, completed;
   * `no-answer` / `canceled` → initiated, ringing, completed; `busy` / `failed` → initiated, completed.
   * For each event the call resource is updated (ringing → `ringing`, answered → `in-progress`, completed → the outcome,
   * with `duration`, `end_time`, `price`), and when the call has a StatusCallback and subscribed to the event
   * (`StatusCallbackEvent`; none given = `completed` only) a signed callback is sent with `StatusCallbackMethod`:
   * `AccountSid, ApiVersion, CallSid, CallStatus` (initiated | ringing | in-progress | outcome), `Called, Caller,
   * Direction=outbound-api, From, To, CallbackSource=call-progress-events, SequenceNumber` (0, 1, 2… per callback sent),
   * `Timestamp` (RFC 2822); `completed` adds `CallDuration` (s), `Duration` (min, rounded up), `SipResponseCode`
   * (200, 486 busy, 487 no-answer/canceled, 500 failed); `AnsweredBy` on answered/completed when `MachineDetection` was
   * requested (`opts.answeredBy`, default `human`).
   * @param opts.durationSec duration of an answered call in seconds (default 10; 0 for the other outcomes)
   * @returns the callbacks sent (may be empty), receiver failures included (`status: 0`), never thrown
   * @throws Error for an unknown SID, a call that already ended, or an answered call ended other than `completed`
   */
  async progressCall(
    sid: string,
    outcome: CallOutcome,
    opts: { answeredBy?: string; durationSec?: number } = {},
  ): Promise<CallbackResult[]> {
    const call = this.getCall(sid);
    if (!call) throw new Error(`TwilioSim: unknown call ${sid}`);
    if (!["completed", "busy", "no-answer", "failed", "canceled"].includes(outcome)) throw new Error(`TwilioSim: unknown call outcome ${outcome}`);
    if (call.events.includes("completed")) throw new Error(`TwilioSim: call ${sid} already ended (${call.status})`);
    if (call.events.includes("answered") && outcome !== "completed")
      throw new Error(`TwilioSim: call ${sid} was answered; it can only end "completed"`);
    const steps = ["initiated"];
    if (outcome === "completed" || outcome === "no-answer" || outcome === "canceled") steps.push("ringing");
    if (outcome === "completed") steps.push("answered");
    steps.push("completed");
    if (call.machineDetection && call.answeredBy === null && outcome === "completed") call.answeredBy = opts.answeredBy ?? "human";
    const results: CallbackResult[] = [];
    for (const event of steps) {
      if (call.events.includes(event)) continue;
      if (event === "completed") call.durationSec = outcome === "completed" ? Math.max(0, Math.round(opts.durationSec ?? 10)) : 0;
      const r = await this.callEvent(call, event, outcome);
      if (r) results.push(r);
    }
    return results;
  }

  /**
   * The callee picks up and reacts to the call's TwiML. First the progress events not reached yet (initiated, ringing,
   * answered) happen as in `progressCall` (callbacks for the subscribed ones). Then the document: the inline `Twiml`, or
   * the `Url` fetched with a signed request using `Method` (params `AccountSid, ApiVersion, CallSid,
   * CallStatus=in-progress, Called, Caller, Direction, From, To`, + `AnsweredBy` with synchronous AMD). With `AsyncAmd`
   * and an `AsyncAmdStatusCallback`, that URL then gets `AccountSid, CallSid, AnsweredBy, MachineDetectionDuration`.
   * Top-level verbs run in order: `<Say>` is heard (recorded in `said`/`spokenText`), `<Hangup>`/`<Reject>`/`<Redirect>`
   * stop, the first `<Gather>` plays its nested `<Say>`s and then:
   * - `digits`: input up to `finishOnKey` (default `#`; it then becomes `FinishedOnKey`) or cut to `numDigits`; the
   *   signed action request (Gather `method`, `action` resolved against the document URL) carries the call params +
   *   `Digits, FinishedOnKey` ("" unless ended by the key), `msg=Gather End`, `CallStatus=in-progress`;
   * - `noInput` (or empty digits): no request, execution falls through to the next verb — unless
   *   `actionOnEmptyResult="true"`, then the action gets the same parameters without `Digits`.
   * The `<Say>`s of the action's answer (TwiML) are heard too. The call stays `in-progress`: end it with
   * `progressCall(sid, "completed")`.
   * Problems the callee would experience are reported in `result.error`, not thrown: Url fetch not 2xx (11200),
   * unparseable TwiML (12100; a bare `&` counts), no usable action URL (inline TwiML needs an absolute `action`).
   * @throws Error for an unknown SID, an ended call, or a call created with only an ApplicationSid
   */
  async answerCall(
    sid: string,
    input: { digits?: string } | { noInput: true },
    opts: { answeredBy?: string } = {},
  ): Promise<AnswerCallResult> {
    const call = this.getCall(sid);
    if (!call) throw new Error(`TwilioSim: unknown call ${sid}`);
    if (call.events.includes("completed")) throw new Error(`TwilioSim: call ${sid} already ended (${call.status})`);
    if (call.url === null && call.twiml === null) throw new Error(`TwilioSim: call ${sid} has no Url or Twiml (ApplicationSid calls are not executed)`);
    if (call.machineDetection && call.answeredBy === null) call.answeredBy = opts.answeredBy ?? "human";
    for (const event of ["initiated", "ringing", "answered"]) {
      if (!call.events.includes(event)) await this.callEvent(call, event, "completed");
    }
    const result: AnswerCallResult = { twiml: "", twimlFetch: null, gather: null, action: null, posted: {}, status: 0, said: [] };
    let documentUrl: string | null = null;
    if (call.url !== null) {
      const params = this.callParams(call, "in-progress");
      if (call.answeredBy !== null && !call.asyncAmd) params.AnsweredBy = call.answeredBy;
      const r = await this.webhook("twiml", call.accountSid, call.url, params, call.method);
      result.twimlFetch = r;
      if (r.status < 200 || r.status >= 300) {
        result.error = `11200 HTTP retrieval failure: the Url answered ${r.status || r.error || "nothing"}`;
        return result;
      }
      result.twiml = r.body;
      documentUrl = call.url;
    } else {
      result.twiml = call.twiml as string;
    }
    if (call.asyncAmd && call.asyncAmdStatusCallback && call.answeredBy !== null) {
      const method = httpMethod(first(call.params, "AsyncAmdStatusCallbackMethod")) ?? "POST";
      await this.webhook(
        "amd-status",
        call.accountSid,
        call.asyncAmdStatusCallback,
        { AccountSid: call.accountSid, CallSid: call.sid, AnsweredBy: call.answeredBy, MachineDetectionDuration: "2150" },
        method,
      );
    }
    call.documents.push(result.twiml);
    let root: XmlElement;
    try {
      root = parseXml(result.twiml);
      if (root.name !== "Response") throw new Error(`root element <${root.name}> is not <Response>`);
    } catch (e) {
      result.error = `12100 Document parse failure: ${e instanceof Error ? e.message : String(e)}`;
      return result;
    }
    const hear = (text: string) => {
      call.said.push(text);
      call.spokenText = call.said.join(" ");
      result.said.push(text);
    };
    for (const verb of elements(root)) {
      if (verb.name === "Say") {
        hear(textOf(verb));
        continue;
      }
      if (verb.name === "Hangup" || verb.name === "Reject" || verb.name === "Redirect") break;
      if (verb.name !== "Gather") continue;
      const gather = readGather(verb);
      result.gather = gather;
      for (const t of gather.said) hear(t);
      let digits = "digits" in input && typeof input.digits === "string" ? input.digits : "";
      let finishedOnKey = "";
      const keyAt = gather.finishOnKey ? digits.indexOf(gather.finishOnKey) : -1;
      if (keyAt >= 0) {
        finishedOnKey = gather.finishOnKey;
        digits = digits.slice(0, keyAt);
      } else if (gather.numDigits !== null) {
        digits = digits.slice(0, gather.numDigits);
      }
      if (digits === "" && !gather.actionOnEmptyResult) continue; // timeout without input: next verb
      const target = resolveAction(gather.action, documentUrl);
      if (target === null) {
        result.error = "no usable <Gather> action URL (TwiML without a document URL needs an absolute action)";
        return result;
      }
      const params = this.callParams(call, "in-progress");
      if (digits !== "") {
        params.Digits = digits;
        call.digits = digits;
      }
      params.FinishedOnKey = finishedOnKey;
      params.msg = "Gather End";
      const r = await this.webhook("gather-action", call.accountSid, target, params, gather.method);
      result.action = r;
      result.posted = { ...params };
      result.status = r.status;
      if (r.status >= 200 && r.status < 300 && r.body.trim() !== "") {
        call.documents.push(r.body);
        try {
          const next = parseXml(r.body);
          for (const v of elements(next)) {
            if (v.name === "Say") hear(textOf(v));
            else if (v.name === "Gather") {
              for (const t of readGather(v).said) hear(t);
              break;
            } else if (v.name === "Hangup" || v.name === "Reject" || v.name === "Redirect") break;
          }
        } catch (e) {
          result.error = `12100 Document parse failure (action response): ${e instanceof Error ? e.message : String(e)}`;
        }
      }
      return result;
    }
    return result;
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Verify
  // -------------------------------------------------------------------------------------------------------------------

  /**
   * Let the live verification with this SID or `to` (the newest) run out of time now: its status becomes `expired` and
   * it is deleted, so checks, fetches and updates answer 404 / 20404 and the next send starts a new verification with a
   * new code. Returns the ledger entry. @throws Error when there is no live verification for `sidOrTo`
   */
  expireVerification(sidOrTo: string): SimVerification {
    this.sweepExpired();
    const v = [...this.verifications].reverse().find((x) => !x.deleted && (x.sid === sidOrTo || x.to === sidOrTo));
    if (!v) throw new Error(`TwilioSim: no live verification for ${sidOrTo}`);
    v.expiresAt = Math.min(v.expiresAt, this.now());
    this.sweepExpired();
    return v;
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Incoming messages
  // -------------------------------------------------------------------------------------------------------------------

  /**
   * Post Twilio's incoming-message webhook for `m` to `url` (signed with the receiving account's Auth Token, POST form):
   * `ToCountry`-style geo fields are left out; sent are `SmsMessageSid, NumMedia="0", SmsSid, SmsStatus=received, Body,
   * To, MessagingServiceSid` (when given), `NumSegments, MessageSid` (`SM` + 32 hex), `AccountSid, From, ApiVersion`,
   * and `OptOutType` (`STOP` | `START` | `HELP`) when `m.optOutType` is given or the trimmed body is a single default
   * keyword ({@link OPT_OUT_KEYWORDS}, {@link OPT_IN_KEYWORDS}, {@link HELP_KEYWORDS}; case-insensitive).
   * Side effects before the POST, as Twilio records the block and still forwards the message: STOP opts `m.from` out
   * for that account (later sends to it from that account fail 400 / 21610), START opts it back in (also clearing the
   * every-account list). The message is added to `inboundMessages` (and is visible to Messages fetch/list).
   * @returns the delivery result (receiver failures: `status: 0`, never thrown)
   * @throws Error for an unknown `accountSid`
   */
  async sendInbound(url: string, m: SimInboundMessage): Promise<CallbackResult> {
    const accountSid = m.accountSid ?? this.defaultAccount.accountSid;
    if (!this.accounts.some((a) => a.accountSid === accountSid)) throw new Error(`TwilioSim: unknown account ${accountSid}`);
    const keyword = m.body.trim().toUpperCase();
    const detected = (OPT_OUT_KEYWORDS as readonly string[]).includes(keyword)
      ? "STOP"
      : (OPT_IN_KEYWORDS as readonly string[]).includes(keyword)
        ? "START"
        : (HELP_KEYWORDS as readonly string[]).includes(keyword)
          ? "HELP"
          : undefined;
    const optOutType = m.optOutType ?? detected;
    if (optOutType === "STOP") this.optOut(m.from, accountSid);
    else if (optOutType === "START") this.optIn(m.from, accountSid);
    const sid = "SM" + hex32();
    const now = rfc2822(new Date(this.now()));
    const segments = String(countSegments(m.body));
    const params: Record<string, string> = {
      SmsMessageSid: sid,
      NumMedia: "0",
      SmsSid: sid,
      SmsStatus: "received",
      Body: m.body,
      To: m.to,
    };
    if (m.messagingServiceSid) params.MessagingServiceSid = m.messagingServiceSid;
    params.NumSegments = segments;
    params.MessageSid = sid;
    params.AccountSid = accountSid;
    params.From = m.from;
    params.ApiVersion = API_VERSION;
    if (optOutType) params.OptOutType = optOutType;
    this.inboundMessages.push({
      sid,
      accountSid,
      to: m.to,
      from: m.from,
      messagingServiceSid: m.messagingServiceSid ?? null,
      body: m.body,
      mediaUrl: [],
      statusCallback: null,
      status: "received",
      errorCode: null,
      dateCreated: now,
      history: ["received"],
      dateUpdated: now,
      dateSent: now,
      numSegments: segments,
      price: null,
      contentSid: null,
      contentVariables: null,
      direction: "inbound",
      sendAt: null,
      params: { ...params },
    });
    return this.webhook("incoming-message", accountSid, url, params);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // internals
  // -------------------------------------------------------------------------------------------------------------------

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** Call parameters common to every call webhook (status callbacks, TwiML fetch, Gather action). */
  private callParams(call: SimCall, callStatus: string): Record<string, string> {
    return {
      AccountSid: call.accountSid,
      ApiVersion: API_VERSION,
      CallSid: call.sid,
      CallStatus: callStatus,
      Called: call.to,
      Caller: call.from,
      Direction: "outbound-api",
      From: call.from,
      To: call.to,
    };
  }

  /** Reach progress `event` on `call` (resource update + history) and send its callback when subscribed. */
  private async callEvent(call: SimCall, event: string, outcome: CallOutcome): Promise<CallbackResult | null> {
    const nowStr = rfc2822(new Date(this.now()));
    call.events.push(event);
    let callStatus: string;
    if (event === "initiated") {
      callStatus = "initiated";
      call.startTime = nowStr;
    } else if (event === "ringing") {
      callStatus = "ringing";
      call.status = "ringing";
    } else if (event === "answered") {
      callStatus = "in-progress";
      call.status = "in-progress";
    } else {
      callStatus = outcome;
      call.status = outcome;
      call.endTime = nowStr;
      if (call.durationSec === null) call.durationSec = 0;
      if (outcome === "completed" && call.events.includes("answered"))
        call.price = (-0.014 * Math.max(1, Math.ceil(call.durationSec / 60))).toFixed(5);
    }
    call.history.push(callStatus);
    call.dateUpdated = nowStr;
    const subscribed = call.statusCallbackEvents.length === 0 ? event === "completed" : call.statusCallbackEvents.includes(event);
    if (!subscribed || call.statusCallback === null) return null;
    const params = this.callParams(call, callStatus);
    params.CallbackSource = "call-progress-events";
    params.SequenceNumber = String(call.sequence++);
    params.Timestamp = nowStr;
    if (event === "completed") {
      const d = call.durationSec ?? 0;
      params.CallDuration = String(d);
      params.Duration = String(Math.ceil(d / 60));
      params.SipResponseCode = { completed: "200", busy: "486", "no-answer": "487", canceled: "487", failed: "500" }[outcome];
    }
    if (call.answeredBy !== null && (event === "answered" || event === "completed") && call.events.includes("answered"))
      params.AnsweredBy = call.answeredBy;
    return this.webhook("call-status", call.accountSid, call.statusCallback, params, call.statusCallbackMethod);
  }

  /** Mark pending verifications whose 10 minutes are over as expired and deleted (simulator clock). */
  private sweepExpired(): void {
    const now = this.now();
    for (const v of this.verifications) {
      if (!v.deleted && v.status === "pending" && now >= v.expiresAt) {
        v.status = "expired";
        v.deleted = true;
        v.dateUpdated = iso8601(v.expiresAt);
      }
    }
  }

  /** Called synchronously when a queued fault is taken, before it acts (tests: kill the client at that moment). */
  onFault?: (fault: SimFault, target: "messages" | "calls" | "verifications") => void;

  /** First queued fault for `target` (faults without `on` hit Messages), removed from the queue. */
  private takeFault(target: "messages" | "calls" | "verifications"): SimFault | undefined {
    const i = this.faults.findIndex((f) => (f.on ?? "messages") === target);
    return i < 0 ? undefined : this.faults.splice(i, 1)[0];
  }

  /** The rate clock: sub-millisecond monotonic time unless the `now` option drives the simulator clock. */
  private rateNow(): number {
    if (this.opts.now !== undefined) return this.now();
    return performance.timeOrigin + performance.now() + this.clockOffset;
  }

  /** The per-sender limit for `sender` (option `senderRatePerSecond`), undefined = none. */
  private senderLimit(sender: string): number | undefined {
    const o = this.opts.senderRatePerSecond;
    const limit = typeof o === "number" ? o : o?.[sender];
    return limit !== undefined && limit > 0 ? limit : undefined;
  }

  /**
   * Rate gates for a create of `accountSid` (`ratePerSecond`) and, for Messages, of its sender (`senderRatePerSecond`),
   * both at the request's arrival instant: true = admitted (counted by both); false = answered 429 / 20429 (counted by neither).
   */
  private admitCreate(res: http.ServerResponse, record: SimRequest, accountSid: string, verify: boolean, sender?: string, segments = 1): boolean {
    const now = record.startedAt;
    const inWindow = (map: Map<string, number[]>, key: string): number[] => {
      const times = (map.get(key) ?? []).filter((t) => t > now - 1000);
      map.set(key, times);
      return times;
    };
    const limit = this.opts.ratePerSecond;
    const accountTimes = limit !== undefined && limit > 0 ? inWindow(this.createTimes, accountSid) : undefined;
    if (accountTimes && limit !== undefined && accountTimes.length >= limit) {
      this.log(`rate limit ${limit}/s reached for ${accountSid}`);
      this.send(res, record, err(429, 20429, "Too Many Requests"), verify ? { "Retry-After": "1" } : {});
      return false;
    }
    const senderMax = sender ? this.senderLimit(sender) : undefined;
    const senderUnits = sender && senderMax !== undefined ? senderSegments(inWindow(this.senderTimes, `${accountSid}|${sender}`), now, segments, senderMax) : undefined;
    if (senderUnits === null) {
      this.log(`sender rate limit ${senderMax}/s (segments) reached for ${sender}`);
      this.send(res, record, err(429, 20429, "Too Many Requests"));
      return false;
    }
    accountTimes?.push(now);
    if (sender && senderUnits) this.senderTimes.set(`${accountSid}|${sender}`, senderUnits);
    return true;
  }

  /**
   * Arrival instants ({@link SimRequest.startedAt}) of create requests (`POST` Messages, Calls, Verifications), in
   * arrival order. `admittedOnly` (default false) keeps those not answered 429; `from` keeps Messages of that sender.
   */
  createStarts(opts: { admittedOnly?: boolean; from?: string } = {}): number[] {
    return this.requests
      .filter((r) => r.method === "POST" && /\/(Messages|Calls)\.json$|\/Verifications$/.test(r.path))
      .filter((r) => !opts.admittedOnly || r.status !== 429)
      .filter((r) => opts.from === undefined || first(r.form ?? {}, "From") === opts.from)
      .map((r) => r.startedAt)
      .sort((a, b) => a - b);
  }

  /**
   * Run a create under the fault rules of {@link SimFault}: `process` validates and (when valid) creates, returning the
   * answer; faults decide whether it runs and what the client sees.
   */
  private async runCreate(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: SimRequest,
    target: "messages" | "calls" | "verifications",
    process: () => CreateOutcome,
  ): Promise<void> {
    const answer = (o: CreateOutcome) =>
      "error" in o ? this.send(res, record, o.error, o.headers ?? {}) : this.sendJson(res, record, o.status, o.payload);
    const fault = this.takeFault(target);
    if (!fault) return answer(process());
    this.log(`fault ${JSON.stringify(fault)} on ${record.path}`);
    this.onFault?.(fault, target);
    if (fault.discard) {
      record.status = 0;
      this.requests.push(record);
      req.socket.destroy();
      return;
    }
    if (fault.processAfterMs !== undefined) {
      await sleep(fault.processAfterMs);
      const late = process();
      if (req.socket.destroyed) {
        record.status = 0;
        this.requests.push(record);
        return;
      }
      return answer(late);
    }
    if (fault.dropConnection) {
      process();
      if (fault.delayMs) await sleep(fault.delayMs);
      record.status = 0;
      this.requests.push(record);
      req.socket.destroy();
      return;
    }
    if (fault.status !== undefined) {
      if (fault.createMessage) process();
      if (fault.delayMs) await sleep(fault.delayMs);
      const code = fault.code ?? defaultCodeFor(fault.status);
      const extra: Record<string, string> = {};
      if (fault.retryAfter !== undefined) extra["Retry-After"] = String(fault.retryAfter);
      this.send(res, record, err(fault.status, code, fault.message ?? defaultMessageFor(fault.status)), extra);
      return;
    }
    // delay only: process first, answer late
    const outcome = process();
    if (fault.delayMs) await sleep(fault.delayMs);
    answer(outcome);
  }

  private applyStatus(msg: SimMessage, status: string, errorCode: number | null, now: Date): void {
    const last = msg.history[msg.history.length - 1];
    if (last !== status) msg.history.push(status);
    const current = msg.status;
    const wins = !FINAL_FAILURES.has(current) && (STATUS_RANK[status] ?? 0) > (STATUS_RANK[current] ?? 0);
    if (!wins) {
      this.log(`${msg.sid}: callback ${status} does not replace ${current}`);
      return;
    }
    msg.status = status;
    msg.dateUpdated = rfc2822(now);
    // A Messaging Service picks the sender from its pool once the message leaves `accepted`.
    if (msg.from === null && status !== "accepted" && status !== "scheduled" && status !== "canceled") {
      msg.from = this.senderList[0] ?? MAGIC_VALID_SENDER;
      msg.numSegments = String(countSegments(msg.body));
    }
    if ((STATUS_RANK[status] ?? 0) >= STATUS_RANK.sent && status !== "failed" && status !== "canceled") {
      if (msg.dateSent === null) msg.dateSent = rfc2822(now);
      if (msg.price === null) msg.price = (-0.0079 * Number(msg.numSegments || "1")).toFixed(5);
    }
    if (errorCode !== null) msg.errorCode = errorCode;
  }

  /**
   * One signed webhook request as Twilio makes it: POST with the parameters as form body, or GET with the parameters
   * appended to the URL's query (the signature then covers that URL and no body parameters). Signed with the account's
   * Auth Token, fresh idempotency token; recorded in `callbacks`.
   */
  private async webhook(
    kind: CallbackKind,
    accountSid: string,
    target: string,
    params: Record<string, string>,
    method: "GET" | "POST" = "POST",
  ): Promise<CallbackResult> {
    const token = this.accounts.find((a) => a.accountSid === accountSid)?.authToken ?? "";
    const literal = method === "GET" ? appendQuery(target, params) : target;
    const signedUrl = this.opts.signUrlFragment ? literal : literal.split("#")[0];
    const signature = signTwilioRequest(token, signedUrl, method === "GET" ? {} : params);
    const r = await this.postCallback(literal, params, signature, signedUrl, crypto.randomUUID(), false, kind, method);
    this.callbacks.push(r);
    return r;
  }

  /** Send one webhook request (headers as Twilio's, body for POST) and describe it as a {@link CallbackResult}; never throws. */
  private async postCallback(
    target: string,
    params: Record<string, string>,
    signature: string,
    signedUrl: string,
    idempotencyToken: string,
    duplicate: boolean,
    kind: CallbackKind,
    method: "GET" | "POST" = "POST",
  ): Promise<CallbackResult> {
    const body = new URLSearchParams(params).toString();
    const headers: Record<string, string> = {
      "user-agent": "TwilioProxy/1.1",
      accept: "*/*",
      "i-twilio-idempotency-token": idempotencyToken,
      "x-home-region": "us1",
    };
    if (method === "POST") {
      headers["content-type"] = "application/x-www-form-urlencoded";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    if (signature) headers["x-twilio-signature"] = signature;
    const base: Omit<CallbackResult, "status" | "body"> = {
      url: target,
      params: { ...params },
      signature,
      signedUrl,
      idempotencyToken,
      headers: { ...headers },
      duplicate,
      kind,
      method,
    };
    const timeoutMs = this.opts.callbackTimeoutMs ?? 15000;
    const answer = await sendRequest(target, { method, headers, body: method === "POST" ? body : undefined, timeoutMs });
    const label = params.MessageStatus ?? params.SmsStatus ?? params.CallStatus ?? "";
    this.log(`${kind} ${label} ${method} -> ${target}: ${answer.status}${answer.error ? " " + answer.error : ""}`);
    return { ...base, ...answer };
  }

  private authenticate(header: string | undefined): AuthResult {
    if (!header) return { kind: "none" };
    const m = /^Basic\s+(.+)$/i.exec(header.trim());
    if (!m) return { kind: "bad" };
    const decoded = Buffer.from(m[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return { kind: "bad" };
    const user = decoded.slice(0, colon);
    const pass = decoded.slice(colon + 1);
    const account = this.accounts.find((a) => a.accountSid === user);
    if (account && safeEqual(account.authToken, pass)) return { kind: "account", credentialSid: user, accountSid: account.accountSid };
    const key = this.apiKeys.find((k) => k.sid === user);
    if (key && safeEqual(key.secret, pass)) return { kind: "apikey", credentialSid: user, accountSid: key.accountSid, apiKey: key };
    return { kind: "bad", credentialSid: user };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const startedAt = this.rateNow();
    const at = Date.now();
    const { path, query } = splitUrl(req.url);
    const method = (req.method ?? "GET").toUpperCase();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      headers[k] = k === "authorization" ? "[redacted]" : Array.isArray(v) ? v.join(", ") : v;
    }
    const auth = this.authenticate(req.headers.authorization);
    const record: SimRequest = { method, path, status: 0, auth: auth.kind, query, headers, at, startedAt };
    if (auth.credentialSid) record.credentialSid = auth.credentialSid;

    // Per-account concurrency accounting (the account named in the path).
    // Verify paths name no account: count them for the account of the credentials.
    const accountMatch = /^\/2010-04-01\/Accounts\/([^/.]+)/.exec(path);
    const concurrencyKey = accountMatch ? accountMatch[1] : (auth.accountSid ?? "-");
    this.concurrencyKeys.set(record, concurrencyKey);
    const limit = this.opts.concurrencyLimit;
    const current = this.inFlight.get(concurrencyKey) ?? 0;
    if (limit !== undefined && limit > 0 && current >= limit) {
      req.resume();
      this.send(res, record, err(429, 20429, "Too Many Requests"), { "Twilio-Concurrent-Requests": String(current) });
      return;
    }
    this.inFlight.set(concurrencyKey, current + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.inFlight.set(concurrencyKey, (this.inFlight.get(concurrencyKey) ?? 1) - 1);
    };
    res.on("close", release);
    res.on("finish", release);

    let raw: Buffer;
    try {
      raw = await readBody(req, MAX_REQUEST_BYTES);
    } catch {
      this.send(res, record, err(413, 20001, "Request body too large"));
      return;
    }
    const contentType = (req.headers["content-type"] ?? "").toLowerCase();
    const isForm = contentType.split(";")[0].trim() === "application/x-www-form-urlencoded";
    const form = isForm ? parseForm(raw.toString("utf8")) : {};
    if (isForm && method !== "GET") record.form = form;

    if (this.opts.latencyMs) await sleep(this.opts.latencyMs);

    const base = "/" + API_VERSION + "/Accounts/";
    const notAllowed = () => this.send(res, record, err(405, 20004, "Method not allowed"));
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^${base}([^/]+)\\.json$`).exec(path))) {
      if (method !== "GET") return notAllowed();
      return this.fetchAccount(res, record, auth, decodeURIComponent(m[1]));
    }
    if ((m = new RegExp(`^${base}([^/]+)/(Messages|Calls)\\.json$`).exec(path))) {
      const accountSid = decodeURIComponent(m[1]);
      const kind = m[2] as Collection2010;
      if (method === "POST") return this.create2010(req, res, record, auth, accountSid, kind, form);
      if (method === "GET") return kind === "Messages" ? this.listMessages(res, record, auth, accountSid, query) : this.listCalls(res, record, auth, accountSid, query);
      return notAllowed();
    }
    if ((m = new RegExp(`^${base}([^/]+)/(Messages|Calls)/([^/]+)\\.json$`).exec(path))) {
      if (method !== "GET") return notAllowed();
      return this.fetch2010(res, record, auth, decodeURIComponent(m[1]), m[2] as Collection2010, decodeURIComponent(m[3]));
    }
    if ((m = /^\/v2\/Services\/([^/]+)\/Verifications$/.exec(path))) {
      if (method !== "POST") return notAllowed();
      return this.createVerification(req, res, record, auth, decodeURIComponent(m[1]), form);
    }
    if ((m = /^\/v2\/Services\/([^/]+)\/Verifications\/([^/]+)$/.exec(path))) {
      if (method !== "GET" && method !== "POST") return notAllowed();
      return this.verificationInstance(res, record, auth, method, decodeURIComponent(m[1]), decodeURIComponent(m[2]), form);
    }
    if ((m = /^\/v2\/Services\/([^/]+)\/VerificationCheck$/.exec(path))) {
      if (method !== "POST") return notAllowed();
      return this.checkVerification(res, record, auth, decodeURIComponent(m[1]), form);
    }
    this.send(res, record, err(404, 20404, `The requested resource ${path} was not found`));
  }

  /** 401 / 20003 unless the credentials are valid for `accountSid`. Returns true when the request may proceed. */
  private authorize(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string): boolean {
    if ((auth.kind === "account" || auth.kind === "apikey") && auth.accountSid === accountSid) return true;
    if (auth.kind !== "none") record.auth = "bad";
    this.unauthorized(res, record);
    return false;
  }

  /** 401 / 20003 with Twilio's `WWW-Authenticate` challenge. */
  private unauthorized(res: http.ServerResponse, record: SimRequest): void {
    this.send(res, record, err(401, 20003, "Authenticate"), { "WWW-Authenticate": 'Basic realm="Twilio API"' });
  }

  private fetchAccount(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string): void {
    if (!this.authorize(res, record, auth, accountSid)) return;
    if (auth.kind === "apikey" && (auth.apiKey?.keyType ?? "standard") !== "main") {
      // Standard keys cannot access the Accounts resource.
      record.auth = "bad";
      return this.unauthorized(res, record);
    }
    const account = this.accounts.find((a) => a.accountSid === accountSid) as TwilioSimAccount;
    const uri = `/${API_VERSION}/Accounts/${accountSid}`;
    const created = rfc2822(new Date(Date.UTC(2024, 0, 2, 10, 0, 0)));
    const subresources = [
      "available_phone_numbers:AvailablePhoneNumbers",
      "calls:Calls",
      "incoming_phone_numbers:IncomingPhoneNumbers",
      "keys:Keys",
      "messages:Messages",
      "balance:Balance",
    ];
    this.sendJson(res, record, 200, {
      auth_token: account.authToken,
      date_created: created,
      date_updated: created,
      friendly_name: account.friendlyName ?? "ml-connector test account",
      owner_account_sid: accountSid,
      sid: accountSid,
      status: "active",
      subresource_uris: Object.fromEntries(subresources.map((s) => {
        const [k, p] = s.split(":");
        return [k, `${uri}/${p}.json`];
      })),
      type: "Full",
      uri: `${uri}.json`,
    });
  }

  /** Validation in Twilio's order; returns the error to answer, or null. */
  private validateCreate(accountSid: string, p: Record<string, string | string[]>): TwilioErrorSpec | null {
    const to = first(p, "To");
    const from = first(p, "From") || undefined;
    const mg = first(p, "MessagingServiceSid") || undefined;
    const body = first(p, "Body") ?? "";
    const media = all(p, "MediaUrl").filter((u) => u !== "");
    const contentSid = first(p, "ContentSid") || undefined;
    const contentVariables = first(p, "ContentVariables");
    const statusCallback = first(p, "StatusCallback");
    const scheduleType = first(p, "ScheduleType") || undefined;
    const sendAt = first(p, "SendAt") || undefined;

    if (!to) return err(400, 21604, "A 'To' phone number is required.");
    const toNumber = stripChannel(to);
    if (!E164.test(toNumber) || toNumber === "+15005550001") return err(400, 21211, `Invalid 'To' Phone Number: ${to}`);
    if (!from && !mg) return err(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.");
    if (mg) {
      if (!MG_SID.test(mg)) return err(400, 21705, `The Messaging Service Sid ${mg} is invalid.`);
      if (!this.services.has(mg)) return err(400, 21701, `The Messaging Service Sid ${mg} does not exist`);
    }
    if (from) {
      const fromNumber = stripChannel(from);
      if (fromNumber === "+15005550001")
        return err(400, 21212, `The 'From' number ${from} is not a valid phone number, shortcode, or alphanumeric sender ID.`);
      if (fromNumber === "+15005550008") return err(400, 21611, "This 'From' number has exceeded the maximum number of queued messages");
      const owned = fromNumber === MAGIC_VALID_SENDER || this.senders.has(from) || this.senders.has(fromNumber);
      if (!owned || fromNumber === "+15005550007")
        return err(400, 21606, `The From phone number ${from} is not a valid, SMS-capable inbound phone number or short code for your account.`);
      if (isWhatsApp(from) !== isWhatsApp(to))
        return err(400, 21910, "Invalid From and To pair. From and To should be of the same channel");
    }
    if (body === "" && media.length === 0 && !contentSid) return err(400, 21602, "Message body is required.");
    if (Array.from(body).length > MAX_BODY_CHARS) return err(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    if (media.length > MAX_MEDIA) return err(400, 21623, "Number of media files exceeds allowed limit");
    if (contentSid && !HX_SID.test(contentSid)) return err(400, 21655, "The ContentSid is Invalid.");
    if (contentVariables !== undefined && contentVariables !== "" && !contentSid)
      return err(400, 21654, "A ContentSid must be specified if ContentVariables are provided in the request.");
    if (contentVariables !== undefined && contentSid && !isJsonObject(contentVariables))
      return err(400, 21656, "The ContentVariables Parameter is invalid.");
    if (statusCallback !== undefined && statusCallback !== "" && !isValidCallbackUrl(statusCallback))
      return err(400, 21609, "Invalid 'StatusCallback'");
    if (scheduleType !== undefined) {
      if (scheduleType !== "fixed") return err(400, 35126, "The ScheduleType value provided is not supported for this channel");
      if (!mg) return err(400, 35118, "MessagingServiceSid is required to schedule a message");
      if (!sendAt) return err(400, 35111, "SendAt timestamp is missing");
      const at = parseIsoDateTime(sendAt);
      const window = "SendAt time must be between 300 seconds and 35 days (3024000 seconds) in the future";
      if (at === null) return err(400, 35115, `${window}; SendAt must be an ISO 8601 timestamp (YYYY-MM-DDTHH:MM:SSZ)`);
      const lead = (at - this.now()) / 1000;
      if (lead <= MIN_SCHEDULE_S) return err(400, 35114, window);
      if (lead > MAX_SCHEDULE_S) return err(400, 35115, window);
    }
    switch (toNumber) {
      case "+15005550002":
        return err(400, 21612, `The 'To' phone number: ${to}, is not currently reachable using the 'From' phone number: ${from ?? mg} via SMS.`);
      case "+15005550003":
        return err(400, 21408, `Permission to send an SMS has not been enabled for the region indicated by the 'To' number: ${to}.`);
      case "+15005550004":
        return err(400, 21610, "Attempt to send to unsubscribed recipient");
      case "+15005550009":
        return err(400, 21614, `'To' number ${to} is not a valid mobile number`);
    }
    if (this.isOptedOut(toNumber, accountSid)) return err(400, 21610, "Attempt to send to unsubscribed recipient");
    return null;
  }

  private buildMessage(accountSid: string, p: Record<string, string | string[]>): SimMessage {
    const media = all(p, "MediaUrl").filter((u) => u !== "");
    const mg = first(p, "MessagingServiceSid") || null;
    const from = first(p, "From") || null;
    const body = first(p, "Body") ?? "";
    const now = rfc2822(new Date(this.now()));
    const scheduled = first(p, "ScheduleType") === "fixed";
    const status = scheduled ? "scheduled" : mg ? "accepted" : "queued";
    const cb = first(p, "StatusCallback");
    const sendAt = scheduled ? iso8601(parseIsoDateTime(first(p, "SendAt") as string) as number) : null;
    return {
      sid: (media.length > 0 ? "MM" : "SM") + hex32(),
      accountSid,
      to: first(p, "To") as string,
      from,
      messagingServiceSid: mg,
      body,
      mediaUrl: media,
      statusCallback: cb ? cb : null,
      status,
      errorCode: null,
      dateCreated: now,
      history: [status],
      dateUpdated: now,
      dateSent: null,
      // "For messages sent via a Messaging Service, num_segments is initially 0, since a sender hasn't yet been assigned."
      numSegments: mg && !from ? "0" : String(countSegments(body)),
      price: null,
      contentSid: first(p, "ContentSid") || null,
      contentVariables: first(p, "ContentVariables") || null,
      direction: "outbound-api",
      sendAt,
      params: JSON.parse(JSON.stringify(p)) as Record<string, string | string[]>,
    };
  }

  /** CreateMessage / CreateCall (`POST …/Messages.json`, `…/Calls.json`): auth, rate gate, faults, then validate and create. */
  private async create2010(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: SimRequest,
    auth: AuthResult,
    accountSid: string,
    kind: Collection2010,
    form: Record<string, string | string[]>,
  ): Promise<void> {
    if (!this.authorize(res, record, auth, accountSid)) return;
    const messages = kind === "Messages";
    const sender = messages ? first(form, "From") || first(form, "MessagingServiceSid") || undefined : undefined;
    // A sender's rate is in segments (MMS and WhatsApp: one per message), twilio.md §6.4.
    const smsSegments = sender && !sender.startsWith("whatsapp:") && all(form, "MediaUrl").length === 0 ? countSegments(first(form, "Body") ?? "") : 1;
    if (!this.admitCreate(res, record, accountSid, false, sender, smsSegments)) return;
    await this.runCreate(req, res, record, messages ? "messages" : "calls", () => {
      const invalid = messages ? this.validateCreate(accountSid, form) : this.validateCall(form);
      if (invalid) return { error: invalid };
      if (messages) {
        const msg = this.buildMessage(accountSid, form);
        this.messages.push(msg);
        record.messageSid = msg.sid;
        this.log(`created ${msg.sid} to ${msg.to} (${msg.status})`);
        return { status: 201, payload: this.toResource(msg) };
      }
      const call = this.buildCall(accountSid, form);
      this.calls.push(call);
      record.callSid = call.sid;
      this.log(`created call ${call.sid} to ${call.to}`);
      return { status: 201, payload: this.callResource(call) };
    });
  }

  /** FetchMessage / FetchCall of `accountSid` (a message may be outbound or inbound); 404 / 20404 when not that account's. */
  private fetch2010(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string, kind: Collection2010, sid: string): void {
    if (!this.authorize(res, record, auth, accountSid)) return;
    const found = kind === "Messages" ? this.getMessage(sid) : this.getCall(sid);
    if (!found || found.accountSid !== accountSid)
      return this.send(res, record, err(404, 20404, `The requested resource /${API_VERSION}/Accounts/${accountSid}/${kind}/${sid}.json was not found`));
    this.sendJson(res, record, 200, kind === "Messages" ? this.toResource(found as SimMessage) : this.callResource(found as SimCall));
  }

  /**
   * List messages (outbound and inbound), newest first. Filters as Twilio documents them: `To`, `From` (exact),
   * `DateSent` (that UTC day), `DateSent<` (on or before), `DateSent>` (on or after); a date-only value
   * (`YYYY-MM-DD`) compares whole days, a date-time (`YYYY-MM-DDTHH:MM:SSZ`, what twilio-node sends) compares instants
   * (inclusive). A message not sent yet is matched on its creation time.
   */
  private listMessages(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string, query: string): void {
    const q = new URLSearchParams(query);
    const bound = (v: string | null, end: boolean): number | null => {
      if (!v) return null;
      if (/^\d{4}-\d{2}-\d{2}$/.test(v)) {
        const day = Date.parse(`${v}T00:00:00Z`);
        return Number.isNaN(day) ? null : end ? day + 86_400_000 - 1 : day;
      }
      return parseIsoDateTime(v);
    };
    const day = (v: string | null) => (v && /^\d{4}-\d{2}-\d{2}/.test(v) ? v.slice(0, 10) : null);
    const dEq = day(q.get("DateSent"));
    const dLe = bound(q.get("DateSent<"), true);
    const dGe = bound(q.get("DateSent>"), false);
    const newestFirst = [...this.messages, ...this.inboundMessages]
      .sort((a, b) => new Date(a.dateCreated).getTime() - new Date(b.dateCreated).getTime())
      .reverse(); // newest first, as Twilio lists
    const sentInRange = (m: SimMessage) => {
      const t = new Date(m.dateSent ?? m.dateCreated).getTime();
      const d = new Date(t).toISOString().slice(0, 10);
      return (!dEq || d === dEq) && (dLe === null || t <= dLe) && (dGe === null || t >= dGe);
    };
    this.list2010(res, record, auth, accountSid, "Messages", q, newestFirst, sentInRange, (m) => this.toResource(m));
  }

  /** List calls newest first; filters `To`, `From`, `Status` (exact); Twilio's paging envelope (`calls`). */
  private listCalls(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string, query: string): void {
    const q = new URLSearchParams(query);
    const status = q.get("Status");
    this.list2010(res, record, auth, accountSid, "Calls", q, [...this.calls].reverse(), (c) => !status || c.status === status, (c) => this.callResource(c));
  }

  /**
   * One page of `items` (already newest first) of `accountSid` under `kind`, filtered by `To`/`From` (exact) and `keep`;
   * 401 / 20003 for credentials of another account.
   */
  private list2010<T extends { sid: string; accountSid: string; to: string; from: string | null }>(
    res: http.ServerResponse,
    record: SimRequest,
    auth: AuthResult,
    accountSid: string,
    kind: Collection2010,
    q: URLSearchParams,
    items: T[],
    keep: (x: T) => boolean,
    render: (x: T) => unknown,
  ): void {
    if (!this.authorize(res, record, auth, accountSid)) return;
    const to = q.get("To");
    const from = q.get("From");
    const matches = items.filter((x) => x.accountSid === accountSid && (!to || x.to === to) && (!from || x.from === from) && keep(x));
    this.sendJson(res, record, 200, this.page(`/${API_VERSION}/Accounts/${accountSid}/${kind}.json`, kind.toLowerCase(), matches, q, render));
  }

  /** Twilio's 2010 list envelope for one page of `items` (`PageSize` default 50, max 1000; `Page`, `PageToken`). */
  private page<T extends { sid: string }>(
    pathBase: string,
    key: string,
    items: T[],
    q: URLSearchParams,
    render: (x: T) => unknown,
  ): Record<string, unknown> {
    const pageSize = Math.min(1000, Math.max(1, Number.parseInt(q.get("PageSize") ?? "50", 10) || 50));
    const page = Math.max(0, Number.parseInt(q.get("Page") ?? "0", 10) || 0);
    const start = page * pageSize;
    const slice = items.slice(start, start + pageSize);
    const filters = new URLSearchParams();
    for (const [k, v] of q) if (k !== "PageSize" && k !== "Page" && k !== "PageToken") filters.append(k, v);
    const pageUri = (n: number, token?: string) => {
      const p = new URLSearchParams(filters);
      p.set("PageSize", String(pageSize));
      p.set("Page", String(n));
      if (token) p.set("PageToken", token);
      return `${pathBase}?${p.toString()}`;
    };
    const hasNext = start + pageSize < items.length;
    return {
      first_page_uri: pageUri(0),
      end: slice.length > 0 ? start + slice.length - 1 : start,
      previous_page_uri: page > 0 ? pageUri(page - 1, slice[0] ? "PB" + slice[0].sid : undefined) : null,
      [key]: slice.map(render),
      uri: pageUri(page, q.get("PageToken") ?? undefined),
      page_size: pageSize,
      start,
      next_page_uri: hasNext ? pageUri(page + 1, "PA" + slice[slice.length - 1].sid) : null,
      page,
    };
  }

  // ---- Calls (REST) ----

  /** CreateCall validation in Twilio's order; returns the error to answer, or null. */
  private validateCall(p: Record<string, string | string[]>): TwilioErrorSpec | null {
    const to = first(p, "To");
    const from = first(p, "From");
    const url = first(p, "Url") || undefined;
    const twiml = first(p, "Twiml") || undefined;
    const app = first(p, "ApplicationSid") || undefined;
    const statusCallback = first(p, "StatusCallback");
    const timeout = first(p, "Timeout");
    const md = first(p, "MachineDetection");
    const client = (v: string) => /^(client|sip):/i.test(v);

    if (!to) return err(400, 21201, "No 'To' number is specified");
    if (!from) return err(400, 21213, "No 'From' number is specified");
    if (!client(to) && (!E164.test(to) || to === "+15005550001")) return err(400, 21211, `Invalid 'To' Phone Number: ${to}`);
    if (!client(from)) {
      if (!E164.test(from) || from === "+15005550001") return err(400, 21212, `Invalid 'From' Phone Number: ${from}`);
      if (from !== MAGIC_VALID_SENDER && !this.senders.has(from))
        return err(
          400,
          21210,
          `The source phone number provided, ${from}, is not yet verified for your account. You may only make calls from phone numbers that you've verified or purchased from Twilio.`,
        );
    }
    if (!url && !twiml && !app) return err(400, 21205, "Url parameter is required. Please provide a Url, Twiml or ApplicationSid.");
    if (url && !isValidCallbackUrl(url)) return err(400, 21205, `Url is not a valid URL: ${url}`);
    if (!url && twiml && Array.from(twiml).length > 4000) return err(400, 32018, "Twiml size exceeded maximum allowed value of 4000 characters");
    if (!url && !twiml && app && !AP_SID.test(app)) return err(400, 21218, "Invalid ApplicationSid");
    for (const name of ["Method", "FallbackMethod", "StatusCallbackMethod", "AsyncAmdStatusCallbackMethod"]) {
      if (httpMethod(first(p, name)) === null) return err(400, 21209, `Invalid ${name}: ${first(p, name)}`);
    }
    if (statusCallback !== undefined && statusCallback !== "" && !isValidCallbackUrl(statusCallback))
      return err(400, 21609, "Invalid 'StatusCallback'");
    const events = callEvents(p);
    const bad = events.find((e) => !(CALL_EVENTS as readonly string[]).includes(e));
    if (bad !== undefined) return err(400, 21626, `Invalid 'StatusCallbackEvent': ${bad}`);
    if (timeout !== undefined && timeout !== "" && !/^\d+$/.test(timeout)) return err(400, 21208, `Invalid Timeout: ${timeout}`);
    if (timeout !== undefined && /^\d+$/.test(timeout) && Number(timeout) < 1) return err(400, 21208, `Invalid Timeout: ${timeout}`);
    if (md !== undefined && md !== "" && md !== "Enable" && md !== "DetectMessageEnd")
      return err(400, 21234, `Invalid Machine Detection configuration value: ${md}`);
    const amdCb = first(p, "AsyncAmdStatusCallback");
    if (amdCb !== undefined && amdCb !== "" && !isValidCallbackUrl(amdCb)) return err(400, 21205, `AsyncAmdStatusCallback is not a valid URL: ${amdCb}`);
    if (to === "+15005550003")
      return err(400, 21215, `Account not authorized to call ${to}. Perhaps you need to enable some international permissions: https://www.twilio.com/console/voice/calls/geo-permissions`);
    return null;
  }

  private buildCall(accountSid: string, p: Record<string, string | string[]>): SimCall {
    const now = rfc2822(new Date(this.now()));
    const url = first(p, "Url") || null;
    const timeout = first(p, "Timeout");
    const cb = first(p, "StatusCallback");
    const amdCb = first(p, "AsyncAmdStatusCallback");
    return {
      sid: "CA" + hex32(),
      accountSid,
      to: first(p, "To") as string,
      from: first(p, "From") as string,
      url,
      method: httpMethod(first(p, "Method")) ?? "POST",
      twiml: url === null ? first(p, "Twiml") || null : null,
      applicationSid: first(p, "ApplicationSid") || null,
      statusCallback: cb ? cb : null,
      statusCallbackEvents: callEvents(p),
      statusCallbackMethod: httpMethod(first(p, "StatusCallbackMethod")) ?? "POST",
      timeout: timeout ? Math.min(600, Number(timeout)) : 60,
      machineDetection: first(p, "MachineDetection") || null,
      asyncAmd: (first(p, "AsyncAmd") ?? "").toLowerCase() === "true",
      asyncAmdStatusCallback: amdCb ? amdCb : null,
      status: "queued",
      history: ["queued"],
      events: [],
      answeredBy: null,
      durationSec: null,
      dateCreated: now,
      dateUpdated: now,
      startTime: null,
      endTime: null,
      price: null,
      said: [],
      spokenText: "",
      digits: null,
      documents: [],
      sequence: 0,
      params: JSON.parse(JSON.stringify(p)) as Record<string, string | string[]>,
    };
  }

  /** Call resource JSON in the 2010 API shape (OpenAPI `api.v2010.account.call`; strings for duration/price). */
  private callResource(c: SimCall): Record<string, unknown> {
    const uri = `/${API_VERSION}/Accounts/${c.accountSid}/Calls/${c.sid}`;
    const sub = [
      "notifications:Notifications",
      "recordings:Recordings",
      "payments:Payments",
      "events:Events",
      "siprec:Siprec",
      "streams:Streams",
      "transcriptions:Transcriptions",
      "user_defined_message_subscriptions:UserDefinedMessageSubscriptions",
      "user_defined_messages:UserDefinedMessages",
    ];
    return {
      account_sid: c.accountSid,
      answered_by: c.answeredBy,
      api_version: API_VERSION,
      caller_name: null,
      date_created: c.dateCreated,
      date_updated: c.dateUpdated,
      direction: "outbound-api",
      duration: c.durationSec === null ? null : String(c.durationSec),
      end_time: c.endTime,
      forwarded_from: null,
      from: c.from,
      from_formatted: formatNumber(c.from),
      group_sid: null,
      parent_call_sid: null,
      phone_number_sid: E164.test(c.from) ? "PN" + crypto.createHash("md5").update(c.from).digest("hex") : null,
      price: c.price,
      price_unit: "USD",
      sid: c.sid,
      start_time: c.startTime,
      status: c.status,
      subresource_uris: Object.fromEntries(sub.map((x) => {
        const [k, v] = x.split(":");
        return [k, `${uri}/${v}.json`];
      })),
      to: c.to,
      to_formatted: formatNumber(c.to),
      trunk_sid: null,
      uri: `${uri}.json`,
      queue_time: "0",
    };
  }

  // ---- Verify v2 (REST) ----

  /** Basic auth for Verify (no account in the path): the credentials' account, or null after answering 401 / 20003. */
  private verifyAccount(res: http.ServerResponse, record: SimRequest, auth: AuthResult): string | null {
    const accountSid = auth.accountSid ?? "";
    return this.authorize(res, record, auth, accountSid) ? accountSid : null;
  }

  private verifyNotFound(res: http.ServerResponse, record: SimRequest): void {
    this.send(res, record, err(404, 20404, `The requested resource ${record.path} was not found`));
  }

  /** Start (or re-send) a verification: Twilio's rules for To/Channel, 5 sends, same code within the 10 minutes. */
  private startVerification(record: SimRequest, accountSid: string, serviceSid: string, p: Record<string, string | string[]>): CreateOutcome {
    const to = first(p, "To") ?? "";
    const channel = first(p, "Channel") ?? "";
    const custom = first(p, "CustomCode");
    if (!to) return { error: err(400, 60200, "Invalid parameter: To") };
    if (!VERIFY_CHANNELS.has(channel)) return { error: err(400, 60200, `Invalid parameter: Channel`) };
    if (channel === "email" ? !EMAIL.test(to) : !E164.test(to)) return { error: err(400, 60200, `Invalid parameter \`To\`: ${to}`) };
    if (custom !== undefined && !/^[0-9A-Za-z]{4,10}$/.test(custom)) return { error: err(400, 60200, "Invalid parameter: CustomCode") };
    this.sweepExpired();
    const now = this.now();
    const attempt = { time: iso8601(now), channel, attemptSid: "VL" + hex32() };
    let v = this.verifications.find((x) => !x.deleted && x.serviceSid === serviceSid && x.accountSid === accountSid && x.to === to);
    if (v) {
      if (v.sendCodeAttempts.length >= VERIFY_MAX_SENDS) {
        record.verificationSid = v.sid;
        return { error: err(429, 60203, "Max send attempts reached"), headers: { "Retry-After": String(Math.ceil((v.expiresAt - now) / 1000)) } };
      }
      v.sendCodeAttempts.push(attempt);
      v.channel = channel;
      v.dateUpdated = iso8601(now);
      this.log(`verification ${v.sid} re-sent (${v.sendCodeAttempts.length})`);
    } else {
      v = {
        sid: "VE" + hex32(),
        serviceSid,
        accountSid,
        to,
        channel,
        code: custom ?? String(crypto.randomInt(0, 1_000_000)).padStart(6, "0"),
        status: "pending",
        valid: false,
        sendCodeAttempts: [attempt],
        wrongChecks: 0,
        dateCreated: iso8601(now),
        dateUpdated: iso8601(now),
        expiresAt: now + VERIFY_TTL_MS,
        deleted: false,
        params: JSON.parse(JSON.stringify(p)) as Record<string, string | string[]>,
      };
      this.verifications.push(v);
      this.log(`verification ${v.sid} to ${to} via ${channel}`);
    }
    record.verificationSid = v.sid;
    return { status: 201, payload: this.verificationResource(v) };
  }

  private async createVerification(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: SimRequest,
    auth: AuthResult,
    serviceSid: string,
    form: Record<string, string | string[]>,
  ): Promise<void> {
    const accountSid = this.verifyAccount(res, record, auth);
    if (accountSid === null) return;
    if (!this.verifyServiceSet.has(serviceSid)) return this.verifyNotFound(res, record);
    if (!this.admitCreate(res, record, accountSid, true)) return;
    await this.runCreate(req, res, record, "verifications", () => this.startVerification(record, accountSid, serviceSid, form));
  }

  /** VerificationCheck: 200 approved (then deleted), 200 pending for a wrong code, 429 / 60202 after 5 wrong ones, 404. */
  private checkVerification(res: http.ServerResponse, record: SimRequest, auth: AuthResult, serviceSid: string, p: Record<string, string | string[]>): void {
    const accountSid = this.verifyAccount(res, record, auth);
    if (accountSid === null) return;
    if (!this.verifyServiceSet.has(serviceSid)) return this.verifyNotFound(res, record);
    const code = first(p, "Code");
    const to = first(p, "To") || undefined;
    const sid = first(p, "VerificationSid") || undefined;
    if (!to && !sid) return this.send(res, record, err(400, 60221, "Either a 'To' or a 'VerificationSid' must be provided"));
    if (code === undefined || code === "") return this.send(res, record, err(400, 60200, "Invalid parameter: Code"));
    if (!/^[0-9A-Za-z]{4,10}$/.test(code)) return this.send(res, record, err(400, 60200, "Invalid parameter: Code"));
    if (sid !== undefined && !VE_SID.test(sid)) return this.send(res, record, err(400, 60200, "Invalid parameter: VerificationSid"));
    this.sweepExpired();
    const v = [...this.verifications]
      .reverse()
      .find((x) => !x.deleted && x.serviceSid === serviceSid && x.accountSid === accountSid && (sid ? x.sid === sid : x.to === to));
    if (!v) return this.verifyNotFound(res, record);
    record.verificationSid = v.sid;
    const now = iso8601(this.now());
    if (v.wrongChecks >= VERIFY_MAX_CHECKS) {
      v.status = "max_attempts_reached";
      v.deleted = true;
      v.dateUpdated = now;
      return this.send(res, record, err(429, 60202, "Max check attempts reached"));
    }
    if (code === v.code) {
      v.status = "approved";
      v.valid = true;
      v.deleted = true;
    } else {
      v.wrongChecks += 1;
    }
    v.dateUpdated = now;
    this.log(`verification ${v.sid} check -> ${v.status}`);
    this.sendJson(res, record, 200, {
      ...verificationIdentity(v),
      amount: null,
      payee: null,
      sna_attempts_error_codes: [],
      date_created: v.dateCreated,
      date_updated: v.dateUpdated,
    });
  }

  /** Fetch (GET) or update (POST `Status=canceled|approved`, then deleted) a live verification; 404 / 20404 when gone. */
  private verificationInstance(
    res: http.ServerResponse,
    record: SimRequest,
    auth: AuthResult,
    method: string,
    serviceSid: string,
    sid: string,
    p: Record<string, string | string[]>,
  ): void {
    const accountSid = this.verifyAccount(res, record, auth);
    if (accountSid === null) return;
    if (!this.verifyServiceSet.has(serviceSid)) return this.verifyNotFound(res, record);
    this.sweepExpired();
    const v = this.verifications.find((x) => x.sid === sid && x.serviceSid === serviceSid && x.accountSid === accountSid && !x.deleted);
    if (method === "POST") {
      const status = first(p, "Status");
      if (status !== "canceled" && status !== "approved") return this.send(res, record, err(400, 60200, "Invalid parameter: Status"));
      if (!v) return this.verifyNotFound(res, record);
      v.status = status;
      v.valid = status === "approved";
      v.deleted = true;
      v.dateUpdated = iso8601(this.now());
      return this.sendJson(res, record, 200, this.verificationResource(v));
    }
    if (!v) return this.verifyNotFound(res, record);
    this.sendJson(res, record, 200, this.verificationResource(v));
  }

  /** Verification resource JSON (OpenAPI `verify.v2.service.verification`; ISO 8601 dates). */
  private verificationResource(v: SimVerification): Record<string, unknown> {
    return {
      ...verificationIdentity(v),
      lookup: {},
      amount: null,
      payee: null,
      send_code_attempts: v.sendCodeAttempts.map((a) => ({ time: a.time, channel: a.channel, attempt_sid: a.attemptSid })),
      date_created: v.dateCreated,
      date_updated: v.dateUpdated,
      sna: null,
      url: `${this.server.origin}/v2/Services/${v.serviceSid}/Verifications/${v.sid}`,
    };
  }

  /** Message resource JSON exactly in the 2010 API shape (snake_case, strings for counts, RFC 2822 dates). */
  private toResource(m: SimMessage): Record<string, unknown> {
    const uri = `/${API_VERSION}/Accounts/${m.accountSid}/Messages/${m.sid}`;
    return {
      account_sid: m.accountSid,
      api_version: API_VERSION,
      body: m.body,
      date_created: m.dateCreated,
      date_sent: m.dateSent,
      date_updated: m.dateUpdated,
      direction: m.direction,
      error_code: m.errorCode,
      error_message: m.errorCode !== null ? (ASYNC_ERROR_MESSAGES[m.errorCode] ?? "Unknown error") : null,
      from: m.from,
      messaging_service_sid: m.messagingServiceSid,
      num_media: String(m.mediaUrl.length),
      num_segments: m.numSegments,
      price: m.price,
      price_unit: m.price !== null ? "USD" : null,
      sid: m.sid,
      status: m.status,
      subresource_uris: { media: `${uri}/Media.json` },
      to: m.to,
      uri: `${uri}.json`,
    };
  }

  private send(res: http.ServerResponse, record: SimRequest, e: TwilioErrorSpec, extraHeaders: Record<string, string> = {}): void {
    record.code = e.code;
    this.sendJson(res, record, e.status, errorBody(e), extraHeaders);
  }

  private sendJson(
    res: http.ServerResponse,
    record: SimRequest,
    status: number,
    payload: unknown,
    extraHeaders: Record<string, string> = {},
  ): void {
    record.status = status;
    if (status === 429) this.rejected429Count += 1;
    this.requests.push(record);
    const key = this.concurrencyKeys.get(record) ?? /^\/2010-04-01\/Accounts\/([^/.]+)/.exec(record.path)?.[1] ?? "-";
    writeJson(res, status, payload, {
      "Twilio-Request-Id": "RQ" + hex32(),
      "Twilio-Request-Duration": ((Date.now() - record.at) / 1000).toFixed(3),
      "Twilio-Concurrent-Requests": String(this.inFlight.get(key) ?? 0),
      ...extraHeaders,
    });
    this.log(`${record.method} ${record.path} -> ${status}${record.code ? " (" + record.code + ")" : ""}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// small internals
// ---------------------------------------------------------------------------------------------------------------------

/** The leading fields shared by the Verification and VerificationCheck resources, in Twilio's order. */
function verificationIdentity(v: SimVerification): Record<string, unknown> {
  return { sid: v.sid, service_sid: v.serviceSid, account_sid: v.accountSid, to: v.to, channel: v.channel, status: v.status, valid: v.valid };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function tamperSignature(sig: string): string {
  const i = Math.floor(sig.length / 2);
  const c = sig[i] === "A" ? "B" : "A";
  return sig.slice(0, i) + c + sig.slice(i + 1);
}

function defaultCodeFor(status: number): number {
  if (status === 429) return 20429;
  if (status === 401) return 20003;
  if (status === 404) return 20404;
  if (status === 503) return 20503;
  if (status >= 500) return 20500;
  return 20001;
}

function defaultMessageFor(status: number): string {
  if (status === 429) return "Too Many Requests";
  if (status === 401) return "Authenticate";
  if (status === 404) return "The requested resource was not found";
  if (status === 503) return "Service Unavailable";
  if (status >= 500) return "Internal Server Error";
  return "Bad Request";
}
