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
import { SendLedger, ledgerKey } from "../lib/twilio/ledger";
import { VERIFY_PORT, VerifyOperation, failedVerifyMeta, str, verificationSidOf, verifyMeta, verifyRecipient } from "../lib/twilio/verify-meta";
import { START_LEDGER_TTL_MS, VERIFY_CHANNELS, VerifyChannel, VerifyOutcome, VerifyResult, checkVerification, startVerificationOnce } from "../lib/twilio/verify";
import { contextBackend, resolveStore } from "../shared/context";
import { Status, evaluate, firstSet, messageJobId, onInput, registerNode, reportError, statusTemplate, t } from "../shared/node";
import { configString } from "../shared/config";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";

export const VERIFY_TYPE = "mlc-twilio-verify";

export type { VerifyMeta, VerifyOperation } from "../lib/twilio/verify-meta";

export interface VerifyProps extends Record<string, unknown> {
  name?: string;
  twilio?: string;
  /** "start" (default) or "check"; `msg.operation` overrides. */
  operation?: string;
  /** Verify Service SID (VA…), TypedInput. */
  serviceSid?: string;
  serviceSidType?: string;
  /** Recipient, TypedInput (default msg "to"). */
  to?: string;
  toType?: string;
  /** "sms" (default), "call", "email" or "whatsapp"; `msg.channel` overrides. */
  channel?: string;
  /** Passcode for "check", TypedInput (default msg "payload"). */
  code?: string;
  codeType?: string;
  /** Message language for "start" ("" = Twilio's choice); `msg.locale` is used when empty. */
  locale?: string;
  /** Context store of the start ledger ("" = default). */
  store?: string;
}

/** What one input asks for. `code` is "" for a start. */
interface VerifyInput {
  code: string;
  channel: VerifyChannel;
  serviceSid: string;
  rawTo: unknown;
}

/**
 * Read the passcode first (a check) and take it off the msg at once, so it can reach no output, Catch or log; then
 * the channel, Service SID and recipient.
 * @throws ValidationError invalid_channel
 */
async function readVerifyInput(RED: RedAPI, node: RedNode, config: VerifyProps, msg: NodeMessage, op: VerifyOperation): Promise<VerifyInput> {
  let code = "";
  if (op === "check") {
    const prop = str(config.code) ?? "payload";
    const type = str(config.code) ? config.codeType || "msg" : "msg";
    const raw = await evaluate(RED, node, prop, type, msg);
    if (type === "msg") RED.util.setMessageProperty(msg, prop, undefined);
    code = typeof raw === "number" ? String(raw) : typeof raw === "string" ? raw.trim() : "";
  }
  const channelRaw = (firstSet(str(msg.channel), str(config.channel)) ?? "sms").toLowerCase();
  if (!(VERIFY_CHANNELS as readonly string[]).includes(channelRaw)) {
    throw new ValidationError(`Verify channel must be one of ${VERIFY_CHANNELS.join(", ")}`, { code: "invalid_channel" });
  }
  twilioConfig(RED, config.twilio); // a missing config node fails before the Service SID is read, as before
  const serviceSid = String((await evaluate(RED, node, config.serviceSid ?? "", config.serviceSidType || "str", msg)) ?? "").trim();
  const rawTo = firstSet(config.to ? await evaluate(RED, node, config.to, config.toType || "msg", msg) : undefined, msg.to);
  return { code, channel: channelRaw as VerifyChannel, serviceSid, rawTo };
}

/**
 * What a verify node needs before its first input: the account, the Service SID or its environment variable.
 * @throws ValidationError bad_config / missing_env, and twilioConfig's errors
 */
async function startCheck(RED: RedAPI, node: RedNode, config: VerifyProps): Promise<void> {
  twilioConfig(RED, config.twilio);
  const sidType = config.serviceSidType || "str";
  if (sidType === "str" && !configString(config.serviceSid, "Service SID")) throw new ValidationError("No Verify Service SID set", { code: "bad_config" });
  if (sidType === "env" && !String((await evaluate(RED, node, config.serviceSid ?? "", "env", {})) ?? "")) {
    throw new ValidationError(`Service SID: environment variable ${config.serviceSid} is not set`, { code: "missing_env" });
  }
}

/** Say at deploy what is missing instead of "ready": the account, the Service SID or its variable. Never rejects. */
function announce(RED: RedAPI, node: RedNode, config: VerifyProps): void {
  startCheck(RED, node, config)
    .then(() => node.status(Status.idle(`${VERIFY_TYPE}.status.ready`)))
    .catch((err: unknown) => reportError(RED, node, err, { topic: `${VERIFY_TYPE}/start` }));
}

/** The node's start ledger, or undefined (reported) when its context store is unusable. */
function startLedger(RED: RedAPI, node: RedNode, config: VerifyProps): SendLedger | undefined {
  try {
    const ledger = new SendLedger(contextBackend(node, "node", resolveStore(RED, config.store).name), { prefix: "vl", scope: node.id, ttlMs: START_LEDGER_TTL_MS, maxEntries: 50000 });
    ledger.ready.catch((err: unknown) => reportError(RED, node, err, { topic: `${VERIFY_TYPE}/ledger` }));
    return ledger;
  } catch (err) {
    reportError(RED, node, err, { topic: `${VERIFY_TYPE}/start` });
    return undefined;
  }
}

/** Register `mlc-twilio-verify` (properties: {@link VerifyProps}; outputs approved, pending, expired, max attempts). */
export function registerVerify(RED: RedAPI): void {
  registerNode<VerifyProps>(RED, VERIFY_TYPE, (node, config) => {
    const n = { sent: 0, approved: 0 };
    // Labels and the count template are translated once, here (shared/node.ts statusTemplate); statuses compose them.
    const labels = new Map<string, string>();
    const label = (key: string, fallback: string): string => labels.get(key) ?? (labels.set(key, t(RED, `${VERIFY_TYPE}.result.${key}`, undefined, fallback)), labels.get(key) as string);
    const countsText = statusTemplate(RED, `${VERIFY_TYPE}.status.counts`, "__last__: sent __sent__, ok __ok__");
    const counts = (last: string): string => countsText({ last, sent: n.sent, ok: n.approved });
    announce(RED, node, config);
    const ledger = startLedger(RED, node, config);

    /** Status after an outcome: green approved, blue code sent, yellow wrong code / expired, red max attempts. */
    const statusFor = (op: VerifyOperation, r: VerifyOutcome): NodeStatus => {
      if (r === "approved") return Status.ok(counts(label("approved", "approved")));
      if (r === "pending") return op === "start" ? Status.busy(counts(label("sent", "code sent"))) : Status.warn(counts(label("wrong", "wrong code")));
      if (r === "max_attempts") return Status.error(counts(label("maxAttempts", "max attempts")));
      return Status.warn(counts(r === "canceled" ? label("canceled", "canceled") : label("expired", "expired")));
    };

    onInput(RED, node, async (msg, { send, status }) => {
      const opRaw = firstSet(str(msg.operation), str(config.operation)) ?? "start";
      if (opRaw !== "start" && opRaw !== "check") throw new ValidationError(`Verify operation must be "start" or "check", not "${opRaw.slice(0, 20)}"`, { code: "invalid_operation" });
      const op: VerifyOperation = opRaw;

      const req = await readVerifyInput(RED, node, config, msg, op);
      const { serviceSid, rawTo, code } = req;
      let channel = req.channel;
      const cfg = twilioConfig(RED, config.twilio);
      const recordId = (msg.erp as { id?: string } | undefined)?.id;

      let to = "";
      let result: VerifyResult;
      try {
        if (op === "start") {
          to = verifyRecipient(rawTo, channel === "email", cfg.defaultRegion);
          status(Status.busy(`${VERIFY_TYPE}.status.sending`));
          const params = { serviceSid, to, channel, locale: firstSet(str(config.locale), str(msg.locale)) };
          if (!ledger) throw new ValidationError("Start ledger not available", { code: "unknown_store" });
          result = await startVerificationOnce(ledger, ledgerKey(messageJobId(msg), to, `verify:${channel}:${serviceSid}`), cfg.client(), params);
          if (result.result === "pending" && !(result as { duplicate?: boolean }).duplicate) n.sent++;
        } else {
          const verificationSid = verificationSidOf(msg.verificationSid, msg.verify);
          const hasTo = rawTo !== undefined && rawTo !== null && String(rawTo).trim() !== "";
          if (hasTo) {
            const email = channel === "email" || (typeof rawTo === "string" && rawTo.includes("@"));
            if (email) channel = "email";
            to = verifyRecipient(rawTo, email, cfg.defaultRegion);
          }
          status(Status.busy(`${VERIFY_TYPE}.status.checking`));
          result = await checkVerification(cfg.client(), { serviceSid, to: to || undefined, verificationSid, code, channel });
        }
      } catch (err) {
        msg.verify = failedVerifyMeta(err, to, rawTo, channel);
        if (err instanceof MlcError && recordId !== undefined) err.recordId = recordId;
        throw err;
      }

      if (result.result === "approved") n.approved++;
      msg.verify = verifyMeta(result, to, channel);
      status(statusFor(op, result.result));
      const out: (NodeMessage | null)[] = [null, null, null, null];
      out[VERIFY_PORT[result.result]] = msg;
      send(out);
    });
  });
}
