/**
 * Shared check for every Twilio webhook the package serves (status callbacks, inbound messages, call
 * Gather actions): the account's Auth Token, the URL rebuilt from the public base URL + httpNodeRoot + the
 * path and query exactly as received, and the `X-Twilio-Signature` over form or JSON (bodySHA256) bodies.
 * A request without the header gets 400 and a wrong signature 403, as twilio-node's `twilio.webhook()` answers
 * (twilio.md §5.5), both with no side effect (logged at most once a minute per node); a signed request whose
 * parameters are not an object of strings gets 400; an endpoint that cannot work with its configuration
 * (no Auth Token, no public base URL) answers 404 and its node says why once.
 * Twilio: https://www.twilio.com/docs/usage/webhooks/webhooks-security ; twilio.md §5
 */
import { parseForm, validateTwilioWebhook, MAX_FORM_PARAMS } from "../lib/twilio/signature";
import type { InboundRequest, InboundResponse } from "../shared/dispatcher";
import { t } from "../shared/node";
import { logRefusal, notServed } from "../shared/refusals";
import type { RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";

/** Parameters of a Twilio webhook: form fields (repeated keys as arrays) or the string fields of a JSON object. */
export type WebhookFields = Record<string, string | string[]>;

export type WebhookCheck = { ok: true; fields: WebhookFields } | { ok: false; response: InboundResponse; forged: boolean };

/**
 * The fields of a JSON webhook body: a JSON object whose values are strings (or arrays of strings).
 * @returns undefined for anything else (null, an array, numbers or booleans where Twilio sends strings, bad JSON)
 */
export function jsonFields(raw: Buffer): WebhookFields | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const out: WebhookFields = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v === "string" || (Array.isArray(v) && v.every((x) => typeof x === "string"))) {
      Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true }); // "__proto__" stays a plain key
    } else return undefined;
  }
  return out;
}

/** Validate a Twilio webhook for the account `configId`; on success the parsed parameters. */
export function checkTwilioWebhook(RED: RedAPI, node: RedNode, configId: unknown, req: InboundRequest): WebhookCheck {
  if (req.method !== "POST") return { ok: false, forged: false, response: { status: 405, headers: { Allow: "POST" }, body: "Method not allowed" } };
  let token: string;
  let url: string;
  try {
    const cfg = twilioConfig(RED, configId);
    token = cfg.validationToken();
    url = cfg.publicRoot() + req.originalPath;
  } catch (err) {
    return { ok: false, forged: false, response: notServed(RED, node, "twilio-config", err, { topic: `${node.type}/config`, path: req.path }) };
  }
  const signature = String(req.headers["x-twilio-signature"] ?? "");
  if (!signature) {
    // twilio.webhook()'s answer to a request without the header (twilio.md §5.5): 400, no side effect
    logRefusal(node, "forged", t(RED, "mlc-twilio-status.warn.forged", undefined, "Refused a Twilio webhook with a missing or invalid X-Twilio-Signature (check the public base URL and the Auth Token)"));
    return { ok: false, forged: true, response: { status: 400, body: "Bad request" } };
  }
  const json = /^application\/json/i.test(req.contentType);
  const params = json ? {} : parseForm(req.body);
  if (!params) return { ok: false, forged: false, response: { status: 400, body: "Bad request" } }; // more than MAX_FORM_PARAMS
  if (!validateTwilioWebhook({ authToken: token, signature, url, contentType: req.contentType, rawBody: req.body, params })) {
    logRefusal(node, "forged", t(RED, "mlc-twilio-status.warn.forged", undefined, "Refused a Twilio webhook with a missing or invalid X-Twilio-Signature (check the public base URL and the Auth Token)"));
    return { ok: false, forged: true, response: { status: 403, body: "Forbidden" } };
  }
  if (!json) return { ok: true, fields: params };
  const fields = jsonFields(req.body);
  return fields ? { ok: true, fields } : { ok: false, forged: false, response: { status: 400, body: "Bad request" } };
}

/** First value of a form field. */
export function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export { MAX_FORM_PARAMS, logRefusal, notServed };
