/**
 * Phone numbers to E.164 (ITU-T E.164: "+" country code and subscriber number, at most 15 digits) with
 * libphonenumber-js. ERP contact fields are free text ("(415) 555-0132", "+44 7700 900123 ext. 2"), so
 * every number is normalised with the config node's default region before it reaches Twilio.
 */
import { parsePhoneNumberFromString, CountryCode, isSupportedCountry } from "libphonenumber-js/max";
import { ValidationError } from "./errors";

/** Channel prefixes Twilio accepts in front of an E.164 number (`whatsapp:+1…`). */
const CHANNEL_PREFIX = /^(whatsapp|messenger|rcs):/i;

/** True when `region` is an ISO 3166-1 alpha-2 code libphonenumber knows ("US", "GB"). */
export function isValidRegion(region: string): boolean {
  return isSupportedCountry(region.toUpperCase());
}

/**
 * Normalise a free-text phone number to E.164.
 * @param raw number as typed in the ERP; may carry a `whatsapp:` prefix, which is kept
 * @param defaultRegion ISO 3166-1 alpha-2 region used when `raw` has no "+"/international prefix
 * @returns "+14155550132" (or "whatsapp:+14155550132")
 * @throws ValidationError code "invalid_phone" when the text is not a possible, valid number
 */
export function toE164(raw: unknown, defaultRegion?: string): string {
  if (typeof raw !== "string" && typeof raw !== "number") throw new ValidationError("No phone number given", { code: "invalid_phone" });
  let text = String(raw).trim();
  let prefix = "";
  const m = CHANNEL_PREFIX.exec(text);
  if (m) {
    prefix = `${m[1].toLowerCase()}:`;
    text = text.slice(m[0].length).trim();
  }
  if (text === "") throw new ValidationError("No phone number given", { code: "invalid_phone" });
  const region = defaultRegion && isValidRegion(defaultRegion) ? (defaultRegion.toUpperCase() as CountryCode) : undefined;
  const parsed = parsePhoneNumberFromString(text, region ? { defaultCountry: region } : undefined);
  if (!parsed || !parsed.isValid()) {
    throw new ValidationError(`"${maskPhone(text)}" is not a valid phone number${region ? ` for region ${region}` : " (no default region set)"}`, { code: "invalid_phone" });
  }
  return prefix + parsed.number;
}

/**
 * Mask a phone number for audit records, logs and status: keep the country prefix and the last
 * 2 digits ("+14155550132" → "+1••••••••32"). Non-digits other than "+" are dropped.
 */
export function maskPhone(value: string): string {
  const m = CHANNEL_PREFIX.exec(value);
  const prefix = m ? m[0] : "";
  const digits = value.slice(prefix.length).replace(/[^\d+]/g, "");
  if (digits.length <= 4) return prefix + "•".repeat(digits.length);
  const head = digits.startsWith("+") ? digits.slice(0, 2) : "";
  const tail = digits.slice(-2);
  return prefix + head + "•".repeat(digits.length - head.length - tail.length) + tail;
}

/** Mask an e-mail address ("ap@northwind.example" → "a•@northwind.example"). */
export function maskEmail(value: string): string {
  const at = value.lastIndexOf("@");
  if (at <= 0) return "•••";
  return value[0] + "•".repeat(Math.max(1, at - 1)) + value.slice(at);
}

/** Mask any recipient address: e-mail when it has "@", phone otherwise. */
export function maskRecipient(value: string): string {
  return value.includes("@") && !CHANNEL_PREFIX.test(value) ? maskEmail(value) : maskPhone(value);
}
