/**
 * Reading a config node's property values, as Node-RED hands them over: strings that may hold an unsubstituted
 * `${ENV}` reference (Node-RED substitutes whole-value references when the node is created and leaves the literal
 * text when the variable is undefined), and numbers typed as text. Pure, so lib/ clients can be built from plain
 * properties; nodes/shared re-exports both.
 */
import { ValidationError } from "./errors";

/**
 * A config string, trimmed. An unsubstituted `${NAME}` means the environment variable is not set.
 * @throws ValidationError code "missing_env" naming the variable (never its value)
 */
export function configString(value: unknown, field: string): string {
  const s = typeof value === "string" ? value.trim() : value === undefined || value === null ? "" : String(value);
  const m = /^\$\{(\S+)\}$/.exec(s) ?? /^\$\((\S+)\)$/.exec(s);
  if (m) throw new ValidationError(`${field}: environment variable ${m[1]} is not set`, { code: "missing_env" });
  return s;
}

/** Read a numeric config property with a default and bounds. */
export function num(value: unknown, dflt: number, min = -Infinity, max = Infinity): number {
  const n = typeof value === "number" ? value : Number(value);
  if (value === "" || value === undefined || value === null || !Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}
