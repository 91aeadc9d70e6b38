/**
 * The Node-RED toolkit every adapter goes through: type registration, the async input wrapper (one
 * error channel to Catch nodes), close handling with the arity Node-RED awaits, status vocabulary and
 * TypedInput evaluation.
 */
import { errorDetails, MlcError } from "../lib/errors";
import { randomId } from "../lib/ids";
import type { DoneFn, NodeMessage, NodeStatus, RedAPI, RedNode, SendFn } from "./types";

/** Status shapes used by every node, so the palette reads the same everywhere. */
export const Status = {
  idle: (text: string): NodeStatus => ({ fill: "grey", shape: "ring", text }),
  busy: (text: string): NodeStatus => ({ fill: "blue", shape: "dot", text }),
  ok: (text: string): NodeStatus => ({ fill: "green", shape: "dot", text }),
  warn: (text: string): NodeStatus => ({ fill: "yellow", shape: "ring", text }),
  error: (text: string): NodeStatus => ({ fill: "red", shape: "ring", text }),
  clear: (): NodeStatus => ({}),
};

/** Translate `key` in the node set's catalog, falling back to `fallback` when the catalog lacks it. */
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

/** Short status text for an error: the translated `errors.<code>` key, else the code itself (≤ 20 chars). */
export function errorStatusText(RED: RedAPI, err: unknown): string {
  const code = err instanceof MlcError ? err.code : "internal";
  // A missing environment variable is named (its name, never a value): "REMINDER_TIMEZONE not set".
  const env = code === "missing_env" ? /environment variable (\S+) is not set/.exec((err as Error).message)?.[1] : undefined;
  if (env) return t(RED, "errors.missing_env_named", { name: env }, `${env} not set`);
  const text = t(RED, `errors.${code}`, undefined, code.replace(/_/g, " "));
  return text.length > 24 ? text.slice(0, 23) + "…" : text;
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
 * Wrap an async input handler. A thrown/rejected error: red status with the error's short text,
 * `msg.errorDetails` set (JSON-safe, no secrets), `done(err)` so Catch nodes fire. Nothing escapes as an
 * unhandled rejection (which would stop the whole runtime).
 */
export function onInput(RED: RedAPI, node: RedNode, handler: (msg: NodeMessage, ctx: InputContext) => Promise<void>): void {
  node.on("input", (msg: NodeMessage, send: SendFn, done: DoneFn) => {
    const ctx: InputContext = { send, status: (s) => node.status(s) };
    handler(msg, ctx).then(
      () => done(),
      (err: unknown) => {
        try {
          node.status(Status.error(errorStatusText(RED, err)));
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
 * with a synthetic message describing what was going on, so Catch nodes fire.
 */
export function reportError(RED: RedAPI, node: RedNode, err: unknown, about: Record<string, unknown>): void {
  node.status(Status.error(errorStatusText(RED, err)));
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

/** Read a numeric config property with a default and bounds. */
export function num(value: unknown, dflt: number, min = -Infinity, max = Infinity): number {
  const n = typeof value === "number" ? value : Number(value);
  if (value === "" || value === undefined || value === null || !Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, n));
}

/** The jobId a message belongs to: `msg.erp.jobId`, else `msg.jobId`, else a new random one ("j" + 24 hex). */
export function messageJobId(msg: NodeMessage): string {
  return String(firstSet((msg.erp as { jobId?: string } | undefined)?.jobId, msg.jobId as string) ?? randomId("j"));
}
