/**
 * The `$filter` subset of the SAP Business One Service Layer simulator (reference sap-business-one.md §4): `eq ne gt ge
 * lt le`, `and or not`, parentheses, `startswith/endswith/contains(Field,'x')`; no arithmetic, no field-vs-field.
 * Strict where the reference is:
 * - a date or time literal must be quoted (`UpdateDate ge 2024-01-01` → 400 -1000);
 * - date fields compare by date only (`'2024-01-01'`, `'20240101'`, `datetime'2024-01-01'`, `'2024-01-01T12:00:00'`);
 * - time fields compare by hour:minute only (`'14:30'`, `'14:30:59'` → 14:30, `'143000'`), the record's time too;
 * - an unknown property → 400 -1000; an enum literal that is neither a member name nor its value → 400.
 */

/** Thrown for a filter the server refuses (answered 400 -1000). */
export class FilterError extends Error {}

/** What the evaluator needs to know about the entity's fields. */
export interface FieldTypes {
  /** Field → type; fields absent here are unknown properties. */
  types: Record<string, "string" | "number" | "date" | "time" | "enum">;
  /** Enum field → member names in value order. */
  enums?: Record<string, readonly string[]>;
}

type Tok = { t: "id" | "str" | "num" | "raw" | "op" | "(" | ")" | ","; v: string };

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  const re = /\s*(?:(datetime'(?:[^']|'')*')|('(?:[^']|'')*')|(\()|(\))|(,)|(-?\d+(?:\.\d+)?(?![\w:-]))|([A-Za-z_][A-Za-z0-9_]*)|([^\s(),']+))/y;
  let m: RegExpExecArray | null;
  let i = 0;
  while (i < src.length && (m = re.exec(src))) {
    i = re.lastIndex;
    if (m[1]) out.push({ t: "str", v: m[1].slice(9, -1).replace(/''/g, "'") });
    else if (m[2]) out.push({ t: "str", v: m[2].slice(1, -1).replace(/''/g, "'") });
    else if (m[3]) out.push({ t: "(", v: "(" });
    else if (m[4]) out.push({ t: ")", v: ")" });
    else if (m[5]) out.push({ t: ",", v: "," });
    else if (m[6]) out.push({ t: "num", v: m[6] });
    else if (m[7]) out.push(["and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le"].includes(m[7]) ? { t: "op", v: m[7] } : { t: "id", v: m[7] });
    else if (m[8]) out.push({ t: "raw", v: m[8] });
    if (src.slice(i).trim() === "") break;
  }
  if (src.slice(i).trim() !== "") throw new FilterError("Syntax error in $filter");
  return out;
}

type Pred = (row: Record<string, unknown>) => boolean;

/** Date part of a record value or literal: `YYYY-MM-DD`. */
function dateOf(v: unknown, literal: boolean): string {
  const s = String(v ?? "");
  const m = /^(\d{4})-?(\d{2})-?(\d{2})/.exec(s);
  if (!m) {
    if (literal) throw new FilterError(`Invalid date literal '${s}'`);
    return "";
  }
  return `${m[1]}-${m[2]}-${m[3]}`;
}

/** hour:minute of a time value or literal: `HH:MM`. Seconds are dropped (only hour and minute are effective). */
function timeOf(v: unknown, literal: boolean): string {
  const s = String(v ?? "");
  const m = /^(?:\d{4}-\d{2}-\d{2}T)?(\d{2}):?(\d{2})(?::?(\d{2}))?/.exec(s);
  if (!m) {
    if (literal) throw new FilterError(`Invalid time literal '${s}'`);
    return "";
  }
  return `${m[1]}:${m[2]}`;
}

/** Parses and evaluates one `$filter`. Collects time literals that carried seconds in `secondsSeen`. */
export class FilterParser {
  private toks: Tok[] = [];
  private pos = 0;
  /** Time literals that carried seconds (silently ignored by the server). */
  secondsSeen: string[] = [];

  constructor(private readonly fields: FieldTypes) {}

  /** @throws FilterError for what the server answers 400 */
  parse(src: string): Pred {
    this.toks = tokenize(src);
    this.pos = 0;
    const p = this.or();
    if (this.pos !== this.toks.length) throw new FilterError("Syntax error in $filter");
    return p;
  }

  private peek(): Tok | undefined {
    return this.toks[this.pos];
  }

  private take(t?: Tok["t"], v?: string): Tok {
    const k = this.toks[this.pos];
    if (!k || (t && k.t !== t) || (v && k.v !== v)) throw new FilterError("Syntax error in $filter");
    this.pos++;
    return k;
  }

  private or(): Pred {
    let l = this.and();
    while (this.peek()?.v === "or") {
      this.pos++;
      const a = l;
      const b = this.and();
      l = (r) => a(r) || b(r);
    }
    return l;
  }

  private and(): Pred {
    let l = this.unary();
    while (this.peek()?.v === "and") {
      this.pos++;
      const a = l;
      const b = this.unary();
      l = (r) => a(r) && b(r);
    }
    return l;
  }

  private unary(): Pred {
    if (this.peek()?.v === "not") {
      this.pos++;
      const p = this.unary();
      return (r) => !p(r);
    }
    if (this.peek()?.t === "(") {
      this.pos++;
      const p = this.or();
      this.take(")");
      return p;
    }
    const id = this.take("id");
    if (this.peek()?.t === "(") return this.func(id.v);
    return this.comparison(id.v);
  }

  private field(name: string): string {
    const type = this.fields.types[name];
    if (!type) throw new FilterError(`Property '${name}' of the entity is invalid`);
    return type;
  }

  private func(name: string): Pred {
    if (!["startswith", "endswith", "contains"].includes(name)) throw new FilterError(`Unknown function '${name}'`);
    this.take("(");
    const f = this.take("id").v;
    this.field(f);
    this.take(",");
    const lit = this.take("str").v;
    this.take(")");
    return (r) => {
      const s = String(r[f] ?? "");
      return name === "startswith" ? s.startsWith(lit) : name === "endswith" ? s.endsWith(lit) : s.includes(lit);
    };
  }

  private comparison(name: string): Pred {
    const type = this.field(name);
    const op = this.take("op").v;
    if (!["eq", "ne", "gt", "ge", "lt", "le"].includes(op)) throw new FilterError("Syntax error in $filter");
    const lit = this.take();
    if (lit.t === "id") throw new FilterError("Comparing two properties is not supported");
    if ((type === "date" || type === "time" || type === "string" || type === "enum") && lit.t !== "str") throw new FilterError(`Literal for '${name}' must be quoted`);
    let norm: (v: unknown, literal: boolean) => string | number;
    if (type === "number") {
      if (lit.t !== "num") throw new FilterError(`Literal for '${name}' must be a number`);
      norm = (v) => Number(v);
    } else if (type === "date") norm = dateOf;
    else if (type === "time") {
      const sec = /^(?:\d{4}-\d{2}-\d{2}T)?\d{2}:?\d{2}:?(\d{2})/.exec(lit.v)?.[1];
      if (sec !== undefined && sec !== "00") this.secondsSeen.push(lit.v);
      norm = timeOf;
    } else if (type === "enum") norm = (v, literal) => this.enumName(name, v, literal);
    else norm = (v) => String(v ?? "");
    const want = norm(lit.v, true);
    return (r) => {
      const have = norm(r[name], false);
      if (have === "" && type !== "string") return false;
      switch (op) {
        case "eq": return have === want;
        case "ne": return have !== want;
        case "gt": return have > want;
        case "ge": return have >= want;
        case "lt": return have < want;
        default: return have <= want;
      }
    };
  }

  private enumName(field: string, v: unknown, literal: boolean): string {
    const members = this.fields.enums?.[field] ?? [];
    const s = String(v ?? "");
    if (members.includes(s)) return s;
    if (/^\d+$/.test(s) && members[Number(s)]) return members[Number(s)];
    if (literal) throw new FilterError(`Enum value '${s}' is invalid for '${field}'`);
    return s;
  }
}
