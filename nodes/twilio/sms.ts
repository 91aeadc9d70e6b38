/**
 * `mlc-twilio-sms`: sends one SMS/MMS/WhatsApp message per recipient through the Messages API.
 * - To, From / Messaging Service, Body (Mustache over msg), MediaUrl, WhatsApp Content templates and
 *   scheduled sends (SendAt) come from the editor or msg; several recipients → one message each.
 * - Recipients are normalised to E.164; a bad number, an opted-out recipient or a Twilio error fails that
 *   recipient only (Catch), the others go through.
 * - The account's opt-out list is consulted before sending; 21610 adds the recipient to it.
 * - Quiet hours: outside the recipient's local business hours a send is scheduled with Twilio (SendAt,
 *   needs a Messaging Service) or held durably in the context store and sent when the window opens;
 *   urgent messages (msg.urgent = true) go at once.
 * - Status: a StatusCallback to the chosen mlc-twilio-status endpoint (with the jobId), or polling of the
 *   message resource until a final status for Node-RED that Twilio cannot reach (second output).
 * - A send whose outcome is unknown (timeout after the request left) is reconciled by looking the message
 *   up; it is re-sent only when Twilio has no such message and retries are allowed.
 * The steps live in nodes/lib/twilio/: messages.ts (ledger, audit, create, reconcile), hold-queue.ts,
 * status-poller.ts; what an input asks for is read in sms-input.ts.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling
 */
import type { TwilioChannel, TwilioMeta } from "../lib/envelope";
import { MlcError, TimeoutError, TwilioError, ValidationError } from "../lib/errors";
import { jobSettled } from "../lib/journal";
import { maskPhone, toE164 } from "../lib/phone";
import type { BusinessHours } from "../lib/quiet-hours";
import { publishStatus } from "../lib/twilio/bus";
import type { SendMessageParams, TwilioMessage } from "../lib/twilio/client";
import { HoldQueue, SEND_AT_MAX_MS, quietPlan } from "../lib/twilio/hold-queue";
import { SendLedger, ledgerKey } from "../lib/twilio/ledger";
import { Delivered, MessageSendOptions, deliverMessage } from "../lib/twilio/messages";
import { StatusPoller } from "../lib/twilio/status-poller";
import { contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { Status, num, onClose, onInput, registerNode, reportError, statusTemplate } from "../shared/node";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";
import { sharedAuditTrail } from "../shared/audit-trail";
import { TwilioConfigApi, twilioConfig } from "./config";
import { MG_SID, SmsProps, SmsRequest, channelOf, mayRetry, messageParams, quietHours, readSmsRequest } from "./sms-input";

export { MAX_BODY_CHARS } from "./sms-input";
export type { SmsProps } from "./sms-input";

/** When this module was loaded (≈ process start): a create claimed before it may have left before a crash. */
const LOADED_AT = Date.now();

/** A message held for quiet hours (context store; contains the recipient because it must be sent later). */
interface HeldMessage {
  due: number;
  params: SendMessageParams;
  jobId: string;
  channel: TwilioChannel;
  msg: NodeMessage;
}

/** What the status poller keeps per message. */
interface Polled {
  jobId: string;
  to: string;
  channel: TwilioChannel;
}


/** One deployed `mlc-twilio-sms` node: its ledger, hold queue, status poller and counts. */
class SmsNode {
  private readonly n = { sent: 0, failed: 0 };
  private closed = false;
  private hours: BusinessHours | undefined;
  private hold: HoldQueue<HeldMessage> | undefined;
  private ledger: SendLedger | undefined;
  private readonly poller: StatusPoller<TwilioMessage, Polled>;
  private readonly pollTimeoutMs: number;
  /** Recipient failures already counted in the journal decision of their input. */
  private readonly accounted = new WeakSet<object>();
  /** Count templates, translated once here (shared/node.ts statusTemplate). */
  private readonly countsText: (v: Record<string, number>) => string;
  private readonly countsHeldText: (v: Record<string, number>) => string;

  constructor(
    private readonly RED: RedAPI,
    private readonly node: RedNode,
    private readonly config: SmsProps,
  ) {
    this.countsText = statusTemplate(RED, "mlc-twilio-sms.status.counts", "sent __sent__, failed __failed__");
    this.countsHeldText = statusTemplate(RED, "mlc-twilio-sms.status.countsHeld", "sent __sent__, failed __failed__, held __held__");
    this.start();
    this.poller = new StatusPoller<TwilioMessage, Polled>({
      kind: "message",
      intervalMs: num(config.pollInterval, 10, 1, 3600) * 1000,
      fetch: (sid) => this.cfg().client().fetchMessage(sid),
      onChange: (w, m) => this.polled(w.sid, w.data, m),
      onError: (err, w) => reportError(RED, node, err, { topic: "mlc-twilio-sms/poll", sid: w.sid }),
    });
    this.pollTimeoutMs = num(config.pollTimeout, 3600, 10, 7 * 86400) * 1000;
    this.hold?.start();
    onInput(RED, node, (msg, ctx) => this.input(msg, ctx.status));
    onClose(node, () => {
      this.closed = true;
      this.hold?.close();
      this.poller.close();
    });
  }

  private cfg(): TwilioConfigApi {
    return twilioConfig(this.RED, this.config.twilio);
  }

  private counts(): string {
    const { sent, failed } = this.n;
    const held = this.hold?.count ?? 0;
    return held > 0 ? this.countsHeldText({ sent, failed, held }) : this.countsText({ sent, failed });
  }

  private showCounts(): void {
    this.node.status(this.n.failed ? Status.warn(this.counts()) : Status.ok(this.counts()));
  }

  /**
   * Quiet hours, hold queue and the account, then the ledger (a bad quiet-hours setting leaves sending possible, as
   * before). A missing account or a bad setting shows at deploy instead of "ready"; a store that can lose the ledger
   * shows its yellow warning instead of "ready", unless an error is already showing.
   */
  private start(): void {
    const { RED, node, config } = this;
    let warnLossy = false;
    try {
      this.hours = quietHours(config);
      if (this.hours) {
        this.hold = new HoldQueue<HeldMessage>(contextBackend(node, "node", resolveStore(RED, config.store).name), {
          keyOf: (h) => `${h.jobId}|${h.params.to}`,
          release: (h) => this.releaseHeld(h),
          onChecked: () => this.showCounts(),
          onError: (err) => reportError(RED, node, err, { topic: "mlc-twilio-sms/held" }),
          ttlMs: SEND_AT_MAX_MS,
        });
      }
      twilioConfig(RED, config.twilio); // a missing or failed account shows here at deploy, not as "ready"
      if (!resolveStore(RED, config.store).lossy) node.status(Status.idle("mlc-twilio-sms.status.ready"));
      else warnLossy = true;
    } catch (err) {
      reportError(RED, node, err, { topic: "mlc-twilio-sms/start" });
    }
    try {
      const info = resolveStore(RED, config.store);
      this.ledger = new SendLedger(contextBackend(node, "node", info.name), { scope: node.id });
      if (warnLossy) warnIfLossy(RED, node, info); // the ledger is what stops a double after a crash
      this.ledger.ready.catch((err: unknown) => reportError(RED, node, err, { topic: "mlc-twilio-sms/ledger" }));
    } catch (err) {
      reportError(RED, node, err, { topic: "mlc-twilio-sms/start" });
    }
  }

  /** A polled status advance: output 2 and the account's status channel. */
  private polled(sid: string, p: Polled, m: TwilioMessage): void {
    const { jobId, to, channel } = p;
    const twilio: TwilioMeta = { sid, status: m.status, to, channel, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}) };
    this.node.send([null, { topic: `twilio/status/${m.status}`, payload: { MessageSid: sid, MessageStatus: m.status, ErrorCode: m.errorCode ?? undefined }, twilio }]);
    publishStatus(this.cfg().accountSid, { kind: "message", sid, status: m.status, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}), fields: { MessageSid: sid, MessageStatus: m.status } });
  }

  private sendOptions(ledger: SendLedger): MessageSendOptions {
    return {
      client: () => this.cfg().client(),
      ledger,
      retries: num(this.config.retries, 0, 0, 10),
      windowMs: num(this.config.reconcileWindow, 30, 1, 3600) * 1000,
      aborted: () => this.closed,
      onOptedOut: (to) => this.cfg().optOuts(this.node).optOut(to, "21610"),
    };
  }

  /** Send one prepared message at most once per jobId|to|channel (lib/twilio/messages.ts) and emit it on output 1. */
  private async deliver(base: NodeMessage, params: SendMessageParams, jobId: string, channel: TwilioChannel): Promise<void> {
    const ledger = this.ledger;
    if (!ledger) throw new ValidationError("Send ledger not available", { code: "unknown_store" });
    const key = ledgerKey(jobId, params.to, channel);
    const trail = await sharedAuditTrail(this.node, String(this.config.auditTrail ?? "").trim() || "default");
    const erp = base.erp as Record<string, unknown> | undefined;
    const d: Delivered = await ledger.serial(key, () => deliverMessage(this.sendOptions(ledger), trail, params, { key, jobId, channel, erp, loadedAt: LOADED_AT }));
    this.n.sent++;
    const flags = { ...(d.duplicate ? { duplicate: true } : {}), ...(d.reconciled ? { reconciled: true } : {}) };
    const twilio: TwilioMeta & Record<string, unknown> = { sid: d.sid, status: d.status, to: d.to, channel, jobId, ...(d.errorCode ? { errorCode: d.errorCode } : {}), ...flags };
    this.node.send([{ ...base, twilio, ...(d.reconciled ? { reconciled: true } : {}) }, null]);
    if (this.config.poll && !d.duplicate) this.poller.add(d.sid, d.status, { jobId, to: d.to, channel }, Date.now() + this.pollTimeoutMs);
  }

  /** A held message is due: send it; a failure reaches Catch with the held msg. */
  private async releaseHeld(h: HeldMessage): Promise<void> {
    try {
      await this.deliver(h.msg, h.params, h.jobId, h.channel);
    } catch (err) {
      this.n.failed++;
      this.node.error(err, { ...h.msg, twilio: { sid: "", status: "failed", to: h.params.to, channel: h.channel, jobId: h.jobId }, errorDetails: err instanceof MlcError ? err.toDetails() : { message: String(err) } });
    }
  }

  /** Send one recipient of request `r`, scheduled (SendAt) or held durably outside quiet hours unless urgent. */
  private async sendOne(r: SmsRequest, out: NodeMessage, to: string, channel: TwilioChannel): Promise<void> {
    if (await this.cfg().optOuts(this.node).isOptedOut(to)) throw new ValidationError(`${maskPhone(to)} opted out (replied STOP); not sent`, { code: "opted_out" });
    let when = r.sendAt;
    if (this.hours && this.hold && !r.urgent && !when) {
      const tz = typeof r.tz === "string" ? r.tz.trim() : undefined;
      const plan = quietPlan(this.hours, to, { tz, defaultTz: this.config.defaultTimezone, viaService: MG_SID.test(r.fromValue), mode: this.config.quietMode });
      if (plan.kind === "schedule") when = plan.at;
      if (plan.kind === "hold") {
        const stored: NodeMessage = { ...out };
        delete stored.req;
        delete stored.res;
        await this.hold.hold({ due: plan.at.getTime(), params: messageParams(r, to, channel), jobId: r.jobId, channel, msg: JSON.parse(JSON.stringify(stored)) as NodeMessage });
        return;
      }
    }
    await this.deliver(out, messageParams(r, to, channel, when), r.jobId, channel);
  }

  private async input(msg: NodeMessage, status: (s: NodeStatus) => void): Promise<void> {
    try {
      await this.handleInput(msg, status);
    } catch (err) {
      // A refusal no retry can fix (bad number, body too long…) also finishes the event for the push journal.
      const erpJob = (msg.erp as { jobId?: unknown } | undefined)?.jobId;
      if (typeof erpJob === "string" && !mayRetry(err) && !(err instanceof Object && this.accounted.has(err))) jobSettled(erpJob);
      throw err;
    }
  }

  private async handleInput(msg: NodeMessage, status: (s: NodeStatus) => void): Promise<void> {
    const cfg = this.cfg();
    const r = await readSmsRequest(this.RED, this.node, this.config, cfg, msg);
    status(Status.busy("mlc-twilio-sms.status.sending"));
    const failures: { err: unknown; out: NodeMessage }[] = [];
    for (const raw of r.recipients) {
      const out: NodeMessage = r.recipients.length > 1 ? this.RED.util.cloneMessage(msg) : msg;
      let to = "";
      let channel: TwilioChannel = "sms";
      try {
        to = toE164(raw, cfg.defaultRegion);
        channel = channelOf(to, r.media);
        await this.sendOne(r, out, to, channel);
      } catch (err) {
        this.n.failed++;
        const code = err instanceof TwilioError ? err.twilioCode : err instanceof ValidationError && err.code === "opted_out" ? 21610 : undefined;
        out.twilio = { sid: "", status: err instanceof TimeoutError && err.outcomeUnknown ? "unknown" : "failed", to: to || maskPhone(raw), channel, jobId: r.jobId, ...(code ? { errorCode: code } : {}) } satisfies TwilioMeta;
        if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
        failures.push({ err, out });
      }
    }
    this.showCounts();
    this.finish(r, failures);
  }

  /**
   * Settle the event for the push journal (lib/journal.ts) once no recipient is left to a retry or a replay (sent,
   * held durably, or refused for good), then report failures: one recipient → thrown (Catch via done), several →
   * each on its own through node.error (the others were sent).
   */
  private finish(r: SmsRequest, failures: { err: unknown; out: NodeMessage }[]): void {
    if (!failures.some((f) => mayRetry(f.err))) jobSettled(r.jobId);
    for (const f of failures) if (f.err instanceof Object) this.accounted.add(f.err);
    if (r.recipients.length === 1 && failures.length === 1) throw failures[0].err;
    for (const f of failures) {
      f.out.errorDetails = f.err instanceof MlcError ? f.err.toDetails() : { message: String(f.err) };
      this.node.error(f.err, f.out);
    }
  }
}

/** Register `mlc-twilio-sms` (properties: {@link SmsProps}; outputs: sent msgs with msg.twilio, polled statuses). */
export function registerSms(RED: RedAPI): void {
  registerNode<SmsProps>(RED, "mlc-twilio-sms", (node: RedNode, config) => {
    new SmsNode(RED, node, config);
  });
}
