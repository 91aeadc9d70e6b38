/**
 * The Node-RED toolkit every adapter goes through: type registration, the async input wrapper (one
 * error channel to Catch nodes), close handling with the arity Node-RED awaits, status vocabulary and
 * TypedInput evaluation.
 */
import { errorDetails, MlcError } from "../lib/errors";
import { randomId } from "../lib/ids";
import type { DoneFn, NodeMessage, NodeStatus, RedAPI, RedNode, SendFn } from "./types";

/**
 * Status shapes used by every node, so the palette reads the same everywhere.
 *
 * `text` is a catalog key of the node's own set, e.g. `Status.ok("mlc-dedupe.status.ready")`: the editor
 * translates it in the browser (Node-RED editor-client red.js, "status/#" subscription:
 * `node._(text, { defaultValue: text })` for text starting with a letter or `@`), as core nodes do with
 * `"node-red:common.status.connected"`. Nothing is translated on the server per message. Text that is not a
 * key (a sid, a count from {@link statusTemplate}) is shown as it is.
 */
export const Status = {
  idle: (text: string): NodeStatus => ({ fill: "grey", shape: "ring", text }),
  busy: (text: string): NodeStatus => ({ fill: "blue", shape: "dot", text }),
  ok: (text: string): NodeStatus => ({ fill: "green", shape: "dot", text }),
  warn: (text: string): NodeStatus => ({ fill: "yellow", shape: "ring", text }),
  error: (text: string): NodeStatus => ({ fill: "red", shape: "ring", text }),
  clear: (): NodeStatus => ({}),
};

/**
 * Composed status text for counts and other values: the catalog template at `key` (e.g.
 * `"__fresh__ new / __dup__ dup"`) is translated ONCE, when this is called (at node setup, in the runtime's
 * language), and each call of the returned function only fills in the `__name__` placeholders. The editor
 * cannot do this (it passes no values to its lookup), and translating per message cost 11–14 % of Node-RED's
 * busy time in a profile of the push pipeline.
 * @param fallback the English template used when the catalog lacks `key` (unit tests without a runtime)
 * @returns `(values) => text`; a placeholder without a value becomes ""
 */
export function statusTemplate(RED: RedAPI, key: string, fallback: string): (values: Record<string, string | number>) => string {
  let template = fallback;
  try {
    const s = RED._(key);
    if (s && !s.endsWith(key)) template = s;
  } catch {
    /* catalog not loaded (unit tests) */
  }
  const parts = template.split(/__(\w+)__/);
  return (values) => parts.map((p, i) => (i % 2 ? String(values[p] ?? "") : p)).join("");
}

/**
 * Translate `key` in the node set's catalog on the server, falling back to `fallback` when the catalog lacks
 * it. For log lines, warnings and error messages, which the editor does not translate; status text should be
 * a key instead (see {@link Status}), never a per-message `t()`.
 */
export function t(RED: RedAPI, key: string, subs?: Record<string, unknown>, fallback?: string): string {
  try {
    const s = RED._(key, subs);
    if (s && !s.endsWith(key)) return s;
  } catch {
    /* catalog not loaded (unit tests) */
  }
  if (fallback === undefined) return key.split(".").pop() ?? key;
  return fallback.replace(/__(\w+)__/g, (_m, k: string) => String(subs?.[k] ?? ""));
}

/**
 * Status text for an error: the catalog key `errors.<code>` (the shared fragment
 * locales/<lang>/errors.json, merged into every node set's catalog by scripts/copy-assets.js), which the
 * editor translates; `errors.internal` for anything that is not an {@link MlcError}; for a code ending in a
 * number (`http_503`, `twilio_21211`) the code with spaces ("http 503"). A missing environment variable is
 * named (its name, never a value): "REMINDER_TIMEZONE not set" (composed text: the editor has no values to fill in).
 */
export function errorStatusKey(err: unknown): string {
  const code = err instanceof MlcError && /^[a-z][a-z0-9_]*$/.test(err.code) ? err.code : "internal";
  const env = code === "missing_env" ? /environment variable (\S+) is not set/.exec((err as Error).message)?.[1] : undefined;
  if (env) return `${env} not set`;
  // Open-ended codes carry a number (`http_503`, `twilio_21211`): shown as "http 503", not looked up.
  if (/_\d+$/.test(code)) return code.replace(/_/g, " ");
  return `errors.${code}`;
}

/** @deprecated the same as {@link errorStatusKey}: status text is a key the editor translates. `RED` is unused. */
export function errorStatusText(_RED: RedAPI, err: unknown): string {
  return errorStatusKey(err);
}

/**
 * Register a node type whose setup function receives the created node.
 * @param credentials Node-RED credential declarations (secrets as `password`)
 */
export function registerNode<C extends Record<string, unknown>>(
  RED: RedAPI,
  type: string,
  setup: (node: RedNode, config: C) => void,
  credentials?: Record<string, { type: "text" | "password" }>,
): void {
  function Ctor(this: RedNode, config: C): void {
    RED.nodes.createNode(this, config);
    setup(this, config);
  }
  RED.nodes.registerType(type, Ctor, credentials ? { credentials } : undefined);
}

export interface InputContext {
  send: SendFn;
  /** Update the node status. */
  status(s: NodeStatus): void;
}

/**
 * Wrap an async input handler. A thrown/rejected error: red status with the error's key
 * ({@link errorStatusKey}), `msg.errorDetails` set (JSON-safe, no secrets), `done(err)` so Catch nodes fire.
 * Nothing escapes as an unhandled rejection (which would stop the whole runtime).
 * @param _RED unused since status text became a catalog key; kept so callers need not change
 */
export function onInput(_RED: RedAPI, node: RedNode, handler: (msg: NodeMessage, ctx: InputContext) => Promise<void>): void {
  node.on("input", (msg: NodeMessage, send: SendFn, done: DoneFn) => {
    const ctx: InputContext = { send, status: (s) => node.status(s) };
    handler(msg, ctx).then(
      () => done(),
      (err: unknown) => {
        try {
          node.status(Status.error(errorStatusKey(err)));
          msg.errorDetails = errorDetails(err);
        } finally {
          done(withoutStack(err));
        }
      },
    );
  });
}

/**
 * The error as handed to Node-RED: same object (name, message, code), without its stack. Node-RED copies an
 * error's own `stack` into the Catch message (msg.error.stack), where debug nodes show it in the sidebar with
 * the install paths; our errors are typed and their message says what happened.
 */
function withoutStack(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  try {
    delete (e as { stack?: string }).stack;
  } catch {
    /* a frozen error keeps its stack */
  }
  return e;
}

/**
 * Report an error from a node that has no input message (triggers, endpoints): `node.error(err, msg)`
 * with a synthetic message describing what was going on, so Catch nodes fire; the status shows
 * {@link errorStatusKey}.
 * @param _RED unused since status text became a catalog key; kept so callers need not change
 */
export function reportError(_RED: RedAPI, node: RedNode, err: unknown, about: Record<string, unknown>): void {
  node.status(Status.error(errorStatusKey(err)));
  node.error(withoutStack(err), { topic: String(about.topic ?? node.type), payload: about, errorDetails: errorDetails(err) });
}

/**
 * Register a close handler that Node-RED awaits (declared with two parameters, as the runtime
 * requires) and that can never reject.
 */
export function onClose(node: RedNode, fn: (removed: boolean) => Promise<void> | void): void {
  node.on("close", (removed: boolean, done: () => void) => {
    Promise.resolve()
      .then(() => fn(removed))
      .catch((err: unknown) => node.warn(`close: ${(err as Error)?.message ?? String(err)}`))
      .finally(done);
  });
}

/** Evaluate a TypedInput property (str/num/msg/flow/global/env/jsonata/json…) as a promise. */
export function evaluate(RED: RedAPI, node: RedNode, value: unknown, type: string | undefined, msg: NodeMessage): Promise<unknown> {
  if (!type || type === "str") return Promise.resolve(value);
  return new Promise((resolve, reject) => {
    RED.util.evaluateNodeProperty(value, type, node, msg, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/** First defined, non-empty value. */
export function firstSet<T>(...values: (T | undefined | null | "")[]): T | undefined {
  for (const v of values) if (v !== undefined && v !== null && v !== "") return v as T;
  return undefined;
}

export { num } from "../lib/config-value";

/** The jobId a message belongs to: `msg.erp.jobId`, else `msg.jobId`, else a new random one ("j" + 24 hex). */
export function messageJobId(msg: NodeMessage): string {
  return String(firstSet((msg.erp as { jobId?: string } | undefined)?.jobId, msg.jobId as string) ?? randomId("j"));
}
