/**
 * Quiet hours: when may a recipient be contacted? Business hours are local to the recipient; the time
 * zone comes from the contact (ERP property), else from the phone number's country when that country
 * has a single UTC offset (countries-and-timezones data), else from a configured default.
 * All arithmetic uses the IANA zone database built into Node (Intl), so DST is handled.
 */
import { getCountry } from "countries-and-timezones";
import { parsePhoneNumberFromString } from "libphonenumber-js/max";
import { ValidationError } from "./errors";

/** Local business hours: "HH:MM" start (inclusive) and end (exclusive), ISO weekdays (1 = Monday … 7 = Sunday). */
export interface BusinessHours {
  start: string;
  end: string;
  days: number[];
}

function minutesOf(hhmm: string): number {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(hhmm.trim());
  if (!m) throw new ValidationError(`"${hhmm}" is not a time of day (HH:MM)`, { code: "bad_config" });
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Parse "1-5" or "1,2,3,4,5" or "mon-fri" into ISO weekdays. @throws ValidationError */
export function parseDays(text: string): number[] {
  const names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const val = (s: string): number => {
    const t = s.trim().toLowerCase();
    const n = /^\d$/.test(t) ? Number(t) : names.indexOf(t.slice(0, 3)) + 1;
    if (n < 1 || n > 7) throw new ValidationError(`"${s}" is not a weekday (1-7 or mon-sun)`, { code: "bad_config" });
    return n;
  };
  const out = new Set<number>();
  for (const part of text.split(",").filter((p) => p.trim() !== "")) {
    const [a, b] = part.split("-");
    if (b === undefined) out.add(val(a));
    else for (let d = val(a), end = val(b), i = 0; i < 7; d = (d % 7) + 1, i++) {
      out.add(d);
      if (d === end) break;
    }
  }
  return [...out].sort();
}

/** True when `tz` is an IANA time zone Node knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Offset of `tz` from UTC at `at`, in minutes (e.g. -300 for New York in winter). */
export function offsetMinutes(at: Date, tz: string): number {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(at);
  const get = (t: string): number => Number(parts.find((p) => p.type === t)?.value);
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return Math.round((asUtc - Math.floor(at.getTime() / 1000) * 1000) / 60000);
}

/** Local weekday (1-7) and minute of day of `at` in `tz`. */
function local(at: Date, tz: string): { weekday: number; minute: number; y: number; m: number; d: number } {
  const shifted = new Date(at.getTime() + offsetMinutes(at, tz) * 60000);
  const wd = shifted.getUTCDay();
  return { weekday: wd === 0 ? 7 : wd, minute: shifted.getUTCHours() * 60 + shifted.getUTCMinutes(), y: shifted.getUTCFullYear(), m: shifted.getUTCMonth(), d: shifted.getUTCDate() };
}

/** The UTC instant of local wall time (y, m, d, minute) in `tz`. */
function instantOf(y: number, m: number, d: number, minute: number, tz: string): Date {
  const guess = Date.UTC(y, m, d, 0, minute);
  let t = guess - offsetMinutes(new Date(guess), tz) * 60000;
  t = guess - offsetMinutes(new Date(t), tz) * 60000; // second pass settles DST transitions
  return new Date(t);
}

/**
 * The time zone of a phone number's country when it is unambiguous (all the country's zones have the same
 * UTC offset now), else undefined. "+447911123456" → "Europe/London"; "+14155550132" → undefined (US spans zones).
 */
export function timeZoneForNumber(e164: string, now: Date = new Date()): string | undefined {
  const parsed = parsePhoneNumberFromString(e164.replace(/^[a-z]+:/i, ""));
  const country = parsed?.country ? getCountry(parsed.country) : null;
  if (!country || country.timezones.length === 0) return undefined;
  const first = country.timezones[0];
  const offset = offsetMinutes(now, first);
  return country.timezones.every((tz) => isTimeZone(tz) && offsetMinutes(now, tz) === offset) ? first : undefined;
}

/**
 * When may a message be sent to someone in `tz`? `now` itself when inside business hours, else the start
 * of the next business-hours window (searching up to 8 days ahead).
 * @throws ValidationError for an unknown zone or malformed hours
 */
export function nextSendTime(now: Date, tz: string, hours: BusinessHours): Date {
  if (!isTimeZone(tz)) throw new ValidationError(`"${tz}" is not an IANA time zone`, { code: "bad_config" });
  const start = minutesOf(hours.start);
  const end = minutesOf(hours.end);
  if (hours.days.length === 0) throw new ValidationError("Business hours need at least one weekday", { code: "bad_config" });
  const here = local(now, tz);
  if (hours.days.includes(here.weekday) && here.minute >= start && here.minute < end) return now;
  for (let i = 0; i <= 8; i++) {
    const dayUtc = new Date(Date.UTC(here.y, here.m, here.d + i));
    const wd = dayUtc.getUTCDay() === 0 ? 7 : dayUtc.getUTCDay();
    if (!hours.days.includes(wd)) continue;
    const at = instantOf(dayUtc.getUTCFullYear(), dayUtc.getUTCMonth(), dayUtc.getUTCDate(), start, tz);
    if (at.getTime() > now.getTime()) return at;
  }
  throw new ValidationError("No business-hours window in the next 8 days", { code: "bad_config" });
}
