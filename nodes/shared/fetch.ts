/**
 * The fetch skeleton the ERP families' fetch nodes configure (`mlc-acumatica-fetch`, `mlc-bc-fetch`,
 * `mlc-sapb1-fetch`): the input glue they all repeat, so an adapter gives only what its ERP does per operation.
 * - at deploy: the status shows the operation (a catalog-free word: "get", "list"…); the connection is looked up once
 *   so the node is shown its sign-in problems from the start (no connection selected: reported on the first message);
 * - per message: the entity (TypedInput `entity`/`entityType`, else `msg.entity`, trimmed) is checked by the adapter,
 *   the status shows `<type>.status.working`, the adapter's operation runs, its result is set on `msg[property]`
 *   (default `payload`), the status shows `<type>.status.done` with the node's count, and msg is sent. What the
 *   adapter throws reaches Catch through shared/node.ts onInput (red status, msg.errorDetails, done(err)).
 * The working/done templates are translated once at deploy (shared/node.ts statusTemplate).
 * Vendor: Node-RED "Creating nodes" (input with send/done), "Node status" guide.
 */
import { Status, evaluate, firstSet, num, onInput, registerNode, statusTemplate } from "./node";
import type { NodeMessage, RedAPI, RedNode } from "./types";

/** Editor properties every fetch node has. */
export interface FetchNodeProps extends Record<string, unknown> {
  name?: string;
  operation?: string;
  /** Entity (set) name, TypedInput; empty = msg.entity. */
  entity?: string;
  entityType?: string;
  /** Record key, TypedInput; empty = the adapter's fallback (msg.key, msg.erp.id). */
  key?: string;
  keyType?: string;
  /** list: most rows; empty = all. */
  top?: string | number;
  /** msg property that receives the result (default "payload"). */
  property?: string;
}

/** One message's operation, as the adapter gets it. */
export interface FetchCall {
  msg: NodeMessage;
  operation: string;
  entity: string;
  /** The record key: the node's Key TypedInput evaluated over msg, else `fallback`. */
  key(fallback: unknown): Promise<unknown>;
  /** `top` as a whole number in 1..`max`, undefined when not set. */
  top(max: number): number | undefined;
}

/** What a family's fetch node gives the skeleton. */
export interface FetchAdapter {
  /** Look the connection up for this node (registering it as a user). @throws ValidationError no_config */
  connect(): unknown;
  /** Refuse an entity name before anything is sent. @throws ValidationError */
  checkEntity?(entity: string): void;
  /** Run the operation; resolves the result set on msg. @throws the family's typed errors */
  run(call: FetchCall): Promise<unknown>;
}

/**
 * Register a fetch node `type` whose per-node adapter `adapterFor` builds.
 * @param defaultOperation the operation when the node has none (older flows)
 */
export function registerFetchNode<P extends FetchNodeProps>(RED: RedAPI, type: string, adapterFor: (node: RedNode, config: P) => FetchAdapter, defaultOperation = "get"): void {
  registerNode<P>(RED, type, (node, config) => {
    const adapter = adapterFor(node, config);
    const operation = config.operation ?? defaultOperation;
    const property = (config.property || "payload").trim();
    let calls = 0;
    node.status(Status.idle(operation));
    const workingText = statusTemplate(RED, `${type}.status.working`, "__operation__…")({ operation });
    const doneText = statusTemplate(RED, `${type}.status.done`, "__operation__ ✓ __n__");
    try {
      adapter.connect(); // shown the connection's sign-in problems from the start
    } catch {
      // no connection selected: reported on the first message
    }
    onInput(RED, node, async (msg, { send, status }) => {
      adapter.connect();
      const entity = String(firstSet(await evaluate(RED, node, config.entity, config.entityType, msg), msg.entity as string | undefined) ?? "").trim();
      adapter.checkEntity?.(entity);
      status(Status.busy(workingText));
      const result = await adapter.run({
        msg,
        operation,
        entity,
        key: async (fallback) => (config.key ? evaluate(RED, node, config.key, config.keyType, msg) : fallback),
        top: (max) => (config.top === undefined || config.top === "" ? undefined : num(config.top, 100, 1, max)),
      });
      calls++;
      RED.util.setMessageProperty(msg, property, result, true);
      status(Status.ok(doneText({ operation, n: calls })));
      send(msg);
    });
  });
}
