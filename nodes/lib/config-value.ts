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
  const name = unsetEnvVar(s);
  if (name) throw new ValidationError(`${field}: environment variable ${name} is not set`, { code: "missing_env" });
  return s;
}

/** The variable an unsubstituted whole-value reference names (`${NAME}`, legacy `$(NAME)`), else undefined. */
export function unsetEnvVar(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const s = value.trim();
  return (/^\$\{(\S+)\}$/.exec(s) ?? /^\$\((\S+)\)$/.exec(s))?.[1];
}

/**
 * A credential that verifies senders (a push's shared secret, clientState, webhook signing key): "" (not configured)
 * when empty or an unsubstituted `${NAME}`. Node-RED keeps the literal text of an unset variable, and that text is
 * printed in the examples and the README: used as the secret, anyone could send it.
 */
export function senderSecret(value: unknown): string {
  if (typeof value !== "string" || unsetEnvVar(value)) return "";
  return value;
}

/** Read a numeric config property with a default and bounds. */
export function num(value: unknown, dflt: number, min = -Infinity, max = Infinity): number {
  const n = typeof value === "number" ? value : Number(value);
  if (value === "" || value === undefined || value === null || !Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}
