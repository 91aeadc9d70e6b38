/**
 * Pieces of the Intacct simulator that read Intacct's own text: date literals (`MM/DD/YYYY`, `MM/DD/YYYY HH:MM:SS`,
 * company time) and the SQL-like `readByQuery` query language (reference sage-intacct.md §5.2: `<, >, >=, <=, =, <>,
 * like, not like, in, not in, IS NULL, IS NOT NULL, AND, OR`, parentheses, single-quoted strings with backslash
 * escapes; double-quoted literals and ISO 8601 date literals are errors).
 */

/** A record as the gateway stores it: field → text. */
export type SimRecord = Record<string, string>;

const DATE_RE = /^(\d{2})\/(\d{2})\/(\d{4})$/;
const DATETIME_RE = /^(\d{2})\/(\d{2})\/(\d{4}) (\d{2}):(\d{2}):(\d{2})$/;
const ISOISH_RE = /^\d{4}-\d{2}-\d{2}/;

/** True for the names of date fields (WHEN…, …DATE). */
export function isDateField(field: string): boolean {
  return /(^|\.)(WHEN[A-Z_]*|AUWHEN[A-Z_]*|[A-Z_]*DATE)$/.test(field);
}

/** Sortable number of an Intacct date / date-time literal (wall clock, no zone); NaN when not in that format. */
export function dateKey(text: string): number {
  const t = DATETIME_RE.exec(text) ?? DATE_RE.exec(text);
  if (!t) return Number.NaN;
  const [, mo, d, y, h = "0", mi = "0", s = "0"] = t;
  if (+mo < 1 || +mo > 12 || +d < 1 || +d > 31 || +h > 23 || +mi > 59 || +s > 59) return Number.NaN;
  return Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
}

/** Thrown for a query the gateway refuses (becomes a result failure "Query Failed"). */
export class QueryError extends Error {}

/**
 * Compare a record value with a literal: dates by instant (a literal in another format is a QueryError), numbers
 * numerically, text as text. Returns <0, 0, >0.
 */
export function compareValue(field: string, recValue: string, literal: string): number {
  if (isDateField(field)) {
    const lit = dateKey(literal);
    if (Number.isNaN(lit)) {
      throw new QueryError(ISOISH_RE.test(literal) ? `Invalid date ${literal}: use mm/dd/yyyy` : `Invalid date value ${literal} for ${field}`);
    }
    const v = dateKey(recValue);
    const litIsDate = DATE_RE.test(literal);
    const vv = litIsDate && !Number.isNaN(v) ? Math.floor(v / 86_400_000) * 86_400_000 : v;
    return vv - lit;
  }
  const a = Number(recValue);
  const b = Number(literal);
  if (recValue !== "" && literal !== "" && Number.isFinite(a) && Number.isFinite(b)) return a - b;
  return recValue < literal ? -1 : recValue > literal ? 1 : 0;
}

/** SQL-like `like`: `%` any run, `_` one character. */
export function likeMatch(value: string, pattern: string): boolean {
  const re = new RegExp("^" + pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/%/g, ".*").replace(/_/g, ".") + "$", "s");
  return re.test(value);
}

type Pred = (r: SimRecord) => boolean;
type Tok = { t: "word" | "str" | "num" | "op" | "(" | ")" | ","; v: string };

function tokenize(q: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i];
    if (/\s/.test(c)) i++;
    else if (c === "(" || c === ")" || c === ",") {
      out.push({ t: c, v: c });
      i++;
    }
    else if (c === "'") {
      let s = "";
      i++;
      for (;;) {
        if (i >= q.length) throw new QueryError("Unterminated string literal");
        if (q[i] === "\\" && i + 1 < q.length) {
          s += q[i + 1];
          i += 2;
        }
        else if (q[i] === "'") break;
        else s += q[i++];
      }
      i++;
      out.push({ t: "str", v: s });
    } else if (c === '"') throw new QueryError("Double-quoted literals are not allowed; use single quotes");
    else if (/[<>=!]/.test(c)) {
      const m = /^(<=|>=|<>|!=|<|>|=)/.exec(q.slice(i))!;
      out.push({ t: "op", v: m[1] });
      i += m[1].length;
    } else if (/[-0-9]/.test(c)) {
      const m = /^-?\d+(\.\d+)?/.exec(q.slice(i));
      if (!m) throw new QueryError(`Unexpected ${c}`);
      out.push({ t: "num", v: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_.]*/.exec(q.slice(i))!;
      out.push({ t: "word", v: m[0] });
      i += m[0].length;
    } else throw new QueryError(`Unexpected character ${c}`);
  }
  return out;
}

/** Parse a readByQuery `<query>` text into a predicate ("" = every record). @throws QueryError */
export function parseReadByQuery(text: string): Pred {
  const toks = tokenize(text);
  let p = 0;
  const peekWord = (w: string) => toks[p]?.t === "word" && toks[p].v.toUpperCase() === w;
  const value = (): string => {
    const t = toks[p++];
    if (!t || (t.t !== "str" && t.t !== "num")) throw new QueryError("Expected a value");
    return t.v;
  };
  const factor = (): Pred => {
    if (toks[p]?.t === "(") {
      p++;
      const e = expr();
      if (toks[p++]?.t !== ")") throw new QueryError("Missing )");
      return e;
    }
    const f = toks[p++];
    if (!f || f.t !== "word") throw new QueryError("Expected a field name");
    const field = f.v;
    if (peekWord("IS")) {
      p++;
      const not = peekWord("NOT") ? (p++, true) : false;
      if (!peekWord("NULL")) throw new QueryError("Expected NULL");
      p++;
      return (r) => ((r[field] ?? "") === "") !== not;
    }
    const not = peekWord("NOT") ? (p++, true) : false;
    if (peekWord("LIKE")) {
      p++;
      const pat = value();
      return (r) => likeMatch(r[field] ?? "", pat) !== not;
    }
    if (peekWord("IN")) {
      p++;
      if (toks[p++]?.t !== "(") throw new QueryError("Expected ( after IN");
      const vals = [value()];
      while (toks[p]?.t === ",") {
        p++;
        vals.push(value());
      }
      if (toks[p++]?.t !== ")") throw new QueryError("Missing ) after IN list");
      return (r) => vals.some((v) => compareValue(field, r[field] ?? "", v) === 0) !== not;
    }
    const op = toks[p++];
    if (!op || op.t !== "op" || not) throw new QueryError("Expected a comparison operator");
    const lit = value();
    compareValue(field, "", lit); // refuses a bad date literal even when no record matches
    const cmp = { "=": (d: number) => d === 0, "<>": (d: number) => d !== 0, "!=": (d: number) => d !== 0, "<": (d: number) => d < 0, ">": (d: number) => d > 0, "<=": (d: number) => d <= 0, ">=": (d: number) => d >= 0 }[op.v]!;
    return (r) => (r[field] ?? "") !== "" && cmp(compareValue(field, r[field] ?? "", lit));
  };
  const term = (): Pred => {
    const parts = [factor()];
    while (peekWord("AND")) {
      p++;
      parts.push(factor());
    }
    return (r) => parts.every((x) => x(r));
  };
  const expr = (): Pred => {
    const parts = [term()];
    while (peekWord("OR")) {
      p++;
      parts.push(term());
    }
    return (r) => parts.some((x) => x(r));
  };
  if (toks.length === 0) return () => true;
  const e = expr();
  if (p !== toks.length) throw new QueryError("Unexpected text after the condition");
  return e;
}
