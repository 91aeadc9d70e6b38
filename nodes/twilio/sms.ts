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
 * The steps live in nodes/lib/twilio/: sms-sender.ts (opt-outs, quiet hours, at-most-once create, polling) over
 * messages.ts, hold-queue.ts and status-poller.ts; what an input asks for is read in sms-input.ts.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling
 */
import type { TwilioChannel } from "../lib/envelope";
import { MlcError } from "../lib/errors";
import { maskPhone, toE164 } from "../lib/phone";
import type { BusinessHours } from "../lib/quiet-hours";
import { HoldQueue, SEND_AT_MAX_MS } from "../lib/twilio/hold-queue";
import { EventSettlement, RecipientFailure, failedRecipient } from "../lib/twilio/recipients";
import { SendLedger } from "../lib/twilio/ledger";
import { HeldMessage, SmsSender } from "../lib/twilio/sms-sender";
import { smsSend } from "../lib/twilio/sms-request";
import { contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { Status, num, onClose, onInput, registerNode, reportError, statusTemplate } from "../shared/node";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";
import { sharedAuditTrail } from "../shared/audit-trail";
import { TwilioConfigApi, twilioConfig } from "./config";
import { SmsProps, channelOf, quietHours, readSmsRequest } from "./sms-input";

export { MAX_BODY_CHARS } from "./sms-input";
export type { SmsProps } from "./sms-input";

/** One deployed `mlc-twilio-sms` node: its ledger, hold queue, sender and counts. */
class SmsNode {
  private readonly n = { sent: 0, failed: 0 };
  private hours: BusinessHours | undefined;
  private hold: HoldQueue<HeldMessage<NodeMessage>> | undefined;
  private ledger: SendLedger | undefined;
  private readonly sender: SmsSender<NodeMessage>;
  private readonly settlement = new EventSettlement();
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
    let closed = false;
    this.sender = new SmsSender<NodeMessage>({
      client: () => this.cfg().client(),
      accountSid: () => this.cfg().accountSid,
      optOuts: () => this.cfg().optOuts(node),
      ledger: () => this.ledger,
      trail: () => sharedAuditTrail(node, String(config.auditTrail ?? "").trim() || "default"),
      retries: num(config.retries, 0, 0, 10),
      reconcileWindowMs: num(config.reconcileWindow, 30, 1, 3600) * 1000,
      poll: Boolean(config.poll),
      pollIntervalMs: num(config.pollInterval, 10, 1, 3600) * 1000,
      pollTimeoutMs: num(config.pollTimeout, 3600, 10, 7 * 86400) * 1000,
      hours: this.hours,
      hold: this.hold,
      defaultTz: config.defaultTimezone,
      quietMode: config.quietMode,
      aborted: () => closed,
      onSent: (base, twilio, reconciled) => {
        this.n.sent++;
        node.send([{ ...base, twilio, ...(reconciled ? { reconciled: true } : {}) }, null]);
      },
      onPolled: (out) => node.send([null, out]),
      onPollError: (err, sid) => reportError(RED, node, err, { topic: "mlc-twilio-sms/poll", sid }),
      onHeldFailed: (h, err, twilio, errorDetails) => {
        this.n.failed++;
        node.error(err, { ...h.msg, twilio, errorDetails });
      },
    });
    this.hold?.start();
    onInput(RED, node, (msg, ctx) => this.input(msg, ctx.status));
    onClose(node, () => {
      closed = true;
      this.hold?.close();
      this.sender.close();
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
        this.hold = new HoldQueue<HeldMessage<NodeMessage>>(contextBackend(node, "node", resolveStore(RED, config.store).name), {
          keyOf: (h) => `${h.jobId}|${h.params.to}`,
          release: (h) => this.sender.releaseHeld(h),
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

  private async input(msg: NodeMessage, status: (s: NodeStatus) => void): Promise<void> {
    try {
      await this.handleInput(msg, status);
    } catch (err) {
      this.settlement.inputFailed((msg.erp as { jobId?: unknown } | undefined)?.jobId, err);
      throw err;
    }
  }

  /**
   * Send to every recipient, settle the event for the push journal (lib/twilio/recipients.ts), then report failures:
   * one recipient → thrown (Catch via done), several → each on its own through node.error (the others were sent).
   */
  private async handleInput(msg: NodeMessage, status: (s: NodeStatus) => void): Promise<void> {
    const cfg = this.cfg();
    const r = await readSmsRequest(this.RED, this.node, this.config, cfg, msg);
    status(Status.busy("mlc-twilio-sms.status.sending"));
    const failures: RecipientFailure<NodeMessage>[] = [];
    for (const raw of r.recipients) {
      const out: NodeMessage = r.recipients.length > 1 ? this.RED.util.cloneMessage(msg) : msg;
      let to = "";
      let channel: TwilioChannel = "sms";
      try {
        to = toE164(raw, cfg.defaultRegion);
        channel = channelOf(to, r.media);
        await this.sender.sendOne(smsSend(r, to, channel), out, to, channel);
      } catch (err) {
        this.n.failed++;
        out.twilio = failedRecipient(err, to || maskPhone(raw), channel, r.jobId);
        if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
        failures.push({ err, out });
      }
    }
    this.showCounts();
    const thrown = this.settlement.settle(r.jobId, r.recipients.length, failures);
    if (thrown !== undefined) throw thrown;
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
