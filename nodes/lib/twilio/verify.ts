/**
 * Twilio Verify v2: start a verification (Twilio generates a one-time passcode and sends it by SMS, voice
 * call, e-mail or WhatsApp) and check a passcode, through the account's {@link TwilioClient} (its pool,
 * host override and rate budget; the transport rewrites verify.twilio.com like api.twilio.com).
 *
 * Outcomes are mapped to a small, closed set ({@link VerifyOutcome}) so a flow can gate a sensitive change
 * on `approved` and nothing else:
 * - status `approved` → "approved"; `pending` (start sent, or wrong code) → "pending";
 * - 404 / 20404 on a check → "expired": Twilio deletes a verification once it is expired (10 min), approved
 *   or out of check attempts, so a second check after an approval also lands here;
 * - 429 with 60202 (max check attempts) or 60203 (max send attempts), or status `max_attempts_reached`
 *   → "max_attempts";
 * - status `canceled` → "canceled"; `expired`, `deleted`, `failed` or any status Twilio may add → "expired"
 *   (never approved: start a new verification);
 * - any other error (60200 invalid parameter, 60205 landline, 60223 channel disabled, 60605 geo permission,
 *   20003 auth, 404 on a start = unknown Service SID, …) is thrown as a typed error.
 *
 * Neither function retries: a verification allows 5 sends and 5 checks, and the client's HttpClient never
 * repeats a POST whose outcome is unknown (only a 429 — "not processed" — is repeated by the transport).
 * The passcode never appears in a result, an error message or a log line.
 *
 * Vendor: https://www.twilio.com/docs/verify/api/verification ;
 * https://www.twilio.com/docs/verify/api/verification-check ; https://www.twilio.com/docs/verify/api/error-codes ;
 * OpenAPI twilio-oai `spec/json/twilio_verify_v2.json` (CreateVerification, CreateVerificationCheck).
 */
import { MlcError, ValidationError } from "../errors";
import { TwilioClient, mapTwilioError } from "./client";
import { SendLedger, isUnknownOutcome } from "./ledger";

/** Delivery channels the package offers (Twilio's `sna` needs a device SDK and is not offered). */
export type VerifyChannel = "sms" | "call" | "email" | "whatsapp";
export const VERIFY_CHANNELS: readonly VerifyChannel[] = ["sms", "call", "email", "whatsapp"];

/** What a start or a check amounts to for a flow. Only "approved" means the passcode was right. */
export type VerifyOutcome = "approved" | "pending" | "expired" | "canceled" | "max_attempts";

/** Result of {@link startVerification} / {@link checkVerification}. */
export interface VerifyResult {
  /** Verification SID (`VE…`); "" when Twilio answered with an error to a check by `to`. */
  sid: string;
  /**
   * Twilio's verification status (`pending`, `approved`, `canceled`, `max_attempts_reached`, `expired`, …),
   * `not_found` when Twilio answered 404/20404, `max_attempts_reached` for 429 60202/60203.
   */
  status: string;
  /** Recipient as Twilio reports it (E.164 or e-mail address, unmasked: callers mask it for msgs/logs). */
  to: string;
  /** Channel as Twilio reports it, else the one asked for ("" when unknown). */
  channel: string;
  /** Twilio's legacy `valid` flag: true only for a right code. */
  valid: boolean;
  result: VerifyOutcome;
  /** Twilio code of an error answer that was mapped to an outcome (20404, 60202, 60203). */
  errorCode?: number;
}

export interface StartVerificationParams {
  /** Verify Service SID, `VA` + 32 hex. */
  serviceSid: string;
  /** E.164 number, or an e-mail address for the email channel (already normalised by the caller). */
  to: string;
  channel: VerifyChannel;
  /** Language of the message, e.g. "en", "de", "pt-BR" (Twilio's supported-languages list); default: Twilio's choice. */
  locale?: string;
  /** Name shown in the message instead of the Service's friendly name. */
  customFriendlyName?: string;
}

export interface CheckVerificationParams {
  serviceSid: string;
  /** Recipient the verification was started for; one of `to` / `verificationSid` is required. */
  to?: string;
  /** Verification SID (`VE…`), preferred over `to` when both are given. */
  verificationSid?: string;
  /** The passcode the user typed: 4–10 letters or digits. */
  code: string;
  /** Channel the verification was started on (only echoed in results when Twilio gives none). */
  channel?: string;
}

const SERVICE_SID = /^VA[0-9a-fA-F]{32}$/;
const VERIFICATION_SID = /^VE[0-9a-fA-F]{32}$/;
const CODE = /^[0-9A-Za-z]{4,10}$/;

/** Twilio codes mapped to the "max_attempts" outcome: max check attempts (60202), max send attempts (60203). */
export const MAX_ATTEMPTS_CODES: ReadonlySet<number> = new Set([60202, 60203]);

/** Map a Twilio verification status to an outcome (unknown statuses are never "approved"). */
export function outcomeOf(status: string): VerifyOutcome {
  switch (status) {
    case "approved":
      return "approved";
    case "pending":
      return "pending";
    case "canceled":
      return "canceled";
    case "max_attempts_reached":
      return "max_attempts";
    default:
      return "expired";
  }
}

/** True for a syntactically valid Verify Service SID. */
export function isServiceSid(value: string): boolean {
  return SERVICE_SID.test(value);
}

function checkService(serviceSid: string): void {
  if (!SERVICE_SID.test(serviceSid)) throw new ValidationError("Verify Service SID must be VA followed by 32 hex characters", { code: "invalid_service_sid" });
}

function toResult(v: Record<string, unknown>, fallbackChannel: string): VerifyResult {
  const status = String(v.status ?? "");
  return {
    sid: String(v.sid ?? ""),
    status,
    to: String(v.to ?? ""),
    channel: String(v.channel ?? fallbackChannel ?? ""),
    valid: v.valid === true,
    result: outcomeOf(status),
  };
}

function vendorCodeOf(err: Error): number | undefined {
  const c = err instanceof MlcError ? err.vendorCode : undefined;
  return typeof c === "number" ? c : typeof c === "string" && /^\d+$/.test(c) ? Number(c) : undefined;
}

/**
 * Start (or re-send, within the 10-minute window) a verification:
 * `POST /v2/Services/{ServiceSid}/Verifications` with `To`, `Channel`, optional `Locale`, `CustomFriendlyName`,
 * inside the account's rate budget. Not retried: each accepted start is one of the 5 sends Twilio allows.
 * @returns result "pending" (code sent), or "max_attempts" for 429 60203 (60202)
 * @throws ValidationError "invalid_service_sid" / "invalid_channel" / "invalid_input" (empty To);
 *   TwilioError (60200 invalid parameter, 60205 landline, 60223 channel disabled, 60605 geo permission,
 *   20404 unknown Service); AuthError (20003); RateLimitedError (20429/60212 after the transport's retries);
 *   TimeoutError (`outcomeUnknown`: a code may have been sent; not repeated)
 */
export async function startVerification(client: TwilioClient, p: StartVerificationParams): Promise<VerifyResult> {
  checkService(p.serviceSid);
  if (!VERIFY_CHANNELS.includes(p.channel)) throw new ValidationError(`Verify channel must be one of ${VERIFY_CHANNELS.join(", ")}`, { code: "invalid_channel" });
  if (!p.to) throw new ValidationError("No recipient to verify", { code: "invalid_input" });
  try {
    const v = await client.budget.create(undefined, () =>
      client.rest.verify.v2.services(p.serviceSid).verifications.create({
        to: p.to,
        channel: p.channel,
        ...(p.locale ? { locale: p.locale } : {}),
        ...(p.customFriendlyName ? { customFriendlyName: p.customFriendlyName } : {}),
      }),
    );
    return toResult(v as unknown as Record<string, unknown>, p.channel);
  } catch (err) {
    const e = mapTwilioError(err);
    const code = vendorCodeOf(e);
    if (code !== undefined && MAX_ATTEMPTS_CODES.has(code)) {
      return { sid: "", status: "max_attempts_reached", to: p.to, channel: p.channel, valid: false, result: "max_attempts", errorCode: code };
    }
    throw e;
  }
}

/**
 * Check a passcode: `POST /v2/Services/{ServiceSid}/VerificationCheck` with `Code` and `VerificationSid` (or `To`),
 * inside the account's rate budget. Not retried: each check is one of the 5 Twilio allows.
 * @returns "approved" (right code), "pending" (wrong code, try again), "expired" (404/20404: expired, already
 *   approved, out of attempts or never started — Twilio deletes finished verifications), "canceled",
 *   "max_attempts" (429 60202/60203 or status max_attempts_reached)
 * @throws ValidationError "invalid_service_sid" / "invalid_code" / "no_verification" (neither To nor a VE… SID);
 *   TwilioError (60200, …), AuthError (20003), RateLimitedError, TimeoutError (`outcomeUnknown`). Error text
 *   never contains the code.
 */
export async function checkVerification(client: TwilioClient, p: CheckVerificationParams): Promise<VerifyResult> {
  checkService(p.serviceSid);
  const code = typeof p.code === "string" ? p.code.trim() : "";
  if (!CODE.test(code)) throw new ValidationError("The passcode must be 4 to 10 letters or digits", { code: "invalid_code" });
  const verificationSid = p.verificationSid?.trim() || undefined;
  if (verificationSid !== undefined && !VERIFICATION_SID.test(verificationSid)) {
    throw new ValidationError("Verification SID must be VE followed by 32 hex characters", { code: "no_verification" });
  }
  if (!verificationSid && !p.to) throw new ValidationError("A check needs the recipient (To) or the Verification SID (VE…)", { code: "no_verification" });
  const target = verificationSid ? { verificationSid } : { to: p.to as string };
  try {
    const v = await client.budget.create(undefined, () =>
      client.rest.verify.v2.services(p.serviceSid).verificationChecks.create({ code, ...target }),
    );
    return toResult(v as unknown as Record<string, unknown>, p.channel ?? "");
  } catch (err) {
    const e = mapTwilioError(err);
    const vc = vendorCodeOf(e);
    const base = { sid: verificationSid ?? "", to: p.to ?? "", channel: p.channel ?? "", valid: false };
    if ((e instanceof MlcError && e.status === 404) || vc === 20404) return { ...base, status: "not_found", result: "expired", errorCode: 20404 };
    if (vc !== undefined && MAX_ATTEMPTS_CODES.has(vc)) return { ...base, status: "max_attempts_reached", result: "max_attempts", errorCode: vc };
    // Twilio's messages name parameters, not values, but never let a passcode through in error text.
    if (e.message.includes(code)) e.message = e.message.split(code).join("•••");
    throw e;
  }
}

/** Twilio keeps a verification pending for 10 minutes: a start of the same jobId within it is not repeated, ms. */
export const START_LEDGER_TTL_MS = 10 * 60 * 1000;

/**
 * Start a verification at most once per jobId, recipient, channel and Service within its lifetime: claimed in
 * `ledger` before the request, recorded after. A start whose outcome is unknown keeps its claim; the next attempt
 * starts again (Twilio re-sends the same code of the same verification, it never opens a second one).
 * @returns the start's result, `duplicate` when this key already started one (sid recorded, nothing sent)
 * @throws as {@link startVerification}
 */
export async function startVerificationOnce(ledger: SendLedger, key: string, client: TwilioClient, p: StartVerificationParams): Promise<VerifyResult & { duplicate?: boolean }> {
  return ledger.serial(key, async () => {
    const claim = await ledger.claim(key);
    if (claim.outcome === "sent" && claim.entry.sid) {
      return { sid: claim.entry.sid, status: claim.entry.status ?? "pending", to: p.to, channel: p.channel, valid: false, result: "pending", duplicate: true };
    }
    try {
      const r = await startVerification(client, p);
      if (r.result === "pending" && r.sid) await ledger.settle(key, r.sid, r.status);
      else await ledger.release(key);
      return r;
    } catch (err) {
      if (!isUnknownOutcome(err)) await ledger.release(key);
      throw err;
    }
  });
}
