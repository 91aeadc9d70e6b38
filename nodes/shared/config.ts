/**
 * Helpers for config nodes: reading string properties that may hold `${ENV}` references (Node-RED
 * substitutes whole-value references when the node is created and leaves the literal text when the
 * variable is undefined), and owning exactly one client per config node.
 */
import path from "node:path";
import { TokenFile } from "../lib/auth/token-file";
import { ErpError, ValidationError } from "../lib/errors";
import { onClose } from "./node";
import type { NodeStatus, RedAPI, RedNode } from "./types";

export { configString } from "../lib/config-value";

/**
 * One lazily created client per config node, closed with the node. A configuration error is kept and
 * thrown to every caller (so it reaches their Catch nodes) instead of failing at deploy.
 */
export class OwnedClient<T extends { close(): Promise<void> }> {
  private client?: T;
  private error?: Error;
  private closed = false;

  /** @param onClosed awaited after the client closed, with Node-RED's `removed` flag (node deleted, not redeployed) */
  constructor(
    node: RedNode,
    private readonly factory: () => T,
    onClosed?: (removed: boolean) => Promise<void> | void,
  ) {
    onClose(node, async (removed) => {
      // a closed config node never builds a client again (a late call would sign in and leak a session)
      this.closed = true;
      const c = this.client;
      this.client = undefined;
      if (c) await c.close();
      await onClosed?.(removed);
    });
  }

  /**
   * @throws the configuration error when the client cannot be built; ErpError code "client_closed" once the config
   *   node has closed (stopped, redeployed or deleted)
   */
  get(): T {
    if (this.closed) throw new ErpError("The connection's config node has stopped (redeployed or deleted); its client is closed", { code: "client_closed" });
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

/**
 * The nodes that use one config node, so the config node can show them what only it knows (a refused sign-in, a
 * paused connection), the way core `mqtt-broker` pushes its connection status to its users. A user joins with
 * {@link add} (idempotent) and leaves when it closes.
 */
export class ConfigUsers {
  private readonly users = new Set<RedNode>();
  private current?: NodeStatus;

  /** Add `user` (once); it gets the current status at once, and leaves the set when it closes. */
  add(user: RedNode): void {
    if (this.users.has(user)) return;
    this.users.add(user);
    user.on("close", () => {
      this.users.delete(user);
    });
    if (this.current) user.status(this.current);
  }

  /** Show `status` on every user (and on users added later, until {@link clear}). */
  show(status: NodeStatus): void {
    this.current = status;
    for (const u of this.users) u.status(status);
  }

  /** Stop showing the status to late users (current users keep it until their own next status). */
  clear(): void {
    this.current = undefined;
  }

  /** How many nodes use the config node. */
  get size(): number {
    return this.users.size;
  }
}

/**
 * A {@link TokenFile} for a config node: `<userDir>/.mlc-tokens/<family>-<node id>.json`, encrypted with Node-RED's
 * credential secret (`credentialSecret` in settings, else the generated `_credentialSecret`; `credentialSecret: false`
 * → unencrypted like Node-RED's own credentials file). With Node-RED projects enabled the project's own secret is not
 * reachable from a node; the settings secret is used.
 * @param binding identity of the connection (URL, client, user) the token belongs to
 * @returns the file, or a reason why runtime secrets cannot be persisted here (no userDir, no secret)
 */
export function tokenFileFor(RED: RedAPI, node: RedNode, family: string, binding: string): TokenFile | { reason: string } {
  const settings = RED.settings as Record<string, unknown> & { get?: (k: string) => unknown };
  const userDir = typeof settings.userDir === "string" && settings.userDir ? settings.userDir : undefined;
  if (!userDir) return { reason: "Node-RED has no userDir setting" };
  const secret = credentialSecretOf(RED);
  if (secret === undefined) return { reason: "Node-RED has no credential secret to encrypt it with" };
  return new TokenFile({ dir: path.join(userDir, ".mlc-tokens"), name: `${family}-${node.id}`, secret, binding });
}

/** Node-RED's credential secret (settings `credentialSecret`, else the generated `_credentialSecret`); false = none. */
export function credentialSecretOf(RED: RedAPI): string | false | undefined {
  const settings = RED.settings as Record<string, unknown> & { get?: (k: string) => unknown };
  let secret: string | false | undefined;
  if (settings.credentialSecret === false) secret = false;
  else if (typeof settings.credentialSecret === "string" && settings.credentialSecret) secret = settings.credentialSecret;
  else {
    try {
      const generated = typeof settings.get === "function" ? settings.get("_credentialSecret") : undefined;
      if (typeof generated === "string" && generated) secret = generated;
    } catch {
      /* settings storage unavailable */
    }
  }
  return secret;
}
