/**
 * Redeploy hand-off of Twilio send nodes. When a deploy restarts the account's config node, its client closes and the
 * creates still waiting in the pacing queue are refused with MlcError "closed" (nothing left for Twilio, the ledger
 * claim is released). Instead of failing those inputs, the closing node parks them here, in memory, under its node
 * id, with the outputs of creates that were in flight at the close (sent, but emitted by a node whose wires are
 * gone); the node's next instance (a redeploy keeps the id) takes them at its start and processes them again, through
 * its own ledger, so a recipient already sent is a duplicate and nothing is sent twice. Parked inputs that no
 * instance takes (Node-RED stopping, the node deleted) are dropped after {@link HANDOFF_TTL_MS}; an input that came
 * from an ERP trigger is still in that trigger's push journal (a "closed" refusal never settles it) and is replayed
 * at its next start.
 * Node-RED: "Node context"/close handler semantics, https://nodered.org/docs/creating-nodes/node-js#closing-the-node
 */
import { ErpError, MlcError } from "../lib/errors";
import type { NodeMessage } from "../shared/types";

/** How long a parked input waits for the node's next instance, ms. */
export const HANDOFF_TTL_MS = 60000;
/** Inputs parked per node at most (beyond that the input fails as before: Catch, journal replay). */
export const HANDOFF_MAX = 10000;

/** A parked input (`msg`), or the output of a create that was in flight at the close (`output`, sent as it is). */
interface Parked {
  msg?: NodeMessage;
  output?: (NodeMessage | null)[];
  at: number;
}

const parked = new Map<string, Parked[]>();

/** Whether `err` says the create never left because the account's client closed (redeploy or stop). */
export function closedBeforeSend(err: unknown): boolean {
  return (err instanceof MlcError && err.code === "closed") || (err instanceof ErpError && err.code === "client_closed");
}

/**
 * Park `msg` (as the input arrived, minus what the failed attempt added) for the next instance of node `id`.
 * @returns false when the node already has {@link HANDOFF_MAX} parked inputs (the caller fails the input as before)
 */
export function park(id: string, msg: NodeMessage): boolean {
  const list = parked.get(id) ?? [];
  if (list.length >= HANDOFF_MAX) return false;
  const copy: NodeMessage = Object.fromEntries(Object.entries(msg).filter(([k]) => k !== "twilio" && k !== "error" && k !== "errorDetails"));
  list.push({ msg: copy, at: Date.now() });
  parked.set(id, list);
  return true;
}

/**
 * Park the output of a create that was in flight when node `id` closed (sent, but its old outputs lead nowhere):
 * the next instance emits it as it is. @returns false when full (the caller emits it on the closed node as before)
 */
export function parkOutput(id: string, output: (NodeMessage | null)[]): boolean {
  const list = parked.get(id) ?? [];
  if (list.length >= HANDOFF_MAX) return false;
  list.push({ output, at: Date.now() });
  parked.set(id, list);
  return true;
}

/** What was parked for node `id` within the last {@link HANDOFF_TTL_MS}, removed from the store, oldest first. */
export function takeParked(id: string): Parked[] {
  const list = parked.get(id);
  parked.delete(id);
  const since = Date.now() - HANDOFF_TTL_MS;
  // drop what nobody took (the nodes of a stopped or deleted flow): the map holds only recent redeploys
  for (const [k, v] of parked) if (v.every((e) => e.at < since)) parked.delete(k);
  return (list ?? []).filter((e) => e.at >= since);
}

/**
 * Wrap a send node's input handler: an input refused because the client closed while the node itself is closing
 * (see the module comment) is parked for the next instance and ends without error; anything else is rethrown.
 */
export function withHandoff<C>(node: { id: string }, closing: () => boolean, input: (msg: NodeMessage, ctx: C) => Promise<void>): (msg: NodeMessage, ctx: C) => Promise<void> {
  return async (msg, ctx) => {
    try {
      await input(msg, ctx);
    } catch (err) {
      if (closing() && closedBeforeSend(err) && park(node.id, msg)) return;
      throw err;
    }
  };
}

/**
 * Take over what this node's previous instance parked, after the start: outputs are emitted as they are, inputs go
 * through `node.receive` (the whole input handler again).
 */
export function adoptParked(node: { id: string; receive(msg?: NodeMessage): void; send(msg: (NodeMessage | null)[]): void }): void {
  const items = takeParked(node.id);
  if (items.length) setImmediate(() => items.forEach((p) => (p.output ? node.send(p.output) : p.msg && node.receive(p.msg))));
}
