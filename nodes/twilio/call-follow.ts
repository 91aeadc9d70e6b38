/**
 * `mlc-twilio-call`: what happens after a call is placed: its progress (statuses of the account through
 * lib/twilio/bus.ts, or polling of the Call resource), the signed Gather action at
 * `<httpNodeRoot>/mlc/twilio/<endpoint>/gather` and one outcome per call (lib/twilio/call-tracker.ts) on output 2
 * (acknowledged / answered) or 3 (not acknowledged), with the node's counts.
 * Vendor: https://www.twilio.com/docs/voice/twiml/gather ; https://www.twilio.com/docs/voice/api/call-resource#call-status-values
 */
import type { TwilioMeta } from "../lib/envelope";
import type { KvBackend } from "../lib/store";
import { AcceptedStatus, onStatus, publishStatus } from "../lib/twilio/bus";
import { SharedCalls } from "../lib/twilio/call-share";
import { CallResult, CallTracker, TrackedCall } from "../lib/twilio/call-tracker";
import { CallVoice, fetchCall, gatherReplyTwiml } from "../lib/twilio/calls";
import { auditCallback } from "../shared/audit-trail";
import { InboundRequest, InboundResponse, registerEndpoint } from "../shared/dispatcher";
import { Status, statusTemplate } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import type { CallAck, CallProps, CallSettings } from "./call-twiml";
import type { TwilioConfigApi } from "./config";
import { checkTwilioWebhook, one } from "./webhook";

const TWIML = { "Content-Type": "text/xml; charset=utf-8" };

/** What the tracker keeps per call: the placed msg (emitted later with msg.ack), voice and prompts. */
export interface CallData extends CallVoice {
  msg: NodeMessage;
}

/** The calls one node placed and follows; pending outcomes live in memory only. */
export class CallFollowUp {
  readonly n = { placed: 0, acked: 0, nacked: 0 };
  private readonly tracker: CallTracker<CallData>;
  private accountSid = "";
  private unsubscribe: (() => void) | undefined;
  private release: (() => void) | undefined;
  /** Call state in a store shared by several instances (a keypress may reach any of them); inactive on a local store. */
  private shared: SharedCalls<CallData> | undefined;
  private closed = false;
  /** Count template, translated once here (shared/node.ts statusTemplate). */
  private readonly countsText: (v: Record<string, number>) => string;

  /** @param report reports an error to Catch (topic `<type>/<what>`: poll, share, gather) */
  constructor(
    private readonly RED: RedAPI,
    private readonly node: RedNode,
    private readonly config: CallProps,
    private readonly s: CallSettings,
    cfg: () => TwilioConfigApi,
    private readonly report: (err: unknown, what: string, extra: Record<string, unknown>) => void,
  ) {
    this.countsText = statusTemplate(RED, "mlc-twilio-call.status.counts", "placed __placed__, ack __ack__, no __nack__");
    this.tracker = new CallTracker<CallData>({
      giveUpMs: s.giveUpMs,
      pollIntervalMs: s.pollIntervalMs,
      ackDigit: s.ackDigit,
      fetch: (sid) => fetchCall(cfg().client(), sid),
      publish: (st) => this.polled(st),
      onOutcome: (c, result, digits) => this.outcome(c, result, digits),
      onPollError: (err, c) => this.report(err, "poll", c ? { sid: c.sid, jobId: c.jobId } : {}),
    });
  }

  /** Follow the statuses of `accountSid` ("" when the account is missing). */
  subscribe(accountSid: string): void {
    this.accountSid = accountSid;
    this.unsubscribe = onStatus(accountSid, (st) => this.tracker.onStatus(st));
  }

  /** Keep what a Gather needs in the node's store, so an instance sharing it (Redis) can answer a keypress. */
  share(backend: KvBackend): void {
    this.shared = new SharedCalls<CallData>(backend, { ttlMs: this.s.giveUpMs + 600000, ackDigit: this.s.ackDigit });
  }

  /** Serve the Gather action while acknowledgement is on. @throws ValidationError when another node serves it */
  serveGather(): void {
    if (this.s.ack) this.release = registerEndpoint(this.RED.httpNode, `/twilio/${this.s.endpoint}/gather`, this.node.id, (req) => this.gather(req));
  }

  /** Follow a placed call (counted as placed). */
  track(t: TrackedCall<CallData>): void {
    this.n.placed++;
    this.tracker.track(t);
    if (t.ack) this.shared?.put(t.corr, { sid: t.sid, jobId: t.jobId, data: t.data }).catch((err: unknown) => this.report(err, "share", { corr: t.corr }));
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.tracker.close();
    this.release?.();
  }

  counts(): string {
    const { placed, acked, nacked } = this.n;
    return this.countsText({ placed, ack: acked, nack: nacked });
  }

  showCounts(): void {
    this.node.status((this.n.nacked > 0 ? Status.warn : this.n.placed > 0 ? Status.ok : Status.idle)(this.counts()));
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

  /**
   * A polled status (poll mode: no callback reaches the status node): to the account's channel, and to the shared
   * audit trail "default" like a callback (shared/audit-trail.ts auditCallback, which reports its own errors).
   */
  private polled(st: AcceptedStatus): void {
    publishStatus(this.accountSid, st);
    const to = st.fields.To;
    void auditCallback(this.RED, this.node, { sid: st.sid, status: st.status, kind: "call", jobId: st.jobId, to: (Array.isArray(to) ? to[0] : to) ?? "" }).catch(() => undefined);
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
    if (this.shared) r = await this.shared.reply(r, corr, sid, digits, by, (c, result, d) => this.outcome(c, result, d), (err) => this.report(err, "gather", {}));
    return { status: 200, headers: TWIML, body: gatherReplyTwiml(r, this.s.voice) };
  }
}
