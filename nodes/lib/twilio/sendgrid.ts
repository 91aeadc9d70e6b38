/**
 * Twilio SendGrid (e-mail): v3 Mail Send through SendGrid's own `@sendgrid/mail`, and the signed Event
 * Webhook through `@sendgrid/eventwebhook`.
 *
 * - One `MailService` per account (config node), never the `@sendgrid/mail` module singleton, so two
 *   accounts never share an API key. Its client's `baseUrl` can be replaced (simulators, egress proxies).
 * - Errors become typed errors: 401/403 → AuthError, 429 → RateLimitedError (retried here with backoff:
 *   SendGrid did not process the request), 400/413 → HttpError "sendgrid_rejected" carrying SendGrid's
 *   `{errors:[{message, field, help}]}` messages, time-outs after the request left → TimeoutError with
 *   `outcomeUnknown`. No error text ever contains the API key (the SDK's axios errors carry it in their
 *   request config, so they are never kept as `cause`).
 * - Every e-mail carries the custom argument `mlc_job_id`; SendGrid copies custom arguments into every
 *   event of that e-mail, which is how an event finds its jobId again.
 *
 * Vendor documents:
 * - Mail Send: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
 * - Mail Send errors: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors
 * - Rate limits: https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits
 * - Event Webhook: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
 * - Signed Event Webhook: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
 * - Custom arguments: https://www.twilio.com/docs/sendgrid/for-developers/sending-email/custom-arguments
 */
import { MailService } from "@sendgrid/mail";
import { EventWebhook } from "@sendgrid/eventwebhook";
import Mustache from "mustache";
import { AuthError, HttpError, MlcError, RateLimitedError, TimeoutError, ValidationError } from "../errors";
import { LRUCache } from "lru-cache";
import { DEFAULT_RETRY_POLICY, parseRetryAfter, RetryPolicy, withRetry } from "../retry";

export type { MailService };

/** Custom argument that carries the jobId into every Event Webhook event of an e-mail. */
export const JOB_ID_ARG = "mlc_job_id";

/** Event Webhook signature headers (lower-case, as Node's `IncomingMessage.headers` has them). */
export const SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature";
export const TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp";

/** The part of `@sendgrid/client`'s Client this module touches (the client every MailService owns). */
interface SendGridClientLike {
  setDefaultRequest(key: string, value: unknown): unknown;
  request(data: { method: string; url: string }): Promise<[{ statusCode: number }, unknown]>;
}

export interface MailServiceOptions {
  /** SendGrid API key ("SG.…"). Kept only inside the MailService's client. */
  apiKey: string;
  /**
   * Replaces scheme and host of every request ("http://127.0.0.1:4020", an egress proxy); "" or undefined =
   * SendGrid's global host https://api.sendgrid.com (use "https://api.eu.sendgrid.com" for EU subusers).
   */
  apiHost?: string;
  /** Per request, ms (axios `timeout`); undefined = none. */
  timeoutMs?: number;
}

/**
 * A dedicated `MailService` for one account.
 * @throws ValidationError code "no_api_key" when the key is empty, "bad_api_key" when it is not a SendGrid
 *   API key ("SG." prefix), "bad_config" when apiHost is not an http(s) URL
 */
export function createMailService(opts: MailServiceOptions): MailService {
  const key = (opts.apiKey ?? "").trim();
  if (!key) throw new ValidationError("No SendGrid API key configured in the Twilio account", { code: "no_api_key" });
  // SendGrid API keys always start with "SG."; the SDK would only print a console warning.
  if (!key.startsWith("SG.")) throw new ValidationError('The SendGrid API key must start with "SG."', { code: "bad_api_key" });
  let baseUrl: string | undefined;
  if (opts.apiHost) {
    let u: URL;
    try {
      u = new URL(opts.apiHost);
    } catch {
      throw new ValidationError("SendGrid API host is not a valid URL", { code: "bad_config" });
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new ValidationError("SendGrid API host must be an http(s) URL", { code: "bad_config" });
    baseUrl = u.origin + u.pathname.replace(/\/*$/, "/");
  }
  const mail = new MailService();
  mail.setApiKey(key); // sets the region host as baseUrl, so the override comes after
  const client = (mail as unknown as { client: SendGridClientLike }).client;
  if (baseUrl) client.setDefaultRequest("baseUrl", baseUrl);
  if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) mail.setTimeout(opts.timeoutMs);
  return mail;
}

// ---------------------------------------------------------------------------------------------------------------------
// Addresses and templates
// ---------------------------------------------------------------------------------------------------------------------

/** An address with an optional display name. */
export interface EmailAddress {
  email: string;
  name?: string;
}

// WHATWG HTML "valid e-mail address", with a dot required in the domain (SendGrid refuses dotless domains).
const EMAIL_RE = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** True for a plain address ("ap@northwind.example"), at most 254 characters. */
export function isValidEmail(value: string): boolean {
  return value.length <= 254 && EMAIL_RE.test(value);
}

/**
 * Parse "ap@northwind.example" or "Accounts Payable <ap@northwind.example>" (ERP contact fields hold both).
 * @returns the address (trimmed; the domain lower-cased) and the display name, or undefined when not a valid address
 */
export function parseEmailAddress(raw: unknown): EmailAddress | undefined {
  if (typeof raw !== "string") return undefined;
  const text = raw.trim();
  const m = /^"?([^"<>]*?)"?\s*<([^<>]+)>$/.exec(text);
  const address = (m ? m[2] : text).trim();
  if (!isValidEmail(address)) return undefined;
  const at = address.lastIndexOf("@");
  const email = address.slice(0, at) + "@" + address.slice(at + 1).toLowerCase();
  const name = m?.[1].trim();
  return name ? { email, name } : { email };
}

/**
 * Render an HTML e-mail body: Mustache over `view` (usually the msg) WITH Mustache's HTML escaping of
 * `{{…}}` values, so an ERP field such as `<script>` or `Smith & Sons` cannot alter the markup;
 * `{{{…}}}` inserts raw HTML on purpose. (lib/template.ts renderTemplate never escapes: SMS and speech are
 * plain text.) https://mustache.github.io/mustache.5.html
 * @throws ValidationError code "bad_template" when the template does not parse
 */
export function renderHtmlTemplate(template: string, view: unknown): string {
  try {
    return Mustache.render(template, view);
  } catch (err) {
    throw new ValidationError(`Template error: ${(err as Error).message}`, { code: "bad_template" });
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Sending
// ---------------------------------------------------------------------------------------------------------------------

/** One e-mail to one recipient. At least one of `text` / `html` is required. */
export interface EmailInput {
  to: EmailAddress | string;
  from: EmailAddress | string;
  subject: string;
  /** text/plain body. */
  text?: string;
  /** text/html body. */
  html?: string;
  /** Custom arguments (string values), copied by SendGrid into every event; include {@link JOB_ID_ARG}. */
  customArgs?: Record<string, string>;
}

export interface SendEmailOptions {
  /** Retries of 429 answers and refused connections (nothing was processed). Default: DEFAULT_RETRY_POLICY. */
  retry?: RetryPolicy;
}

/**
 * Send one e-mail (POST /v3/mail/send).
 * @returns `messageId`: the `X-Message-Id` response header ("" when SendGrid sent none, e.g. sandbox mode);
 *   SendGrid's events carry it as the first dot-separated part of `sg_message_id`
 * @throws ValidationError (request cannot be built), AuthError (401/403), RateLimitedError (429 after the
 *   retries), HttpError code "sendgrid_rejected" (400/413, SendGrid's messages in the text and the first
 *   error's field as `vendorCode`), HttpError http_<status> (other answers), TimeoutError (no answer;
 *   `outcomeUnknown` true when the request had left: never resend blindly)
 */
export async function sendEmail(mail: MailService, input: EmailInput, opts: SendEmailOptions = {}): Promise<{ messageId: string }> {
  if (input.text === undefined && input.html === undefined) throw new ValidationError("Nothing to send: the e-mail has no body", { code: "empty_body" });
  const data = {
    to: input.to,
    from: input.from,
    subject: input.subject,
    ...(input.text !== undefined ? { text: input.text } : {}),
    ...(input.html !== undefined ? { html: input.html } : {}),
    ...(input.customArgs && Object.keys(input.customArgs).length ? { customArgs: input.customArgs } : {}),
  };
  // Only answers that prove nothing was processed are retried: 429, and a time-out before the request left.
  return withRetry(
    async () => {
      try {
        const [response] = await mail.send(data as Parameters<MailService["send"]>[0]);
        return { messageId: headerValue(response.headers, "x-message-id") ?? "" };
      } catch (err) {
        throw mapSendGridError(err);
      }
    },
    {
      policy: opts.retry ?? DEFAULT_RETRY_POLICY,
      decide: (err) => (err instanceof RateLimitedError ? { retryAfterMs: err.retryAfterMs } : err instanceof TimeoutError && !err.outcomeUnknown ? {} : false),
    },
  );
}

/**
 * Check the API key of a MailService with one harmless call: `GET /v3/scopes` (SendGrid v3 API, API Keys →
 * "Retrieve a list of scopes for which this user has access"); nothing is sent.
 * @returns the key's scopes, e.g. ["mail.send", …]
 * @throws AuthError (auth_failed) when SendGrid refuses the key; the mapped SendGrid error otherwise
 */
export async function checkSendGridKey(mail: MailService): Promise<string[]> {
  const client = (mail as unknown as { client: SendGridClientLike }).client;
  try {
    const [, body] = await client.request({ method: "GET", url: "/v3/scopes" });
    const scopes = (body as { scopes?: unknown } | null)?.scopes;
    return Array.isArray(scopes) ? scopes.map(String) : [];
  } catch (err) {
    throw mapSendGridError(err);
  }
}

function headerValue(headers: unknown, name: string): string | undefined {
  if (!headers || typeof headers !== "object") return undefined;
  const h = headers as Record<string, unknown> & { get?: (n: string) => unknown };
  const v = typeof h.get === "function" ? h.get(name) : h[name] ?? h[name.toLowerCase()];
  if (Array.isArray(v)) return v.length ? String(v[0]) : undefined;
  return v === undefined || v === null || v === "" ? undefined : String(v);
}

/** One entry of SendGrid's error body `{errors:[{message, field, help}]}`. */
export interface SendGridErrorItem {
  message: string;
  field?: string | null;
  help?: string | null;
}

function errorItems(body: unknown): SendGridErrorItem[] {
  let b = body;
  if (typeof b === "string") {
    try {
      b = JSON.parse(b);
    } catch {
      return [];
    }
  }
  const list = (b as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(list)) return [];
  return list
    .filter((e): e is Record<string, unknown> => !!e && typeof e === "object")
    .map((e) => ({ message: String(e.message ?? "").slice(0, 300), field: typeof e.field === "string" ? e.field : null, help: typeof e.help === "string" ? e.help : null }));
}

/** Strip anything that looks like a SendGrid API key or a bearer token from vendor text. */
function scrub(text: string): string {
  return text.replace(/SG\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?/g, "SG.•••").replace(/Bearer\s+\S+/gi, "Bearer •••");
}

/** Connection errors for which the request never left (safe to retry). */
const NOT_SENT_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ERR_INVALID_URL"]);

/**
 * Map whatever `@sendgrid/mail` rejected with to a typed error. Never keeps the original error (axios
 * errors hold the request config, Authorization header included).
 */
export function mapSendGridError(err: unknown): MlcError {
  if (err instanceof MlcError) return err;
  const e = err as { code?: unknown; message?: unknown; response?: { headers?: unknown; body?: unknown; data?: unknown; status?: unknown }; isAxiosError?: boolean };
  const status = typeof e?.code === "number" ? e.code : typeof e?.response?.status === "number" ? e.response.status : undefined;
  if (status !== undefined && e.response) {
    const items = errorItems(e.response.body ?? e.response.data);
    const text = scrub(items.map((i) => (i.field ? `${i.message} (${i.field})` : i.message)).filter(Boolean).join("; "));
    if (status === 401) return new AuthError(`SendGrid refused the API key (401)${text ? `: ${text}` : ""}`, { status });
    // 403: the key lacks the "Mail Send" permission, or the From is not a verified Sender Identity.
    if (status === 403) return new AuthError(`SendGrid refused the request (403)${text ? `: ${text}` : ""}`, { status });
    if (status === 429) {
      const headers = e.response.headers;
      let retryAfterMs = parseRetryAfter(headerValue(headers, "retry-after"));
      const reset = Number(headerValue(headers, "x-ratelimit-reset"));
      if (retryAfterMs === undefined && Number.isFinite(reset) && reset > 0) retryAfterMs = Math.max(0, reset * 1000 - Date.now());
      return new RateLimitedError(`SendGrid rate limit reached (429)${text ? `: ${text}` : ""}`, { status, retryAfterMs });
    }
    if (status === 400 || status === 413) {
      return new HttpError(`SendGrid refused the e-mail (${status})${text ? `: ${text}` : ""}`, status, { code: "sendgrid_rejected", vendorCode: items[0]?.field ?? undefined, retryable: false });
    }
    return new HttpError(`SendGrid answered HTTP ${status}${text ? `: ${text}` : ""}`, status);
  }
  const code = typeof e?.code === "string" ? e.code : undefined;
  if (e?.isAxiosError || code) {
    if (code && NOT_SENT_CODES.has(code)) return new TimeoutError(`SendGrid unreachable (${code})`, { outcomeUnknown: false, code: "connect_failed" });
    const what = code === "ECONNABORTED" || code === "ETIMEDOUT" ? "no answer in time" : `connection failed${code ? ` (${code})` : ""}`;
    return new TimeoutError(`SendGrid: ${what} after the e-mail was sent; it may have been accepted`, { outcomeUnknown: true });
  }
  // Thrown by the SDK's request builder (@sendgrid/helpers Mail.create) before anything was sent.
  const message = e instanceof Error ? e.message : String(err);
  return new ValidationError(`SendGrid request not valid: ${scrub(message).slice(0, 300)}`, { code: "invalid_input" });
}

// ---------------------------------------------------------------------------------------------------------------------
// Event Webhook
// ---------------------------------------------------------------------------------------------------------------------

const eventWebhook = new EventWebhook();
type EcdsaPublicKey = ReturnType<EventWebhook["convertPublicKeyToECDSA"]>;
/** Keys converted so far, the 32 most recently used (one per config node in practice). */
const keyCache = new LRUCache<string, EcdsaPublicKey>({ max: 32 });

/**
 * The account's verification key as an ECDSA key (cached per key text).
 * @throws ValidationError code "bad_verification_key" when it is not a base64 P-256 public key (SPKI DER, as
 *   SendGrid's settings page shows it; PEM accepted too)
 */
function publicKeyOf(publicKeyBase64: string): EcdsaPublicKey {
  const text = publicKeyBase64.trim();
  let key = keyCache.get(text);
  if (!key) {
    try {
      key = eventWebhook.convertPublicKeyToECDSA(text);
    } catch {
      throw new ValidationError("The SendGrid Event Webhook verification key is not a valid ECDSA public key (base64)", { code: "bad_verification_key" });
    }
    keyCache.set(text, key);
  }
  return key;
}

/** Default Event Webhook timestamp tolerance, s: SendGrid publishes no number; 5 minutes is the usual replay window. */
export const DEFAULT_EVENT_TIMESTAMP_TOLERANCE_S = 300;

export interface VerifyEventWebhookOptions {
  /**
   * Largest accepted distance between the signed timestamp and now, s (either direction); 0 or undefined = no
   * check. A genuine but older request is refused like a forgery, so a captured request cannot be replayed
   * after the window; inside it, the status node's dedupe drops repeats.
   */
  toleranceSec?: number;
  /** Current time, ms since the epoch (default Date.now()). */
  nowMs?: number;
}

/**
 * Verify a Signed Event Webhook request: ECDSA (P-256, SHA-256) over `timestamp + rawBody` with the
 * account's verification key, via `@sendgrid/eventwebhook`, and (with `toleranceSec`) a timestamp within
 * that many seconds of now. The body must be the exact bytes received (SendGrid's bodies end with CRLF;
 * re-serialised JSON never verifies).
 * Vendor: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
 * @param publicKeyBase64 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…" from SendGrid's Mail Settings
 * @param signature `X-Twilio-Email-Event-Webhook-Signature` (base64 DER)
 * @param timestamp `X-Twilio-Email-Event-Webhook-Timestamp` (unix seconds, as sent)
 * @returns false for a missing, malformed or wrong signature, or a timestamp outside the tolerance
 * @throws ValidationError code "bad_verification_key" for an unusable key (a configuration error, not a forgery)
 */
export function verifyEventWebhook(publicKeyBase64: string, rawBody: Buffer | string, signature: string | undefined, timestamp: string | undefined, opts: VerifyEventWebhookOptions = {}): boolean {
  const key = publicKeyOf(publicKeyBase64);
  if (!signature || !timestamp || !/^[A-Za-z0-9+/=]+$/.test(signature)) return false;
  if (opts.toleranceSec && opts.toleranceSec > 0) {
    if (!/^\d{1,12}$/.test(timestamp)) return false;
    const ageSec = Math.abs((opts.nowMs ?? Date.now()) / 1000 - Number(timestamp));
    if (ageSec > opts.toleranceSec) return false;
  }
  try {
    return eventWebhook.verifySignature(key, rawBody, signature, timestamp) === true;
  } catch {
    return false;
  }
}

/** One Event Webhook event, as this package uses it. */
export interface SendGridEvent {
  /** The X-Message-Id of the send: `sg_message_id` up to its first "." ("" when the event has none). */
  sgMessageId: string;
  /** SendGrid event name: processed, deferred, delivered, bounce, dropped, open, click, spamreport, unsubscribe… */
  event: string;
  /** Recipient address. */
  email: string;
  /** Event time, unix seconds. */
  timestamp: number;
  /** Value of the {@link JOB_ID_ARG} custom argument, undefined when the e-mail was not sent by this package. */
  jobId?: string;
  /** Bounce/drop reason, deferral response. */
  reason?: string;
  /** `sg_event_id`, when present. */
  sgEventId?: string;
  /** The event object exactly as SendGrid sent it. */
  raw: Record<string, unknown>;
}

function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/**
 * Parse an Event Webhook body: a JSON array of events. Custom arguments arrive flattened into each event;
 * the legacy `unique_args` object is read too. Entries that are not objects with an `event` are skipped.
 * @throws ValidationError code "bad_events" when the body is not a JSON array
 */
export function parseEvents(rawBody: Buffer | string): SendGridEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.isBuffer(rawBody) ? rawBody.toString("utf8") : rawBody);
  } catch {
    throw new ValidationError("Event Webhook body is not JSON", { code: "bad_events" });
  }
  if (!Array.isArray(parsed)) throw new ValidationError("Event Webhook body is not a JSON array", { code: "bad_events" });
  const out: SendGridEvent[] = [];
  for (const item of parsed) {
    if (!item || typeof item !== "object" || Array.isArray(item)) continue;
    const raw = item as Record<string, unknown>;
    const event = str(raw.event);
    if (!event) continue;
    const legacy = raw.unique_args && typeof raw.unique_args === "object" ? (raw.unique_args as Record<string, unknown>) : undefined;
    const jobId = str(raw[JOB_ID_ARG]) ?? str(legacy?.[JOB_ID_ARG]);
    const reason = str(raw.reason) ?? str(raw.response);
    const sgEventId = str(raw.sg_event_id);
    out.push({
      sgMessageId: (str(raw.sg_message_id) ?? "").split(".")[0],
      event: event.toLowerCase(),
      email: str(raw.email) ?? "",
      timestamp: Number(raw.timestamp) || 0,
      ...(jobId ? { jobId } : {}),
      ...(reason ? { reason } : {}),
      ...(sgEventId ? { sgEventId } : {}),
      raw,
    });
  }
  return out;
}

/** A SendGrid event as a Twilio-style message status. */
export interface EmailStatus {
  /** queued | sending | delivered | undelivered | failed | read (the message statuses of lib/twilio/status.ts). */
  status: string;
  /** Text code for negative outcomes: sendgrid_bounce, sendgrid_blocked, sendgrid_dropped, sendgrid_spamreport, sendgrid_unsubscribe. */
  errorCode?: string;
}

/**
 * Map a SendGrid event to a message status: processed → queued, deferred → sending, delivered → delivered,
 * bounce → undelivered (type "blocked" → errorCode sendgrid_blocked), dropped → failed, open → read,
 * spamreport / unsubscribe / group_unsubscribe → undelivered with an error code.
 * @returns undefined for events that say nothing about delivery (click, group_resubscribe, account events)
 */
export function emailStatusOf(ev: Pick<SendGridEvent, "event" | "raw">): EmailStatus | undefined {
  switch (ev.event) {
    case "processed":
      return { status: "queued" };
    case "deferred":
      return { status: "sending" };
    case "delivered":
      return { status: "delivered" };
    case "bounce":
      return { status: "undelivered", errorCode: str(ev.raw.type) === "blocked" ? "sendgrid_blocked" : "sendgrid_bounce" };
    case "dropped":
      return { status: "failed", errorCode: "sendgrid_dropped" };
    case "open":
      return { status: "read" };
    case "spamreport":
      return { status: "undelivered", errorCode: "sendgrid_spamreport" };
    case "unsubscribe":
    case "group_unsubscribe":
      return { status: "undelivered", errorCode: "sendgrid_unsubscribe" };
    default:
      return undefined;
  }
}
