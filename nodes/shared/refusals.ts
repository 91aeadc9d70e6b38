/**
 * How an endpoint refuses what anyone on the internet can send, without letting them flood the log
 * (issue 14): refused requests are logged at most once a minute per node and kind, and an endpoint that
 * cannot work with its node's configuration answers 404 (as a path nothing serves) and reports why once.
 * Work refused because something the node needs is unavailable (its store unreachable: a push answered 503) is
 * reported at most once a minute per node and error code too, with the count refused since the last report.
 * For every family's webhook adapters (Twilio callbacks, ERP push endpoints).
 */
import { errorDetails } from "../lib/errors";
import { rateLimitedLog, InboundResponse } from "./dispatcher";
import { Status, errorStatusKey, reportError, t } from "./node";
import type { RedAPI, RedNode } from "./types";

/** Between two reports of refused work of one node and error code, ms. */
const UNAVAILABLE_REPORT_MS = 60_000;

interface NodeRefusals {
  log: (key: string, text: string) => void;
  reported: Set<string>;
  unavailable: Map<string, { at: number; suppressed: number }>;
}
const perNode = new WeakMap<RedNode, NodeRefusals>();

function refusalsOf(node: RedNode): NodeRefusals {
  let s = perNode.get(node);
  if (!s) {
    s = { log: rateLimitedLog((text) => node.warn(text)), reported: new Set(), unavailable: new Map() };
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

/**
 * `node` refused work (answered 503) because `err` says something it needs is unavailable (code `store_unavailable`:
 * its Redis store unreachable). The status shows {@link errorStatusKey} of `err` ("store unreachable") every time;
 * the error is reported (node.error: the log and Catch nodes, via reportError) the first time and then at most once
 * a minute per node and error code, its message ending "(N more refused since the last report)" when N > 0, so an
 * outage that refuses a push every few ms still writes about one line a minute (112 lines in 14 s before).
 * @param about properties of the report's msg.payload (topic, endpoint…)
 */
export function reportUnavailable(RED: RedAPI, node: RedNode, err: unknown, about: Record<string, unknown>): void {
  const s = refusalsOf(node);
  const code = errorDetails(err).code;
  const now = Date.now();
  const seen = s.unavailable.get(code);
  if (seen && now - seen.at < UNAVAILABLE_REPORT_MS) {
    seen.suppressed++;
    node.status(Status.error(errorStatusKey(err)));
    return;
  }
  s.unavailable.set(code, { at: now, suppressed: 0 });
  reportError(RED, node, withCount(err, seen?.suppressed ?? 0), seen?.suppressed ? { ...about, refusedSinceLastReport: seen.suppressed } : about);
}

/** A copy of `err` (same class, code and fields) whose message ends with the count of refusals not reported. */
function withCount(err: unknown, n: number): unknown {
  if (!n || !(err instanceof Error)) return err;
  const copy = Object.assign(Object.create(Object.getPrototypeOf(err) as object) as Error, err);
  Object.defineProperty(copy, "message", { value: `${err.message} (${n} more refused since the last report)`, writable: true, configurable: true });
  return copy;
}
