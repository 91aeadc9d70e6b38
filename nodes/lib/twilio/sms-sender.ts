/**
 * The send pipeline of one `mlc-twilio-sms` node, without Node-RED: for each recipient the opt-out check, the
 * quiet-hours plan (send now, schedule with SendAt, or hold durably in a {@link HoldQueue}), the at-most-once create
 * through the node's {@link SendLedger} and audit trail (messages.ts deliverMessage), and status polling until a
 * final status (status-poller.ts) published on the account's status channel (bus.ts). The adapter
 * (nodes/twilio/sms.ts) supplies the client, stores and the ways to emit, and keeps the counts.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling
 */
import type { AuditTrail } from "../audit";
import type { TwilioChannel, TwilioMeta } from "../envelope";
import { MlcError, ValidationError } from "../errors";
import { maskPhone } from "../phone";
import type { BusinessHours } from "../quiet-hours";
import { publishStatus } from "./bus";
import type { SendMessageParams, TwilioClient, TwilioMessage } from "./client";
import { HoldQueue, quietPlan } from "./hold-queue";
import { SendLedger, ledgerKey } from "./ledger";
import { Delivered, MessageSendOptions, deliverMessage } from "./messages";
import type { OptOutList } from "./optout";
import { StatusPoller } from "./status-poller";

/** When this module was loaded (≈ process start): a create claimed before it may have left before a crash. */
const LOADED_AT = Date.now();

/** A message held for quiet hours (context store; contains the recipient because it must be sent later). */
export interface HeldMessage<M> {
  /** When it may go, ms since epoch. */
  due: number;
  params: SendMessageParams;
  jobId: string;
  channel: TwilioChannel;
  msg: M;
}

/** What the status poller keeps per message. */
interface Polled {
  jobId: string;
  to: string;
  channel: TwilioChannel;
}

/** One send of a request, as {@link SmsSender.sendOne} plans it. */
export interface SmsSend {
  jobId: string;
  /** An explicit SendAt: the message is scheduled with it, never held. */
  sendAt?: Date;
  /** Sent at once whatever the hour. */
  urgent: boolean;
  /** The recipient's IANA time zone, when the message says it. */
  tz?: string;
  /** Sent through a Messaging Service (only then can Twilio schedule it). */
  viaService: boolean;
  /** The create parameters, scheduled at `when` when given. */
  params(when?: Date): SendMessageParams;
}

export interface SmsSenderOptions<M extends Record<string, unknown>> {
  client: () => TwilioClient;
  accountSid: () => string;
  optOuts: () => OptOutList;
  /** The node's send ledger; undefined when its store is unusable (every send then fails "unknown_store"). */
  ledger: () => SendLedger | undefined;
  /** The audit trail written before the create (claim before send), if an mlc-audit node uses one. */
  trail: () => Promise<AuditTrail> | undefined;
  /** Re-sends allowed after a lookup proved a message absent (0–10). */
  retries: number;
  /** How long after the create a lookup may find it, ms. */
  reconcileWindowMs: number;
  /** Poll each sent message's status (for Twilio that cannot reach Node-RED). */
  poll: boolean;
  pollIntervalMs: number;
  /** Give up polling a message after, ms. */
  pollTimeoutMs: number;
  /** Quiet hours and the durable hold queue, when set. */
  hours?: BusinessHours;
  hold?: HoldQueue<HeldMessage<M>>;
  /** Default IANA time zone of recipients, and the quiet mode ("hold" never schedules with SendAt). */
  defaultTz?: string;
  quietMode?: string;
  aborted: () => boolean;
  /** A message was sent (or found sent): emit `base` with `twilio`. */
  onSent: (base: M, twilio: TwilioMeta & Record<string, unknown>, reconciled: boolean) => void;
  /** A polled status advance, as the msg for the status output. */
  onPolled: (out: Record<string, unknown>) => void;
  onPollError: (err: unknown, sid: string) => void;
  /** A held message failed when released (it is not held again). */
  onHeldFailed: (h: HeldMessage<M>, err: unknown, twilio: TwilioMeta, details: ReturnType<MlcError["toDetails"]> | { message: string }) => void;
}

/** The send pipeline of one `mlc-twilio-sms` node (see the module comment). */
export class SmsSender<M extends Record<string, unknown>> {
  private readonly poller: StatusPoller<TwilioMessage, Polled>;

  constructor(private readonly o: SmsSenderOptions<M>) {
    this.poller = new StatusPoller<TwilioMessage, Polled>({
      kind: "message",
      intervalMs: o.pollIntervalMs,
      fetch: (sid) => o.client().fetchMessage(sid),
      onChange: (w, m) => this.polled(w.sid, w.data, m),
      onError: (err, w) => o.onPollError(err, w.sid),
    });
  }

  close(): void {
    this.poller.close();
  }

  /** A polled status advance: the status output and the account's status channel. */
  private polled(sid: string, p: Polled, m: TwilioMessage): void {
    const { jobId, to, channel } = p;
    const twilio: TwilioMeta = { sid, status: m.status, to, channel, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}) };
    this.o.onPolled({ topic: `twilio/status/${m.status}`, payload: { MessageSid: sid, MessageStatus: m.status, ErrorCode: m.errorCode ?? undefined }, twilio });
    publishStatus(this.o.accountSid(), { kind: "message", sid, status: m.status, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}), fields: { MessageSid: sid, MessageStatus: m.status } });
  }

  private sendOptions(ledger: SendLedger): MessageSendOptions {
    return {
      client: this.o.client,
      ledger,
      retries: this.o.retries,
      windowMs: this.o.reconcileWindowMs,
      aborted: this.o.aborted,
      onOptedOut: (to) => this.o.optOuts().optOut(to, "21610"),
    };
  }

  /**
   * Send one prepared message at most once per jobId|to|channel (messages.ts) and emit it.
   * @throws ValidationError "unknown_store" without a ledger; what deliverMessage throws
   */
  async deliver(base: M, params: SendMessageParams, jobId: string, channel: TwilioChannel): Promise<void> {
    const ledger = this.o.ledger();
    if (!ledger) throw new ValidationError("Send ledger not available", { code: "unknown_store" });
    const key = ledgerKey(jobId, params.to, channel);
    const trail = await this.o.trail();
    const erp = base.erp as Record<string, unknown> | undefined;
    const d: Delivered = await ledger.serial(key, () => deliverMessage(this.sendOptions(ledger), trail, params, { key, jobId, channel, erp, loadedAt: LOADED_AT }));
    const flags = { ...(d.duplicate ? { duplicate: true } : {}), ...(d.reconciled ? { reconciled: true } : {}) };
    const twilio: TwilioMeta & Record<string, unknown> = { sid: d.sid, status: d.status, to: d.to, channel, jobId, ...(d.errorCode ? { errorCode: d.errorCode } : {}), ...flags };
    this.o.onSent(base, twilio, d.reconciled === true);
    if (this.o.poll && !d.duplicate) this.poller.add(d.sid, d.status, { jobId, to: d.to, channel }, Date.now() + this.o.pollTimeoutMs);
  }

  /** A held message is due: send it; a failure goes to onHeldFailed with the held msg. */
  async releaseHeld(h: HeldMessage<M>): Promise<void> {
    try {
      await this.deliver(h.msg, h.params, h.jobId, h.channel);
    } catch (err) {
      const twilio: TwilioMeta = { sid: "", status: "failed", to: h.params.to, channel: h.channel, jobId: h.jobId };
      this.o.onHeldFailed(h, err, twilio, err instanceof MlcError ? err.toDetails() : { message: String(err) });
    }
  }

  /**
   * Send one recipient: scheduled (SendAt) or held durably outside quiet hours unless urgent.
   * @param out the msg emitted for it (a held copy drops `req`/`res`)
   * @throws ValidationError "opted_out" for a recipient who replied STOP; what {@link deliver} throws
   */
  async sendOne(s: SmsSend, out: M, to: string, channel: TwilioChannel): Promise<void> {
    if (await this.o.optOuts().isOptedOut(to)) throw new ValidationError(`${maskPhone(to)} opted out (replied STOP); not sent`, { code: "opted_out" });
    let when = s.sendAt;
    const { hours, hold } = this.o;
    if (hours && hold && !s.urgent && !when) {
      const plan = quietPlan(hours, to, { tz: s.tz, defaultTz: this.o.defaultTz, viaService: s.viaService, mode: this.o.quietMode });
      if (plan.kind === "schedule") when = plan.at;
      if (plan.kind === "hold") {
        const stored: Record<string, unknown> = { ...out };
        delete stored.req;
        delete stored.res;
        await hold.hold({ due: plan.at.getTime(), params: s.params(), jobId: s.jobId, channel, msg: JSON.parse(JSON.stringify(stored)) as M });
        return;
      }
    }
    await this.deliver(out, s.params(when), s.jobId, channel);
  }
}
