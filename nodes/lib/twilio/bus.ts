/**
 * In-process bus for accepted Twilio statuses. `mlc-twilio-status` publishes every status it accepts
 * (signature checked, deduplicated, ordered); nodes that wait for an outcome (a call waiting for its
 * final status to decide "not answered") subscribe instead of serving a second callback endpoint.
 * Nothing is persisted: after a restart, pending waits are gone (documented in the nodes' help).
 */
import { EventEmitter } from "node:events";

/** One accepted status. */
export interface AcceptedStatus {
  kind: "message" | "call";
  sid: string;
  status: string;
  jobId: string;
  errorCode?: number;
  /** All callback parameters as received (AnsweredBy, CallDuration, Digits…). */
  fields: Record<string, string | string[]>;
}

const bus = new EventEmitter();
bus.setMaxListeners(0);

export function publishStatus(s: AcceptedStatus): void {
  bus.emit("status", s);
}

/** Subscribe; returns the unsubscribe function. */
export function onStatus(fn: (s: AcceptedStatus) => void): () => void {
  bus.on("status", fn);
  return () => bus.off("status", fn);
}
