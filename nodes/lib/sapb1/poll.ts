/**
 * What a SAP Business One trigger runs per poll, on {@link SapB1Client} and the kit's Poller (nodes/lib/poll/poller.ts):
 * - {@link updateReader}: the Poller's `read` for an UpdateDate/UpdateTime entity (all pages, oldest first);
 * - {@link readNewPayments}: IncomingPayments after a DocEntry (no modification time there);
 * - {@link scanOverdue}: open invoices overdue by N days (amount due and due date on `msg.alert`);
 * - {@link scanLowStock}: inventory items below their minimum per warehouse, with the caller's persisted memory.
 * A row that cannot be read (no key, no UpdateDate) is handed to `onMalformed` and skipped, never guessed.
 */
import { ErpEventMsg } from "../envelope";
import { MlcError } from "../errors";
import { PollRead } from "../poll/poller";
import { SapB1Client, SapB1Record } from "./client";
import type { ClientRef } from "./scan";
import { EventContext, advanceDocEntry, changedEvent, createdEvent, docEntryFilter, entitySpec, lowStockEvents, overdueEvent, overdueFilter, pollOrderBy } from "./events";

/** Options shared by the readers. */
export interface ReaderOptions {
  /** `$select` (the watermark fields are added when missing). */
  select?: string[];
  /** Told about each row that cannot become an event (ValidationError with recordId). Must not throw. */
  onMalformed?: (err: MlcError) => void;
}

function withFields(select: string[] | undefined, needed: string[]): string[] | undefined {
  if (!select?.length) return undefined;
  return [...new Set([...select, ...needed])];
}

function tryEvent(make: () => ErpEventMsg | undefined, onMalformed?: (e: MlcError) => void): ErpEventMsg | undefined {
  try {
    return make();
  } catch (err) {
    if (err instanceof MlcError) {
      onMalformed?.(err);
      return undefined;
    }
    throw err;
  }
}

/**
 * The kit Poller's `read` for an entity polled on UpdateDate/UpdateTime: `GET /{entity}?$filter=<window>&$orderby=
 * UpdateDate,UpdateTime,<key>` over every page.
 * @param condition "changed" (every version) or "created" (one event per DocNum + DocDate)
 * @throws what {@link SapB1Client.list} throws
 */
export function updateReader(client: ClientRef, ctx: EventContext, condition: "changed" | "created", o: ReaderOptions = {}): (r: PollRead) => AsyncIterable<ErpEventMsg> {
  const spec = entitySpec(ctx.entity);
  const docFields = spec.number ? [spec.number, "DocDate", "CreationDate"] : [];
  const select = withFields(o.select, [spec.key, ...docFields, "UpdateDate", "UpdateTime"]);
  return async function* read(r: PollRead) {
    const c = client instanceof SapB1Client ? client : client();
    for await (const row of c.list(ctx.entity, { filter: r.filter, select, orderby: pollOrderBy(ctx.entity) })) {
      const ev = tryEvent(() => (condition === "created" ? createdEvent(ctx, row) : changedEvent(ctx, row)), o.onMalformed);
      if (ev) yield ev;
    }
  };
}

/**
 * IncomingPayments created after `lastDocEntry` (`DocEntry gt N`, ascending).
 * @returns the events and the new cursor (persist it after delivering the events)
 * @throws what {@link SapB1Client.list} throws
 */
export async function readNewPayments(client: SapB1Client, ctx: EventContext, lastDocEntry: number, userFilter?: string, o: ReaderOptions = {}): Promise<{ events: ErpEventMsg[]; last: number }> {
  const rows: SapB1Record[] = [];
  for await (const row of client.list("IncomingPayments", { filter: docEntryFilter(lastDocEntry, userFilter), orderby: "DocEntry", select: withFields(o.select, ["DocEntry", "DocNum"]) })) rows.push(row);
  const events = rows.map((row) => tryEvent(() => changedEvent({ ...ctx, entity: "IncomingPayments" }, row), o.onMalformed)).filter((e): e is ErpEventMsg => e !== undefined);
  return { events, last: advanceDocEntry(lastDocEntry, rows) };
}

/**
 * Open A/R invoices overdue by `days` days at `nowMs` (server zone), with something left to pay. The same invoice and
 * due date always yields the same jobId, so repeated scans are recognised downstream (mlc-dedupe).
 * @throws ValidationError bad `days`; what {@link SapB1Client.list} throws
 */
export async function scanOverdue(client: SapB1Client, ctx: EventContext, nowMs: number, days: number, o: ReaderOptions = {}): Promise<ErpEventMsg[]> {
  const filter = overdueFilter(nowMs, days, ctx.timeZone);
  const select = withFields(o.select, ["DocEntry", "DocNum", "CardCode", "CardName", "DocTotal", "PaidToDate", "DocCurrency", "DocDueDate", "DocumentStatus", "Cancelled", "UpdateDate", "UpdateTime"]);
  const out: ErpEventMsg[] = [];
  for await (const row of client.list(ctx.entity, { filter, select, orderby: "DocDueDate,DocEntry" })) {
    const ev = tryEvent(() => overdueEvent(ctx, row, days), o.onMalformed);
    if (ev) out.push(ev);
  }
  return out;
}

/**
 * Inventory items below their minimum (per warehouse, else per item). `below` is the memory of the last scan (persist
 * the returned one after delivering): only pairs that fell below since alert.
 * @throws what {@link SapB1Client.list} throws
 */
export async function scanLowStock(
  client: SapB1Client,
  ctx: EventContext,
  below: Readonly<Record<string, number>>,
  userFilter?: string,
): Promise<{ events: ErpEventMsg[]; below: Record<string, number> }> {
  const filter = userFilter?.trim() ? `InventoryItem eq 'tYES' and (${userFilter.trim()})` : "InventoryItem eq 'tYES'";
  const select = ["ItemCode", "ItemName", "QuantityOnStock", "MinInventory", "ItemWarehouseInfoCollection", "UpdateDate", "UpdateTime"];
  let memory: Record<string, number> = { ...below };
  const events: ErpEventMsg[] = [];
  for await (const item of client.list("Items", { filter, select, orderby: "ItemCode" })) {
    const r = lowStockEvents({ ...ctx, entity: "Items" }, item, memory);
    memory = r.below;
    events.push(...r.events);
  }
  return { events, below: memory };
}
