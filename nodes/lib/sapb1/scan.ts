/**
 * The three SAP Business One polls that are not "changed since a modification time", as windows for the kit's
 * {@link Poller} (so a trigger runs them exactly like a watermark poll: same timer, persisted state, close; and on the
 * trigger skeleton, the same journal before emit and state save after):
 * - {@link paymentsWindow}: IncomingPayments has no UpdateDate/UpdateTime (reference §4.1): the first poll reads
 *   payments dated from the start day (`DocDate ge '…'`), later polls `DocEntry gt <last>`; the state keeps `lastDocEntry`.
 * - {@link overdueWindow}: open invoices overdue by N days at the poll's time; the state keeps the jobIds of the last
 *   scan, so each (invoice, due date) alerts once while it stays overdue; paid and gone, it is forgotten.
 * - {@link lowStockWindow}: inventory items; the state keeps which (item, warehouse) pairs are below minimum and
 *   their dip count, so each dip alerts once with a deterministic jobId (a crash between emit and save re-reads the
 *   same jobId, which the journal drops).
 * Each window's `read` (made here too) turns rows into events; `accept` decides what is fresh and the next state.
 */
import { ErpEventMsg } from "../envelope";
import { ValidationError } from "../errors";
import { PollRead } from "../poll/poller";
import { PollAcceptResult, PollState, WatermarkWindow } from "../poll/window";
import { SapB1Client } from "./client";
import { EventContext, changedEvent, dateBefore, lowStockEvents, overdueEvent, overdueFilter } from "./events";

/** Poll state of the scan windows: the kit's fields plus each window's own memory. */
export interface ScanState extends PollState {
  /** paymentsWindow: highest DocEntry delivered. */
  lastDocEntry?: number;
  /** overdueWindow: jobIds of the last scan. */
  seenJobs?: string[];
  /** lowStockWindow: "item\u0000warehouse" → dip count (positive: below now; negative: recovered). */
  below?: Record<string, number>;
}

type Reader = (r: PollRead) => AsyncIterable<ErpEventMsg>;
/**
 * Rows per page of the overdue and low-stock scans: they read their whole set on every poll and each page is one
 * Service Layer call, so larger pages than the client's default (100) make a quiet poll cheap (2,000 items: 2 calls,
 * not 20; `node dist/test/bench/sapb1.js`). The Service Layer takes any `odata.maxpagesize` (reference §5).
 */
export const SCAN_PAGE_SIZE = 1000;
/** The client, or a getter called at each read (a trigger's config node builds its client lazily). */
export type ClientRef = SapB1Client | (() => SapB1Client);
const clientOf = (c: ClientRef): SapB1Client => (c instanceof SapB1Client ? c : c());

/** Base: never a time condition; `accept` per window. */
abstract class ScanWindow extends WatermarkWindow {
  constructor() {
    super({ overlapMs: 0, modifiedField: "DocEntry" }); // unused: filterFor and accept are the window's own
  }
  abstract override filterFor(state: PollState, overlapMs?: number, until?: string | number): string;
  abstract override accept(state: PollState, events: ErpEventMsg[]): PollAcceptResult;
}

function untilOf(until: string | number | undefined): number {
  const u = typeof until === "number" ? until : until ? Date.parse(until) : Date.now();
  if (!Number.isFinite(u)) throw new ValidationError(`Poll upper bound is not a valid time: ${String(until)}`);
  return u;
}

const and = (f: string, user?: string): string => (user?.trim() ? `${f} and (${user.trim()})` : f);

/** IncomingPayments by DocEntry (see module doc). @returns the window and its reader */
export function paymentsWindow(client: ClientRef, ctx: EventContext, userFilter?: string): { window: WatermarkWindow; read: Reader } {
  const c = { ...ctx, entity: "IncomingPayments" };
  class Payments extends ScanWindow {
    filterFor(state: PollState): string {
      const s = state as ScanState;
      if (typeof s.lastDocEntry === "number") return and(`DocEntry gt ${s.lastDocEntry}`, userFilter);
      const from = state.watermark ? Date.parse(state.watermark) : 0;
      return and(`DocDate ge '${dateBefore(Number.isFinite(from) ? from : 0, 0, ctx.timeZone)}'`, userFilter);
    }
    accept(state: PollState, events: ErpEventMsg[]): PollAcceptResult {
      const s = state as ScanState;
      const last = s.lastDocEntry ?? -1;
      const fresh = events.filter((e) => typeof e.payload.DocEntry === "number" && e.payload.DocEntry > last).sort((a, b) => Number(a.payload.DocEntry) - Number(b.payload.DocEntry));
      const top = fresh.reduce((m, e) => Math.max(m, Number(e.payload.DocEntry)), last);
      const next: ScanState = { ...state, lastDocEntry: top >= 0 ? top : undefined };
      return { fresh, next, duplicates: events.length - fresh.length, outsideWindow: 0 };
    }
  }
  const read: Reader = async function* (r) {
    for await (const row of clientOf(client).list("IncomingPayments", { filter: r.filter, orderby: "DocEntry" })) yield changedEvent(c, row);
  };
  return { window: new Payments(), read };
}

/** Open invoices overdue by `days` (see module doc). @throws ValidationError for bad days @returns the window and its reader */
export function overdueWindow(client: ClientRef, ctx: EventContext, days: number): { window: WatermarkWindow; read: Reader } {
  overdueFilter(0, days, ctx.timeZone); // validates now
  class Overdue extends ScanWindow {
    filterFor(_state: PollState, _o?: number, until?: string | number): string {
      return overdueFilter(untilOf(until), days, ctx.timeZone);
    }
    accept(state: PollState, events: ErpEventMsg[]): PollAcceptResult {
      const seen = new Set((state as ScanState).seenJobs ?? []);
      const fresh = events.filter((e) => !seen.has(e.erp.jobId));
      const next: ScanState = { ...state, seenJobs: [...new Set(events.map((e) => e.erp.jobId))] };
      return { fresh, next, duplicates: events.length - fresh.length, outsideWindow: 0 };
    }
  }
  const read: Reader = async function* (r) {
    for await (const row of clientOf(client).list(ctx.entity, { filter: r.filter, orderby: "DocDueDate,DocEntry", pageSize: SCAN_PAGE_SIZE })) {
      const ev = overdueEvent(ctx, row, days);
      if (ev) yield ev;
    }
  };
  return { window: new Overdue(), read };
}

/** Inventory items below minimum per warehouse (see module doc). @returns the window and its reader */
export function lowStockWindow(client: ClientRef, ctx: EventContext, userFilter?: string): { window: WatermarkWindow; read: Reader } {
  const c = { ...ctx, entity: "Items" };
  class LowStock extends ScanWindow {
    filterFor(): string {
      return and("InventoryItem eq 'tYES'", userFilter);
    }
    accept(state: PollState, events: ErpEventMsg[]): PollAcceptResult {
      let below: Record<string, number> = { ...((state as ScanState).below ?? {}) };
      const fresh: ErpEventMsg[] = [];
      for (const item of events) {
        const r = lowStockEvents(c, item.payload, below);
        below = r.below;
        fresh.push(...r.events);
      }
      const next: ScanState = { ...state, below };
      return { fresh, next, duplicates: 0, outsideWindow: 0 };
    }
  }
  // one message per item read; `accept` turns them into alerts (it holds the memory)
  const read: Reader = async function* (r) {
    const select = ["ItemCode", "ItemName", "QuantityOnStock", "MinInventory", "ItemWarehouseInfoCollection", "UpdateDate", "UpdateTime"];
    for await (const item of clientOf(client).list("Items", { filter: r.filter, select, orderby: "ItemCode", pageSize: SCAN_PAGE_SIZE })) {
      yield { topic: "sapb1/Items/scanned", payload: item, erp: { system: "sapb1", tenant: c.tenant, entity: "Items", id: String(item.ItemCode), action: "updated", jobId: "" } };
    }
  };
  return { window: new LowStock(), read };
}
