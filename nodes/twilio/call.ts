/**
 * `mlc-twilio-call`: places one voice call per input message and reports, later, whether the person
 * acknowledged it. The message is a Mustache template spoken with `<Say>` (with `amount`, `date` and `spell`
 * helpers for IVR-friendly amounts, dates and reference numbers); optionally a `<Gather>` asks for one key
 * ("Press 1 to confirm") and posts the result, signed, to this node's endpoint
 * `<httpNodeRoot>/mlc/twilio/<endpoint>/gather`. Call progress comes from the mlc-twilio-status node of the same
 * Twilio account (lib/twilio/bus.ts, one channel per Account SID) or, in poll mode, from fetching the Call resource;
 * lib/twilio/call-tracker.ts turns it into one outcome per call.
 * Each call is claimed in a send ledger (jobId + callee) before the create and recorded after it, so a replayed or
 * re-delivered event never calls twice; a create whose outcome is unknown is looked up (Calls by To and From, created
 * since the claim) before anything is placed again.
 *
 * Outputs: [1] placed, [2] acknowledged (msg.ack.result "acknowledged"; "answered" without acknowledgement),
 * [3] not acknowledged (msg.ack.result "no-answer" | "busy" | "failed" | "canceled" | "no-input" | "machine").
 * Pending outcomes live in memory only: they do not survive a restart or redeploy (the ledger does).
 *
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather ; https://www.twilio.com/docs/voice/answering-machine-detection
 */
import type { TwilioMeta } from "../lib/envelope";
import { MlcError, ValidationError } from "../lib/errors";
import { hashedKey } from "../lib/ids";
import { maskPhone, toE164 } from "../lib/phone";
import { onStatus, publishStatus } from "../lib/twilio/bus";
import { SharedCalls } from "../lib/twilio/call-share";
import { CallResult, CallTracker, TrackedCall } from "../lib/twilio/call-tracker";
import { CallVoice, fetchCall, gatherReplyTwiml, placeCallOnce } from "../lib/twilio/calls";
import { SendLedger, ledgerKey } from "../lib/twilio/ledger";
import { failedRecipient } from "../lib/twilio/recipients";
import { contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { InboundRequest, InboundResponse, mountDispatcher, registerEndpoint } from "../shared/dispatcher";
import { Status, evaluate, firstSet, messageJobId, onClose, onInput, registerNode, reportError, statusTemplate } from "../shared/node";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";
import { CallAck, CallContent, CallProps, CallSettings, callSettings, callTwiml } from "./call-twiml";
import { TwilioConfigApi, twilioConfig } from "./config";
import { checkTwilioWebhook, one } from "./webhook";

export type { CallAck, CallProps } from "./call-twiml";

const TWIML = { "Content-Type": "text/xml; charset=utf-8" };

/** What the tracker keeps per call: the placed msg (emitted later with msg.ack), voice and prompts. */
interface CallData extends CallVoice {
  msg: NodeMessage;
}

/** One deployed `mlc-twilio-call` node: its tracker, ledger, Gather endpoint and counts. */
class CallNode {
  private readonly s: CallSettings;
  private readonly n = { placed: 0, acked: 0, nacked: 0 };
  private readonly tracker: CallTracker<CallData>;
  private closed = false;
  private accountSid = "";
  private startError: unknown;
  private ledger: SendLedger | undefined;
  /** Call state in a store shared by several instances (a keypress may reach any of them); inactive on a local store. */
  private shared: SharedCalls<CallData> | undefined;
  private unsubscribe: (() => void) | undefined;
  private release: (() => void) | undefined;
  /** Count template, translated once here (shared/node.ts statusTemplate). */
  private readonly countsText: (v: Record<string, number>) => string;

  constructor(
    private readonly RED: RedAPI,
    private readonly node: RedNode,
    private readonly config: CallProps,
  ) {
    this.s = callSettings(config);
    this.countsText = statusTemplate(RED, "mlc-twilio-call.status.counts", "placed __placed__, ack __ack__, no __nack__");
    this.tracker = new CallTracker<CallData>({
      giveUpMs: this.s.giveUpMs,
      pollIntervalMs: this.s.pollIntervalMs,
      ackDigit: this.s.ackDigit,
      fetch: (sid) => fetchCall(this.cfg().client(), sid),
      publish: (st) => publishStatus(this.accountSid, st),
      onOutcome: (c, result, digits) => this.outcome(c, result, digits),
      onPollError: (err, c) => reportError(RED, node, err, { topic: "mlc-twilio-call/poll", ...(c ? { sid: c.sid, jobId: c.jobId } : {}) }),
    });
    this.start();
    onInput(RED, node, (msg, { send, status }) => this.input(msg, send, status));
    onClose(node, () => {
      this.closed = true;
      this.unsubscribe?.();
      this.tracker.close();
      this.release?.();
    });
  }

  private cfg(): TwilioConfigApi {
    return twilioConfig(this.RED, this.config.twilio);
  }

  private counts(): string {
    const { placed, acked, nacked } = this.n;
    return this.countsText({ placed, ack: acked, nack: nacked });
  }

  private showCounts(): void {
    this.node.status((this.n.nacked > 0 ? Status.warn : this.n.placed > 0 ? Status.ok : Status.idle)(this.counts()));
  }

  /** Subscribe to the account's statuses, open the ledger and the Gather endpoint. */
  private start(): void {
    const { RED, node, s } = this;
    let accountError: unknown;
    try {
      this.accountSid = this.cfg().accountSid;
    } catch (err) {
      accountError = err; // every input fails with it too (Catch)
    }
    try {
      this.unsubscribe = onStatus(this.accountSid, (st) => this.tracker.onStatus(st));
      const info = resolveStore(RED, this.config.store);
      this.ledger = new SendLedger(contextBackend(node, "node", info.name), { scope: node.id });
      this.ledger.ready.catch((err: unknown) => reportError(RED, node, err, { topic: "mlc-twilio-call/ledger" }));
      this.shared = new SharedCalls<CallData>(contextBackend(node, "node", info.name), { ttlMs: this.s.giveUpMs + 600000, ackDigit: this.s.ackDigit });
      if (s.ack) this.release = registerEndpoint(RED.httpNode, `/twilio/${s.endpoint}/gather`, node.id, (req) => this.gather(req));
      if (accountError) reportError(RED, node, accountError, { topic: "mlc-twilio-call/start" }); // a missing or failed account shows at deploy, not as "ready"
      else if (!warnIfLossy(RED, node, info)) node.status(Status.idle("mlc-twilio-call.status.ready")); // the ledger is what stops a second call after a crash
    } catch (err) {
      this.startError = err;
      reportError(RED, node, err, { topic: "mlc-twilio-call/start", endpoint: s.endpoint });
    }
  }

  /** A call's outcome, emitted once across instances sharing the store (lib/twilio/call-share.ts). */
  private outcome(c: TrackedCall<CallData>, result: CallResult, digits?: string): void {
    if (!this.shared?.active) return this.emit(c, result, digits);
    this.shared.once(c.corr, () => (this.closed ? undefined : this.emit(c, result, digits)));
  }

  /** Emit the outcome of a tracked call once, on output 2 (acknowledged/answered) or 3. */
  private emit(c: TrackedCall<CallData>, result: CallResult, digits?: string): void {
    const out = c.data.msg;
    out.twilio = { ...(out.twilio as TwilioMeta), status: c.status } satisfies TwilioMeta;
    out.ack = { result, at: new Date().toISOString(), ...(digits ? { digits } : {}), ...(c.answeredBy ? { answeredBy: c.answeredBy } : {}) } satisfies CallAck;
    const positive = result === "acknowledged" || result === "answered";
    this.n[positive ? "acked" : "nacked"]++;
    this.showCounts();
    this.node.send(positive ? [null, out, null] : [null, null, out]);
  }

  /** Gather action: Twilio posts the key pressed (or nothing, after the timeout). Answered with TwiML. */
  private async gather(req: InboundRequest): Promise<InboundResponse> {
    const check = checkTwilioWebhook(this.RED, this.node, this.config.twilio, req);
    if (!check.ok) return check.response;
    const f = check.fields;
    const corr = new URLSearchParams(req.rawQuery).get("c") ?? "";
    const [sid, digits, by] = [one(f.CallSid), (one(f.Digits) ?? "").trim(), one(f.AnsweredBy)];
    let r = this.tracker.gather(corr, sid, digits, by);
    // a call placed by another instance sharing the store: answered from its state there
    if (this.shared) r = await this.shared.reply(r, corr, sid, digits, by, (c, result, d) => this.outcome(c, result, d), (err) => reportError(this.RED, this.node, err, { topic: "mlc-twilio-call/gather" }));
    return { status: 200, headers: TWIML, body: gatherReplyTwiml(r, this.s.voice) };
  }

  private async input(msg: NodeMessage, send: (m: (NodeMessage | null)[]) => void, status: (s: NodeStatus) => void): Promise<void> {
    const { s } = this;
    if (this.startError) throw this.startError;
    if (s.ack && !/^[0-9*#]$/.test(s.ackDigit)) throw new ValidationError(`Acknowledgement key "${s.ackDigit}" must be one of 0-9, * or #`, { code: "bad_config" });
    const cfg = this.cfg();
    const jobId = messageJobId(msg);
    let to = "";
    try {
      const rawTo = firstSet(this.config.to ? await evaluate(this.RED, this.node, this.config.to, this.config.toType ?? "msg", msg) : undefined, msg.to);
      to = typeof rawTo === "string" ? maskPhone(rawTo) : "";
      to = toE164(rawTo as string, cfg.defaultRegion);
      if (to.includes(":")) throw new ValidationError(`"${maskPhone(to)}" is not a phone number a call can reach`, { code: "invalid_phone" });
      const from = String(firstSet(this.config.from ? await evaluate(this.RED, this.node, this.config.from, this.config.fromType, msg) : undefined, msg.from as string, cfg.from) ?? "").trim();
      if (!from || /^MG/i.test(from)) throw new ValidationError("No caller id: set From here, in msg.from or in the Twilio account (a Messaging Service cannot place calls)", { code: "no_sender" });
      const key = ledgerKey(jobId, to, "voice");
      // One call per key: the Gather correlation is derived from it, so a replay after a crash still matches.
      const corr = hashedKey("c", `${this.node.id}|${key}`);
      const content = await callTwiml(this.RED, this.node, this.config, s, msg, () => cfg.endpointUrl(`/twilio/${s.endpoint}/gather`, { c: corr }));
      const statusCallback = s.poll ? undefined : cfg.endpointUrl(`/twilio/${s.callback}`, { j: jobId });
      status(Status.busy("mlc-twilio-call.status.calling"));
      await this.place(cfg, msg, { key, corr, jobId, to, from, content, statusCallback });
    } catch (err) {
      msg.twilio = failedRecipient(err, to, "voice", jobId);
      if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
      status(Status.error(this.counts()));
      throw err;
    }
    this.showCounts();
    send([msg, null, null]);
  }

  /** Place the call at most once per ledger key (lib/twilio/calls.ts placeCallOnce), describe it on msg, track it. */
  private async place(cfg: TwilioConfigApi, msg: NodeMessage, c: { key: string; corr: string; jobId: string; to: string; from: string; content: CallContent; statusCallback?: string }): Promise<void> {
    const { s } = this;
    const book = this.ledger as SendLedger;
    const { to, from, content } = c;
    const params = { to, from, ...(content.twiml !== undefined ? { twiml: content.twiml } : { url: content.url }), statusCallback: c.statusCallback, machineDetection: s.amd ? ("Enable" as const) : undefined };
    const r = await placeCallOnce(cfg.client(), book, c.key, params, { windowMs: s.reconcileWindowMs, aborted: () => this.closed });
    const duplicate = r.outcome === "duplicate";
    msg.twilio = { sid: r.sid, status: r.status, to: r.message?.to || to, channel: "voice", jobId: c.jobId, ...(duplicate ? { duplicate: true } : {}) } satisfies TwilioMeta & Record<string, unknown>;
    if (r.outcome === "reconciled") msg.reconciled = true;
    if (duplicate) return;
    this.n.placed++;
    const data: CallData = { msg: this.RED.util.cloneMessage(msg), voice: s.voice, gather: content.gather, prompts: content.prompts };
    this.tracker.track({ corr: c.corr, sid: r.sid, jobId: c.jobId, status: r.status, ack: s.ack, poll: s.poll, data });
    if (s.ack) this.shared?.put(c.corr, { sid: r.sid, jobId: c.jobId, data }).catch((err: unknown) => reportError(this.RED, this.node, err, { topic: "mlc-twilio-call/share" }));
  }
}

/**
 * Register `mlc-twilio-call` (properties: {@link CallProps}; outputs: placed, acknowledged, not acknowledged with
 * msg.ack as {@link CallAck}). Serves `/mlc/twilio/<endpoint>/gather` while acknowledgement is on.
 */
export function registerCall(RED: RedAPI): void {
  mountDispatcher(RED.httpNode, RED);
  registerNode<CallProps>(RED, "mlc-twilio-call", (node, config) => {
    new CallNode(RED, node, config);
  });
}
