/**
 * `mlc-twilio-email`: sends one e-mail per input message through Twilio SendGrid (v3 Mail Send, via the
 * account's own `@sendgrid/mail` MailService). To comes from a TypedInput (default `msg.email`), From
 * defaults to the account's SendGrid sender, Subject and Body are Mustache templates over msg (an HTML body
 * escapes `{{…}}` values). The jobId travels as the custom argument `mlc_job_id`, so the SendGrid Event
 * Webhook served by `mlc-twilio-status` (`<endpoint>/sendgrid`) reports statuses with it.
 * Vendor: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
 */
import type { TwilioMeta } from "../lib/envelope";
import { MlcError, TimeoutError, ValidationError } from "../lib/errors";
import { maskEmail } from "../lib/phone";
import { JOB_ID_ARG, parseEmailAddress, renderHtmlTemplate, sendEmail } from "../lib/twilio/sendgrid";
import { isTemplate, renderTemplate } from "../lib/template";
import { ledgerKey } from "../lib/twilio/ledger";
import { InputContext, Status, evaluate, firstSet, messageJobId, registerNode } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";
import { TwilioSendNode, recordIdOf, sendOnceUnverifiable } from "./send-node";

/** Editor properties of `mlc-twilio-email`. */
export interface EmailProps extends Record<string, unknown> {
  name?: string;
  twilio?: string;
  /** Recipient TypedInput; default msg.email. */
  to?: string;
  toType?: string;
  /** Sender ("ap@example.com" or "Name <ap@example.com>"); "" = the account's SendGrid From. */
  from?: string;
  /** TypedInput type of From (str, msg, flow, global, env); absent in older flows = str. */
  fromType?: string;
  /** Mustache template; "" = msg.subject. */
  subject?: string;
  /** Mustache template; "" = msg.body, else a string msg.payload. */
  body?: string;
  /** The body is HTML (sent as text/html, values HTML-escaped). */
  html?: boolean | string;
  /** Context store of the send ledger ("" = default). */
  store?: string;
}

function render(template: string, msg: unknown, html: boolean): string {
  if (!isTemplate(template)) return template;
  return html ? renderHtmlTemplate(template, msg) : renderTemplate(template, msg);
}

/**
 * Register `mlc-twilio-email`. Output: the input msg with `msg.twilio = { sid: <X-Message-Id>, status: "queued",
 * to, channel: "email", jobId }`. Errors reach Catch via done(err) with `msg.twilio.status` "failed" ("unknown"
 * after a time-out once the request had left): ValidationError invalid_email / invalid_from / no_sender /
 * empty_subject / empty_body / bad_template / no_api_key / bad_api_key (nothing sent), AuthError auth_failed,
 * RateLimitedError, HttpError sendgrid_rejected, TimeoutError.
 * Each send is claimed in a ledger (jobId + address) before the request and recorded after it: the same jobId and
 * address again is not sent (`msg.twilio.duplicate`). SendGrid offers no lookup of a send (its Email Activity API is
 * a paid add-on), so a send whose outcome stayed unknown (time-out, crash) is not repeated either: the replay
 * reaches Catch as TimeoutError (outcomeUnknown) for a person to decide.
 */
export function registerEmail(RED: RedAPI): void {
  registerNode<EmailProps>(RED, "mlc-twilio-email", (node, config) => {
    new EmailNode(RED, node, config);
  });
}

/** One deployed `mlc-twilio-email` node (send-node.ts does the glue). */
class EmailNode extends TwilioSendNode<EmailProps> {
  private sent = 0;
  private failedCount = 0;
  private readonly countsText = this.countsTemplate("sent __sent__, failed __failed__");

  constructor(RED: RedAPI, node: RedNode, config: EmailProps) {
    super(RED, node, config, "mlc-twilio-email");
    node.status(Status.idle("mlc-twilio-email.status.ready"));
    this.ledger = this.ledgerOrReport({ prefix: "el" });
    this.listen((msg, ctx) => this.input(msg, ctx));
  }

  private counts(): string {
    return this.countsText({ sent: this.sent, failed: this.failedCount });
  }

  private async input(msg: NodeMessage, { send, status }: InputContext): Promise<void> {
    const { RED, node, config, ledger } = this;
    const html = config.html === true || config.html === "true";
    const jobId = messageJobId(msg);
    const recordId = recordIdOf(msg);
    /** Count the failure, describe it on msg.twilio and return the error to throw. */
    const fail = (err: unknown, to: string, st = "failed"): unknown => {
      this.failedCount++;
      msg.twilio = { sid: "", status: st, to, channel: "email", jobId } satisfies TwilioMeta;
      if (err instanceof MlcError) err.recordId = recordId;
      status(Status.error(this.counts()));
      return err;
    };

    const rawTo = await evaluate(RED, node, config.to || "email", config.to ? config.toType || "msg" : "msg", msg);
    const to = parseEmailAddress(rawTo);
    if (!to) {
      const shown = typeof rawTo === "string" && rawTo.trim() ? maskEmail(rawTo.trim()) : "";
      throw fail(new ValidationError(shown ? `"${shown}" is not a valid e-mail address` : "No e-mail address given", { code: "invalid_email" }), shown);
    }
    const cfg = twilioConfig(RED, config.twilio);
    const sg = cfg.sendgrid();
    const fromText = firstSet(config.from?.trim() ? String((await evaluate(RED, node, config.from.trim(), config.fromType, msg)) ?? "").trim() : undefined, sg.from);
    if (!fromText) throw fail(new ValidationError("No sender: set From here or the SendGrid From in the Twilio account", { code: "no_sender" }), to.email);
    const from = parseEmailAddress(fromText);
    if (!from) throw fail(new ValidationError("The From address is not a valid e-mail address", { code: "invalid_from" }), to.email);

    const subjectTemplate = firstSet(config.subject, typeof msg.subject === "string" ? msg.subject : undefined);
    const bodyTemplate = firstSet(config.body, typeof msg.body === "string" ? msg.body : undefined, typeof msg.payload === "string" ? msg.payload : undefined);
    let subject: string;
    let body: string;
    try {
      subject = subjectTemplate === undefined ? "" : render(subjectTemplate, msg, false).replace(/[\r\n]+/g, " ").trim();
      body = bodyTemplate === undefined ? "" : render(bodyTemplate, msg, html);
    } catch (err) {
      throw fail(err, to.email);
    }
    if (!subject) throw fail(new ValidationError("No subject: set Subject here or msg.subject", { code: "empty_subject" }), to.email);
    if (body.trim() === "") throw fail(new ValidationError("Nothing to send: Body is empty", { code: "empty_body" }), to.email);

    status(Status.busy("mlc-twilio-email.status.sending"));
    if (!ledger) throw fail(new ValidationError("Send ledger not available", { code: "unknown_store" }), to.email);
    let messageId: string;
    let duplicate = false;
    try {
      ({ messageId, duplicate } = await sendOnceUnverifiable(ledger, ledgerKey(jobId, to.email.toLowerCase(), "email"), () =>
        sendEmail(sg.mail, { to, from, subject, ...(html ? { html: body } : { text: body }), customArgs: { [JOB_ID_ARG]: jobId } }),
      ));
    } catch (err) {
      throw fail(err, to.email, err instanceof TimeoutError && err.outcomeUnknown ? "unknown" : "failed");
    }
    if (!duplicate) this.sent++;
    msg.twilio = { sid: messageId, status: "queued", to: to.email, channel: "email", jobId, ...(duplicate ? { duplicate: true } : {}) } satisfies TwilioMeta & { duplicate?: boolean };
    status(Status.ok(this.counts()));
    send(msg);
  }
}
