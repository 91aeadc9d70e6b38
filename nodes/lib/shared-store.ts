/**
 * {@link BoundedStore} on a store shared by several processes (Redis): no in-memory index, every call goes to the
 * store, so a claim made by one Node-RED instance is seen by all. Used by BoundedStore itself when its backend is a
 * {@link SharedKvStore} (nodes/store/redis-kv.ts), so the journal, ledger, audit trail, dedupe and opt-outs need
 * no change to be shared.
 *
 * - claim: one atomic write "if absent" (`SET NX PX` in a Lua script) that also joins the store's bounded index
 *   (a sorted set by creation time) and evicts the oldest rows above `maxEntries`, in the same script.
 * - update / set: compare-and-set on the row's JSON text, retried on a concurrent change (optimistic).
 * - expiry: the store's own (PX = `ttlMs`), so nothing needs sweeping.
 */
import type { KvStore, StoredEntry } from "./store";

/** A {@link KvStore} shared across processes, with the atomic writes a bounded store needs. */
export interface SharedKvStore extends KvStore {
  readonly shared: true;
  /** JSON text of a live row, or undefined. */
  getJson(key: string): Promise<string | undefined>;
  /**
   * Write `value` (JSON) atomically when the row is absent (`ifJson` null) or its JSON text equals `ifJson`
   * (unconditional when `ifJson` is undefined), joining bounded index `index` and evicting above its max.
   * @param ttlMs > 0 expire after ttlMs; 0 none; -1 keep the row's expiry
   * @returns written: whether the condition held; size: rows in the index afterwards
   */
  writeIf(key: string, value: unknown, ttlMs: number, ifJson: string | null | undefined, index?: { name: string; at: number; max: number }): Promise<{ written: boolean; size: number }>;
  /** Delete a row (when its JSON text equals `ifJson`, if given) and drop it from index `indexName`. */
  removeFrom(key: string, indexName?: string, ifJson?: string): Promise<boolean>;
  /** Extend a row's expiry while its JSON text equals `ifJson`. @returns whether it was extended */
  renewIf(key: string, ifJson: string, ttlMs: number): Promise<boolean>;
}

/** True when `b` is a {@link SharedKvStore}. */
export function isSharedKv(b: unknown): b is SharedKvStore {
  return typeof b === "object" && b !== null && (b as { shared?: unknown }).shared === true;
}

const MAX_CAS_ATTEMPTS = 100;

/** The shared implementation behind {@link BoundedStore} (same method contracts). */
export class SharedBounded<T> {
  /** Rows in the index after the last write of this process (approximate: other processes write too). */
  size = 0;

  constructor(
    private readonly kv: SharedKvStore,
    private readonly opts: { prefix: string; ttlMs: number; maxEntries: number; keepIds: boolean; now: () => number },
  ) {}

  private index(at: number): { name: string; at: number; max: number } {
    return { name: this.opts.prefix, at, max: this.opts.maxEntries };
  }

  private newEntry(id: string, value: T): StoredEntry<T> {
    const t = this.opts.now();
    const entry: StoredEntry<T> = { v: value, t, e: this.opts.ttlMs > 0 ? t + this.opts.ttlMs : 0 };
    if (this.opts.keepIds) entry.id = id;
    return entry;
  }

  private async read(key: string): Promise<{ json: string | undefined; entry: StoredEntry<T> | undefined }> {
    const json = await this.kv.getJson(key);
    if (json === undefined) return { json, entry: undefined };
    const raw = JSON.parse(json) as StoredEntry<T>;
    if (!raw || typeof raw !== "object" || typeof raw.t !== "number") return { json, entry: undefined };
    if (raw.e && raw.e <= this.opts.now()) return { json, entry: undefined };
    return { json, entry: raw };
  }

  async get(key: string): Promise<T | undefined> {
    return (await this.read(key)).entry?.v;
  }

  async claim(id: string, key: string, value: T): Promise<boolean> {
    const entry = this.newEntry(id, value);
    const r = await this.kv.writeIf(key, entry, this.opts.ttlMs, null, this.index(entry.t));
    if (r.written) this.size = r.size;
    return r.written;
  }

  /**
   * Read-modify-write by compare-and-set, retried while another writer changes the row in between.
   * @throws Error after 100 conflicting attempts
   */
  async update(id: string, key: string, fn: (current: T | undefined) => T | undefined): Promise<boolean> {
    for (let i = 0; i < MAX_CAS_ATTEMPTS; i++) {
      const { json, entry: prev } = await this.read(key);
      const next = fn(prev?.v);
      if (next === undefined) return false;
      const entry: StoredEntry<T> = prev ? { ...prev, v: next } : this.newEntry(id, next);
      const r = await this.kv.writeIf(key, entry, prev ? -1 : this.opts.ttlMs, json ?? null, this.index(entry.t));
      if (r.written) {
        this.size = r.size;
        return true;
      }
    }
    throw new Error(`shared store: update of ${this.opts.prefix} kept conflicting`);
  }

  async set(id: string, key: string, value: T, renew: boolean): Promise<void> {
    for (let i = 0; i < MAX_CAS_ATTEMPTS; i++) {
      const { json, entry: prev } = await this.read(key);
      const entry: StoredEntry<T> = prev && !renew ? { ...prev, v: value } : this.newEntry(id, value);
      const r = await this.kv.writeIf(key, entry, prev && !renew ? -1 : this.opts.ttlMs, json ?? null, this.index(entry.t));
      if (r.written) {
        this.size = r.size;
        return;
      }
    }
    throw new Error(`shared store: set of ${this.opts.prefix} kept conflicting`);
  }

  delete(key: string): Promise<boolean> {
    return this.kv.removeFrom(key, this.opts.prefix);
  }

  /** Live entries, oldest first. */
  async entries(): Promise<StoredEntry<T>[]> {
    const now = this.opts.now();
    const out: StoredEntry<T>[] = [];
    for await (const [, raw] of this.kv.scan(this.opts.prefix + "_")) {
      const e = raw as StoredEntry<T>;
      if (e && typeof e === "object" && typeof e.t === "number" && !(e.e && e.e <= now)) out.push(e);
    }
    this.size = out.length;
    return out.sort((a, b) => a.t - b.t);
  }

  async clear(): Promise<void> {
    const keys: string[] = [];
    for await (const [k] of this.kv.scan(this.opts.prefix + "_")) keys.push(k);
    for (const k of keys) await this.kv.removeFrom(k, this.opts.prefix);
    this.size = 0;
  }
}
