/**
 * `mlc-twilio-verify`: its properties and what one input message asks for (operation, passcode, channel, Service SID,
 * recipient), read so that the passcode leaves msg at once.
 * Vendor: https://www.twilio.com/docs/verify/api/verification ; https://www.twilio.com/docs/verify/api/verification-check
 */
import { ValidationError } from "../lib/errors";
import { VerifyOperation, str } from "../lib/twilio/verify-meta";
import { VERIFY_CHANNELS, VerifyChannel } from "../lib/twilio/verify";
import { configString } from "../shared/config";
import { evaluate, firstSet } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";
import { twilioConfig } from "./config";

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
export interface VerifyInput {
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
export async function readVerifyInput(RED: RedAPI, node: RedNode, config: VerifyProps, msg: NodeMessage, op: VerifyOperation): Promise<VerifyInput> {
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
export async function startCheck(RED: RedAPI, node: RedNode, config: VerifyProps): Promise<void> {
  twilioConfig(RED, config.twilio);
  const sidType = config.serviceSidType || "str";
  if (sidType === "str" && !configString(config.serviceSid, "Service SID")) throw new ValidationError("No Verify Service SID set", { code: "bad_config" });
  if (sidType === "env" && !String((await evaluate(RED, node, config.serviceSid ?? "", "env", {})) ?? "")) {
    throw new ValidationError(`Service SID: environment variable ${config.serviceSid} is not set`, { code: "missing_env" });
  }
}

/**
 * The operation `msg.operation` or the node asks for.
 * @throws ValidationError invalid_operation
 */
export function verifyOperation(config: VerifyProps, msg: NodeMessage): VerifyOperation {
  const op = firstSet(str(msg.operation), str(config.operation)) ?? "start";
  if (op !== "start" && op !== "check") throw new ValidationError(`Verify operation must be "start" or "check", not "${op.slice(0, 20)}"`, { code: "invalid_operation" });
  return op;
}
