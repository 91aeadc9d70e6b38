/**
 * Shared check for every Twilio webhook the package serves (status callbacks, inbound messages, call
 * Gather actions): the account's Auth Token, the URL rebuilt from the public base URL, and the
 * `X-Twilio-Signature` over form or JSON (bodySHA256) bodies. Forgeries get 403 with no side effect.
 * Twilio: https://www.twilio.com/docs/usage/webhooks/webhooks-security
 */
import { parseForm, validateTwilioWebhook } from "../lib/twilio/signature";
import type { InboundRequest, InboundResponse } from "../shared/dispatcher";
import { reportError } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";

export type WebhookCheck = { ok: true; fields: Record<string, string | string[]> } | { ok: false; response: InboundResponse; forged: boolean };

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
    reportError(RED, node, err, { topic: `${node.type}/config`, path: req.path });
    return { ok: false, forged: false, response: { status: 500, body: "Endpoint not configured" } };
  }
  const json = /^application\/json/i.test(req.contentType);
  const params = json ? {} : parseForm(req.body);
  const signature = String(req.headers["x-twilio-signature"] ?? "");
  if (!validateTwilioWebhook({ authToken: token, signature, url, contentType: req.contentType, rawBody: req.body, params })) {
    return { ok: false, forged: true, response: { status: 403, body: "Forbidden" } };
  }
  if (!json) return { ok: true, fields: params };
  try {
    return { ok: true, fields: JSON.parse(req.body.toString("utf8")) as Record<string, string> };
  } catch {
    return { ok: false, forged: false, response: { status: 400, body: "Bad request" } };
  }
}

/** First value of a form field. */
export function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
