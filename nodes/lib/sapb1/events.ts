/**
 * SAP Business One poll pieces on the kit (nodes/lib/poll): which entities are polled how, rows → envelope events,
 * and the three alert conditions of issue 12 (document created, payment overdue by N days, stock below minimum).
 * Facts from reference sap-business-one.md §4.1 (incremental polling), §7 (entities and fields).
 *
 * - Documents, Items, BusinessPartners: watermark on the split `UpdateDate` + `UpdateTime` (server-local, no offset;
 *   only hour:minute filterable) through the kit's {@link WatermarkWindow} with {@link sapB1SplitTime}; events are
 *   versioned by (key, UpdateDate, UpdateTime) so a re-read minute is recognised.
 * - IncomingPayments has no UpdateDate/UpdateTime: new payments by `DocEntry gt <last>` ({@link docEntryFilter},
 *   {@link advanceDocEntry}); the kit's poller is time-based, so this cursor lives here.
 * - Overdue and low stock are states, not changes: they are found by scanning, and their jobIds are stable per
 *   occurrence (due date + N; warehouse + the stock dip) so a repeated scan yields the same jobId (mlc-dedupe drops it).
 */
import { ErpEventMsg, ErpMeta, eventTopic } from "../envelope";
import { ValidationError } from "../errors";
import { deriveJobId } from "../ids";
import { sapB1SplitTime } from "../poll/conditions";
import { splitDateTime } from "../poll/modified-time";
import { TimeCondition, WatermarkWindow } from "../poll/window";
import { pad, wallClock } from "../poll/zone";
import { keyLiteral } from "./client";

/** How an entity is polled: its key field, its number field, its watermark. */
export interface SapB1EntitySpec {
  key: string;
  number?: string;
  /** "update": UpdateDate/UpdateTime window; "docEntry": ascending DocEntry (no modification time). */
  watermark: "update" | "docEntry";
}

/** The entities the trigger polls (reference §7). */
export const SAPB1_ENTITIES: Readonly<Record<string, SapB1EntitySpec>> = {
  Invoices: { key: "DocEntry", number: "DocNum", watermark: "update" },
  PurchaseInvoices: { key: "DocEntry", number: "DocNum", watermark: "update" },
  PurchaseOrders: { key: "DocEntry", number: "DocNum", watermark: "update" },
  Orders: { key: "DocEntry", number: "DocNum", watermark: "update" },
  IncomingPayments: { key: "DocEntry", number: "DocNum", watermark: "docEntry" },
  Items: { key: "ItemCode", watermark: "update" },
  BusinessPartners: { key: "CardCode", watermark: "update" },
};

/** The spec of a polled entity. @throws ValidationError for an entity the trigger cannot poll */
export function entitySpec(entity: string): SapB1EntitySpec {
  const s = Object.prototype.hasOwnProperty.call(SAPB1_ENTITIES, entity) ? SAPB1_ENTITIES[entity] : undefined;
  if (!s) throw new ValidationError(`SAP Business One entity "${String(entity).slice(0, 40)}" cannot be polled (use one of ${Object.keys(SAPB1_ENTITIES).join(", ")})`, { code: "bad_config" });
  return s;
}

/** `$orderby` of a poll: modification time then key, or DocEntry. */
export function pollOrderBy(entity: string): string {
  const s = entitySpec(entity);
  return s.watermark === "docEntry" ? "DocEntry" : `UpdateDate,UpdateTime,${s.key}`;
}

/**
 * The split-time condition of the kit (`sapB1SplitTime`), with the overlap's lower bound (`gt`) rounded UP to the next
 * whole minute instead of down. Why: the filter only knows minutes, and the kit's window remembers delivered records
 * only inside the overlap (`recent`: modified after watermark − overlap). A lower bound floored to the minute re-reads
 * up to 59 s of records older than that memory, which the window would deliver again. Rounding up keeps every row the
 * filter returns inside the memory, and still re-reads at least overlap − 60 s below the watermark. `ge` (no overlap)
 * and `le` are the kit's. (Should move into the kit: any literal coarser than the window's memory needs it.)
 */
export function sapB1PollTime(timeZone: string): TimeCondition {
  const base = sapB1SplitTime(timeZone);
  return (field, op, atMs) => (op === "gt" ? base(field, "ge", Math.ceil((atMs + 1) / 60_000) * 60_000) : base(field, op, atMs));
}

/**
 * The "created" watch's condition on documents: {@link sapB1PollTime}, and with the lower bound also
 * `CreationDate ge '<that bound's server-local date>'`. The window reads every document *changed* since the watermark,
 * so without it a document created before the trigger started (or before the dedupe's memory) and only updated now
 * (paid, closed, approved: its UpdateDate moves) would be reported as created. CreationDate has no time part: a
 * document created earlier on the bound's own day still passes. Needs one read per tick (no catch-up slices).
 */
export function sapB1CreatedTime(timeZone: string): TimeCondition {
  const base = sapB1PollTime(timeZone);
  return (field, op, atMs) => (op === "le" ? base(field, op, atMs) : `(${base(field, op, atMs)} and CreationDate ge '${dateBefore(atMs, 0, timeZone)}')`);
}

/**
 * The kit's watermark window for an "update" entity: filters like
 * `(UpdateDate gt '2024-03-01' or (UpdateDate eq '2024-03-01' and UpdateTime ge '09:14'))` in the server's zone.
 * @param timeZone the Service Layer server's IANA zone (UpdateDate/UpdateTime are server-local)
 * @param overlapMs re-read below the watermark, ms; default and minimum 120000 (the filter only knows minutes)
 * @param createdOnly documents created inside the window only ({@link sapB1CreatedTime}), for the "created" watch
 * @throws ValidationError for an unknown time zone or an overlap below 120 s
 */
export function updateWindow(timeZone: string, userFilter?: string, overlapMs = 120_000, createdOnly = false): WatermarkWindow {
  sapB1SplitTime(timeZone)("UpdateDate", "ge", 0); // validates the zone now, not at the first poll
  // with less, the minute-rounded filter re-reads records the window no longer remembers (see sapB1PollTime)
  if (!(overlapMs >= 120_000)) throw new ValidationError("Overlap must be at least 120 s (the filter only knows minutes)", { code: "bad_config" });
  return new WatermarkWindow({ timeCondition: (createdOnly ? sapB1CreatedTime : sapB1PollTime)(timeZone), modifiedField: "UpdateDate", overlapMs, userFilter });
}

/** `DocEntry gt N` (and the user filter), the IncomingPayments cursor. */
export function docEntryFilter(last: number, userFilter?: string): string {
  const f = `DocEntry gt ${Math.max(0, Math.floor(last))}`;
  return userFilter?.trim() ? `${f} and (${userFilter.trim()})` : f;
}

/** The highest DocEntry among `rows` and `last`. */
export function advanceDocEntry(last: number, rows: readonly Record<string, unknown>[]): number {
  return rows.reduce((m, r) => (typeof r.DocEntry === "number" && r.DocEntry > m ? r.DocEntry : m), last);
}

/** UpdateDate + UpdateTime of a row in `timeZone` → ISO UTC; undefined when absent or unreadable. */
export function modifiedAtOf(row: Record<string, unknown>, timeZone: string): string | undefined {
  return splitDateTime(row.UpdateDate, row.UpdateTime, timeZone);
}

/** `Invoices(812)`, `Items('A00001')`. @throws ValidationError when the row has no key */
export function recordIdOf(entity: string, row: Record<string, unknown>): string {
  const k = row[entitySpec(entity).key];
  if (typeof k !== "number" && typeof k !== "string") throw new ValidationError(`${entity} row without ${entitySpec(entity).key}`, { code: "malformed_record" });
  return `${entity}(${keyLiteral(k)})`;
}

/** What an event is about. */
export type SapB1Condition = "changed" | "created" | "overdue" | "lowStock";

/** Context every event needs. */
export interface EventContext {
  entity: string;
  /** CompanyDB (the envelope's tenant). */
  tenant: string;
  /** Server time zone. */
  timeZone: string;
}

function envelope(ctx: EventContext, row: Record<string, unknown>, action: ErpMeta["action"], version: string, modifiedAt?: string): ErpEventMsg {
  const id = recordIdOf(ctx.entity, row);
  const spec = entitySpec(ctx.entity);
  const num = spec.number ? row[spec.number] : undefined;
  const erp: ErpMeta = { system: "sapb1", tenant: ctx.tenant, entity: ctx.entity, id, action, jobId: deriveJobId({ system: "sapb1", tenant: ctx.tenant, entity: ctx.entity, id, version }) };
  if (num !== undefined && num !== null) erp.number = String(num);
  if (modifiedAt) erp.modifiedAt = modifiedAt;
  return { topic: eventTopic(erp), payload: row, erp };
}

/**
 * A changed row (watermark poll) → event versioned by its modification time; for "docEntry" entities by DocEntry.
 * @throws ValidationError (`malformed_record`, recordId set) when an "update" row has no readable UpdateDate/UpdateTime
 */
export function changedEvent(ctx: EventContext, row: Record<string, unknown>): ErpEventMsg {
  if (entitySpec(ctx.entity).watermark === "docEntry") return envelope(ctx, row, "created", `DocEntry:${String(row.DocEntry)}`);
  const at = modifiedAtOf(row, ctx.timeZone);
  if (!at) throw new ValidationError(`${recordIdOf(ctx.entity, row)} has no readable UpdateDate/UpdateTime`, { code: "malformed_record", recordId: recordIdOf(ctx.entity, row) });
  const created = typeof row.CreationDate === "string" && typeof row.UpdateDate === "string" && row.CreationDate.slice(0, 10) === row.UpdateDate.slice(0, 10);
  return envelope(ctx, row, created ? "created" : "updated", at, at);
}

/**
 * "Document created": one event per document, whatever later updates it gets: the jobId is derived from
 * DocNum + DocDate (issue 12: "dedupe by DocNum + DocDate"), so re-reads after an update give the same jobId.
 */
export function createdEvent(ctx: EventContext, row: Record<string, unknown>): ErpEventMsg {
  const ev = envelope(ctx, row, "created", `created|${String(row.DocNum)}|${String(row.DocDate ?? "").slice(0, 10)}`, modifiedAtOf(row, ctx.timeZone));
  return ev;
}

/** The calendar date `days` before `nowMs` in `timeZone`, `YYYY-MM-DD`. */
export function dateBefore(nowMs: number, days: number, timeZone: string): string {
  const w = wallClock(nowMs, timeZone);
  const d = new Date(Date.UTC(w.year, w.month - 1, w.day) - days * 86_400_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/**
 * Filter of open A/R invoices due at least `days` days before today (server zone): `DocumentStatus eq 'bost_Open' and
 * DocDueDate le '<today − days>'` (reference §7 "overdue": `DocDueDate lt '<today>'`, so 0 days means due before today,
 * as 1 does; dates quoted).
 * @throws ValidationError when days is not an integer 0…3650
 */
export function overdueFilter(nowMs: number, days: number, timeZone: string): string {
  if (!Number.isInteger(days) || days < 0 || days > 3650) throw new ValidationError("Overdue days must be an integer 0…3650", { code: "bad_config" });
  return `DocumentStatus eq 'bost_Open' and DocDueDate le '${dateBefore(nowMs, Math.max(days, 1), timeZone)}'`;
}

/** Alert details put on `msg.alert`. */
export interface OverdueAlert {
  kind: "overdue";
  /** Outstanding amount, DocTotal − PaidToDate, in the document currency. */
  amountDue: number;
  currency?: string;
  /** DocDueDate, `YYYY-MM-DD`. */
  dueDate: string;
  /** The N days the trigger was configured with. */
  overdueDays: number;
}

/**
 * An overdue invoice → event (or undefined when nothing is due: paid, cancelled, no due date). The jobId is stable
 * per invoice, due date and N: a daily scan alerts once; a new due date alerts again.
 */
export function overdueEvent(ctx: EventContext, row: Record<string, unknown>, days: number): ErpEventMsg | undefined {
  const due = typeof row.DocDueDate === "string" ? row.DocDueDate.slice(0, 10) : "";
  const total = typeof row.DocTotal === "number" ? row.DocTotal : Number.NaN;
  const paid = typeof row.PaidToDate === "number" ? row.PaidToDate : 0;
  const amountDue = Math.round((total - paid) * 100) / 100;
  if (!due || !(amountDue > 0) || row.Cancelled === "tYES") return undefined;
  const ev = envelope(ctx, row, "updated", `overdue|${days}|${due}`, modifiedAtOf(row, ctx.timeZone));
  const alert: OverdueAlert = { kind: "overdue", amountDue, dueDate: due, overdueDays: days };
  if (typeof row.DocCurrency === "string") alert.currency = row.DocCurrency;
  ev.alert = alert;
  return ev;
}

/** One warehouse (or the item as a whole, warehouse "*") below its minimum. */
export interface LowStock {
  kind: "lowStock";
  itemCode: string;
  warehouse: string;
  inStock: number;
  minimum: number;
}

/**
 * Warehouses of an item whose stock is below their minimum (`InStock < MinimalStock`, MinimalStock > 0), or, when the
 * item has no per-warehouse minimum, the item (`QuantityOnStock < MinInventory`). OData cannot compare two fields, so
 * this runs on the client (reference §7 "Items").
 */
export function lowStockOf(item: Record<string, unknown>): LowStock[] {
  const code = String(item.ItemCode ?? "");
  const out: LowStock[] = [];
  const lines = Array.isArray(item.ItemWarehouseInfoCollection) ? (item.ItemWarehouseInfoCollection as Record<string, unknown>[]) : [];
  for (const w of lines) {
    const min = Number(w.MinimalStock);
    const have = Number(w.InStock);
    if (min > 0 && Number.isFinite(have) && have < min) out.push({ kind: "lowStock", itemCode: code, warehouse: String(w.WarehouseCode ?? ""), inStock: have, minimum: min });
  }
  const anyWhsMin = lines.some((w) => Number(w.MinimalStock) > 0);
  const min = Number(item.MinInventory);
  const have = Number(item.QuantityOnStock);
  if (!anyWhsMin && min > 0 && Number.isFinite(have) && have < min) out.push({ kind: "lowStock", itemCode: code, warehouse: "*", inStock: have, minimum: min });
  return out;
}

/**
 * Low-stock alerts with memory: given the (item, warehouse) pairs below minimum at the last scan (`below`, persisted
 * by the caller), returns events for pairs that fell below since, and the new set. A pair that recovers is dropped,
 * so its next dip alerts again (with a new jobId: the dip's number is part of it, counted in `dips`).
 */
export function lowStockEvents(
  ctx: EventContext,
  item: Record<string, unknown>,
  below: Readonly<Record<string, number>>,
): { events: ErpEventMsg[]; below: Record<string, number> } {
  const code = String(item.ItemCode ?? "");
  const next: Record<string, number> = {};
  for (const [k, v] of Object.entries(below)) if (!k.startsWith(`${code}\u0000`)) next[k] = v;
  const events: ErpEventMsg[] = [];
  for (const low of lowStockOf(item)) {
    const key = `${code}\u0000${low.warehouse}`;
    const prev = below[key];
    if (prev !== undefined && prev > 0) {
      next[key] = prev;
      continue;
    }
    const dip = Math.abs(prev ?? 0) + 1;
    next[key] = dip;
    const ev = envelope(ctx, item, "updated", `low|${low.warehouse}|${dip}`, modifiedAtOf(item, ctx.timeZone));
    ev.alert = low;
    events.push(ev);
  }
  // recovered pairs keep their dip count as a negative number, so the next dip gets a new jobId
  for (const [k, v] of Object.entries(below)) if (k.startsWith(`${code}\u0000`) && next[k] === undefined) next[k] = -Math.abs(v);
  return { events, below: next };
}
