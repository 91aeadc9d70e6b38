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
import { ENTITY_KEY_FIELDS, datetimeOffsetLiteral } from "./client";
import { PlainRecord } from "./values";

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
    const msg: ErpEventMsg = { topic: eventTopic(erp), payload: { ...row }, erp };
    if (previous) msg.previous = { ...previous };
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

/** One event already delivered by polling: record id and its modification time (ISO). */
export interface PollSeen {
  id: string;
  modifiedAt: string;
}

/**
 * Persisted polling state (store it as JSON after each accepted poll).
 * - `watermark`: the latest modification time seen, ISO 8601 UTC ("" = read from the beginning);
 * - `seenAtWatermark`: ids of the records delivered whose modification time equals the watermark;
 * - `recent`: records delivered within the overlap window below the watermark (bounded).
 */
export interface PollState {
  watermark: string;
  seenAtWatermark: string[];
  recent: PollSeen[];
}

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

/** Result of {@link PollWindow.accept}. */
export interface PollAcceptResult {
  /** Events not delivered before, oldest first (by modification time, then id). */
  fresh: ErpEventMsg[];
  /** State to persist once `fresh` has been handed on. */
  next: PollState;
  /** How many events were recognised as already delivered. */
  duplicates: number;
  /**
   * Fresh events older than the overlap window (not expected when the filter came from the same state; they are
   * delivered rather than dropped, so a mismatched filter repeats instead of missing).
   */
  outsideWindow: number;
}

/**
 * Watermark bookkeeping for incremental polling on `LastModifiedDateTime` (reference §4 and §8.5): each poll reads
 * `LastModifiedDateTime gt datetimeoffset'<watermark − overlap>'` (all pages), then {@link accept} keeps only events
 * not delivered before, comparing instants (not strings, so offsets do not matter):
 * - newer than the watermark → fresh;
 * - equal to the watermark → fresh unless its id is in `seenAtWatermark` (tie-breaking for several records changed
 *   in the same millisecond, possibly committed across two polls);
 * - older than the watermark but inside the overlap → fresh unless (id, instant) is in `recent`;
 * - a later change of a record already seen has a new instant, so it is fresh again.
 *
 * Guarantee: if the caller (1) calls `accept` once per poll with every page of that poll's result, and (2) persists
 * `next` only after handing on `fresh`, then a restart that loads the persisted state neither misses nor repeats a
 * change whose modification time is at most `overlapMs` older than the newest change seen when it became visible.
 * A crash between (2)'s hand-on and persist repeats that poll's events with identical jobIds, which mlc-dedupe
 * drops. Changes committed later than `overlapMs` behind the watermark are outside any window and are missed:
 * choose the overlap above the longest transaction plus clock skew. If `recent` overflows `maxRecent`, the
 * oldest entries can repeat once (same jobIds).
 */
export class PollWindow {
  /** Re-read window below the watermark, ms. */
  readonly overlapMs: number;
  /** Field compared in the filter (e.g. "LastModifiedDateTime"). */
  readonly modifiedField: string;
  /** User `$filter` ANDed with the time condition, if any. */
  readonly userFilter?: string;
  /** Cap of `PollState.recent`. */
  readonly maxRecent: number;

  /** @throws ValidationError for a negative overlap or a non-positive maxRecent */
  constructor(opts: PollWindowOptions = {}) {
    this.overlapMs = opts.overlapMs ?? 60_000;
    if (!Number.isFinite(this.overlapMs) || this.overlapMs < 0) throw new ValidationError(`overlapMs must be ≥ 0, got ${String(opts.overlapMs)}`);
    this.modifiedField = opts.modifiedField?.trim() || "LastModifiedDateTime";
    this.userFilter = opts.userFilter?.trim() || undefined;
    this.maxRecent = opts.maxRecent ?? 10_000;
    if (!Number.isInteger(this.maxRecent) || this.maxRecent < 1) throw new ValidationError(`maxRecent must be a positive integer, got ${String(opts.maxRecent)}`);
  }

  /**
   * A fresh state starting at `since` (ISO 8601 with offset; "" or omitted = from the beginning).
   * @throws ValidationError when `since` is not a date-time
   */
  static initial(since = ""): PollState {
    if (since && Number.isNaN(instant(since))) throw new ValidationError(`Not an ISO 8601 date-time: ${since}`);
    return { watermark: since ? new Date(instant(since)).toISOString() : "", seenAtWatermark: [], recent: [] };
  }

  /**
   * The `$filter` text for the next poll: `LastModifiedDateTime gt datetimeoffset'<watermark − overlapMs>'`
   * (with overlap 0: `ge datetimeoffset'<watermark>'`, so records sharing the watermark instant are re-read), bounded
   * above by `LastModifiedDateTime le datetimeoffset'<until>'` when `until` is given, ANDed with the user filter as
   * `(<time condition>) and (<user filter>)`. Empty watermark → only the upper bound and the user filter (or "").
   * Unencoded: pass it as `list(…, { filter })`, which URL-encodes it.
   *
   * Pass the poll's start time as `until`: a record modified while the poll pages through the result then stays out
   * of it (it is read by the next poll), so a change committed behind the paging cursor cannot be overtaken by a
   * later change that moves the watermark past it (which, with a poll longer than the overlap, lost it for good).
   * Rows leaving the result while it is paged are caught by the client's anchored paging (client.ts `listAll`).
   * `until` comes from Node-RED's clock: if it runs behind Acumatica's, changes are read later by the skew; if it runs
   * ahead, the bound excludes less (never more) than intended.
   * @param overlapMs overlap for this poll, ms (default: the window's)
   * @param until upper bound: ISO 8601 with offset or ms since the epoch (normally the poll's start time)
   * @throws ValidationError when `until` is not a valid time
   */
  filterFor(state: PollState, overlapMs: number = this.overlapMs, until?: string | number): string {
    const wm = state?.watermark ? instant(state.watermark) : Number.NaN;
    const conds: string[] = [];
    if (!Number.isNaN(wm)) {
      conds.push(
        overlapMs > 0
          ? `${this.modifiedField} gt ${datetimeOffsetLiteral(new Date(wm - overlapMs).toISOString())}`
          : `${this.modifiedField} ge ${datetimeOffsetLiteral(new Date(wm).toISOString())}`,
      );
    }
    if (until !== undefined) {
      const u = typeof until === "number" ? until : instant(until);
      if (!Number.isFinite(u)) throw new ValidationError(`Poll upper bound is not a valid time: ${String(until)}`);
      conds.push(`${this.modifiedField} le ${datetimeOffsetLiteral(new Date(u).toISOString())}`);
    }
    const cond = conds.join(" and ");
    if (!cond) return this.userFilter ?? "";
    return this.userFilter ? `(${cond}) and (${this.userFilter})` : cond;
  }

  /**
   * Split one poll's events into fresh and already delivered, and compute the next state (see class doc).
   * The input state is not modified.
   * @param events every event of the poll (from {@link recordToEvent}); each needs `erp.modifiedAt`
   * @throws ValidationError (with recordId) when an event has no valid `erp.modifiedAt`
   */
  accept(state: PollState, events: ErpEventMsg[]): PollAcceptResult {
    const oldW = state?.watermark ? instant(state.watermark) : Number.NEGATIVE_INFINITY;
    const prevW = Number.isNaN(oldW) ? Number.NEGATIVE_INFINITY : oldW;
    const seenAtW = new Set(state?.seenAtWatermark ?? []);
    const recentKeys = new Set((state?.recent ?? []).map((r) => `${instant(r.modifiedAt)}|${r.id}`));
    const batchKeys = new Set<string>();
    const fresh: { ev: ErpEventMsg; t: number }[] = [];
    const seenNow: { id: string; t: number }[] = [];
    let duplicates = 0;
    let outsideWindow = 0;

    for (const ev of events) {
      const id = ev?.erp?.id;
      const t = ev?.erp?.modifiedAt ? instant(ev.erp.modifiedAt) : Number.NaN;
      if (typeof id !== "string" || Number.isNaN(t)) throw new ValidationError(`Polled event ${String(id)} has no valid erp.modifiedAt`, { recordId: typeof id === "string" ? id : undefined });
      const key = `${t}|${id}`;
      if (batchKeys.has(key)) {
        duplicates++;
        continue;
      }
      batchKeys.add(key);
      let isDup: boolean;
      if (t > prevW) isDup = false;
      else if (t === prevW) isDup = seenAtW.has(id) || recentKeys.has(key);
      else {
        isDup = recentKeys.has(key);
        // below the window the filter asked for: only possible if the filter came from another state; deliver
        // rather than risk a miss (jobIds make a repeat harmless downstream)
        if (!isDup && t <= prevW - this.overlapMs) outsideWindow++;
      }
      if (isDup) {
        duplicates++;
        continue;
      }
      fresh.push({ ev, t });
      seenNow.push({ id, t });
    }

    // next watermark: the newest instant delivered (never moves backwards)
    let newW = prevW;
    for (const s of seenNow) if (s.t > newW) newW = s.t;
    const atW = new Set<string>(newW === prevW ? seenAtW : []);
    for (const s of seenNow) if (s.t === newW) atW.add(s.id);

    // recent: everything delivered inside (newW − overlap, newW], newest kept when over the cap
    const merged = new Map<string, { id: string; t: number }>();
    for (const r of state?.recent ?? []) {
      const t = instant(r.modifiedAt);
      if (!Number.isNaN(t)) merged.set(`${t}|${r.id}`, { id: r.id, t });
    }
    for (const s of seenNow) merged.set(`${s.t}|${s.id}`, s);
    let recent = [...merged.values()].filter((r) => r.t > newW - this.overlapMs).sort((a, b) => a.t - b.t || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (recent.length > this.maxRecent) recent = recent.slice(recent.length - this.maxRecent);

    fresh.sort((a, b) => a.t - b.t || (a.ev.erp.id < b.ev.erp.id ? -1 : a.ev.erp.id > b.ev.erp.id ? 1 : 0));
    const next: PollState = {
      watermark: Number.isFinite(newW) ? new Date(newW).toISOString() : "",
      seenAtWatermark: [...atW].sort(),
      recent: recent.map((r) => ({ id: r.id, modifiedAt: new Date(r.t).toISOString() })),
    };
    return { fresh: fresh.map((f) => f.ev), next, duplicates, outsideWindow };
  }
}
