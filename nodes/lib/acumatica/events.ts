/**
 * Pure functions the Acumatica trigger node calls to turn what Acumatica delivers into envelope events
 * (`msg.topic`, `msg.payload`, `msg.erp`; see envelope.ts):
 * - {@link pushToEvents}: a push notification body (MYOB-IDG `IS__con_Push_Notification_Format.html`, reference §7);
 * - {@link recordToEvent}: one record read by polling (reference §4 "Incremental poll recipe");
 * - {@link PollWindow}: the watermark + overlap + dedupe bookkeeping of polling
 *   (MYOB-IDG `IntegrationDev_RESTExample_Parameter_filter.html` for the `datetimeoffset` filter).
 * No I/O, no clock, no Node-RED.
 */
import { ErpAction, ErpEventMsg, ErpMeta, eventTopic } from "../envelope";
import { ValidationError } from "../errors";
import { deriveJobId, hashedKey } from "../ids";
import { shallowCopy } from "../json-copy";
import { ENTITY_KEY_FIELDS, datetimeOffsetLiteral } from "./client";
import { PlainRecord } from "./values";
import { TimeCondition, WatermarkWindow } from "../poll/window";

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A key value as text: non-empty strings and finite numbers only. */
function keyText(v: unknown): string | undefined {
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** JSON with sorted keys, so the same row always hashes the same. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

function instant(iso: string): number {
  return Date.parse(iso);
}

// ---------------------------------------------------------------------------------------------------------------------
// push notifications
// ---------------------------------------------------------------------------------------------------------------------

/** Options of {@link pushToEvents}. */
export interface PushToEventsOptions {
  /** Tenant used when the body has no `CompanyId`. */
  tenant: string;
  /**
   * Generic Inquiry columns that form the record key, in order, e.g. `["DocType", "RefNbr"]`. Default: `Type` +
   * `ReferenceNbr`, or `DocType` + `RefNbr` (the type column only when present), else a hash of the whole row
   * (then an update cannot be paired and arrives as `deleted` + `created`: configure keyFields).
   */
  keyFields?: string[];
  /**
   * Column holding the last-modification time. When absent from a row (or not given): the first column whose name
   * contains "lastModified" (any case), e.g. `APInvoice_lastModifiedDateTime`.
   */
  modifiedField?: string;
  /** Entity reported in `msg.erp.entity` and the topic. Default: the notification's `Query` (GI name). */
  entity?: string;
}

/** A row that could not become an event (the other rows are still returned). */
export interface PushProblem {
  /** Index of the row in its list. */
  index: number;
  /** Which list the row came from. */
  list: "Inserted" | "Deleted";
  message: string;
}

/** Result of {@link pushToEvents}. */
export interface PushEvents {
  /** Events in order: Inserted rows (created/updated) in their order, then rows only in Deleted. */
  events: ErpEventMsg[];
  problems: PushProblem[];
  /** `${Query}|${Id}`: the notification's dedupe key (Acumatica delivers at least once, up to five attempts). */
  notificationKey: string;
}

interface KeyedRow {
  index: number;
  row: Record<string, unknown>;
  id: string;
}

function rowKey(row: Record<string, unknown>, keyFields: string[] | undefined): { id: string } | { error: string } {
  if (keyFields && keyFields.length) {
    const vals = keyFields.map((k) => keyText(row[k]));
    const missing = keyFields.filter((_, i) => vals[i] === undefined);
    if (missing.length) return { error: `row has no value for key column(s) ${missing.join(", ")}` };
    return { id: vals.join("/") };
  }
  for (const [typeCol, nbrCol] of [
    ["Type", "ReferenceNbr"],
    ["DocType", "RefNbr"],
    ["DocType", "ReferenceNbr"],
    ["Type", "RefNbr"],
  ]) {
    const nbr = keyText(row[nbrCol]);
    if (nbr === undefined) continue;
    const type = keyText(row[typeCol]);
    return { id: type !== undefined ? `${type}/${nbr}` : nbr };
  }
  return { id: hashedKey("row", canonicalJson(row)) };
}

function rowNumber(row: Record<string, unknown>): string | undefined {
  return keyText(row.ReferenceNbr) ?? keyText(row.RefNbr);
}

function rowModifiedAt(row: Record<string, unknown>, modifiedField: string | undefined): string | undefined {
  if (modifiedField && keyText(row[modifiedField]) !== undefined) return keyText(row[modifiedField]);
  const col = Object.keys(row).find((k) => /lastmodified/i.test(k));
  return col ? keyText(row[col]) : undefined;
}

/**
 * Turn one push notification body into envelope events (MYOB-IDG `IS__con_Push_Notification_Format.html`):
 * a row in `Inserted` whose key also appears in `Deleted` → "updated" (payload = the Inserted row,
 * `msg.previous` = the Deleted row); only in `Inserted` → "created"; only in `Deleted` → "deleted".
 *
 * `msg.erp`: system "acumatica", tenant = `CompanyId` (else `opts.tenant`), entity (`opts.entity` or `Query`),
 * id = key values joined by "/", number = `RefNbr`/`ReferenceNbr`, action, modifiedAt (the row's modified column
 * as sent; GI values usually carry no offset), deliveryId = `Id`,
 * jobId = deriveJobId({system, tenant, entity, id, version: `${Query}:${Id}`, action}) — the same delivery repeated
 * gives the same jobIds.
 *
 * @param body the parsed JSON body `{Inserted, Deleted, Query, CompanyId, Id, TimeStamp, AdditionalInfo}`
 * @returns events, per-row problems (a row that is not an object, lacks a key column, or repeats a key in its list
 *   is skipped and reported), and the notification dedupe key
 * @throws ValidationError when the body is not an object, `Query` or `Id` is missing, or `Inserted`/`Deleted` is
 *   present but not an array (or both are missing)
 */
export function pushToEvents(body: unknown, opts: PushToEventsOptions): PushEvents {
  if (!isObj(body)) throw new ValidationError("Acumatica push notification body must be a JSON object with Inserted, Deleted, Query and Id");
  const query = keyText(body.Query);
  if (query === undefined) throw new ValidationError("Acumatica push notification has no Query (the Generic Inquiry or query class name)");
  const notificationId = keyText(body.Id);
  if (notificationId === undefined) throw new ValidationError(`Acumatica push notification for ${query} has no Id (data-transaction id)`);
  const inserted = body.Inserted;
  const deleted = body.Deleted;
  if (inserted !== undefined && inserted !== null && !Array.isArray(inserted)) throw new ValidationError(`Acumatica push notification ${query}|${notificationId}: Inserted must be an array`);
  if (deleted !== undefined && deleted !== null && !Array.isArray(deleted)) throw new ValidationError(`Acumatica push notification ${query}|${notificationId}: Deleted must be an array`);
  if (!Array.isArray(inserted) && !Array.isArray(deleted)) throw new ValidationError(`Acumatica push notification ${query}|${notificationId} has neither Inserted nor Deleted rows`);

  const tenant = keyText(body.CompanyId) ?? opts.tenant;
  const entity = opts.entity?.trim() || query;
  const version = `${query}:${notificationId}`;
  const problems: PushProblem[] = [];

  const keyRows = (rows: unknown[] | undefined, list: PushProblem["list"]): KeyedRow[] => {
    const out: KeyedRow[] = [];
    const seen = new Set<string>();
    (rows ?? []).forEach((row, index) => {
      if (!isObj(row)) {
        problems.push({ index, list, message: `${list}[${index}] is not an object (${row === null ? "null" : Array.isArray(row) ? "array" : typeof row})` });
        return;
      }
      const k = rowKey(row, opts.keyFields);
      if ("error" in k) {
        problems.push({ index, list, message: `${list}[${index}]: ${k.error}` });
        return;
      }
      if (seen.has(k.id)) {
        problems.push({ index, list, message: `${list}[${index}]: key ${k.id} repeats an earlier row; the key columns do not identify one record (check keyFields)` });
        return;
      }
      seen.add(k.id);
      out.push({ index, row, id: k.id });
    });
    return out;
  };
  const ins = keyRows(Array.isArray(inserted) ? inserted : undefined, "Inserted");
  const del = keyRows(Array.isArray(deleted) ? deleted : undefined, "Deleted");
  const delById = new Map(del.map((d) => [d.id, d]));

  const make = (row: Record<string, unknown>, id: string, action: ErpAction, previous?: Record<string, unknown>): ErpEventMsg => {
    const modifiedAt = rowModifiedAt(row, opts.modifiedField);
    // The record's own modification instant identifies the change, so a catch-up poll of the same change yields the
    // same jobId. Only a time with a zone designator is unambiguous; otherwise (and for deletes, whose row carries the
    // old time) the notification's transaction id is the version.
    const zoned = modifiedAt !== undefined && /(Z|[+-]\d{2}:?\d{2})$/i.test(modifiedAt) && !Number.isNaN(Date.parse(modifiedAt));
    const v = action !== "deleted" && zoned ? (modifiedAt as string) : version;
    const erp: ErpMeta = { system: "acumatica", tenant, entity, id, action, deliveryId: notificationId, jobId: deriveJobId({ system: "acumatica", tenant, entity, id, version: v, action }) };
    const number = rowNumber(row);
    if (number !== undefined) erp.number = number;
    if (modifiedAt !== undefined) erp.modifiedAt = modifiedAt;
    const msg: ErpEventMsg = { topic: eventTopic(erp), payload: shallowCopy(row), erp };
    if (previous) msg.previous = shallowCopy(previous);
    return msg;
  };

  const events: ErpEventMsg[] = [];
  for (const r of ins) {
    const before = delById.get(r.id);
    if (before) {
      delById.delete(r.id);
      events.push(make(r.row, r.id, "updated", before.row));
    } else {
      events.push(make(r.row, r.id, "created"));
    }
  }
  for (const d of del) if (delById.has(d.id)) events.push(make(d.row, d.id, "deleted"));
  return { events, problems, notificationKey: `${query}|${notificationId}` };
}

// ---------------------------------------------------------------------------------------------------------------------
// polling
// ---------------------------------------------------------------------------------------------------------------------

/** Options of {@link recordToEvent}. */
export interface RecordToEventOptions {
  tenant: string;
  /** Key fields in key order. Default per entity ({@link ENTITY_KEY_FIELDS}: Bill → Type, ReferenceNbr …), else `id`. */
  keyFields?: string[];
  /** Field holding the last-modification time; default "LastModifiedDateTime". */
  modifiedField?: string;
  /** Force the action; default: "created" when `CreatedDateTime` equals the modified time to the second, else "updated". */
  action?: ErpAction;
}

/**
 * Turn one record read by polling (already unwrapped) into an envelope event.
 * `msg.erp.id` = key values joined by "/" (e.g. "Bill/000123"), number = `ReferenceNbr` when present,
 * modifiedAt = the record's modified field as the server sent it, jobId = deriveJobId with version = modifiedAt
 * (instants compare equal across offsets, so the same change read twice gives the same jobId).
 * @throws ValidationError (with `recordId` set when any key is known) when a key field or the modified field is
 *   missing or the modified value is not a date-time
 */
export function recordToEvent(entity: string, record: PlainRecord, opts: RecordToEventOptions): ErpEventMsg {
  if (!isObj(record)) throw new ValidationError(`Acumatica ${entity} record is not an object`);
  const keyFields = opts.keyFields && opts.keyFields.length ? opts.keyFields : [...(ENTITY_KEY_FIELDS[entity] ?? ["id"])];
  const vals = keyFields.map((k) => keyText(record[k]));
  const fallbackId = keyText(record.id);
  const missingKeys = keyFields.filter((_, i) => vals[i] === undefined);
  if (missingKeys.length) {
    const partial = vals.filter((v) => v !== undefined).join("/") || fallbackId || "(unknown)";
    throw new ValidationError(`Acumatica ${entity} record ${partial} has no value for key field(s) ${missingKeys.join(", ")} (add them to $select)`, { recordId: partial });
  }
  const id = vals.join("/");
  const modifiedField = opts.modifiedField || "LastModifiedDateTime";
  const modifiedAt = keyText(record[modifiedField]);
  if (modifiedAt === undefined || Number.isNaN(instant(modifiedAt))) {
    throw new ValidationError(`Acumatica ${entity} record ${id} has no valid ${modifiedField} (add it to $select; polling needs it)`, { recordId: id });
  }
  let action: ErpAction = opts.action ?? "updated";
  if (!opts.action) {
    const created = keyText(record.CreatedDateTime);
    if (created !== undefined && !Number.isNaN(instant(created)) && Math.floor(instant(created) / 1000) === Math.floor(instant(modifiedAt) / 1000)) action = "created";
  }
  const tenant = opts.tenant;
  const erp: ErpMeta = { system: "acumatica", tenant, entity, id, action, modifiedAt, jobId: deriveJobId({ system: "acumatica", tenant, entity, id, version: modifiedAt, action }) };
  const number = keyText(record.ReferenceNbr);
  if (number !== undefined) erp.number = number;
  return { topic: eventTopic(erp), payload: record, erp };
}

// ---------------------------------------------------------------------------------------------------------------------
// polling (the generic watermark window lives in nodes/lib/poll/window.ts)
// ---------------------------------------------------------------------------------------------------------------------

export type { PollAcceptResult, PollSeen, PollState } from "../poll/window";

/** Acumatica's time condition: `<field> gt datetimeoffset'yyyy-MM-ddTHH:mm:ss.fff+00:00'` ({@link datetimeOffsetLiteral}). */
export const acumaticaTime: TimeCondition = (field, op, atMs) => `${field} ${op} ${datetimeOffsetLiteral(new Date(atMs).toISOString())}`;

/** Options of {@link PollWindow}. */
export interface PollWindowOptions {
  /** How far below the watermark each poll re-reads, ms (covers late commits and clock skew). Default 60000. */
  overlapMs?: number;
  /** Modified-time field name used in the filter; default "LastModifiedDateTime". */
  modifiedField?: string;
  /** User `$filter`, ANDed with the time condition. */
  userFilter?: string;
  /** Cap of `recent` entries (oldest dropped first). Default 10000. */
  maxRecent?: number;
}

/**
 * The generic {@link WatermarkWindow} with Acumatica's pieces: `LastModifiedDateTime` and `datetimeoffset'…'`
 * literals (reference §4 and §8.5; MYOB-IDG `IntegrationDev_RESTExample_Parameter_filter.html`), e.g.
 * `LastModifiedDateTime gt datetimeoffset'<watermark − overlap>'`. See the base class for the guarantee.
 */
export class PollWindow extends WatermarkWindow {
  /** @throws ValidationError for a negative overlap or a non-positive maxRecent */
  constructor(opts: PollWindowOptions = {}) {
    super({ ...opts, modifiedField: opts.modifiedField?.trim() || "LastModifiedDateTime", timeCondition: acumaticaTime });
  }
}
