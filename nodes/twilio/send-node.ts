/**
 * What every Twilio send node (`mlc-twilio-sms`, `-call`, `-verify`, `-email`) repeats, in one base class: the
 * account lookup, error reports with the node type's topics, the send ledger in the node's context store (claim
 * before send, lib/twilio/ledger.ts), the "ready"/lossy-store start status, the counts status template, the input
 * and close glue (shared/node.ts onInput/onClose) and the description of a failed send on `msg`.
 * Vendor: Node-RED "Creating nodes" (input with send/done, close with done, status).
 */
import type { TwilioChannel } from "../lib/envelope";
import { MlcError, TimeoutError } from "../lib/errors";
import { SendLedger, SendLedgerOptions, isUnknownOutcome } from "../lib/twilio/ledger";
import { failedRecipient } from "../lib/twilio/recipients";
import { StoreInfo, contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { InputContext, Status, onClose, onInput, reportError, statusTemplate } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import { TwilioConfigApi, twilioConfig } from "./config";
import { adoptParked, parkOutput, withHandoff } from "./handoff";

/** Properties every send node has: the account (config node id) and the context store of its ledger. */
export interface SendNodeProps extends Record<string, unknown> {
  twilio?: string;
  /** Context store of the send ledger ("" = default). */
  store?: string;
}

/** The ERP record id of the event `msg` carries (`msg.erp.id`), if any. */
export const recordIdOf = (msg: NodeMessage): string | undefined => (msg.erp as { id?: string } | undefined)?.id;

/** Base of a Twilio send node: construct it in the node's setup; subclasses add their own steps. */
export class TwilioSendNode<P extends SendNodeProps> {
  /** The send ledger (set by the subclass at start; undefined when its store is unusable). */
  protected ledger: SendLedger | undefined;
  /** Set when the node closes (a send in progress stops retrying). */
  protected closed = false;

  constructor(
    protected readonly RED: RedAPI,
    protected readonly node: RedNode,
    protected readonly config: P,
    /** The node type, e.g. "mlc-twilio-sms": prefix of the status keys and error topics. */
    protected readonly type: string,
  ) {}

  /**
   * The account's API (shared/config.ts configApi).
   * @throws ValidationError no_config when no Twilio account is selected, or the account's configuration error
   */
  protected cfg(): TwilioConfigApi {
    return twilioConfig(this.RED, this.config.twilio);
  }

  /** Report `err` to Catch with the topic `<type>/<what>` (red status). */
  protected report(err: unknown, what: string, extra: Record<string, unknown> = {}): void {
    reportError(this.RED, this.node, err, { topic: `${this.type}/${what}`, ...extra });
  }

  /** The node's context store (`store` property, "" = default). @throws ValidationError unknown_store */
  protected storeInfo(): StoreInfo {
    return resolveStore(this.RED, this.config.store);
  }

  /**
   * The node's send ledger in its context store, scoped to the node; a failure of its first load is reported
   * (`<type>/ledger`). @throws ValidationError unknown_store (see {@link ledgerOrReport})
   */
  protected openLedger(opts: SendLedgerOptions = {}): SendLedger {
    const ledger = new SendLedger(contextBackend(this.node, "node", this.storeInfo().name), { scope: this.node.id, ...opts });
    ledger.ready.catch((err: unknown) => this.report(err, "ledger"));
    return ledger;
  }

  /** {@link openLedger}, or undefined when the store is unusable (reported as `<type>/start`). */
  protected ledgerOrReport(opts: SendLedgerOptions = {}): SendLedger | undefined {
    try {
      return this.openLedger(opts);
    } catch (err) {
      this.report(err, "start");
      return undefined;
    }
  }

  /**
   * The start status: the store's yellow lossy warning (the ledger is what stops a double after a crash), else
   * `<type>.status.ready`. Call after the account was checked.
   */
  protected showReady(info: StoreInfo = this.storeInfo()): void {
    if (!warnIfLossy(this.RED, this.node, info)) this.node.status(Status.idle(`${this.type}.status.ready`));
  }

  /** The `<type>.status.counts` template, translated once (shared/node.ts statusTemplate). */
  protected countsTemplate(fallback: string, key = "counts"): (values: Record<string, string | number>) => string {
    return statusTemplate(this.RED, `${this.type}.status.${key}`, fallback);
  }

  /**
   * Describe a failed send on `msg.twilio` (lib/twilio/recipients.ts failedRecipient: status "failed", "unknown" after
   * a time-out once the request had left, the Twilio error code) and tag the error with the ERP record id.
   * @returns `err`, to be thrown
   */
  protected failed(err: unknown, msg: NodeMessage, to: string, channel: TwilioChannel, jobId: string): unknown {
    msg.twilio = failedRecipient(err, to, channel, jobId);
    if (err instanceof MlcError) err.recordId = recordIdOf(msg);
    return err;
  }

  /** Emit `out`; once the node closed, through its next instance (handoff.ts), since this one's wires are gone. */
  protected emit(out: (NodeMessage | null)[]): void {
    if (!this.closed || !parkOutput(this.node.id, out)) this.node.send(out);
  }

  /** Report each failure on its own (node.error with msg.errorDetails), e.g. the failed recipients of one input. */
  protected reportEach(failures: { err: unknown; out: NodeMessage }[]): void {
    for (const f of failures) {
      f.out.errorDetails = f.err instanceof MlcError ? f.err.toDetails() : { message: String(f.err) };
      this.node.error(f.err, f.out);
    }
  }

  /** Inputs (errors to Catch via done) and close (`closed`, then `close`); a redeploy's refused inputs go on in handoff.ts. */
  protected listen(input: (msg: NodeMessage, ctx: InputContext) => Promise<void>, close?: () => void): void {
    onInput(this.RED, this.node, withHandoff(this.node, () => this.closed, input));
    adoptParked(this.node);
    onClose(this.node, () => {
      this.closed = true;
      close?.();
    });
  }
}

/**
 * Send at most once per ledger key, for a vendor that cannot be asked whether a send happened (SendGrid: its Email
 * Activity API is a paid add-on): claim → send → record the id (X-Message-Id). A key already sent is a duplicate
 * (nothing sent); a key whose earlier outcome is unknown is not sent again.
 * @throws TimeoutError (outcomeUnknown) for that unknown key; what `send` throws (a refusal releases the claim)
 */
export async function sendOnceUnverifiable(ledger: SendLedger, key: string, send: () => Promise<{ messageId: string }>): Promise<{ messageId: string; duplicate: boolean }> {
  return ledger.serial(key, async () => {
    const claim = await ledger.claim(key);
    if (claim.outcome === "sent") return { messageId: claim.entry.sid ?? "", duplicate: true };
    if (claim.outcome === "unknown") throw new TimeoutError("An earlier send of this e-mail has an unknown outcome and SendGrid cannot be asked: not sent again", { outcomeUnknown: true });
    try {
      const r = await send();
      await ledger.settle(key, r.messageId, "queued");
      return { messageId: r.messageId, duplicate: false };
    } catch (err) {
      if (!isUnknownOutcome(err)) await ledger.release(key); // refused: nothing was sent
      throw err;
    }
  });
}
