/**
 * Modified-time normalisers: each ERP's way of writing when a record changed → ISO 8601 UTC (`…Z`, ms precision), the
 * form `msg.erp.modifiedAt` and the watermark use. Each returns `undefined` for a value it cannot read, so the caller
 * reports the record (ValidationError with recordId) instead of guessing.
 * - {@link zonedIso}: ISO 8601 with an offset (Acumatica, Business Central, SAP B1 v2 `Edm.DateTimeOffset`);
 * - {@link msDate}: `/Date(1741946813590)/` or `/Date(1741946813590+0100)/` (Exact Online, OData v2 JSON);
 * - {@link splitDateTime}: a date and a time of day in server time (SAP Business One `UpdateDate` + `UpdateTime`);
 * - {@link companyTime}: a date-time without offset in a known zone (Sage Intacct `WHENMODIFIED`, `MM/DD/YYYY HH:MM:SS`
 *   or ISO without offset).
 */
import { instantOf } from "./zone";

const ZONED_ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

function iso(ms: number): string | undefined {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}

/** ISO 8601 with `Z` or an offset → UTC ISO; text without an offset is refused (ambiguous). */
export function zonedIso(v: unknown): string | undefined {
  if (typeof v !== "string" || !ZONED_ISO_RE.test(v.trim())) return undefined;
  return iso(Date.parse(v.trim()));
}

/** `/Date(ms)/` (optionally `/Date(ms±hhmm)/`: the ms are UTC already, the offset is informational) → UTC ISO. */
export function msDate(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const m = /^\/Date\((-?\d+)(?:[+-]\d{4})?\)\/$/.exec(v.trim());
  return m ? iso(Number(m[1])) : undefined;
}

/**
 * A date (`2024-03-01`, or `2024-03-01T00:00:00` / `…Z` whose time part is ignored) and a time of day (`09:14:22`,
 * `09:14`, or `091422` / `0914` as integers SAP B1 v1 may send) read as wall clock in `timeZone` → UTC ISO.
 */
export function splitDateTime(date: unknown, time: unknown, timeZone: string): string | undefined {
  if (typeof date !== "string") return undefined;
  const d = /^(\d{4})-(\d{2})-(\d{2})/.exec(date.trim());
  if (!d) return undefined;
  let s = 0;
  // an integer lost its leading zero: 5 digits are HHMMSS (91422 = 09:14:22), up to 4 are HHMM
  const t = typeof time === "number" ? (Number.isInteger(time) && time >= 0 ? String(time).padStart(String(time).length > 4 ? 6 : 4, "0") : "") : typeof time === "string" ? time.trim() : "";
  const colon = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(t);
  const digits = /^(\d{2})(\d{2})(\d{2})?$/.exec(t);
  const m = colon ?? digits;
  if (!m) return undefined;
  const h = Number(m[1]);
  const mi = Number(m[2]);
  if (m[3] !== undefined) s = Number(m[3]);
  if (h > 23 || mi > 59 || s > 59) return undefined;
  return iso(instantOf({ year: +d[1], month: +d[2], day: +d[3], hour: h, minute: mi, second: s, ms: 0 }, timeZone));
}

/** A date-time without offset (`03/01/2025 14:22:31` or `2025-03-01T14:22:31[.fff]`) in `timeZone` → UTC ISO. */
export function companyTime(v: unknown, timeZone: string): string | undefined {
  if (typeof v !== "string") return undefined;
  const text = v.trim();
  const us = /^(\d{2})\/(\d{2})\/(\d{4})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text);
  const isoLocal = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?)?$/.exec(text);
  let parts: number[];
  if (us) parts = [+us[3], +us[1], +us[2], +(us[4] ?? 0), +(us[5] ?? 0), +(us[6] ?? 0), 0];
  else if (isoLocal) parts = [+isoLocal[1], +isoLocal[2], +isoLocal[3], +(isoLocal[4] ?? 0), +(isoLocal[5] ?? 0), +(isoLocal[6] ?? 0), +(isoLocal[7] ?? "0").padEnd(3, "0")];
  else return undefined;
  const [year, month, day, hour, minute, second, ms] = parts;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return undefined;
  return iso(instantOf({ year, month, day, hour, minute, second, ms }, timeZone));
}
