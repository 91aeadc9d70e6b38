/**
 * `mlc-twilio-verify`: one-time passcodes through Twilio Verify v2, so a flow can gate a sensitive ERP change
 * (new vendor bank details, a payment release) on a person proving they hold a phone or mailbox.
 * Operation "start" sends a code (SMS, voice call, e-mail or WhatsApp); "check" checks the code the user typed.
 * Four outputs: [1] approved, [2] pending (code sent / wrong code), [3] expired (not found, canceled),
 * [4] max attempts. Other failures go to Catch. The passcode never appears in msg.verify, the status, logs or
 * error text, and the msg property it was read from is removed before the msg is passed on.
 * Vendor: https://www.twilio.com/docs/verify/api/verification ; https://www.twilio.com/docs/verify/api/verification-check
 */
import { MlcError, ValidationError } from "../lib/errors";
import { ledgerKey } from "../lib/twilio/ledger";
import { VERIFY_PORT, VerifyOperation, failedVerifyMeta, str, verificationSidOf, verifyMeta, verifyRecipient } from "../lib/twilio/verify-meta";
import { START_LEDGER_TTL_MS, VerifyOutcome, VerifyResult, checkVerification, startVerificationOnce } from "../lib/twilio/verify";
import { InputContext, Status, firstSet, messageJobId, registerNode, t } from "../shared/node";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";
import { TwilioSendNode, recordIdOf } from "./send-node";
import { VerifyInput, VerifyProps, readVerifyInput, startCheck, verifyOperation } from "./verify-input";

export const VERIFY_TYPE = "mlc-twilio-verify";

export type { VerifyMeta, VerifyOperation } from "../lib/twilio/verify-meta";
export type { VerifyProps } from "./verify-input";

/** One deployed `mlc-twilio-verify` node: its start ledger and counts (send-node.ts does the glue). */
class VerifyNode extends TwilioSendNode<VerifyProps> {
  private readonly n = { sent: 0, approved: 0 };
  /** Result labels, translated once each (statuses compose them with the counts). */
  private readonly labels = new Map<string, string>();
  private readonly countsText = this.countsTemplate("__last__: sent __sent__, ok __ok__");

  constructor(RED: RedAPI, node: RedNode, config: VerifyProps) {
    super(RED, node, config, VERIFY_TYPE);
    // Say at deploy what is missing instead of "ready": the account, the Service SID or its variable.
    startCheck(RED, node, config)
      .then(() => node.status(Status.idle(`${VERIFY_TYPE}.status.ready`)))
      .catch((err: unknown) => this.report(err, "start"));
    this.ledger = this.ledgerOrReport({ prefix: "vl", ttlMs: START_LEDGER_TTL_MS, maxEntries: 50000 });
    this.listen((msg, ctx) => this.input(msg, ctx));
  }

  private label(key: string, fallback: string): string {
    let s = this.labels.get(key);
    if (s === undefined) this.labels.set(key, (s = t(this.RED, `${VERIFY_TYPE}.result.${key}`, undefined, fallback)));
    return s;
  }

  private counts(last: string): string {
    return this.countsText({ last, sent: this.n.sent, ok: this.n.approved });
  }

  /** Status after an outcome: green approved, blue code sent, yellow wrong code / expired, red max attempts. */
  private statusFor(op: VerifyOperation, r: VerifyOutcome): NodeStatus {
    if (r === "approved") return Status.ok(this.counts(this.label("approved", "approved")));
    if (r === "pending") return op === "start" ? Status.busy(this.counts(this.label("sent", "code sent"))) : Status.warn(this.counts(this.label("wrong", "wrong code")));
    if (r === "max_attempts") return Status.error(this.counts(this.label("maxAttempts", "max attempts")));
    return Status.warn(this.counts(r === "canceled" ? this.label("canceled", "canceled") : this.label("expired", "expired")));
  }

  private async input(msg: NodeMessage, { send, status }: InputContext): Promise<void> {
    const op = verifyOperation(this.config, msg);
    const req = await readVerifyInput(this.RED, this.node, this.config, msg, op);
    const sent = { to: "", channel: req.channel };
    let result: VerifyResult;
    try {
      result = op === "start" ? await this.start(msg, req, sent, status) : await this.check(msg, req, sent, status);
    } catch (err) {
      msg.verify = failedVerifyMeta(err, sent.to, req.rawTo, sent.channel);
      const recordId = recordIdOf(msg);
      if (err instanceof MlcError && recordId !== undefined) err.recordId = recordId;
      throw err;
    }
    if (result.result === "approved") this.n.approved++;
    msg.verify = verifyMeta(result, sent.to, sent.channel);
    status(this.statusFor(op, result.result));
    const out: (NodeMessage | null)[] = [null, null, null, null];
    out[VERIFY_PORT[result.result]] = msg;
    send(out);
  }

  /** Send a code at most once per jobId, recipient, channel and service (lib/twilio/verify.ts startVerificationOnce). */
  private async start(msg: NodeMessage, req: VerifyInput, sent: { to: string }, status: (s: NodeStatus) => void): Promise<VerifyResult> {
    const { serviceSid, channel } = req;
    const cfg = this.cfg();
    sent.to = verifyRecipient(req.rawTo, channel === "email", cfg.defaultRegion);
    status(Status.busy(`${VERIFY_TYPE}.status.sending`));
    const params = { serviceSid, to: sent.to, channel, locale: firstSet(str(this.config.locale), str(msg.locale)) };
    if (!this.ledger) throw new ValidationError("Start ledger not available", { code: "unknown_store" });
    const result = await startVerificationOnce(this.ledger, ledgerKey(messageJobId(msg), sent.to, `verify:${channel}:${serviceSid}`), cfg.client(), params);
    if (result.result === "pending" && !(result as { duplicate?: boolean }).duplicate) this.n.sent++;
    return result;
  }

  /** Check the code against the verification (by its SID, or by recipient and service). */
  private async check(msg: NodeMessage, req: VerifyInput, sent: { to: string; channel: VerifyInput["channel"] }, status: (s: NodeStatus) => void): Promise<VerifyResult> {
    const { serviceSid, rawTo, code } = req;
    const cfg = this.cfg();
    const verificationSid = verificationSidOf(msg.verificationSid, msg.verify);
    if (rawTo !== undefined && rawTo !== null && String(rawTo).trim() !== "") {
      const email = sent.channel === "email" || (typeof rawTo === "string" && rawTo.includes("@"));
      if (email) sent.channel = "email";
      sent.to = verifyRecipient(rawTo, email, cfg.defaultRegion);
    }
    status(Status.busy(`${VERIFY_TYPE}.status.checking`));
    return checkVerification(cfg.client(), { serviceSid, to: sent.to || undefined, verificationSid, code, channel: sent.channel });
  }
}

/** Register `mlc-twilio-verify` (properties: {@link VerifyProps}; outputs approved, pending, expired, max attempts). */
export function registerVerify(RED: RedAPI): void {
  registerNode<VerifyProps>(RED, VERIFY_TYPE, (node, config) => {
    new VerifyNode(RED, node, config);
  });
}
