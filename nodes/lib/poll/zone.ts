/**
 * Wall-clock time in an IANA time zone and back, through the runtime's `Intl` data (no dependency): needed where an
 * ERP stores or filters modification times in its server or company time without an offset (SAP Business One
 * `UpdateDate`/`UpdateTime`, Sage Intacct `WHENMODIFIED`).
 */
import { ValidationError } from "../errors";

/** Wall-clock parts, month 1…12. */
export interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    } catch {
      throw new ValidationError(`Unknown time zone: ${JSON.stringify(timeZone).slice(0, 60)}`);
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * The wall clock of instant `ms` in `timeZone` (IANA name, e.g. "Europe/Amsterdam"; "UTC").
 * @throws ValidationError for an unknown time zone
 */
export function wallClock(ms: number, timeZone: string): WallClock {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) if (p.type !== "literal") parts[p.type] = Number(p.value);
  return { year: parts.year, month: parts.month, day: parts.day, hour: parts.hour, minute: parts.minute, second: parts.second, ms: ((ms % 1000) + 1000) % 1000 };
}

/** Offset of `timeZone` from UTC at instant `ms`, ms (east positive). */
export function zoneOffsetMs(ms: number, timeZone: string): number {
  const w = wallClock(ms, timeZone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, w.ms) - ms;
}

const DAY_MS = 86_400_000;

/**
 * The instant whose wall clock in `timeZone` is `w`, disambiguated like Temporal's "compatible": in an overlap (fall
 * back) the earlier instant; in a gap (spring forward) the wall time is read with the offset before the transition
 * (02:30 in Amsterdam's 02:00–03:00 gap → 01:30Z, i.e. 03:30 summer time).
 * @throws ValidationError for an unknown time zone
 */
export function instantOf(w: WallClock, timeZone: string): number {
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, w.ms);
  const offsets = [zoneOffsetMs(asUtc - DAY_MS, timeZone), zoneOffsetMs(asUtc + DAY_MS, timeZone)];
  const valid = offsets.map((o) => asUtc - o).filter((c) => zoneOffsetMs(c, timeZone) === asUtc - c);
  return valid.length ? Math.min(...valid) : asUtc - offsets[0];
}

/** `n` zero-padded to `width` digits. */
export function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}
