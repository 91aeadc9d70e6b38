/**
 * Intacct records as envelope events, and the poll pieces the kit's {@link Poller} takes for Intacct
 * (reference sage-intacct.md §5, §6): `readByQuery` on `WHENMODIFIED` in the company's time zone (`MM/DD/YYYY
 * HH:MM:SS`, conditions joined with `AND`), all pages through `readMore`, each row turned into the envelope.
 *
 * Stable keys: bills created from Purchasing are deleted and recreated with a new `RECORDNO` whenever their source
 * changes, so an APBILL is identified by `VENDORID` + `RECORDID` (the vendor's invoice number), not `RECORDNO`.
 * The jobId's version is the record's state for APBILL (`STATE`) and APPYMT (`STATE`, `CLEARED`): "bill INV-88231
 * became Submitted" is one event however often the bill is re-saved or recreated in that state; other objects use
 * `WHENMODIFIED`.
 */
import { ErpEventMsg, eventTopic } from "../envelope";
import { ValidationError } from "../errors";
import { deriveJobId } from "../ids";
import { intacctTime } from "../poll/conditions";
import { PollRead } from "../poll/poller";
import { WatermarkWindow } from "../poll/window";
import type { IntacctClient } from "./client";
import { intacctName, readByQueryString } from "./query";

/** Key fields per object (first non-empty set wins; RECORDNO last). */
export const INTACCT_KEY_FIELDS: Record<string, string[]> = {
  APBILL: ["VENDORID", "RECORDID"],
  APPYMT: ["RECORDNO"],
  VENDOR: ["VENDORID"],
};

/** jobId version fields per object; others: the modification time. */
export const INTACCT_VERSION_FIELDS: Record<string, string[]> = {
  APBILL: ["STATE"],
  APPYMT: ["STATE", "CLEARED"],
};

/** Options of {@link intacctRecordToEvent}. */
export interface IntacctEventOptions {
  /** Company id (the envelope's tenant). */
  tenant: string;
  /** Object name, e.g. "APBILL" (the envelope's entity). */
  object: string;
  /** Key fields; default {@link INTACCT_KEY_FIELDS} for the object, else RECORDNO. */
  keyFields?: string[];
  /** jobId version fields; default {@link INTACCT_VERSION_FIELDS}, else the modification time. */
  versionFields?: string[];
}

const text = (v: unknown): string => (typeof v === "string" ? v.trim() : typeof v === "number" ? String(v) : "");

/**
 * One row (already plain JSON, dates in ISO: client.ts) → envelope: topic `intacct/<OBJECT>/updated`,
 * `erp.id` = `<OBJECT>/<key values>`, `number` = RECORDID (else DOCNUMBER, RECORDNO), `modifiedAt` = WHENMODIFIED.
 * @throws ValidationError (recordId set when known) without a key or a valid WHENMODIFIED
 */
export function intacctRecordToEvent(row: Record<string, unknown>, opts: IntacctEventOptions): ErpEventMsg {
  const object = intacctName(opts.object, "object");
  const keyFields = opts.keyFields ?? INTACCT_KEY_FIELDS[object] ?? ["RECORDNO"];
  let keys = keyFields.map((f) => text(row[f]));
  if (keys.some((k) => !k)) keys = text(row.RECORDNO) ? [text(row.RECORDNO)] : [];
  if (!keys.length) throw new ValidationError(`${object} row without ${keyFields.join(", ")} or RECORDNO`);
  const id = `${object}/${keys.join("/")}`;
  const modifiedAt = text(row.WHENMODIFIED);
  if (!modifiedAt || Number.isNaN(Date.parse(modifiedAt))) throw new ValidationError(`${id} has no valid WHENMODIFIED`, { recordId: id });
  const versionFields = opts.versionFields ?? INTACCT_VERSION_FIELDS[object];
  const version = versionFields ? versionFields.map((f) => text(row[f])).join("|") : new Date(modifiedAt).toISOString();
  const meta = {
    system: "intacct" as const,
    tenant: opts.tenant,
    entity: object,
    id,
    number: text(row.RECORDID) || text(row.DOCNUMBER) || text(row.RECORDNO) || undefined,
    action: "updated" as const,
    modifiedAt,
    jobId: deriveJobId({ system: "intacct", tenant: opts.tenant, entity: object, id, version }),
  };
  return { topic: eventTopic(meta), payload: row, erp: meta };
}

/** `STATE IN ('Submitted','Partially Approved')`: the readByQuery condition "state is one of". */
export function stateFilter(states: string[], field = "STATE"): string {
  if (!states.length) throw new ValidationError("at least one state is needed");
  return `${intacctName(field)} IN (${states.map(readByQueryString).join(",")})`;
}

/** The watermark window for Intacct: WHENMODIFIED, company-time literals, AND. @throws ValidationError (overlap, zone) */
export function intacctWindow(opts: { timeZone: string; overlapMs?: number; userFilter?: string }): WatermarkWindow {
  intacctTime(opts.timeZone)("WHENMODIFIED", "ge", 0); // an unknown zone fails here, not at the first poll
  return new WatermarkWindow({ modifiedField: "WHENMODIFIED", timeCondition: intacctTime(opts.timeZone), and: "AND", overlapMs: opts.overlapMs, userFilter: opts.userFilter });
}

/** Options of {@link intacctPollRead}. */
export interface IntacctPollReadOptions extends Omit<IntacctEventOptions, "tenant"> {
  /** Fields to read; default "*" (WHENMODIFIED, STATE and key fields are added to a list). */
  fields?: string[] | "*";
  /** readByQuery page size, 1–1000; default 1000. */
  pageSize?: number;
}

/**
 * The Poller's `read` for one Intacct object: every row of `readByQuery` with the window's filter, all pages,
 * as envelope events. @throws what the client throws (the tick fails; the watermark stays, the next poll re-reads)
 */
export function intacctPollRead(client: IntacctClient, tenant: string, opts: IntacctPollReadOptions): (r: PollRead) => AsyncIterable<ErpEventMsg> {
  const object = intacctName(opts.object, "object");
  const extra = ["WHENMODIFIED", "RECORDNO", ...(opts.keyFields ?? INTACCT_KEY_FIELDS[object] ?? []), ...(opts.versionFields ?? INTACCT_VERSION_FIELDS[object] ?? [])];
  const fields = opts.fields === undefined || opts.fields === "*" ? "*" : [...new Set([...opts.fields.map((f) => intacctName(f)), ...extra])];
  return async function* read(r: PollRead) {
    for await (const row of client.readByQueryAll({ object, query: r.filter, fields, pageSize: opts.pageSize })) {
      yield intacctRecordToEvent(row, { ...opts, object, tenant });
    }
  };
}
