/**
 * Helpers for config nodes: reading string properties that may hold `${ENV}` references (Node-RED
 * substitutes whole-value references when the node is created and leaves the literal text when the
 * variable is undefined), and owning exactly one client per config node.
 */
import { ValidationError } from "../lib/errors";
import { onClose } from "./node";
import type { RedAPI, RedNode } from "./types";

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

/**
 * One lazily created client per config node, closed with the node. A configuration error is kept and
 * thrown to every caller (so it reaches their Catch nodes) instead of failing at deploy.
 */
export class OwnedClient<T extends { close(): Promise<void> }> {
  private client?: T;
  private error?: Error;

  constructor(node: RedNode, private readonly factory: () => T) {
    onClose(node, async () => {
      const c = this.client;
      this.client = undefined;
      if (c) await c.close();
    });
  }

  /** @throws the configuration error when the client cannot be built */
  get(): T {
    if (this.error) throw this.error;
    if (!this.client) {
      try {
        this.client = this.factory();
      } catch (err) {
        this.error = err as Error;
        throw err;
      }
    }
    return this.client;
  }
}

/**
 * The API a config node of `type` publishes on `node.mlc`, for the dependent node that references it by id.
 * @param label how the editor names the config ("Twilio account"), for the error text
 * @throws ValidationError code "no_config" when nothing, or a node of another type, is selected
 */
export function configApi<T>(RED: RedAPI, id: unknown, type: string, label: string): T {
  const n = typeof id === "string" && id ? (RED.nodes.getNode(id) as (RedNode & { mlc?: T }) | null) : null;
  if (!n || n.type !== type || !n.mlc) throw new ValidationError(`No ${label} (${type}) selected`, { code: "no_config" });
  return n.mlc;
}
