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
 *
 * Deliberately not modelled: XML responses, scheduled messages (SendAt), Calls, Verify, media sub-resources,
 * message update/delete, regional hosts. Everything is "test credentials" style: every configured account behaves
 * like an account using Twilio's test credentials (magic numbers apply).
 *
 * The simulator is quiet: it never writes to the console. Pass `log` to see what it does.
 */
import http from "node:http";
import https from "node:https";
import crypto from "node:crypto";
import type { AddressInfo, Socket } from "node:net";

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
  /** Recipients that have opted out (replied STOP): sends to them fail 400 / 21610. Also see `optOut()`. */
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
  /** Time the request arrived, ms since epoch. */
  at: number;
}

/** Result of one status-callback delivery attempt. */
export interface CallbackResult {
  /** The literal URL called (the message's StatusCallback, fragment included as given). */
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
}

/**
 * A fault for the next POST …/Messages.json requests (`injectFault`). Applied after authentication succeeded.
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
  /** With `status`: create the message anyway before answering the error. */
  createMessage?: boolean;
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
const MAX_BODY_CHARS = 1600;
const MAX_MEDIA = 10;
const MAX_REQUEST_BYTES = 1024 * 1024;

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

function first(params: Record<string, string | string[]>, name: string): string | undefined {
  const v = params[name];
  return Array.isArray(v) ? v[0] : v;
}

function all(params: Record<string, string | string[]>, name: string): string[] {
  const v = params[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
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

function err(status: number, code: number, message: string): TwilioErrorSpec {
  return { status, code, message };
}

/** Twilio's 2010 API error body. */
function errorBody(e: TwilioErrorSpec): Record<string, unknown> {
  return { code: e.code, message: e.message, more_info: `https://www.twilio.com/docs/errors/${e.code}`, status: e.status };
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
 * Anything else → 404 (20404); a known path with another method → 405 (20004).
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
  /** Every status-callback attempt made, in order. */
  readonly callbacks: CallbackResult[] = [];

  private readonly accounts: TwilioSimAccount[];
  private readonly apiKeys: TwilioSimApiKey[];
  private readonly senders: Set<string>;
  private readonly senderList: string[];
  private readonly services: Set<string>;
  private readonly initialOptOuts: string[];
  private readonly optOuts = new Set<string>();
  private readonly faults: SimFault[] = [];
  private readonly inFlight = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private readonly opts: TwilioSimOptions;
  private server: http.Server | null = null;
  private baseUrl = "";

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
  }

  /** Start listening on 127.0.0.1, ephemeral port. Resolves the base URL `http://127.0.0.1:<port>`. Idempotent. */
  async start(): Promise<string> {
    if (this.server) return this.baseUrl;
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        this.log(`internal error: ${String(e)}`);
        if (!res.headersSent) {
          res.writeHead(500, { "Content-Type": "application/json; charset=utf-8" });
          res.end(JSON.stringify(errorBody(err(500, 20500, "Internal Server Error"))));
        } else {
          res.destroy();
        }
      });
    });
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.log(`listening on ${this.baseUrl}`);
    return this.baseUrl;
  }

  /** Close the server and destroy every open socket (keep-alive included). Idempotent. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
    this.log("stopped");
  }

  /** Base URL `http://127.0.0.1:<port>`; throws before `start()`. */
  get url(): string {
    if (!this.server) throw new Error("TwilioSim not started");
    return this.baseUrl;
  }

  /**
   * Queue `fault` for the next `count` (default 1) `POST …/Messages.json` requests that pass authentication.
   * Faults are consumed in FIFO order, one per request. See {@link SimFault}.
   */
  injectFault(fault: SimFault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push({ ...fault });
  }

  /** Number of injected faults not consumed yet. */
  get pendingFaults(): number {
    return this.faults.length;
  }

  /** Record an opt-out (the recipient replied STOP): later sends to `number` fail 400 / 21610. */
  optOut(number: string): void {
    this.optOuts.add(stripChannel(number));
  }

  /** Undo `optOut` (the recipient replied START). */
  optIn(number: string): void {
    this.optOuts.delete(stripChannel(number));
  }

  /** The ledger entry for `sid`, or undefined. */
  getMessage(sid: string): SimMessage | undefined {
    return this.messages.find((m) => m.sid === sid);
  }

  /** Clear messages, requests, callbacks, faults; restore the opt-out list given in the options. Keeps the server running. */
  reset(): void {
    this.messages.length = 0;
    this.requests.length = 0;
    this.callbacks.length = 0;
    this.faults.length = 0;
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
      const now = new Date();
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
        const r = await this.postCallback(target, params, signature, signedUrl, idempotencyToken, i > 0);
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
  // internals
  // -------------------------------------------------------------------------------------------------------------------

  private log(line: string): void {
    this.opts.log?.(line);
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

  private postCallback(
    target: string,
    params: Record<string, string>,
    signature: string,
    signedUrl: string,
    idempotencyToken: string,
    duplicate: boolean,
  ): Promise<CallbackResult> {
    const body = new URLSearchParams(params).toString();
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      "user-agent": "TwilioProxy/1.1",
      accept: "*/*",
      "i-twilio-idempotency-token": idempotencyToken,
      "x-home-region": "us1",
      "content-length": String(Buffer.byteLength(body)),
    };
    if (signature) headers["x-twilio-signature"] = signature;
    const base: Omit<CallbackResult, "status" | "body"> = {
      url: target,
      params: { ...params },
      signature,
      signedUrl,
      idempotencyToken,
      headers: { ...headers },
      duplicate,
    };
    const timeoutMs = this.opts.callbackTimeoutMs ?? 15000;
    return new Promise<CallbackResult>((resolve) => {
      let done = false;
      const finish = (r: CallbackResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.log(`callback ${params.MessageStatus} -> ${target}: ${r.status}${r.error ? " " + r.error : ""}`);
        resolve(r);
      };
      const timer = setTimeout(() => {
        finish({ ...base, status: 0, body: "", error: `timeout after ${timeoutMs} ms` });
        request?.destroy();
      }, timeoutMs);
      let request: http.ClientRequest | undefined;
      try {
        const u = new URL(target);
        // Request line from the literal URL (no re-encoding), fragment removed as every HTTP client does.
        const afterAuthority = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "").split("#")[0];
        const path = afterAuthority.startsWith("/") ? afterAuthority : "/" + afterAuthority;
        const reqHeaders: Record<string, string> = { ...headers };
        if (u.username || u.password) {
          // Twilio supports Basic credentials embedded in the callback URL (they are part of the signed URL).
          const cred = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
          reqHeaders.authorization = "Basic " + Buffer.from(cred, "utf8").toString("base64");
        }
        const lib = u.protocol === "https:" ? https : http;
        request = lib.request(
          {
            method: "POST",
            hostname: u.hostname.replace(/^\[|\]$/g, ""),
            port: u.port || (u.protocol === "https:" ? 443 : 80),
            path,
            headers: reqHeaders,
            agent: false,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => finish({ ...base, status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
            res.on("error", (e) => finish({ ...base, status: 0, body: "", error: e.message }));
          },
        );
        request.on("error", (e) => finish({ ...base, status: 0, body: "", error: e.message }));
        request.end(body);
      } catch (e) {
        finish({ ...base, status: 0, body: "", error: e instanceof Error ? e.message : String(e) });
      }
    });
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
    const at = Date.now();
    const rawUrl = req.url ?? "/";
    const qIndex = rawUrl.indexOf("?");
    const path = qIndex >= 0 ? rawUrl.slice(0, qIndex) : rawUrl;
    const query = qIndex >= 0 ? rawUrl.slice(qIndex + 1) : "";
    const method = (req.method ?? "GET").toUpperCase();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      headers[k] = k === "authorization" ? "[redacted]" : Array.isArray(v) ? v.join(", ") : v;
    }
    const auth = this.authenticate(req.headers.authorization);
    const record: SimRequest = { method, path, status: 0, auth: auth.kind, query, headers, at };
    if (auth.credentialSid) record.credentialSid = auth.credentialSid;

    // Per-account concurrency accounting (the account named in the path).
    const accountMatch = /^\/2010-04-01\/Accounts\/([^/.]+)/.exec(path);
    const concurrencyKey = accountMatch ? accountMatch[1] : "-";
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
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^${base}([^/]+)\\.json$`).exec(path))) {
      if (method !== "GET") return this.send(res, record, err(405, 20004, "Method not allowed"));
      return this.fetchAccount(res, record, auth, decodeURIComponent(m[1]));
    }
    if ((m = new RegExp(`^${base}([^/]+)/Messages\\.json$`).exec(path))) {
      const accountSid = decodeURIComponent(m[1]);
      if (method === "POST") return this.createMessage(req, res, record, auth, accountSid, form);
      if (method === "GET") return this.listMessages(res, record, auth, accountSid, query);
      return this.send(res, record, err(405, 20004, "Method not allowed"));
    }
    if ((m = new RegExp(`^${base}([^/]+)/Messages/([^/]+)\\.json$`).exec(path))) {
      if (method !== "GET") return this.send(res, record, err(405, 20004, "Method not allowed"));
      return this.fetchMessage(res, record, auth, decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    }
    this.send(res, record, err(404, 20404, `The requested resource ${path} was not found`));
  }

  /** 401 / 20003 unless the credentials are valid for `accountSid`. Returns true when the request may proceed. */
  private authorize(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string): boolean {
    if ((auth.kind === "account" || auth.kind === "apikey") && auth.accountSid === accountSid) return true;
    if (auth.kind !== "none") record.auth = "bad";
    this.send(res, record, err(401, 20003, "Authenticate"), { "WWW-Authenticate": 'Basic realm="Twilio API"' });
    return false;
  }

  private fetchAccount(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string): void {
    if (!this.authorize(res, record, auth, accountSid)) return;
    if (auth.kind === "apikey" && (auth.apiKey?.keyType ?? "standard") !== "main") {
      // Standard keys cannot access the Accounts resource.
      record.auth = "bad";
      this.send(res, record, err(401, 20003, "Authenticate"), { "WWW-Authenticate": 'Basic realm="Twilio API"' });
      return;
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
  private validateCreate(p: Record<string, string | string[]>): TwilioErrorSpec | null {
    const to = first(p, "To");
    const from = first(p, "From") || undefined;
    const mg = first(p, "MessagingServiceSid") || undefined;
    const body = first(p, "Body") ?? "";
    const media = all(p, "MediaUrl").filter((u) => u !== "");
    const contentSid = first(p, "ContentSid") || undefined;
    const statusCallback = first(p, "StatusCallback");

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
    }
    if (body === "" && media.length === 0 && !contentSid) return err(400, 21602, "Message body is required.");
    if (Array.from(body).length > MAX_BODY_CHARS) return err(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    if (media.length > MAX_MEDIA) return err(400, 21623, "Number of media files exceeds allowed limit");
    if (contentSid && !HX_SID.test(contentSid)) return err(400, 21655, "The ContentSid is Invalid.");
    if (statusCallback !== undefined && statusCallback !== "" && !isValidCallbackUrl(statusCallback))
      return err(400, 21609, "Invalid 'StatusCallback'");
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
    if (this.optOuts.has(toNumber)) return err(400, 21610, "Attempt to send to unsubscribed recipient");
    return null;
  }

  private buildMessage(accountSid: string, p: Record<string, string | string[]>): SimMessage {
    const media = all(p, "MediaUrl").filter((u) => u !== "");
    const mg = first(p, "MessagingServiceSid") || null;
    const from = first(p, "From") || null;
    const body = first(p, "Body") ?? "";
    const now = rfc2822();
    const status = mg ? "accepted" : "queued";
    const cb = first(p, "StatusCallback");
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
      params: JSON.parse(JSON.stringify(p)) as Record<string, string | string[]>,
    };
  }

  private async createMessage(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    record: SimRequest,
    auth: AuthResult,
    accountSid: string,
    form: Record<string, string | string[]>,
  ): Promise<void> {
    if (!this.authorize(res, record, auth, accountSid)) return;
    const fault = this.faults.shift();
    const validation = this.validateCreate(form);
    const create = (): SimMessage | null => {
      if (validation) return null;
      const msg = this.buildMessage(accountSid, form);
      this.messages.push(msg);
      record.messageSid = msg.sid;
      this.log(`created ${msg.sid} to ${msg.to} (${msg.status})`);
      return msg;
    };

    if (fault) {
      this.log(`fault ${JSON.stringify(fault)} on ${record.path}`);
      if (fault.dropConnection) {
        create();
        if (fault.delayMs) await sleep(fault.delayMs);
        record.status = 0;
        this.requests.push(record);
        req.socket.destroy();
        return;
      }
      if (fault.status !== undefined) {
        if (fault.createMessage) create();
        if (fault.delayMs) await sleep(fault.delayMs);
        const code = fault.code ?? defaultCodeFor(fault.status);
        const extra: Record<string, string> = {};
        if (fault.retryAfter !== undefined) extra["Retry-After"] = String(fault.retryAfter);
        this.send(res, record, err(fault.status, code, fault.message ?? defaultMessageFor(fault.status)), extra);
        return;
      }
      // delay only: process first, answer late
      const msg = create();
      if (fault.delayMs) await sleep(fault.delayMs);
      if (validation || !msg) return this.send(res, record, validation as TwilioErrorSpec);
      return this.sendJson(res, record, 201, this.toResource(msg));
    }

    const msg = create();
    if (!msg) return this.send(res, record, validation as TwilioErrorSpec);
    this.sendJson(res, record, 201, this.toResource(msg));
  }

  private fetchMessage(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string, sid: string): void {
    if (!this.authorize(res, record, auth, accountSid)) return;
    const msg = this.messages.find((x) => x.sid === sid && x.accountSid === accountSid);
    if (!msg) return this.send(res, record, err(404, 20404, `The requested resource /${API_VERSION}/Accounts/${accountSid}/Messages/${sid}.json was not found`));
    this.sendJson(res, record, 200, this.toResource(msg));
  }

  private listMessages(res: http.ServerResponse, record: SimRequest, auth: AuthResult, accountSid: string, query: string): void {
    if (!this.authorize(res, record, auth, accountSid)) return;
    const q = new URLSearchParams(query);
    const pageSize = Math.min(1000, Math.max(1, Number.parseInt(q.get("PageSize") ?? "50", 10) || 50));
    const page = Math.max(0, Number.parseInt(q.get("Page") ?? "0", 10) || 0);
    const to = q.get("To");
    const from = q.get("From");
    const day = (v: string | null) => (v && /^\d{4}-\d{2}-\d{2}/.test(v) ? v.slice(0, 10) : null);
    const dEq = day(q.get("DateSent"));
    const dLe = day(q.get("DateSent<"));
    const dGe = day(q.get("DateSent>"));
    const matches = this.messages
      .filter((m) => m.accountSid === accountSid)
      .filter((m) => !to || m.to === to)
      .filter((m) => !from || m.from === from)
      .filter((m) => {
        // Twilio filters on date_sent; a message not sent yet is matched on its creation date here.
        const d = new Date(m.dateSent ?? m.dateCreated).toISOString().slice(0, 10);
        return (!dEq || d === dEq) && (!dLe || d <= dLe) && (!dGe || d >= dGe);
      })
      .reverse(); // newest first, as Twilio lists
    const start = page * pageSize;
    const slice = matches.slice(start, start + pageSize);
    const filters = new URLSearchParams();
    for (const [k, v] of q) if (k !== "PageSize" && k !== "Page" && k !== "PageToken") filters.append(k, v);
    const pathBase = `/${API_VERSION}/Accounts/${accountSid}/Messages.json`;
    const pageUri = (n: number, token?: string) => {
      const p = new URLSearchParams(filters);
      p.set("PageSize", String(pageSize));
      p.set("Page", String(n));
      if (token) p.set("PageToken", token);
      return `${pathBase}?${p.toString()}`;
    };
    const hasNext = start + pageSize < matches.length;
    this.sendJson(res, record, 200, {
      first_page_uri: pageUri(0),
      end: slice.length > 0 ? start + slice.length - 1 : start,
      previous_page_uri: page > 0 ? pageUri(page - 1, slice[0] ? "PB" + slice[0].sid : undefined) : null,
      messages: slice.map((m) => this.toResource(m)),
      uri: pageUri(page, q.get("PageToken") ?? undefined),
      page_size: pageSize,
      start,
      next_page_uri: hasNext ? pageUri(page + 1, "PA" + slice[slice.length - 1].sid) : null,
      page,
    });
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
      direction: "outbound-api",
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
    this.requests.push(record);
    const text = JSON.stringify(payload);
    const key = /^\/2010-04-01\/Accounts\/([^/.]+)/.exec(record.path)?.[1] ?? "-";
    res.writeHead(status, {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": String(Buffer.byteLength(text)),
      "Twilio-Request-Id": "RQ" + hex32(),
      "Twilio-Request-Duration": ((Date.now() - record.at) / 1000).toFixed(3),
      "Twilio-Concurrent-Requests": String(this.inFlight.get(key) ?? 0),
      ...extraHeaders,
    });
    res.end(text);
    this.log(`${record.method} ${record.path} -> ${status}${record.code ? " (" + record.code + ")" : ""}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// small internals
// ---------------------------------------------------------------------------------------------------------------------

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

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error("too large"));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
