/**
 * `mlc-twilio-sms`: one SMS/MMS/WhatsApp message per recipient through the Messages API. To, From / Messaging
 * Service, Body (Mustache over msg), MediaUrl, WhatsApp Content templates and SendAt come from the editor or msg
 * (sms-input.ts); numbers are normalised to E.164; a bad number, an opted-out recipient (21610 adds one) or a Twilio
 * error fails that recipient only (Catch). Quiet hours schedule the send with Twilio (SendAt, Messaging Service) or
 * hold it durably until the window opens (msg.urgent = true goes at once). Statuses come by StatusCallback (with the
 * jobId) or by polling (second output). A send whose outcome is unknown is looked up and re-sent only when Twilio
 * has no such message. The steps live in nodes/lib/twilio/ (sms-sender.ts over messages.ts, hold-queue.ts,
 * status-poller.ts); the node glue in send-node.ts.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling
 */
import type { TwilioChannel } from "../lib/envelope";
import { shallowCopy } from "../lib/json-copy";
import { maskPhone, toE164 } from "../lib/phone";
import type { BusinessHours } from "../lib/quiet-hours";
import { HoldQueue, SEND_AT_MAX_MS } from "../lib/twilio/hold-queue";
import { EventSettlement, RecipientFailure } from "../lib/twilio/recipients";
import { HeldMessage, SmsSender } from "../lib/twilio/sms-sender";
import { smsSend } from "../lib/twilio/sms-request";
import { contextBackend } from "../shared/context";
import { InputContext, Status, registerNode } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import { sharedAuditTrail } from "../shared/audit-trail";
import { SmsProps, channelOf, quietHours, readSmsRequest, senderSettings } from "./sms-input";
import { TwilioSendNode } from "./send-node";

export { MAX_BODY_CHARS } from "./sms-input";
export type { SmsProps } from "./sms-input";

/** One deployed `mlc-twilio-sms` node: its ledger, hold queue, sender and counts (send-node.ts does the glue). */
class SmsNode extends TwilioSendNode<SmsProps> {
  private readonly n = { sent: 0, failed: 0 };
  private hours: BusinessHours | undefined;
  private hold: HoldQueue<HeldMessage<NodeMessage>> | undefined;
  private readonly sender: SmsSender<NodeMessage>;
  private readonly settlement = new EventSettlement();
  private readonly countsText = this.countsTemplate("sent __sent__, failed __failed__");
  private readonly countsHeldText = this.countsTemplate("sent __sent__, failed __failed__, held __held__", "countsHeld");

  constructor(RED: RedAPI, node: RedNode, config: SmsProps) {
    super(RED, node, config, "mlc-twilio-sms");
    this.start();
    this.sender = this.makeSender();
    this.hold?.start();
    this.listen(
      (msg, ctx) => this.input(msg, ctx),
      () => {
        this.hold?.close();
        this.sender.close();
      },
    );
  }

  /** The sender (lib/twilio/sms-sender.ts) with this node's settings; sent msgs on output 1, polled statuses on 2. */
  private makeSender(): SmsSender<NodeMessage> {
    const { node, config } = this;
    return new SmsSender<NodeMessage>({
      client: () => this.cfg().client(),
      accountSid: () => this.cfg().accountSid,
      optOuts: () => this.cfg().optOuts(node),
      ledger: () => this.ledger,
      trail: () => sharedAuditTrail(node, String(config.auditTrail ?? "").trim() || "default"),
      ...senderSettings(config),
      hours: this.hours,
      hold: this.hold,
      aborted: () => this.closed,
      onSent: (base, twilio, reconciled) => {
        this.n.sent++;
        const out: NodeMessage & { twilio?: unknown; reconciled?: boolean } = shallowCopy(base);
        out.twilio = twilio;
        if (reconciled) out.reconciled = true;
        this.emit([out, null]);
      },
      onPolled: (out) => node.send([null, out]),
      onPollError: (err, sid) => this.report(err, "poll", { sid }),
      onHeldFailed: (h, err, twilio, errorDetails) => {
        this.n.failed++;
        node.error(err, { ...h.msg, twilio, errorDetails });
      },
    });
  }

  private showCounts(): void {
    const { sent, failed } = this.n;
    const held = this.hold?.count ?? 0;
    const text = held > 0 ? this.countsHeldText({ sent, failed, held }) : this.countsText({ sent, failed });
    this.node.status(failed ? Status.warn(text) : Status.ok(text));
  }

  /**
   * Quiet hours, hold queue and the account, then the ledger (a bad quiet-hours setting leaves sending possible). A
   * missing account or a bad setting shows at deploy instead of "ready" (or the lossy store's warning).
   */
  private start(): void {
    let ok = false;
    try {
      this.hours = quietHours(this.config);
      if (this.hours) {
        this.hold = new HoldQueue<HeldMessage<NodeMessage>>(contextBackend(this.node, "node", this.storeInfo().name), {
          keyOf: (h) => `${h.jobId}|${h.params.to}`,
          release: (h) => this.sender.releaseHeld(h),
          onChecked: () => this.showCounts(),
          onError: (err) => this.report(err, "held"),
          ttlMs: SEND_AT_MAX_MS,
        });
      }
      this.cfg(); // a missing or failed account shows here at deploy, not as "ready"
      ok = true;
    } catch (err) {
      this.report(err, "start");
    }
    this.ledger = this.ledgerOrReport();
    if (ok && this.ledger) this.showReady();
  }

  /**
   * Send to every recipient, settle the event for the push journal (lib/twilio/recipients.ts), then report failures:
   * one recipient → thrown (Catch via done), several → each on its own through node.error (the others were sent).
   */
  private async input(msg: NodeMessage, { status }: InputContext): Promise<void> {
    try {
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
          failures.push({ err: this.failed(err, out, to || maskPhone(raw), channel, r.jobId), out });
        }
      }
      this.showCounts();
      const thrown = this.settlement.settle(r.jobId, r.recipients.length, failures);
      if (thrown !== undefined) throw thrown;
      this.reportEach(failures);
    } catch (err) {
      this.settlement.inputFailed((msg.erp as { jobId?: unknown } | undefined)?.jobId, err);
      throw err;
    }
  }
}

/** Register `mlc-twilio-sms` (properties: {@link SmsProps}; outputs: sent msgs with msg.twilio, polled statuses). */
export function registerSms(RED: RedAPI): void {
  registerNode<SmsProps>(RED, "mlc-twilio-sms", (node: RedNode, config) => void new SmsNode(RED, node, config));
}
