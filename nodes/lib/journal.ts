/**
 * Push journal: "acknowledged means durable" for webhook triggers (Acumatica push notifications today; every ERP
 * family's push endpoint can use it).
 *
 * - {@link PushJournal.accept} commits a notification's events, keyed by the notification's dedupe key
 *   (Acumatica: `Query|Id`), before the push is answered 2xx. A redelivery of the same key is refused (the caller
 *   answers 200 and drops it).
 * - An event is **finished** when the send ledger settles its jobId ({@link jobSettled}: a sid recorded, or a
 *   refusal that no retry can fix). A notification entry whose events are all finished keeps only its key and the
 *   time it was accepted (the entry's value becomes that number, as for a notification without events), so
 *   redeliveries are still recognised until the entry expires.
 * - After a restart, {@link PushJournal.replay} hands back every event not yet finished, marked
 *   `msg.erp.replay = true`; dedupe lets replays through and the send ledger stops doubles. Events that a flow
 *   drops on purpose (a switch below a threshold) are never settled: they are replayed at most `maxReplays`
 *   times (restarts), then finished.
 * - Bounded: entries expire after `ttlMs` (default 7 days) and at most `maxEntries` (default 50000) are kept,
 *   oldest evicted first.
 *
 * Every write goes through a {@link KvBackend} and is awaited; it is as durable as the context store behind it.
 */
import type { ErpEventMsg } from "./envelope";
import { jsonCopy, shallowCopy } from "./json-copy";
import { BoundedStore, KvBackend } from "./store";

/** One journaled notification. Times in ms since the epoch. */
export interface JournalEntry {
  /** The notification key (`Query|Id`). */
  k: string;
  /** Accepted at. */
  t: number;
  /** Events not finished yet (envelope messages as emitted). */
  pending: ErpEventMsg[];
  /** How many times the pending events were replayed after a restart. */
  replays: number;
}

export interface PushJournalOptions {
  /** Store key prefix ([A-Za-z0-9]+); default "pn". */
  prefix?: string;
  /** Entry lifetime, ms; default 7 days. */
  ttlMs?: number;
  /** Maximum entries; default 50000. */
  maxEntries?: number;
  /** Replays per entry before it is finished anyway; default 3. */
  maxReplays?: number;
  now?: () => number;
}

/** Default journal entry lifetime: 7 days, ms. */
export const DEFAULT_JOURNAL_TTL_MS = 7 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------------------------------
// settle signal: the send ledger tells every journal in the process that a jobId is finished
// ---------------------------------------------------------------------------------------------------------------------

const settleListeners = new Set<(jobId: string) => void>();

/** Subscribe to finished jobIds. @returns unsubscribe */
export function onJobSettled(fn: (jobId: string) => void): () => void {
  settleListeners.add(fn);
  return () => settleListeners.delete(fn);
}

/** Report that the work for `jobId` is finished (called by send nodes once their ledger entry is settled). */
export function jobSettled(jobId: string): void {
  if (!jobId) return;
  for (const fn of [...settleListeners]) {
    try {
      fn(jobId);
    } catch {
      /* a listener's failure must not reach the sender */
    }
  }
}

export class PushJournal {
  private readonly store: BoundedStore<JournalEntry | number>;
  private readonly maxReplays: number;
  private readonly now: () => number;
  /** jobId → notification key, for pending events only. */
  private readonly byJob = new Map<string, string>();
  readonly ready: Promise<void>;

  constructor(backend: KvBackend, opts: PushJournalOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxReplays = opts.maxReplays ?? 3;
    this.store = new BoundedStore<JournalEntry | number>(backend, {
      prefix: opts.prefix ?? "pn",
      ttlMs: opts.ttlMs ?? DEFAULT_JOURNAL_TTL_MS,
      maxEntries: opts.maxEntries ?? 50000,
      now: this.now,
    });
    this.ready = this.store.ready.then(async () => {
      for (const e of await this.store.entries()) {
        const v = e.v;
        if (typeof v === "object" && v) for (const ev of v.pending) if (ev.erp?.jobId) this.byJob.set(ev.erp.jobId, v.k);
      }
    });
  }

  /**
   * Commit a notification's events. Resolves true when this call journaled it (answer 2xx, then emit), false
   * for a redelivery of a key already journaled (answer 2xx, emit nothing).
   * @throws what the backend throws: then the push must not be acknowledged (answer 5xx, the sender retries)
   */
  async accept(key: string, events: ErpEventMsg[]): Promise<boolean> {
    const r = await this.acceptIssued(key, events);
    await r.committed;
    return r.first;
  }

  /**
   * {@link accept}, resolving as soon as the claim is decided and its write issued: `first` as accept's result,
   * `committed` once it is committed. The push must not be acknowledged before `committed` resolves; its events may
   * be emitted at once, since every durable write they lead to (dedupe claim, send ledger claim) is issued after
   * this one and a durable store commits writes in the order they were issued, so nothing they protect can happen
   * before the journal entry is committed. When the commit fails (`committed` rejects with the backend's error), the
   * key is forgotten, so the sender's retry is journaled again.
   */
  async acceptIssued(key: string, events: ErpEventMsg[]): Promise<{ first: boolean; committed: Promise<void> }> {
    await this.ready;
    const { first, committed } = await this.store.claimIssued(key, events.length ? { k: key, t: this.now(), pending: events.map(plain), replays: 0 } : this.now());
    const jobIds = first ? events.map((ev) => ev.erp?.jobId).filter((j): j is string => Boolean(j)) : [];
    for (const j of jobIds) this.byJob.set(j, key);
    const guarded = committed.catch(async (err: unknown) => {
      for (const j of jobIds) if (this.byJob.get(j) === key) this.byJob.delete(j);
      await this.store.delete(key).catch(() => undefined);
      throw err;
    });
    return { first, committed: guarded };
  }

  /** Number of events not finished. */
  get pendingCount(): number {
    return this.byJob.size;
  }

  /** Whether `jobId` is a pending event of this journal. */
  has(jobId: string): boolean {
    return this.byJob.has(jobId);
  }

  /**
   * Mark the event with `jobId` finished (no-op when it is not pending here). Committed before it resolves.
   */
  settle(jobId: string): Promise<void> {
    const key = this.byJob.get(jobId);
    if (key === undefined) return Promise.resolve();
    this.byJob.delete(jobId);
    // Decided and issued at once (no queue behind earlier settles' commits): concurrent settles share one commit.
    const finish = (cur: JournalEntry | number | undefined): JournalEntry | number | undefined => {
      if (typeof cur !== "object" || !cur) return undefined;
      const pending = cur.pending.filter((ev) => ev.erp?.jobId !== jobId);
      if (pending.length === cur.pending.length) return undefined;
      if (pending.length === 0) return cur.t; // all finished: only the key and its time are kept
      const next = shallowCopy(cur);
      next.pending = pending;
      return next;
    };
    if (this.store.isLoaded && !this.store.isShared) return this.store.updateNow(key, finish).committed;
    return this.store.updateIssued(key, finish).then((r) => r.committed);
  }

  /**
   * Events to replay after a restart, oldest first, each a fresh copy with `erp.replay = true`. Counts one replay
   * per entry (committed before it resolves); entries replayed `maxReplays` times already are finished instead.
   * @returns the events and how many were given up (finished without replay)
   */
  async replay(): Promise<{ events: ErpEventMsg[]; givenUp: number }> {
    await this.ready;
    const events: ErpEventMsg[] = [];
    let givenUp = 0;
    for (const e of await this.store.entries()) {
      const v = e.v;
      if (typeof v !== "object" || !v || v.pending.length === 0) continue;
      if (v.replays >= this.maxReplays) {
        givenUp += v.pending.length;
        for (const ev of v.pending) this.byJob.delete(ev.erp?.jobId);
        await this.store.update(v.k, (cur) => (typeof cur === "object" && cur ? cur.t : undefined));
        continue;
      }
      await this.store.update(v.k, (cur) => {
        if (typeof cur !== "object" || !cur) return undefined;
        const next = shallowCopy(cur);
        next.replays++;
        return next;
      });
      for (const ev of v.pending) {
        const copy = plain(ev);
        copy.erp = { ...copy.erp, replay: true };
        events.push(copy);
      }
    }
    return { events, givenUp };
  }
}

/** A JSON-safe copy (what a context store can keep), without `_msgid`. */
function plain(ev: ErpEventMsg): ErpEventMsg {
  const c = jsonCopy(ev);
  delete c._msgid;
  return c;
}
