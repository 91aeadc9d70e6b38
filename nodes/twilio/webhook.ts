/**
 * Shared check for every Twilio webhook the package serves (status callbacks, inbound messages, call
 * Gather actions): the account's Auth Token, the URL rebuilt from the public base URL + httpNodeRoot + the
 * path and query exactly as received, and the `X-Twilio-Signature` over form or JSON (bodySHA256) bodies.
 * Forgeries get 403 with no side effect (logged at most once a minute per node); a signed request whose
 * parameters are not an object of strings gets 400; an endpoint that cannot work with its configuration
 * (no Auth Token, no public base URL) answers 404 and its node says why once.
 * Twilio: https://www.twilio.com/docs/usage/webhooks/webhooks-security ; twilio.md §5
 */
import { parseForm, validateTwilioWebhook, MAX_FORM_PARAMS } from "../lib/twilio/signature";
import { rateLimitedLog, InboundRequest, InboundResponse } from "../shared/dispatcher";
import { Status, reportError, t } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";

/** Parameters of a Twilio webhook: form fields (repeated keys as arrays) or the string fields of a JSON object. */
export type WebhookFields = Record<string, string | string[]>;

export type WebhookCheck = { ok: true; fields: WebhookFields } | { ok: false; response: InboundResponse; forged: boolean };

interface NodeEdgeState {
  log: (key: string, text: string) => void;
  reported: Set<string>;
}
const edgeStates = new WeakMap<RedNode, NodeEdgeState>();

function edgeState(node: RedNode): NodeEdgeState {
  let s = edgeStates.get(node);
  if (!s) {
    s = { log: rateLimitedLog((text) => node.warn(text)), reported: new Set() };
    edgeStates.set(node, s);
  }
  return s;
}

/**
 * Log a refused request for `node` (at most one line a minute per `key`, with the count suppressed since):
 * anyone can send forged requests, the log must not be theirs to flood.
 */
export function logRefusal(node: RedNode, key: string, text: string): void {
  edgeState(node).log(key, text);
}

/**
 * An endpoint of `node` cannot work with its configuration: report `err` to Catch and the node's status the
 * first time (per node and `key`), answer 404 as for a path nothing serves.
 */
export function notServed(RED: RedAPI, node: RedNode, key: string, err: unknown, extra: Record<string, unknown>): InboundResponse {
  const s = edgeState(node);
  if (!s.reported.has(key)) {
    s.reported.add(key);
    reportError(RED, node, err, extra);
    node.status(Status.warn(t(RED, "mlc-twilio-status.status.notServed", undefined, "endpoint not configured")));
  }
  return { status: 404, body: "Not found" };
}

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
  const json = /^application\/json/i.test(req.contentType);
  const params = json ? {} : parseForm(req.body);
  if (!params) return { ok: false, forged: false, response: { status: 400, body: "Bad request" } }; // more than MAX_FORM_PARAMS
  const signature = String(req.headers["x-twilio-signature"] ?? "");
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

export { MAX_FORM_PARAMS };
