/**
 * The SendGrid Event Webhook, served by `mlc-twilio-status` at `<httpNodeRoot>/mlc/twilio/<endpoint>/sendgrid`.
 *
 * Verifies `X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp` over the raw body with the account's
 * verification key (403 and no side effect when missing or wrong), ignores events of e-mails this package
 * did not send (no `mlc_job_id` custom argument), drops repeated (sg_message_id, event) pairs and events
 * that are not an advance under the message-status ordering of lib/twilio/status.ts, and emits every
 * accepted event as a Twilio status message (topic `twilio/status/<status>`, `msg.twilio` with
 * `channel: "email"`), so mlc-audit records e-mail like SMS; each accepted status is also published on the
 * status bus.
 * Vendor: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event ;
 * https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
 */
import type { TwilioMeta } from "../lib/envelope";
import { ValidationError } from "../lib/errors";
import { BoundedStore } from "../lib/store";
import { publishStatus } from "../lib/twilio/bus";
import { emailStatusOf, parseEvents, SendGridEvent, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyEventWebhook } from "../lib/twilio/sendgrid";
import { FAILED_STATUSES, isFinalStatus, isStatusAdvance } from "../lib/twilio/status";
import { contextBackend, resolveStore } from "../shared/context";
import type { InboundRequest, InboundResponse } from "../shared/dispatcher";
import { Status, t } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";
import { logRefusal, notServed } from "./webhook";

/** `msg.twilio` of an e-mail status: a TwilioMeta whose errorCode is SendGrid's outcome as text ("sendgrid_bounce"). */
export type EmailStatusMeta = Omit<TwilioMeta, "errorCode"> & { errorCode?: string };

/** Per (message, recipient): last accepted status and the SendGrid events already seen. */
interface EmailState {
  status?: string;
  events: string[];
}

/** Per status node: its ordering/dedupe store and the count of refused requests. */
interface NodeState {
  store: BoundedStore<EmailState>;
  forged: number;
}

const STATE_TTL_MS = 7 * 24 * 3600 * 1000;
const states = new WeakMap<RedNode, NodeState>();

function stateOf(RED: RedAPI, node: RedNode, storeName: string | undefined): NodeState {
  let s = states.get(node);
  if (!s) {
    const store = resolveStore(RED, storeName);
    s = { store: new BoundedStore<EmailState>(contextBackend(node, "node", store.name), { prefix: "sg", ttlMs: STATE_TTL_MS, maxEntries: 50000 }), forged: 0 };
    states.set(node, s);
  }
  return s;
}

function header(req: InboundRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Event fields as strings, for the status bus (objects as JSON). */
function busFields(raw: Record<string, unknown>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined || v === null) continue;
    out[k] = Array.isArray(v) ? v.map((x) => (typeof x === "string" ? x : JSON.stringify(x))) : typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  return out;
}

/**
 * Handle one Event Webhook request for the status node `node` (account `cfgId`).
 * @param opts.store context store of the ordering/dedupe state (the status node's `store` property)
 * @returns 405 for another method; 404 when the account has no usable verification key (the endpoint cannot
 *   work: reported to Catch and the node's status once, then answered quietly); 403 for a missing or invalid
 *   signature or a timestamp outside the account's tolerance (nothing recorded or emitted; logged at most once a
 *   minute); 400 for a body that is not a JSON array; else 200 (also when every event was ignored, so SendGrid
 *   does not retry)
 */
export async function handleSendGridEvents(RED: RedAPI, node: RedNode, cfgId: unknown, req: InboundRequest, opts: { store?: string } = {}): Promise<InboundResponse> {
  if (req.method !== "POST") return { status: 405, headers: { Allow: "POST" }, body: "Method not allowed" };
  let state: NodeState;
  let valid: boolean;
  let accountSid: string;
  try {
    state = stateOf(RED, node, opts.store);
    const cfg = twilioConfig(RED, cfgId);
    accountSid = cfg.accountSid;
    const sg = cfg.sendgrid();
    if (!sg.verificationKey) throw new ValidationError("No SendGrid Event Webhook verification key in the Twilio account: signed events cannot be checked", { code: "no_verification_key" });
    valid = verifyEventWebhook(sg.verificationKey, req.body, header(req, SIGNATURE_HEADER), header(req, TIMESTAMP_HEADER), { toleranceSec: sg.timestampToleranceSec });
  } catch (err) {
    return notServed(RED, node, "sendgrid-config", err, { topic: "mlc-twilio-status/sendgrid", path: req.path });
  }
  if (!valid) {
    state.forged++;
    node.status(Status.warn(t(RED, "mlc-twilio-status.status.forged", { n: state.forged }, `refused ${state.forged} forged`)));
    logRefusal(node, "sendgrid-forged", t(RED, "mlc-twilio-email.warn.forged", undefined, "Refused a SendGrid Event Webhook request with a missing or invalid signature, or a timestamp older than the tolerance (check the verification key in the Twilio account)"));
    return { status: 403, body: "Forbidden" };
  }
  let events: SendGridEvent[];
  try {
    events = parseEvents(req.body);
  } catch {
    return { status: 400, body: "Bad request" };
  }
  for (const ev of events) {
    if (!ev.jobId || !ev.sgMessageId) continue; // not sent by this package, or not correlatable
    const mapped = emailStatusOf(ev);
    if (!mapped) continue;
    let emit = false;
    await state.store.update(`${ev.sgMessageId}|${ev.email.toLowerCase()}`, (prev) => {
      emit = false; // on a shared store this may run again after a concurrent write: only the last call counts
      const seen = prev?.events ?? [];
      if (seen.includes(ev.event)) return undefined; // the same event again (SendGrid retries a batch)
      emit = isStatusAdvance(prev?.status, mapped.status, "message");
      return { status: emit ? mapped.status : prev?.status, events: [...seen, ev.event].slice(-20) };
    });
    if (!emit) continue;
    const twilio: EmailStatusMeta = {
      sid: ev.sgMessageId,
      status: mapped.status,
      to: ev.email,
      channel: "email",
      jobId: ev.jobId,
      ...(mapped.errorCode ? { errorCode: mapped.errorCode } : {}),
    };
    const failed = FAILED_STATUSES.has(mapped.status);
    node.status((failed ? Status.error : isFinalStatus(mapped.status) ? Status.ok : Status.busy)(`${mapped.status} …${ev.sgMessageId.slice(-4)}`));
    node.send({ topic: `twilio/status/${mapped.status}`, payload: ev.raw, twilio });
    publishStatus(accountSid, { kind: "message", sid: ev.sgMessageId, status: mapped.status, jobId: ev.jobId, fields: busFields(ev.raw) });
  }
  return { status: 200, body: "" };
}
