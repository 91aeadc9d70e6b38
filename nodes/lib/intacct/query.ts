/**
 * Request functions of the Intacct XML gateway (reference sage-intacct.md §5): `query` (recommended: select list,
 * one filter condition or `<and>`/`<or>` of two or more, order, `pagesize` 1–2000 always sent, `offset`),
 * `readByQuery` (SQL-like text, `pagesize` 1–1000) and `readMore` (resultId), plus the value formats: object and
 * field names upper case, date literals `MM/DD/YYYY`, date-times `MM/DD/YYYY HH:MM:SS` in the company's time zone
 * (never ISO 8601), and answer values turned back into ISO.
 */
import { ValidationError } from "../errors";
import { companyTime } from "../poll/modified-time";
import { pad, wallClock } from "../poll/zone";
import { XmlTree } from "./xml";

/** Condition operators of `query` (reference §5.1). */
export type IntacctOperator =
  | "equalto" | "notequalto" | "lessthan" | "lessthanorequalto" | "greaterthan" | "greaterthanorequalto"
  | "between" | "in" | "notin" | "like" | "notlike" | "isnull" | "isnotnull";

const OPERATORS = new Set<string>(["equalto", "notequalto", "lessthan", "lessthanorequalto", "greaterthan", "greaterthanorequalto", "between", "in", "notin", "like", "notlike", "isnull", "isnotnull"]);

/** A value: text, number, Date, or ISO 8601 text (converted to Intacct's literal). */
export type IntacctValue = string | number | Date;

/** One condition: `{ field: "STATE", op: "equalto", value: "Submitted" }`; `between`/`in`/`notin` take an array. */
export interface IntacctCondition {
  field: string;
  op: IntacctOperator;
  value?: IntacctValue | IntacctValue[];
}

/** A filter: one condition, or `{ and: [...] }` / `{ or: [...] }`. */
export type IntacctFilter = IntacctCondition | { and: IntacctFilter[] } | { or: IntacctFilter[] };

/** A `query` request. `object` and field names are upper-cased; `select` is required. */
export interface IntacctQuery {
  object: string;
  select: string[];
  filter?: IntacctFilter;
  orderBy?: { field: string; descending?: boolean }[];
  /** Rows per page, 1–2000; default 1000 (always sent: Intacct's own default is 100). */
  pageSize?: number;
  /** First row, ≥ 0; default 0. */
  offset?: number;
  caseInsensitive?: boolean;
  /** Default true (private records of entities included, as real incremental traffic does). */
  showPrivate?: boolean;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** An object or field name, upper case. @throws ValidationError for anything but letters, digits, `_` and dots */
export function intacctName(name: string, what = "field"): string {
  const n = String(name ?? "").trim();
  if (!NAME_RE.test(n)) throw new ValidationError(`Intacct ${what} name ${JSON.stringify(n).slice(0, 60)} is not valid`);
  return n.toUpperCase();
}

const ISO_DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
/** ISO 8601 date-time without an offset: already the company's wall clock. */
const ISO_LOCAL_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/;
const ISO_ZONED_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/**
 * A value as Intacct literal text: a Date or ISO 8601 date-time with offset → `MM/DD/YYYY HH:MM:SS` in `timeZone`
 * (seconds floored); ISO 8601 without an offset (`2025-03-10T15:03:09`, a space for the `T` too) is taken as the
 * company's wall clock → `03/10/2025 15:03:09` (fraction dropped); `YYYY-MM-DD` → `MM/DD/YYYY`; anything else as
 * text. Reference §5.2: ISO literals are not Intacct's format and are never sent.
 */
export function intacctLiteral(v: IntacctValue, timeZone: string): string {
  const ms = v instanceof Date ? v.getTime() : typeof v === "string" && ISO_ZONED_RE.test(v.trim()) ? Date.parse(v.trim()) : Number.NaN;
  if (Number.isFinite(ms)) {
    const w = wallClock(Math.floor(ms / 1000) * 1000, timeZone);
    return `${pad(w.month)}/${pad(w.day)}/${w.year} ${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}`;
  }
  if (typeof v === "string") {
    const d = ISO_DATE_RE.exec(v.trim());
    if (d) return `${d[2]}/${d[3]}/${d[1]}`;
    const t = ISO_LOCAL_RE.exec(v.trim());
    if (t) return `${t[2]}/${t[3]}/${t[1]} ${t[4]}:${t[5]}:${t[6] ?? "00"}`;
  }
  return String(v);
}

function conditionXml(c: IntacctCondition, tz: string): XmlTree {
  if (!OPERATORS.has(c.op)) throw new ValidationError(`Unknown Intacct filter operator ${JSON.stringify(c.op)}`);
  const field = intacctName(c.field);
  if (c.op === "isnull" || c.op === "isnotnull") return { [c.op]: { field } };
  const values = Array.isArray(c.value) ? c.value : c.value === undefined ? [] : [c.value];
  if (c.op === "between" && values.length !== 2) throw new ValidationError("between needs exactly two values");
  if ((c.op === "in" || c.op === "notin") && values.length < 1) throw new ValidationError(`${c.op} needs at least one value`);
  if (!["between", "in", "notin"].includes(c.op) && values.length !== 1) throw new ValidationError(`${c.op} needs exactly one value`);
  const lits = values.map((v) => intacctLiteral(v, tz));
  return { [c.op]: { field, value: lits.length === 1 ? lits[0] : lits } };
}

/**
 * The `<filter>` content: one condition element, or one `<and>`/`<or>` holding two or more. An `and`/`or` with a
 * single member is written as that member (the gateway refuses a wrapper around one condition).
 * @throws ValidationError for an empty `and`/`or`, unknown operators, wrong value counts, bad field names
 */
export function filterXml(f: IntacctFilter, timeZone: string): XmlTree {
  const group = "and" in f ? "and" : "or" in f ? "or" : undefined;
  if (!group) return conditionXml(f as IntacctCondition, timeZone);
  const members = (f as Record<string, IntacctFilter[]>)[group];
  if (!Array.isArray(members) || members.length === 0) throw new ValidationError(`<${group}> needs at least one condition`);
  if (members.length === 1) return filterXml(members[0], timeZone);
  const out: Record<string, XmlTree[]> = {};
  for (const m of members) {
    const [[name, body]] = Object.entries(filterXml(m, timeZone));
    (out[name] ??= []).push(body as XmlTree);
  }
  return { [group]: out as unknown as XmlTree };
}

function pageSizeOf(n: number | undefined, max: number): number {
  const v = n ?? 1000;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new ValidationError(`pagesize must be an integer 1…${max}, got ${String(n)}`);
  return v;
}

/** The `<query>` function body. @throws ValidationError (names, filter, pagesize 1–2000, offset ≥ 0, empty select) */
export function queryXml(q: IntacctQuery, timeZone: string): XmlTree {
  if (!Array.isArray(q.select) || q.select.length === 0) throw new ValidationError("query needs at least one field in select");
  const offset = q.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw new ValidationError(`offset must be an integer ≥ 0, got ${String(q.offset)}`);
  const body: XmlTree = { select: { field: q.select.map((f) => intacctName(f)) }, object: intacctName(q.object, "object") };
  if (q.filter) body.filter = filterXml(q.filter, timeZone);
  if (q.orderBy?.length) body.orderby = { order: q.orderBy.map((o) => ({ field: intacctName(o.field), ...(o.descending ? { descending: "" } : { ascending: "" }) })) };
  body.options = { caseinsensitive: String(q.caseInsensitive ?? false), showprivate: String(q.showPrivate ?? true) };
  body.pagesize = String(pageSizeOf(q.pageSize, 2000));
  body.offset = String(offset);
  return { query: body };
}

/** A `readByQuery` request: SQL-like `query` text (e.g. the poll window's filter), `fields` ("*" or names). */
export interface ReadByQueryRequest {
  object: string;
  query: string;
  fields?: string[] | "*";
  /** 1–1000; default 1000. */
  pageSize?: number;
}

/** The `<readByQuery>` function body (returnFormat xml). @throws ValidationError (names, pagesize 1–1000) */
export function readByQueryXml(r: ReadByQueryRequest): XmlTree {
  const fields = r.fields === undefined || r.fields === "*" ? "*" : r.fields.map((f) => intacctName(f)).join(",");
  return {
    readByQuery: { object: intacctName(r.object, "object"), query: r.query ?? "", fields, pagesize: String(pageSizeOf(r.pageSize, 1000)), returnFormat: "xml" },
  };
}

/** A string literal for `readByQuery` text: single quotes, a quote inside escaped with a backslash (reference §5.2). */
export function readByQueryString(v: string): string {
  return `'${String(v).replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

const DATE_FIELD_RE = /(^|\.)(WHEN[A-Z_]*|AUWHEN[A-Z_]*|[A-Z_]*DATE)$/;

/**
 * One record of an answer as plain JSON: values stay text (amounts unformatted, booleans `true|false`), dotted
 * field names stay flat (`DISPLAYCONTACT.PHONE1`), and date fields (`WHEN…`, `…DATE`) are converted: `MM/DD/YYYY` →
 * `YYYY-MM-DD`, `MM/DD/YYYY HH:MM:SS` → ISO 8601 UTC read in `timeZone`. Unreadable dates stay as sent.
 */
export function plainRecord(rec: Record<string, unknown>, timeZone: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec)) {
    if (k.startsWith("@_")) continue;
    if (typeof v === "string" && DATE_FIELD_RE.test(k)) {
      const d = /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(v);
      out[k] = d ? `${d[3]}-${d[1]}-${d[2]}` : (companyTime(v, timeZone) ?? v);
    } else out[k] = v;
  }
  return out;
}
