/**
 * Validation of Twilio's `X-Twilio-Signature` on status callbacks and other webhooks, with the official
 * `twilio` package's validator (https://www.twilio.com/docs/usage/webhooks/webhooks-security).
 *
 * The URL must be the one Twilio called: it is rebuilt from the configured public base URL, the route
 * path and the query string exactly as received, never from Host / X-Forwarded-* headers.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import twilio from "twilio";

export interface WebhookToValidate {
  /** Primary Auth Token of the account (API key secrets never sign webhooks). */
  authToken: string;
  /** Value of the X-Twilio-Signature header ("" when missing). */
  signature: string;
  /** Full public URL Twilio called, with the query string as received. */
  url: string;
  /** Content-Type of the request. */
  contentType: string;
  /** Raw body bytes. */
  rawBody: Buffer;
  /** Parsed form parameters (repeated keys as arrays), for form bodies. */
  params?: Record<string, string | string[]>;
}

/**
 * True when the signature is valid. Form bodies: HMAC-SHA1 over URL + sorted params.
 * JSON bodies: the URL carries `bodySHA256`, the signature covers the URL only and the body's SHA-256
 * must equal that query value.
 */
export function validateTwilioWebhook(w: WebhookToValidate): boolean {
  if (!w.signature || !w.authToken) return false;
  if (/^application\/json/i.test(w.contentType)) {
    let expectedHash: string | null;
    try {
      expectedHash = new URL(w.url).searchParams.get("bodySHA256");
    } catch {
      return false;
    }
    if (!expectedHash) return false;
    const actual = createHash("sha256").update(w.rawBody).digest("hex");
    const a = Buffer.from(actual);
    const b = Buffer.from(expectedHash.toLowerCase());
    if (a.length !== b.length || !timingSafeEqual(a, b)) return false;
    return twilio.validateRequest(w.authToken, w.signature, w.url, {});
  }
  return twilio.validateRequest(w.authToken, w.signature, w.url, (w.params ?? {}) as Record<string, string>);
}

/** Parse an application/x-www-form-urlencoded body; repeated keys become arrays. */
export function parseForm(raw: Buffer | string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(raw.toString("utf8"))) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else out[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
