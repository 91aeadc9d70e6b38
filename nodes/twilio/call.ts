/**
 * `mlc-twilio-call`: places one voice call per input message and reports, later, whether the person acknowledged
 * it. The message is a Mustache template spoken with `<Say>` (`amount`, `date` and `spell` helpers for IVR-friendly
 * amounts, dates and references); optionally a `<Gather>` asks for one key ("Press 1 to confirm"). What follows the
 * placement (statuses, Gather endpoint, outcomes) is call-follow.ts; the node glue send-node.ts.
 * Each call is claimed in a send ledger (jobId + callee) before the create and recorded after it, so a replayed or
 * re-delivered event never calls twice; a create whose outcome is unknown is looked up (Calls by To and From, created
 * since the claim) before anything is placed again.
 * Outputs: [1] placed, [2] acknowledged (msg.ack.result "acknowledged"; "answered" without acknowledgement),
 * [3] not acknowledged (msg.ack.result "no-answer" | "busy" | "failed" | "canceled" | "no-input" | "machine").
 * Pending outcomes live in memory only: they do not survive a restart or redeploy (the ledger does).
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather ; https://www.twilio.com/docs/voice/answering-machine-detection
 */
import type { TwilioMeta } from "../lib/envelope";
import { ValidationError } from "../lib/errors";
import { hashedKey } from "../lib/ids";
import { placeCallOnce } from "../lib/twilio/calls";
import { SendLedger, ledgerKey } from "../lib/twilio/ledger";
import { contextBackend } from "../shared/context";
import { mountDispatcher } from "../shared/dispatcher";
import { InputContext, Status, messageJobId, registerNode } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import { CallContent, CallProps, CallSettings, callSettings, callTwiml, readCallParties } from "./call-twiml";
import type { TwilioConfigApi } from "./config";
import { TwilioSendNode } from "./send-node";
import { CallData, CallFollowUp } from "./call-follow";

export type { CallAck, CallProps } from "./call-twiml";

/** One call to place: ledger key, Gather correlation, callee, caller id, content and status callback URL. */
interface CallPlan {
  key: string;
  corr: string;
  jobId: string;
  to: string;
  from: string;
  content: CallContent;
  statusCallback?: string;
}

/** One deployed `mlc-twilio-call` node: placement at most once per callee (send-node.ts does the glue). */
class CallNode extends TwilioSendNode<CallProps> {
  private readonly s: CallSettings;
  private readonly follow: CallFollowUp;
  private startError: unknown;

  constructor(RED: RedAPI, node: RedNode, config: CallProps) {
    super(RED, node, config, "mlc-twilio-call");
    this.s = callSettings(config);
    this.follow = new CallFollowUp(RED, node, config, this.s, () => this.cfg(), (err, what, extra) => this.report(err, what, extra));
    this.start();
    this.listen(
      (msg, ctx) => this.input(msg, ctx),
      () => this.follow.close(),
    );
  }

  /** Subscribe to the account's statuses, open the ledger and the Gather endpoint. */
  private start(): void {
    let accountError: unknown;
    let accountSid = "";
    try {
      accountSid = this.cfg().accountSid;
    } catch (err) {
      accountError = err; // every input fails with it too (Catch)
    }
    try {
      this.follow.subscribe(accountSid);
      const info = this.storeInfo();
      this.ledger = this.openLedger();
      this.follow.share(contextBackend(this.node, "node", info.name));
      this.follow.serveGather();
      if (accountError) this.report(accountError, "start"); // a missing or failed account shows at deploy, not as "ready"
      else this.showReady(info); // the ledger is what stops a second call after a crash
    } catch (err) {
      this.startError = err;
      this.report(err, "start", { endpoint: this.s.endpoint });
    }
  }

  private async input(msg: NodeMessage, { send, status }: InputContext): Promise<void> {
    const { s } = this;
    if (this.startError) throw this.startError;
    if (s.ack && !/^[0-9*#]$/.test(s.ackDigit)) throw new ValidationError(`Acknowledgement key "${s.ackDigit}" must be one of 0-9, * or #`, { code: "bad_config" });
    const cfg = this.cfg();
    const jobId = messageJobId(msg);
    let shown = "";
    try {
      const { to, from } = await readCallParties(this.RED, this.node, this.config, cfg, msg, (text) => {
        shown = text;
      });
      const key = ledgerKey(jobId, to, "voice");
      // One call per key: the Gather correlation is derived from it, so a replay after a crash still matches.
      const corr = hashedKey("c", `${this.node.id}|${key}`);
      const content = await callTwiml(this.RED, this.node, this.config, s, msg, () => cfg.endpointUrl(`/twilio/${s.endpoint}/gather`, { c: corr }));
      const statusCallback = s.poll ? undefined : cfg.endpointUrl(`/twilio/${s.callback}`, { j: jobId });
      status(Status.busy("mlc-twilio-call.status.calling"));
      await this.place(cfg, msg, { key, corr, jobId, to, from, content, statusCallback });
    } catch (err) {
      const e = this.failed(err, msg, shown, "voice", jobId);
      status(Status.error(this.follow.counts()));
      throw e;
    }
    this.follow.showCounts();
    send([msg, null, null]);
  }

  /** Place the call at most once per ledger key (lib/twilio/calls.ts placeCallOnce), describe it on msg, track it. */
  private async place(cfg: TwilioConfigApi, msg: NodeMessage, c: CallPlan): Promise<void> {
    const { s } = this;
    const { to, from, content } = c;
    const params = { to, from, ...(content.twiml !== undefined ? { twiml: content.twiml } : { url: content.url }), statusCallback: c.statusCallback, machineDetection: s.amd ? ("Enable" as const) : undefined };
    const r = await placeCallOnce(cfg.client(), this.ledger as SendLedger, c.key, params, { windowMs: s.reconcileWindowMs, aborted: () => this.closed });
    const duplicate = r.outcome === "duplicate";
    msg.twilio = { sid: r.sid, status: r.status, to: r.message?.to || to, channel: "voice", jobId: c.jobId, ...(duplicate ? { duplicate: true } : {}) } satisfies TwilioMeta & Record<string, unknown>;
    if (r.outcome === "reconciled") msg.reconciled = true;
    if (duplicate) return;
    const data: CallData = { msg: this.RED.util.cloneMessage(msg), voice: s.voice, gather: content.gather, prompts: content.prompts };
    this.follow.track({ corr: c.corr, sid: r.sid, jobId: c.jobId, status: r.status, ack: s.ack, poll: s.poll, data });
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
