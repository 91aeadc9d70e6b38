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

/** Most parameters a webhook form body may carry (Twilio sends a few dozen; body-parser's default is 1000). */
export const MAX_FORM_PARAMS = 1000;

/**
 * Parse an application/x-www-form-urlencoded body (UTF-8, WHATWG URLSearchParams rules); repeated keys
 * become arrays. Every key is an own property of a plain object ("__proto__" included, never the prototype).
 * @param maxParams most parameters accepted (default MAX_FORM_PARAMS)
 * @returns the parameters, or undefined when there are more than `maxParams`
 */
export function parseForm(raw: Buffer | string, maxParams = MAX_FORM_PARAMS): Record<string, string | string[]> | undefined {
  const out: Record<string, string | string[]> = {};
  let count = 0;
  for (const [k, v] of new URLSearchParams(raw.toString("utf8"))) {
    if (++count > maxParams) return undefined;
    const prev = Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined;
    if (prev === undefined) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}
