/**
 * Context keys are property paths (Node-RED: https://nodered.org/docs/user-guide/context, "Context
 * keys": `context.get("a.b[0]")` reads a nested property). This parses the forms Node-RED's
 * `util.normalisePropertyExpression` accepts for context keys (`a.b`, `a["b.c"]`, `a['b']`, `a[0]`)
 * into segments, without importing Node-RED (the store module is loaded from settings.js, before and
 * apart from the runtime). Message references inside brackets (`a[msg.b]`) are not context keys and
 * are refused.
 */

/** An invalid property expression; `code` matches Node-RED's ("INVALID_EXPR"). */
export class InvalidExpressionError extends Error {
  readonly code = "INVALID_EXPR";
  constructor(expr: string) {
    super(`Invalid property expression: ${JSON.stringify(expr.slice(0, 80))}`);
    this.name = "InvalidExpressionError";
  }
}

/**
 * Split a property expression into segments: strings for names, numbers for array indexes.
 * @throws InvalidExpressionError for empty segments (`a..b`), unbalanced brackets or bad quotes
 */
export function parsePath(expr: string): (string | number)[] {
  if (typeof expr !== "string" || expr.length === 0) throw new InvalidExpressionError(String(expr));
  // A plain name (every key the package writes, e.g. "pn_3f…"): one segment, as the loop below would find.
  if (!/[.[\]]/.test(expr)) return [expr];
  const out: (string | number)[] = [];
  let i = 0;
  let name = "";
  let afterBracket = false;
  const n = expr.length;
  while (i < n) {
    const c = expr[i];
    if (c === ".") {
      if (name === "" && !afterBracket) throw new InvalidExpressionError(expr);
      if (name !== "") out.push(name);
      name = "";
      afterBracket = false;
      i++;
      if (i === n) throw new InvalidExpressionError(expr);
      continue;
    }
    if (c === "[") {
      if (name !== "") out.push(name);
      else if (out.length === 0) throw new InvalidExpressionError(expr);
      name = "";
      i++;
      const q = expr[i];
      if (q === '"' || q === "'") {
        let s = "";
        i++;
        while (i < n && expr[i] !== q) {
          if (expr[i] === "\\" && i + 1 < n) i++;
          s += expr[i++];
        }
        if (expr[i] !== q || expr[i + 1] !== "]") throw new InvalidExpressionError(expr);
        out.push(s);
        i += 2;
      } else {
        const end = expr.indexOf("]", i);
        const digits = end < 0 ? "" : expr.slice(i, end);
        if (!/^\d+$/.test(digits)) throw new InvalidExpressionError(expr);
        out.push(Number(digits));
        i = end + 1;
      }
      afterBracket = true;
      if (i < n && expr[i] !== "." && expr[i] !== "[") throw new InvalidExpressionError(expr);
      continue;
    }
    if (c === "]") throw new InvalidExpressionError(expr);
    if (afterBracket) throw new InvalidExpressionError(expr);
    name += c;
    i++;
  }
  if (name !== "") out.push(name);
  if (out.length === 0) throw new InvalidExpressionError(expr);
  return out;
}

/** Read a nested property (`undefined` when any step is missing). */
export function getPath(root: unknown, segs: (string | number)[]): unknown {
  let cur: unknown = root;
  for (const s of segs) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, s)) return undefined;
    cur = (cur as Record<string | number, unknown>)[s];
  }
  return cur;
}

/**
 * Return a copy of `root` with the nested property set (`undefined` deletes it); missing steps are
 * created as objects (or arrays for numeric segments), as Node-RED's setObjectProperty does.
 * `__proto__`, `constructor` and `prototype` segments are refused (prototype pollution).
 */
export function setPath(root: unknown, segs: (string | number)[], value: unknown): unknown {
  if (segs.length === 0) return value;
  const [head, ...rest] = segs;
  if (head === "__proto__" || head === "constructor" || head === "prototype") throw new InvalidExpressionError(String(head));
  const base: Record<string | number, unknown> | unknown[] =
    root !== null && typeof root === "object" ? (Array.isArray(root) ? [...root] : { ...(root as object) }) : typeof head === "number" ? [] : {};
  const obj = base as Record<string | number, unknown>;
  if (rest.length === 0) {
    if (value === undefined) Reflect.deleteProperty(obj, head);
    else obj[head] = value;
    return base;
  }
  obj[head] = setPath(obj[head], rest, value);
  return base;
}
