/**
 * A bounded, expiring key/value map persisted entry by entry in a key/value backend (a Node-RED
 * context store through nodes/shared/context.ts, or a Map in unit tests).
 *
 * - Keys are hashed (lib/ids.ts hashedKey): ERP numbers never become context property paths.
 * - The whole index lives in memory once loaded, so check-and-insert ({@link BoundedStore.claim}) is
 *   atomic within the process: no two concurrent messages both see "first time".
 * - Every write stores a new object (Node-RED does not persist in-place mutation of a context value).
 * - Bounded: at most `maxEntries` (oldest evicted first) and entries expire after `ttlMs`.
 */
import { hashedKey } from "./ids";

/** The minimal asynchronous key/value contract (Node-RED context callback API, promisified). */
export interface KvBackend {
  get(key: string): Promise<unknown>;
  /** `undefined` deletes the key. */
  set(key: string, value: unknown): Promise<void>;
  keys(): Promise<string[]>;
}

/** What is stored per key: value, creation time (ms since epoch), expiry (ms since epoch, 0 = never). */
export interface StoredEntry<T> {
  v: T;
  t: number;
  e: number;
  /** Original (unhashed) id, kept only when the store is asked to (`keepIds`). */
  id?: string;
}

export interface BoundedStoreOptions {
  /** Key prefix, [A-Za-z0-9]+; separates several stores in one context scope. */
  prefix: string;
  /** Lifetime of an entry, ms; 0 = no expiry. */
  ttlMs: number;
  /** Maximum number of entries; the oldest are evicted first. */
  maxEntries: number;
  /** Keep the original id inside the entry (for listings); off for anything that may be personal data. */
  keepIds?: boolean;
  now?: () => number;
}

/** A Map-backed KvBackend, for unit tests and memory-only use. */
export class MapBackend implements KvBackend {
  readonly map = new Map<string, unknown>();
  async get(key: string): Promise<unknown> {
    return this.map.get(key);
  }
  async set(key: string, value: unknown): Promise<void> {
    if (value === undefined) this.map.delete(key);
    else this.map.set(key, value);
  }
  async keys(): Promise<string[]> {
    return [...this.map.keys()];
  }
}

export class BoundedStore<T> {
  private readonly index = new Map<string, StoredEntry<T>>();
  private readonly backend: KvBackend;
  private readonly opts: Required<Omit<BoundedStoreOptions, "now">> & { now: () => number };
  /** Resolves when existing entries have been read from the backend. */
  readonly ready: Promise<void>;

  constructor(backend: KvBackend, opts: BoundedStoreOptions) {
    if (!/^[A-Za-z0-9]+$/.test(opts.prefix)) throw new Error(`store prefix must be alphanumeric: ${opts.prefix}`);
    this.backend = backend;
    this.opts = { keepIds: false, now: Date.now, ...opts };
    this.ready = this.load();
  }

  private keyOf(id: string): string {
    return hashedKey(this.opts.prefix, id);
  }

  private async load(): Promise<void> {
    const now = this.opts.now();
    const keys = (await this.backend.keys()).filter((k) => k.startsWith(this.opts.prefix + "_"));
    const loaded: [string, StoredEntry<T>][] = [];
    for (const k of keys) {
      const raw = (await this.backend.get(k)) as StoredEntry<T> | undefined;
      if (!raw || typeof raw !== "object" || typeof raw.t !== "number") continue;
      if (raw.e && raw.e <= now) {
        await this.backend.set(k, undefined);
        continue;
      }
      loaded.push([k, raw]);
    }
    loaded.sort((a, b) => a[1].t - b[1].t);
    for (const [k, e] of loaded) this.index.set(k, e);
    await this.evict();
  }

  /** Number of live entries. */
  get size(): number {
    return this.index.size;
  }

  private live(key: string): StoredEntry<T> | undefined {
    const e = this.index.get(key);
    if (!e) return undefined;
    if (e.e && e.e <= this.opts.now()) {
      this.index.delete(key);
      void this.backend.set(key, undefined);
      return undefined;
    }
    return e;
  }

  async get(id: string): Promise<T | undefined> {
    await this.ready;
    return this.live(this.keyOf(id))?.v;
  }

  async has(id: string): Promise<boolean> {
    await this.ready;
    return this.live(this.keyOf(id)) !== undefined;
  }

  /**
   * Insert `value` under `id` unless a live entry exists. Atomic within the process.
   * @returns true when this call inserted (first time), false when `id` was already present
   */
  async claim(id: string, value: T): Promise<boolean> {
    await this.ready;
    const key = this.keyOf(id);
    if (this.live(key)) return false;
    const entry = this.newEntry(id, value);
    this.index.set(key, entry);
    await this.backend.set(key, entry);
    await this.evict();
    return true;
  }

  /**
   * Atomic read-modify-write: `fn` sees the current value (undefined when absent) and returns the new
   * value, or undefined to leave the entry unchanged. No other call interleaves between read and write.
   * @returns true when a new value was written
   */
  async update(id: string, fn: (current: T | undefined) => T | undefined): Promise<boolean> {
    await this.ready;
    const key = this.keyOf(id);
    const prev = this.live(key);
    const next = fn(prev?.v);
    if (next === undefined) return false;
    const entry: StoredEntry<T> = prev ? { ...prev, v: next } : this.newEntry(id, next);
    this.index.set(key, entry);
    await this.backend.set(key, entry);
    await this.evict();
    return true;
  }

  /** Insert or replace (keeps the original creation time and expiry of an existing entry unless `renew`). */
  async set(id: string, value: T, renew = false): Promise<void> {
    await this.ready;
    const key = this.keyOf(id);
    const prev = this.live(key);
    const entry: StoredEntry<T> = prev && !renew ? { ...prev, v: value } : this.newEntry(id, value);
    if (!prev || renew) this.index.delete(key);
    this.index.set(key, entry);
    await this.backend.set(key, entry);
    await this.evict();
  }

  async delete(id: string): Promise<boolean> {
    await this.ready;
    const key = this.keyOf(id);
    const had = this.index.delete(key);
    await this.backend.set(key, undefined);
    return had;
  }

  /** Live entries, oldest first. */
  async entries(): Promise<StoredEntry<T>[]> {
    await this.ready;
    const out: StoredEntry<T>[] = [];
    for (const k of [...this.index.keys()]) {
      const e = this.live(k);
      if (e) out.push(e);
    }
    return out;
  }

  /** Drop expired entries now (also happens lazily on access). @returns how many were removed */
  async sweep(): Promise<number> {
    await this.ready;
    const now = this.opts.now();
    let n = 0;
    for (const [k, e] of [...this.index]) {
      if (e.e && e.e <= now) {
        this.index.delete(k);
        await this.backend.set(k, undefined);
        n++;
      }
    }
    return n;
  }

  /** Remove every entry of this store. */
  async clear(): Promise<void> {
    await this.ready;
    for (const k of [...this.index.keys()]) await this.backend.set(k, undefined);
    this.index.clear();
  }

  private newEntry(id: string, value: T): StoredEntry<T> {
    const t = this.opts.now();
    const entry: StoredEntry<T> = { v: value, t, e: this.opts.ttlMs > 0 ? t + this.opts.ttlMs : 0 };
    if (this.opts.keepIds) entry.id = id;
    return entry;
  }

  private async evict(): Promise<void> {
    while (this.index.size > this.opts.maxEntries) {
      const oldest = this.index.keys().next().value as string;
      this.index.delete(oldest);
      await this.backend.set(oldest, undefined);
    }
  }
}
