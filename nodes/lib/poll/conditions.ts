/**
 * Time conditions of a watermark poll in each ERP's literal syntax ({@link TimeCondition}: field, `gt`/`ge`/`le`,
 * instant in ms). Literals that cannot carry fractions of a second or seconds are rounded so the window only ever
 * grows on the lower side (`gt`/`ge` read from the floor) and shrinks on the upper side (`le` becomes `lt` the floor),
 * so a record is never left out for good: what an upper bound excludes is read by the next poll, what a lower bound
 * adds is recognised as already delivered by the window.
 * Acumatica's `datetimeoffset'…'` lives with its client (nodes/lib/acumatica/events.ts `acumaticaTime`).
 */
import type { TimeCondition } from "./window";
import { instantOf, pad, wallClock } from "./zone";

/**
 * OData v4 (Business Central, SAP Business One `/b1s/v2` for `Edm.DateTimeOffset` fields): a plain ISO 8601 literal,
 * no quotes, e.g. `lastModifiedDateTime gt 2025-03-10T14:22:31.117Z` (OData v4 ABNF `dateTimeOffsetValue`).
 */
export const odataV4Time: TimeCondition = (field, op, atMs) => `${field} ${op} ${new Date(atMs).toISOString()}`;

/**
 * Exact Online (OData v2): `Modified gt datetime'2025-03-10T14:22:31'`, formatted with UTC field accessors and no
 * fraction or offset (reference exact-online.md §4: not `datetimeoffset'…'`, not a quoted ISO string). Seconds are
 * floored; an upper bound becomes `lt` the floored second when the instant has a fraction.
 */
export const exactTime: TimeCondition = (field, op, atMs) => {
  const floor = Math.floor(atMs / 1000) * 1000;
  const lit = `datetime'${new Date(floor).toISOString().slice(0, 19)}'`;
  if (op === "le") return `${field} ${floor === atMs ? "le" : "lt"} ${lit}`;
  return `${field} ${floor === atMs ? op : "ge"} ${lit}`;
};

/**
 * SAP Business One Service Layer: the modification time is split into `UpdateDate` and `UpdateTime`, server-local
 * without an offset, and only hour:minute of a time filter count (reference sap-business-one.md "incremental polling"):
 * `(UpdateDate gt '2024-01-01' or (UpdateDate eq '2024-01-01' and UpdateTime ge '14:30'))`. The lower bound is the
 * floored minute (`ge`); the upper bound excludes the minute of `atMs` (`lt` its floor). The `field` argument is
 * ignored.
 * @param timeZone the Service Layer server's IANA time zone
 */
export function sapB1SplitTime(timeZone: string, dateField = "UpdateDate", timeField = "UpdateTime"): TimeCondition {
  return (_field, op, atMs) => {
    const w = wallClock(atMs, timeZone);
    const date = `'${w.year}-${pad(w.month)}-${pad(w.day)}'`;
    const time = `'${pad(w.hour)}:${pad(w.minute)}'`;
    if (op === "le") return `(${dateField} lt ${date} or (${dateField} eq ${date} and ${timeField} lt ${time}))`;
    return `(${dateField} gt ${date} or (${dateField} eq ${date} and ${timeField} ge ${time}))`;
  };
}

/**
 * Sage Intacct `readByQuery` / `query` text: `WHENMODIFIED >= '03/01/2025 14:22:31'` in the company's time zone,
 * `MM/DD/YYYY HH:MM:SS` (reference sage-intacct.md §5). Seconds are floored like {@link exactTime}.
 * @param timeZone the company's IANA time zone (Company → Company Information)
 */
export function intacctTime(timeZone: string): TimeCondition {
  return (field, op, atMs) => {
    const floor = Math.floor(atMs / 1000) * 1000;
    const w = wallClock(floor, timeZone);
    const lit = `'${pad(w.month)}/${pad(w.day)}/${w.year} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}'`;
    const exact = floor === atMs;
    const sym = op === "le" ? (exact ? "<=" : "<") : op === "gt" && exact ? ">" : ">=";
    return `${field} ${sym} ${lit}`;
  };
}

/** Inverse of the Intacct literal, for tests and normalisers: `MM/DD/YYYY HH:MM:SS` in `timeZone` → ms (NaN if malformed). */
export function parseIntacctTime(text: string, timeZone: string): number {
  const m = /^(\d{2})\/(\d{2})\/(\d{4})(?: (\d{2}):(\d{2}):(\d{2}))?$/.exec(text.trim());
  if (!m) return Number.NaN;
  const [, mo, d, y, h = "0", mi = "0", s = "0"] = m;
  return instantOf({ year: +y, month: +mo, day: +d, hour: +h, minute: +mi, second: +s, ms: 0 }, timeZone);
}
