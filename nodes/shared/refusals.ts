/**
 * How an endpoint refuses what anyone on the internet can send, without letting them flood the log
 * (issue 14): refused requests are logged at most once a minute per node and kind, and an endpoint that
 * cannot work with its node's configuration answers 404 (as a path nothing serves) and reports why once.
 * For every family's webhook adapters (Twilio callbacks, ERP push endpoints).
 */
import { rateLimitedLog, InboundResponse } from "./dispatcher";
import { Status, reportError, t } from "./node";
import type { RedAPI, RedNode } from "./types";

interface NodeRefusals {
  log: (key: string, text: string) => void;
  reported: Set<string>;
}
const perNode = new WeakMap<RedNode, NodeRefusals>();

function refusalsOf(node: RedNode): NodeRefusals {
  let s = perNode.get(node);
  if (!s) {
    s = { log: rateLimitedLog((text) => node.warn(text)), reported: new Set() };
    perNode.set(node, s);
  }
  return s;
}

/**
 * Log a refused request for `node` with node.warn: at most one line a minute per `key` (e.g. "forged"), with
 * the count suppressed since the last line.
 */
export function logRefusal(node: RedNode, key: string, text: string): void {
  refusalsOf(node).log(key, text);
}

/**
 * An endpoint of `node` cannot work with its configuration (no secret, token, key or public URL): the first
 * time per node and `key`, report `err` (Catch, or the log) and show it in the node's status; every time,
 * answer 404 "Not found", as for a path nothing serves (never 500: anyone can call the endpoint).
 * @param about properties of the report's msg.payload (topic, path…)
 */
export function notServed(RED: RedAPI, node: RedNode, key: string, err: unknown, about: Record<string, unknown>): InboundResponse {
  const s = refusalsOf(node);
  if (!s.reported.has(key)) {
    s.reported.add(key);
    reportError(RED, node, err, about);
    node.status(Status.warn(t(RED, "mlc.status.notServed", undefined, "endpoint not configured")));
  }
  return { status: 404, body: "Not found" };
}
