/**
 * What `mlc-twilio-verify` reads from and writes on a message, without Node-RED: the recipient (an e-mail address
 * or an E.164 number), the Verification SID a check may name, `msg.verify` ({@link VerifyMeta}, recipient masked;
 * never the passcode) and the output port of each outcome.
 * Vendor: https://www.twilio.com/docs/verify/api/verification ; https://www.twilio.com/docs/verify/api/verification-check
 */
import { ValidationError } from "../errors";
import { maskRecipient, toE164 } from "../phone";
import type { VerifyOutcome, VerifyResult } from "./verify";

export type VerifyOperation = "start" | "check";

/** `msg.verify` as emitted on the four outputs. `to` is masked. */
export interface VerifyMeta {
  sid: string;
  status: string;
  to: string;
  channel: string;
  result: VerifyOutcome;
  /** True when this jobId already started this verification (nothing was sent again). */
  duplicate?: boolean;
}

/** Output index per outcome: approved, pending, expired (+ canceled), max attempts. */
export const VERIFY_PORT: Record<VerifyOutcome, number> = { approved: 0, pending: 1, expired: 2, canceled: 2, max_attempts: 3 };

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const VE_SID = /^VE[0-9a-fA-F]{32}$/;

/** A non-empty trimmed string, else undefined. */
export function str(v: unknown): string | undefined {
  return typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;
}

/**
 * Normalise a recipient: e-mail address as given, else E.164 without a channel prefix.
 * @throws ValidationError "invalid_email"; what lib/phone.ts toE164 throws ("invalid_phone")
 */
export function verifyRecipient(raw: unknown, email: boolean, defaultRegion: string): string {
  if (email) {
    const v = typeof raw === "string" ? raw.trim() : "";
    if (!EMAIL.test(v)) throw new ValidationError(v ? `"${maskRecipient(v)}" is not an e-mail address` : "No e-mail address given", { code: "invalid_email" });
    return v;
  }
  return toE164(raw, defaultRegion).replace(/^[a-z]+:/, "");
}

/** The Verification SID a check names: `msg.verificationSid`, else a VE… `msg.verify.sid` (from a start). */
export function verificationSidOf(verificationSid: unknown, verify: unknown): string | undefined {
  const prior = String((verify as { sid?: unknown } | undefined)?.sid ?? "");
  return str(verificationSid) ?? (VE_SID.test(prior) ? prior : undefined);
}

/** `msg.verify` after a start or check. */
export function verifyMeta(result: VerifyResult & { duplicate?: boolean }, to: string, channel: string): VerifyMeta {
  return {
    sid: result.sid,
    status: result.status,
    to: maskRecipient(result.to || to),
    channel: result.channel || channel,
    result: result.result,
    ...(result.duplicate ? { duplicate: true } : {}),
  };
}

/** `msg.verify` when a start or check failed: "unknown" when a code may have been sent, else "failed". */
export function failedVerifyMeta(err: unknown, to: string, rawTo: unknown, channel: string): Omit<VerifyMeta, "result"> {
  return {
    sid: "",
    status: (err as { outcomeUnknown?: boolean }).outcomeUnknown ? "unknown" : "failed",
    to: to ? maskRecipient(to) : typeof rawTo === "string" ? maskRecipient(rawTo) : "",
    channel,
  };
}
