/**
 * `mlc-twilio-status`: the status-callback endpoint. Serves `<httpNodeRoot>/mlc/twilio/<endpoint>` on
 * Node-RED's HTTP server through the package dispatcher, validates `X-Twilio-Signature` against the
 * URL rebuilt from the configured public base URL (form bodies, and JSON bodies with bodySHA256),
 * answers 400 to a request without the header and 403 to a wrong signature, with no side effect, drops duplicate callbacks by (sid, status), never lets
 * a late status replace a more advanced or final one, and emits one msg per accepted status.
 * Vendor: https://www.twilio.com/docs/messaging/guides/track-outbound-message-status ;
 * https://www.twilio.com/docs/usage/webhooks/webhooks-security
 */
import { callbackMeta, inboundSender, parseStatusCallback } from "../lib/twilio/callback";
import { isStatusAdvance, isFinalStatus, FAILED_STATUSES } from "../lib/twilio/status";
import { publishStatus } from "../lib/twilio/bus";
import { BoundedStore } from "../lib/store";
import { contextBackend, resolveStore } from "../shared/context";
import { mountDispatcher, publicEndpointUrl, registerEndpoint, EndpointOptions, InboundRequest, InboundResponse } from "../shared/dispatcher";
import { Status, onClose, registerNode, reportError, statusTemplate } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";
import { auditCallback } from "../shared/audit-trail";
import { twilioConfig } from "./config";
import { handleSendGridEvents } from "./email-events";
import { checkTwilioWebhook, one } from "./webhook";
import { classifyKeyword } from "../lib/twilio/optout";
import { maskPhone } from "../lib/phone";

export interface StatusProps extends Record<string, unknown> {
  name?: string;
  twilio?: string;
  /** Endpoint name: the URL is <httpNodeRoot>/mlc/twilio/<endpoint>. */
  endpoint?: string;
  store?: string;
}

/** Per-SID state kept to order and dedupe callbacks: last accepted status. */
interface SidState {
  status: string;
}

const STATE_TTL_MS = 7 * 24 * 3600 * 1000;

/** Twilio posts webhooks as forms, or JSON with bodySHA256 (twilio.md §5.3, §6.1). */
const TWILIO_WEBHOOK: EndpointOptions = { contentTypes: ["application/x-www-form-urlencoded", "application/json"] };
/** SendGrid posts the Event Webhook as a JSON array. */
const SENDGRID_WEBHOOK: EndpointOptions = { contentTypes: ["application/json"] };
/** Answer to an inbound message: empty TwiML (Twilio itself sends the keyword replies). */
const INBOUND_OK: InboundResponse = { status: 200, headers: { "Content-Type": "text/xml" }, body: "<Response/>" };

/** One deployed `mlc-twilio-status` node: its three endpoints and the per-sid ordering state. */
class StatusNode {
  private forged = 0;
  private readonly releases: (() => void)[] = [];
  /** Translated once (shared/node.ts statusTemplate). */
  private readonly forgedText: (v: Record<string, number>) => string;

  constructor(
    private readonly RED: RedAPI,
    private readonly node: RedNode,
    private readonly config: StatusProps,
    private readonly stateStore: BoundedStore<SidState>,
  ) {
    const endpoint = (config.endpoint || "status").trim();
    this.forgedText = statusTemplate(RED, "mlc-twilio-status.status.forged", "refused __n__ forged");
    try {
      this.releases.push(registerEndpoint(RED.httpNode, `/twilio/${endpoint}`, node.id, (req) => this.callback(req), TWILIO_WEBHOOK));
      this.releases.push(registerEndpoint(RED.httpNode, `/twilio/${endpoint}/inbound`, node.id, (req) => this.inbound(req), TWILIO_WEBHOOK));
      this.releases.push(registerEndpoint(RED.httpNode, `/twilio/${endpoint}/sendgrid`, node.id, (req) => handleSendGridEvents(RED, node, config.twilio, req, { store: config.store }), SENDGRID_WEBHOOK));
      const full = publicEndpointUrl("", RED.settings.httpNodeRoot, `/twilio/${endpoint}`); // "/mlc/twilio/status"
      node.status(Status.idle(statusTemplate(RED, "mlc-twilio-status.status.listening", "listening __endpoint__")({ endpoint: full })));
    } catch (err) {
      reportError(RED, node, err, { topic: "mlc-twilio-status/start", endpoint });
    }
    onClose(node, () => {
      for (const release of this.releases) release();
    });
  }

  // checkTwilioWebhook logs refusals (at most once a minute); the status counts every one.
  private refuse(): void {
    this.forged++;
    this.node.status(Status.warn(this.forgedText({ n: this.forged })));
  }

  /**
   * A status callback of a message or call: audited before the 200, deduplicated and ordered per sid, emitted, and
   * published on the account's status channel (lib/twilio/bus.ts) for the send nodes of that account.
   */
  private async callback(req: InboundRequest): Promise<InboundResponse> {
    const { RED, node, config } = this;
    const check = checkTwilioWebhook(RED, node, config.twilio, req);
    if (!check.ok) {
      if (check.forged) this.refuse();
      return check.response;
    }
    const fields = check.fields;
    const accountSid = twilioConfig(RED, config.twilio).accountSid; // checkTwilioWebhook resolved it already
    const c = parseStatusCallback(fields, req.rawQuery);
    if (!c) return { status: 400, body: "Bad request" };
    const { sid, status, kind, jobId } = c;
    // Audit before the 200 (shared/audit-trail.ts auditCallback): an acknowledged callback survives a crash.
    if (!(await auditCallback(RED, node, c))) return { status: 503, body: "Service unavailable" };
    const advanced = await this.stateStore.update(sid, (prev) => (isStatusAdvance(prev?.status, status, kind) ? { status } : undefined));
    if (!advanced) return { status: 200, body: "" }; // duplicate or late: acknowledged, not emitted
    const twilioMeta = callbackMeta(c);
    const failed = FAILED_STATUSES.has(status);
    node.status((failed ? Status.error : isFinalStatus(status) ? Status.ok : Status.busy)(`${status} …${sid.slice(-4)}`));
    node.send({ topic: `twilio/status/${status}`, payload: fields, twilio: twilioMeta });
    publishStatus(accountSid, { kind, sid, status, jobId, ...(twilioMeta.errorCode ? { errorCode: twilioMeta.errorCode } : {}), fields });
    return { status: 200, body: "" };
  }

  /**
   * Inbound messages (the number's "A message comes in" webhook → <endpoint>/inbound): STOP-type keywords
   * add the sender to the account's opt-out list, START-type remove it; each inbound message is emitted once (topic
   * twilio/inbound/<stop|start|help|message>; a redelivered MessageSid is only acknowledged). Twilio sends the replies.
   */
  private async inbound(req: InboundRequest): Promise<InboundResponse> {
    const { RED, node, config } = this;
    const check = checkTwilioWebhook(RED, node, config.twilio, req);
    if (!check.ok) {
      if (check.forged) this.refuse();
      return check.response;
    }
    const f = check.fields;
    const sid = one(f.MessageSid) ?? one(f.SmsSid);
    if (sid && !(await this.stateStore.update(`in:${sid}`, (prev) => (prev ? undefined : { status: "received" })))) return INBOUND_OK; // e.g. a late STOP after a START
    const from = inboundSender(one(f.From) ?? "");
    const kind = classifyKeyword(one(f.Body), one(f.OptOutType));
    const cfg = twilioConfig(RED, config.twilio);
    if (kind === "stop") await cfg.optOuts(node).optOut(from, "keyword");
    if (kind === "start") await cfg.optOuts(node).optIn(from);
    if (kind) node.status(Status.busy(`${kind.toUpperCase()} ${maskPhone(from)}`));
    node.send({
      topic: `twilio/inbound/${kind ?? "message"}`,
      payload: f,
      inbound: { sid: one(f.MessageSid) ?? "", from, to: one(f.To) ?? "", body: one(f.Body) ?? "", keyword: kind ?? null },
    });
    return INBOUND_OK;
  }
}

/** Register `mlc-twilio-status` (properties: {@link StatusProps}; output: one msg per accepted status or inbound message). */
export function registerStatus(RED: RedAPI): void {
  mountDispatcher(RED.httpNode, RED);
  registerNode<StatusProps>(RED, "mlc-twilio-status", (node, config) => {
    let stateStore: BoundedStore<SidState>;
    try {
      const store = resolveStore(RED, config.store);
      stateStore = new BoundedStore<SidState>(contextBackend(node, "node", store.name), { prefix: "st", ttlMs: STATE_TTL_MS, maxEntries: 50000 });
    } catch (err) {
      reportError(RED, node, err, { topic: "mlc-twilio-status/start", endpoint: (config.endpoint || "status").trim() });
      return;
    }
    new StatusNode(RED, node, config, stateStore);
  });
}
