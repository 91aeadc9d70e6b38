/**
 * The watermark bookkeeping of incremental polling, generic over the ERP: which records a poll must read (a time
 * condition in the ERP's own literal syntax, see conditions.ts) and which of the events it read are new.
 * No I/O, no clock, no Node-RED. Moved here from the Acumatica events (nodes/lib/acumatica/events.ts keeps
 * `PollWindow` as the Acumatica-flavoured subclass).
 */
import { ErpEventMsg } from "../envelope";
import { ValidationError } from "../errors";
import { odataV4Time } from "./conditions";

function instant(iso: string): number {
  return Date.parse(iso);
}

/** Comparison a time condition expresses: modified after (`gt`), at or after (`ge`), at or before (`le`). */
export type TimeOp = "gt" | "ge" | "le";

/**
 * Builds one time condition in the ERP's filter syntax, e.g. `LastModifiedDateTime gt datetimeoffset'…'`.
 * @param field the modified-time field (an ERP with split fields ignores it and uses its own)
 * @param atMs the instant, ms since the epoch
 */
export type TimeCondition = (field: string, op: TimeOp, atMs: number) => string;

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
  /**
   * Catch-up in time slices ({@link Poller}): the upper bound of the last slice read to the end, ISO 8601 UTC. The
   * next slice ends at most one slice after it. Absent outside catch-up.
   */
  scannedUntil?: string;
}

/** Options of {@link WatermarkWindow}. */
export interface WatermarkWindowOptions {
  /** How far below the watermark each poll re-reads, ms (covers late commits and clock skew). Default 60000. */
  overlapMs?: number;
  /** Modified-time field name used in the filter (required: the ERP's field, e.g. "Modified", "WHENMODIFIED"). */
  modifiedField?: string;
  /** The time condition in the ERP's literal syntax (conditions.ts); default OData v4 plain ISO ({@link odataV4Time}). */
  timeCondition?: TimeCondition;
  /** The conjunction keyword of the filter language; default "and" (Intacct `readByQuery`: "AND"). */
  and?: string;
  /** User `$filter`, ANDed with the time condition. */
  userFilter?: string;
  /** Cap of `recent` entries (oldest dropped first). Default 10000. */
  maxRecent?: number;
}

/** Result of {@link WatermarkWindow.accept}. */
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
 * Watermark bookkeeping for incremental polling on a modified-time field: each poll reads
 * `<field> gt <watermark − overlap>` in the ERP's literal syntax (all pages), then {@link accept} keeps only events
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
export class WatermarkWindow {
  /** Re-read window below the watermark, ms. */
  readonly overlapMs: number;
  /** Field compared in the filter (e.g. "LastModifiedDateTime"). */
  readonly modifiedField: string;
  /** Time condition builder in the ERP's syntax. */
  readonly timeCondition: TimeCondition;
  /** Conjunction keyword. */
  readonly and: string;
  /** User `$filter` ANDed with the time condition, if any. */
  readonly userFilter?: string;
  /** Cap of `PollState.recent`. */
  readonly maxRecent: number;

  /** @throws ValidationError for a negative overlap or a non-positive maxRecent */
  constructor(opts: WatermarkWindowOptions = {}) {
    this.overlapMs = opts.overlapMs ?? 60_000;
    if (!Number.isFinite(this.overlapMs) || this.overlapMs < 0) throw new ValidationError(`overlapMs must be ≥ 0, got ${String(opts.overlapMs)}`);
    const field = opts.modifiedField?.trim();
    if (!field) throw new ValidationError("modifiedField is required (the ERP's modified-time field)");
    this.modifiedField = field;
    this.timeCondition = opts.timeCondition ?? odataV4Time;
    this.and = opts.and ?? "and";
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
   * The filter text for the next poll: `<field> gt <watermark − overlapMs>` in the ERP's syntax
   * (with overlap 0: `ge <watermark>`, so records sharing the watermark instant are re-read), bounded
   * above by `<field> le <until>` when `until` is given, ANDed with the user filter as
   * `(<time condition>) and (<user filter>)`. Empty watermark → only the upper bound and the user filter (or "").
   * Unencoded: pass it as `list(…, { filter })`, which URL-encodes it.
   *
   * Pass the poll's start time as `until`: a record modified while the poll pages through the result then stays out
   * of it (it is read by the next poll), so a change committed behind the paging cursor cannot be overtaken by a
   * later change that moves the watermark past it (which, with a poll longer than the overlap, lost it for good).
   * Rows leaving the result while it is paged are caught by the client's anchored paging (client.ts `listAll`).
   * `until` comes from Node-RED's clock: if it runs behind the ERP's, changes are read later by the skew; if it runs
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
          ? this.timeCondition(this.modifiedField, "gt", wm - overlapMs)
          : this.timeCondition(this.modifiedField, "ge", wm),
      );
    }
    if (until !== undefined) {
      const u = typeof until === "number" ? until : instant(until);
      if (!Number.isFinite(u)) throw new ValidationError(`Poll upper bound is not a valid time: ${String(until)}`);
      conds.push(this.timeCondition(this.modifiedField, "le", u));
    }
    const cond = conds.join(` ${this.and} `);
    if (!cond) return this.userFilter ?? "";
    return this.userFilter ? `(${cond}) ${this.and} (${this.userFilter})` : cond;
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
