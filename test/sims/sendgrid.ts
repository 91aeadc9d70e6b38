/**
 * Local Twilio SendGrid simulator for the ml-connector test suites.
 *
 * A `node:http` server on 127.0.0.1 (port 0) serving `POST /v3/mail/send` the way SendGrid's v3 API does, plus a
 * signed Event Webhook sender.
 *
 * Followed documents:
 * - Mail Send: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send (202, empty body, `X-Message-Id`)
 * - Mail Send errors: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors (400 `{errors:[{message, field, help}]}`)
 * - Authentication: `Authorization: Bearer <API key>`; 401 `{errors:[{field:null, message, help:null}]}`
 * - Rate limits: https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits
 *   (429 with `X-RateLimit-Limit/Remaining/Reset`)
 * - Event Webhook: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event (JSON array of events;
 *   custom arguments flattened into each event; `sg_message_id` = `<X-Message-Id>.<filter suffix>`)
 * - Signed Event Webhook: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
 *   ECDSA P-256 over `timestamp + raw body`, SHA-256, base64 DER signature in `X-Twilio-Email-Event-Webhook-Signature`,
 *   unix-seconds timestamp in `X-Twilio-Email-Event-Webhook-Timestamp`; the verification key is the base64 DER (SPKI)
 *   public key, as SendGrid's settings page shows it. Checked against @sendgrid/eventwebhook's `verifySignature`
 *   (starkbank-ecdsa: sha256 of the UTF-8 string `timestamp + payload`). Bodies are serialised like SendGrid's:
 *   events joined by ",\r\n", ending "]\r\n", so only a verifier that uses the raw bytes succeeds.
 *
 * Deliberately not modelled: templates, attachments, scheduling (`send_at`), sandbox mode, subusers, batch ids,
 * categories, tracking settings, account events. The simulator never writes to the console.
 */
import type http from "node:http";
import crypto from "node:crypto";
import { SimServer, readBody, sendRequest, splitUrl, writeJson } from "./http-server";

/** Default API key accepted by the simulator (SendGrid keys start with "SG."). */
export const DEFAULT_SENDGRID_KEY = "SG.mlcSimKey0123456789abc.Zm9vYmFyYmF6cXV4cXV1eHNlY3JldDAxMjM0NTY3ODk";

const HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html";

/** One error of SendGrid's error body. */
export interface SendGridSimError {
  message: string;
  field: string | null;
  help: string | null;
}

/** An accepted e-mail (`SendGridSim.mails`). */
export interface SimMail {
  /** `X-Message-Id` answered (22 characters, base64url alphabet). */
  messageId: string;
  from: { email: string; name?: string };
  /** Every `to` address of every personalization, in order. */
  to: string[];
  subject: string;
  /** `content` blocks as sent (`[{type:"text/plain"|"text/html", value}]`). */
  content: { type: string; value: string }[];
  /** Top-level `custom_args` merged with the personalization's (personalization wins), as events carry them. */
  customArgs: Record<string, string>;
  /** The request body as received (parsed). */
  body: Record<string, unknown>;
}

/** One request to the REST side (`SendGridSim.requests`). */
export interface SimSendGridRequest {
  method: string;
  path: string;
  status: number;
  /** `ok` (known key), `bad` (unknown key), `none` (no Bearer header). */
  auth: "ok" | "bad" | "none";
  /** Index in `apiKeys` of the key used (-1 when none or unknown). */
  keyIndex: number;
  /** Parsed JSON body (undefined when not JSON). */
  body?: unknown;
}

/** A fault for the next `POST /v3/mail/send` requests that pass authentication. */
export interface SendGridSimFault {
  /** Answer this status instead (429 adds the rate-limit headers; 5xx a generic error body). */
  status: number;
  /** `Retry-After` value in seconds (429 only; SendGrid itself sends `X-RateLimit-Reset`). */
  retryAfter?: number;
  /** Error body entries to answer (default: a generic message for the status). */
  errors?: SendGridSimError[];
}

/** Options of {@link SendGridSim.sendEvents}. */
export interface SendEventsOptions {
  /** Corrupt the signature (one base64 character changed). */
  tamper?: boolean;
  /** Leave out both signature headers. */
  omitSignature?: boolean;
  /** Timestamp header (unix seconds); default now. */
  timestamp?: string;
  /** Sign with another key pair (a forger's), e.g. `crypto.generateKeyPairSync("ec", {namedCurve: "prime256v1"}).privateKey`. */
  signWith?: crypto.KeyObject;
  /** Send this body instead of the signed one (the signature stays that of the events): a body altered in transit. */
  replaceBody?: string;
}

/** One Event Webhook POST (`SendGridSim.eventPosts`). */
export interface EventPostResult {
  url: string;
  /** HTTP status of the receiver; 0 when the request failed (then `error`). */
  status: number;
  responseBody: string;
  rawBody: string;
  signature: string;
  timestamp: string;
  events: Record<string, unknown>[];
  error?: string;
}

/** Events `deliver()` can drive an e-mail to. */
export type DeliverEvent = "delivered" | "bounce" | "dropped" | "deferred" | "open";

const EMAIL_RE = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

function err(message: string, field: string | null, anchor: string | null): SendGridSimError {
  return { message, field, help: anchor ? `${HELP}#${anchor}` : null };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/**
 * The simulator:
 * ```ts
 * const sg = new SendGridSim();
 * await sg.start();                               // "http://127.0.0.1:<port>"
 * sg.eventWebhookUrl = "<node-red>/mlc/twilio/status/sendgrid";
 * // … send through the code under test with apiHost = sg.url …
 * await sg.deliver(sg.mails[0].messageId, "delivered");   // signed [processed, delivered] batch
 * ```
 */
export class SendGridSim {
  /** Accepted e-mails, in order. */
  readonly mails: SimMail[] = [];
  /** Every REST request, in order. */
  readonly requests: SimSendGridRequest[] = [];
  /** Every Event Webhook POST made. */
  readonly eventPosts: EventPostResult[] = [];
  /** API keys accepted. */
  readonly apiKeys: string[];
  /** The Event Webhook verification key: base64 DER (SPKI) ECDSA P-256 public key, as SendGrid shows it. */
  readonly publicKeyBase64: string;
  /** The account's Event Webhook URL (SendGrid: one per account); used by `deliver()`. */
  eventWebhookUrl: string | null = null;

  private readonly privateKey: crypto.KeyObject;
  private readonly faults: SendGridSimFault[] = [];
  private readonly server = new SimServer({
    name: "SendGridSim",
    handler: (req, res) => this.handle(req, res),
    onError: () => ({ errors: [err("internal error", null, null)] }),
    errorContentType: "application/json",
  });

  constructor(opts: { apiKeys?: string[] } = {}) {
    this.apiKeys = [...(opts.apiKeys ?? [DEFAULT_SENDGRID_KEY])];
    const { publicKey, privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    this.privateKey = privateKey;
    this.publicKeyBase64 = publicKey.export({ type: "spki", format: "der" }).toString("base64");
  }

  /** Start on 127.0.0.1, ephemeral port; resolves the base URL. Idempotent. */
  start(): Promise<string> {
    return this.server.start();
  }

  /** Close the server and every open socket. Idempotent. */
  stop(): Promise<void> {
    return this.server.stop();
  }

  /** Base URL; throws before `start()`. */
  get url(): string {
    return this.server.url;
  }

  /** Clear ledgers and faults (keeps the key pair, the server and `eventWebhookUrl`). */
  reset(): void {
    this.mails.length = 0;
    this.requests.length = 0;
    this.eventPosts.length = 0;
    this.faults.length = 0;
  }

  /** Queue `fault` for the next `count` authenticated mail sends. */
  injectFault(fault: SendGridSimFault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push({ ...fault });
  }

  /** The mail with this X-Message-Id. */
  getMail(messageId: string): SimMail | undefined {
    return this.mails.find((m) => m.messageId === messageId);
  }

  /** Base64 DER ECDSA signature of `timestamp + payload` (SHA-256), as SendGrid signs Event Webhook requests. */
  sign(payload: string, timestamp: string, key: crypto.KeyObject = this.privateKey): string {
    return crypto.sign("sha256", Buffer.from(timestamp + payload, "utf8"), key).toString("base64");
  }

  /** Serialise events the way SendGrid's Event Webhook does: `[` + events joined by `,\r\n` + `]\r\n`. */
  static serialise(events: Record<string, unknown>[]): string {
    return "[" + events.map((e) => JSON.stringify(e)).join(",\r\n") + "]\r\n";
  }

  /**
   * Build the events SendGrid would send for `messageId`, one per recipient: `email, timestamp, smtp-id, event,
   * sg_event_id, sg_message_id` (`<messageId>.filterdrecv-…`), the e-mail's custom args flattened in, and the
   * event's own fields (`response` for delivered/deferred, `reason/status/type` for bounce, `reason` for dropped,
   * `useragent/ip` for open).
   * @throws Error for an unknown messageId
   */
  eventsFor(messageId: string, event: string, extra: Record<string, unknown> = {}): Record<string, unknown>[] {
    const mail = this.getMail(messageId);
    if (!mail) throw new Error(`SendGridSim: unknown message ${messageId}`);
    const ts = Math.floor(Date.now() / 1000);
    return mail.to.map((email, i) => {
      const base: Record<string, unknown> = {
        email,
        timestamp: ts,
        "smtp-id": `<${messageId}@ismtpd0001p1mdw1.sendgrid.net>`,
        event,
        sg_event_id: crypto.randomBytes(16).toString("base64url"),
        sg_message_id: `${messageId}.filterdrecv-5bd4b4b9b6-x2k9q-1-64F0C0A1-${(10 + i).toString(16).toUpperCase()}.${i}`,
        ...mail.customArgs,
      };
      if (event === "delivered") Object.assign(base, { response: "250 2.0.0 OK", tls: 1, ip: "167.89.0.1" });
      if (event === "deferred") Object.assign(base, { response: "451 4.7.1 Greylisted, try again later", attempt: "1" });
      if (event === "bounce") Object.assign(base, { reason: "550 5.1.1 The email account that you tried to reach does not exist", status: "5.1.1", type: "bounce", bounce_classification: "Invalid Address" });
      if (event === "dropped") Object.assign(base, { reason: "Bounced Address", status: "5.0.0" });
      if (event === "open") Object.assign(base, { useragent: "Mozilla/5.0", ip: "203.0.113.7", sg_machine_open: false });
      return { ...base, ...extra };
    });
  }

  /**
   * POST `events` to `url` as one signed Event Webhook request (headers `Content-Type: application/json`,
   * `User-Agent: SendGrid Event API`, the two signature headers). Receiver failures do not throw (status 0).
   */
  async sendEvents(url: string, events: Record<string, unknown>[], opts: SendEventsOptions = {}): Promise<EventPostResult> {
    const rawBody = SendGridSim.serialise(events);
    const timestamp = opts.timestamp ?? String(Math.floor(Date.now() / 1000));
    let signature = this.sign(rawBody, timestamp, opts.signWith);
    if (opts.tamper) signature = tamper(signature);
    const body = opts.replaceBody ?? rawBody;
    const headers: Record<string, string> = { "Content-Type": "application/json", "User-Agent": "SendGrid Event API" };
    if (!opts.omitSignature) {
      headers["X-Twilio-Email-Event-Webhook-Signature"] = signature;
      headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp;
    }
    const answer = await sendRequest(url, { headers, body, timeoutMs: 15000 });
    const result: EventPostResult = { url, status: answer.status, responseBody: answer.body, rawBody: body, signature, timestamp, events };
    if (answer.error !== undefined) result.error = answer.error;
    this.eventPosts.push(result);
    return result;
  }

  /**
   * Drive an e-mail with one signed batch to `eventWebhookUrl`: `[processed, <event>]` (`open` also gets
   * `delivered` before it).
   * @throws Error when no Event Webhook URL is set or the message is unknown
   */
  deliver(messageId: string, event: DeliverEvent = "delivered", opts: SendEventsOptions = {}): Promise<EventPostResult> {
    if (!this.eventWebhookUrl) return Promise.reject(new Error("SendGridSim: eventWebhookUrl is not set"));
    const seq = event === "open" ? ["processed", "delivered", "open"] : ["processed", event];
    const events = seq.flatMap((e) => this.eventsFor(messageId, e));
    return this.sendEvents(this.eventWebhookUrl, events, opts);
  }

  // -------------------------------------------------------------------------------------------------------------
  // REST side
  // -------------------------------------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = (await readBody(req)).toString("utf8");
    const { path } = splitUrl(req.url);
    const method = req.method ?? "GET";
    const authz = String(req.headers.authorization ?? "");
    const m = /^Bearer (.+)$/.exec(authz);
    const keyIndex = m ? this.apiKeys.indexOf(m[1]) : -1;
    const auth: SimSendGridRequest["auth"] = !m ? "none" : keyIndex >= 0 ? "ok" : "bad";
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = undefined;
    }
    const answer = (status: number, payload: unknown, headers: Record<string, string> = {}): void => {
      this.requests.push({ method, path, status, auth, keyIndex, body });
      writeJson(res, status, payload, headers, "application/json");
    };

    if (path === "/v3/scopes" && method === "GET") {
      // API Keys → "Retrieve a list of scopes for which this user has access": what Test connection calls.
      if (auth === "none") return answer(401, { errors: [err("authorization required", null, null)] });
      if (auth === "bad") return answer(401, { errors: [err("The provided authorization grant is invalid, expired, or revoked", null, null)] });
      return answer(200, { scopes: ["mail.send", "user.profile.read"] });
    }
    if (path !== "/v3/mail/send") return answer(404, { errors: [err("resource not found", null, null)] });
    if (method !== "POST") return answer(405, { errors: [err("method not allowed", null, null)] });
    if (auth === "none") return answer(401, { errors: [err("authorization required", null, null)] });
    if (auth === "bad") return answer(401, { errors: [err("The provided authorization grant is invalid, expired, or revoked", null, null)] });
    const fault = this.faults.shift();
    if (fault) {
      if (fault.status === 429) {
        const reset = Math.floor(Date.now() / 1000) + (fault.retryAfter ?? 1);
        return answer(429, { errors: [err("too many requests", null, null)] }, { "X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": String(reset), ...(fault.retryAfter !== undefined ? { "Retry-After": String(fault.retryAfter) } : {}) });
      }
      return answer(fault.status, { errors: fault.errors ?? [err(fault.status >= 500 ? "Internal server error" : "Bad Request", null, null)] });
    }
    if (!isObj(body)) return answer(400, { errors: [err("Bad Request", null, null)] });

    const errors = validate(body);
    if (errors.length) return answer(400, { errors });

    const personalizations = body.personalizations as Record<string, unknown>[];
    const from = body.from as { email: string; name?: string };
    const topArgs = isObj(body.custom_args) ? (body.custom_args as Record<string, string>) : {};
    const p0Args = isObj(personalizations[0].custom_args) ? (personalizations[0].custom_args as Record<string, string>) : {};
    const messageId = crypto.randomBytes(16).toString("base64url").slice(0, 22);
    this.mails.push({
      messageId,
      from: { email: from.email, ...(from.name ? { name: from.name } : {}) },
      to: personalizations.flatMap((p) => (p.to as { email: string }[]).map((t) => t.email)),
      subject: String(personalizations[0].subject ?? body.subject ?? ""),
      content: (body.content as { type: string; value: string }[]).map((c) => ({ type: c.type, value: c.value })),
      customArgs: { ...topArgs, ...p0Args },
      body,
    });
    return answer(202, undefined, { "X-Message-Id": messageId });
  }
}

/** SendGrid's Mail Send validation (the subset the package can trigger), all errors at once. */
function validate(body: Record<string, unknown>): SendGridSimError[] {
  const errors: SendGridSimError[] = [];
  const ps = body.personalizations;
  if (!Array.isArray(ps) || ps.length === 0) {
    errors.push(err("The personalizations field is required and must have at least one personalization.", "personalizations", "message.personalizations"));
  } else {
    ps.forEach((p, i) => {
      const to = isObj(p) ? p.to : undefined;
      if (!Array.isArray(to) || to.length === 0) {
        errors.push(err("The to array is required for all personalization objects, and must have at least one email object with a valid email address.", `personalizations.${i}.to`, "message.personalizations.to"));
        return;
      }
      to.forEach((t, j) => {
        const email = isObj(t) ? t.email : undefined;
        if (typeof email !== "string" || !EMAIL_RE.test(email)) errors.push(err("Does not contain a valid address.", `personalizations.${i}.to.${j}.email`, "message.personalizations.to"));
      });
    });
  }
  const from = body.from;
  if (!isObj(from) || typeof from.email !== "string" || from.email === "") {
    errors.push(
      err(
        'The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or {"email" : "example@example.com", "name" : "Example Recipient"}.',
        "from.email",
        "message.from",
      ),
    );
  } else if (!EMAIL_RE.test(from.email)) {
    errors.push(err("The from email does not contain a valid address.", "from.email", "message.from"));
  }
  const everyPersonalizationHasSubject = Array.isArray(ps) && ps.length > 0 && ps.every((p) => isObj(p) && typeof p.subject === "string" && p.subject !== "");
  if (!(typeof body.subject === "string" && body.subject !== "") && !everyPersonalizationHasSubject) {
    errors.push(err("The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.", "subject", "message.subject"));
  }
  const content = body.content;
  if (!Array.isArray(content) || content.length === 0) {
    errors.push(err("Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.", "content", "message.content"));
  } else {
    content.forEach((c, i) => {
      if (!isObj(c) || typeof c.value !== "string" || c.value === "") errors.push(err("The content value must be a string at least one character in length.", `content.${i}.value`, "message.content.value"));
      else if (typeof c.type !== "string" || c.type === "") errors.push(err("The content type must be a string at least one character in length.", `content.${i}.type`, "message.content.type"));
    });
  }
  for (const args of [body.custom_args, ...(Array.isArray(ps) ? ps.map((p) => (isObj(p) ? p.custom_args : undefined)) : [])]) {
    if (args !== undefined && (!isObj(args) || Object.values(args).some((v) => typeof v !== "string"))) {
      // Wording approximated: SendGrid documents that custom argument values must be strings, not its exact message.
      errors.push(err("Custom args values must be strings.", "custom_args", "message.custom_args"));
      break;
    }
  }
  return errors;
}

/** Change one base64 character of the signature's middle (same length, still base64). */
function tamper(signature: string): string {
  const i = Math.floor(signature.length / 2);
  const c = signature[i] === "A" ? "B" : "A";
  return signature.slice(0, i) + c + signature.slice(i + 1);
}
