/**
 * `mlc-intacct-trigger`: turns Sage Intacct changes into envelope events. Poll only: the XML gateway has no push
 * (reference sage-intacct.md §10; Intacct's outbound Platform Trigger webhooks do not retry a 404, so polling is the
 * baseline). A thin adapter on the trigger skeleton (nodes/shared/trigger.ts), which runs the poll loop, the journal,
 * the replay, the status and the close; this file gives it Intacct's pieces (nodes/lib/intacct/events.ts):
 * - `readByQuery` of one object (APBILL, APPYMT, VENDOR, …) with `WHENMODIFIED > <watermark − overlap>` and
 *   `<= <poll start>`, written in the company's time zone (`MM/DD/YYYY HH:MM:SS`, the config node's *Time zone*),
 *   all pages through `readMore`, plus the event condition: `STATE IN ('Submitted','Partially Approved')` from
 *   *States*, and/or the user's own readByQuery condition (e.g. `CLEARED = 'T'` for cleared payments);
 * - each row becomes the envelope (topic `intacct/<OBJECT>/updated`); APBILL is keyed on VENDORID + RECORDID, which
 *   survive Purchasing's delete-and-recreate (a new RECORDNO), and versioned by STATE, so "bill INV-88231 became
 *   Submitted" is one jobId however often it is re-saved or recreated in that state;
 * - each fresh event is committed to the journal before it is emitted and the watermark saved after, so a restart or
 *   `kill -9` neither loses nor repeats one; events not settled by a send are replayed (msg.erp.replay).
 * A poll that fails (Intacct error inside an HTTP 200, network) goes to Catch with the error number; the watermark
 * stays, so the next poll re-reads the window.
 * Vendor: developer.intacct.com web-services/queries (readByQuery, readMore); api/accounts-payable/bills, payments.
 */
import { ValidationError } from "../lib/errors";
import { intacctRecordToEvent, intacctWindow, stateFilter } from "../lib/intacct/events";
import { num, registerNode, reportError } from "../shared/node";
import { PollSpec, startTrigger } from "../shared/trigger";
import type { RedAPI, RedNode } from "../shared/types";
import { intacctConfig } from "./config";

export interface IntacctTriggerProps extends Record<string, unknown> {
  name?: string;
  intacct?: string;
  /** Object to poll, e.g. "APBILL" (default), "APPYMT", "VENDOR". */
  object?: string;
  /** Event condition: the states to report, comma-separated ("Submitted,Partially Approved"); empty = any. */
  states?: string;
  /** Field holding the state; default STATE. */
  stateField?: string;
  /** An extra readByQuery condition, e.g. `CLEARED = 'T'`. */
  filter?: string;
  /** Poll interval, s (each poll is a billed Intacct transaction). */
  interval?: string | number;
  /** Overlap re-read on every poll, s. */
  overlap?: string | number;
  /** "now" (default) or an ISO 8601 time to start from when no watermark is stored yet. */
  startFrom?: string;
  store?: string;
  /** readByQuery page size, 1–1000. */
  pageSize?: string | number;
}

export function splitList(s: string | undefined): string[] {
  return (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

/** The readByQuery condition of the node's event condition and filter ("" = none). @throws ValidationError (a bad field name) */
function condition(config: IntacctTriggerProps): string | undefined {
  const parts: string[] = [];
  const states = splitList(config.states);
  if (states.length) parts.push(stateFilter(states, (config.stateField || "STATE").trim()));
  const own = (config.filter ?? "").trim();
  if (own) parts.push(parts.length ? `(${own})` : own);
  return parts.length ? parts.join(" AND ") : undefined;
}

/** Intacct's poll side: WHENMODIFIED in company time, readByQuery + readMore pages. @throws config errors */
function pollSpec(RED: RedAPI, node: RedNode, config: IntacctTriggerProps): PollSpec {
  const ia = intacctConfig(RED, config.intacct, node);
  const object = (config.object || "APBILL").trim().toUpperCase();
  const pageSize = num(config.pageSize, 1000, 1, 1000);
  return {
    window: intacctWindow({ timeZone: ia.client().timeZone, overlapMs: num(config.overlap, 60, 0, 86400) * 1000, userFilter: condition(config) }),
    intervalMs: num(config.interval, 60, 1, 86400) * 1000,
    firstDelayMs: 250,
    startFrom: (config.startFrom ?? "").trim() || "now",
    // every field ("*"): the flow gets the whole row. A client error fails the poll (the watermark stays); a row
    // that cannot become an event (no key, no WHENMODIFIED) goes to Catch and the others are still emitted.
    read: async function* ({ filter }) {
      for await (const row of ia.client().readByQueryAll({ object, query: filter, fields: "*", pageSize })) {
        let event;
        try {
          event = intacctRecordToEvent(row, { object, tenant: ia.tenant });
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          reportError(RED, node, err, { topic: "intacct/poll", object, recordId: err.recordId });
          continue;
        }
        yield event;
      }
    },
  };
}

export function registerIntacctTrigger(RED: RedAPI): void {
  registerNode<IntacctTriggerProps>(RED, "mlc-intacct-trigger", (node: RedNode, config) => {
    let poll: PollSpec;
    try {
      poll = pollSpec(RED, node, config);
    } catch (err) {
      // no connection, an unknown time zone or a bad condition: said at Catch and in the status, nothing polled
      reportError(RED, node, err, { topic: "intacct/trigger/start" });
      return;
    }
    startTrigger(RED, node, {
      i18n: "mlc-intacct-trigger",
      family: "intacct",
      store: config.store,
      stateKey: "mlc_intacct_poll",
      poll,
      about: { object: (config.object || "APBILL").trim().toUpperCase() },
    });
  });
}
