/**
 * A bounded, expiring key/value map persisted entry by entry in a key/value backend (a Node-RED
 * context store through nodes/shared/context.ts, or a Map in unit tests).
 *
 * - Keys are hashed (lib/ids.ts hashedKey): ERP numbers never become context property paths.
 * - The whole index lives in memory once loaded, so check-and-insert ({@link BoundedStore.claim}) is
 *   atomic within the process: no two concurrent messages both see "first time".
 * - Every write stores a new object (Node-RED does not persist in-place mutation of a context value).
 * - Bounded: at most `maxEntries` (oldest evicted first) and entries expire after `ttlMs`.
 * - On a store shared by several processes (Redis, a `SharedKvStore`) there is no in-memory index: every call goes
 *   to the store and claims are atomic across processes (lib/shared-store.ts).
 */
import { hashedKey } from "./ids";
import { shallowCopy } from "./json-copy";
import { isSharedKv, SharedBounded } from "./shared-store";

/** The minimal asynchronous key/value contract (Node-RED context callback API, promisified). */
export interface KvBackend {
  get(key: string): Promise<unknown>;
  /** `undefined` deletes the key. */
  set(key: string, value: unknown): Promise<void>;
  keys(): Promise<string[]>;
}

/**
 * The store seam every node's state goes through: get, set (optionally expiring), an atomic claim with
 * expiry, delete and a scan by key prefix, over one scope (a node's or the global context). Values are
 * JSON-serialisable. Shaped so that a shared store can back it: on Redis, `claim` is
 * `SET key value NX PX ttlMs`, `set` with a TTL is `SET key value PX ttlMs`, `scan` is `SCAN MATCH prefix*`.
 *
 * Implementations: {@link MapBackend} (process memory, unit tests), {@link backendStore} (any Node-RED
 * context store through the context API, best effort), and the package's durable store
 * (nodes/store/kv.ts: committed before each promise resolves).
 */
export interface KvStore extends KvBackend {
  /** True when a write whose promise has resolved survives a crash (kill -9) of the process. */
  readonly durable: boolean;
  /** The live value, or undefined (absent or expired). */
  get(key: string): Promise<unknown>;
  /**
   * Write a value (`undefined` deletes). Resolves once the store has accepted it (committed, for a durable store).
   * @param ttlMs lifetime in ms; 0 or absent = no expiry
   * @throws TypeError when the value is not JSON-serialisable (durable store)
   */
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  /**
   * Insert `value` only if `key` is free or expired; atomic against every other claim through the same
   * store in this process (and across processes for a shared store).
   * @param ttlMs lifetime of the claim in ms; 0 = until deleted
   * @returns true when this call took the key
   */
  claim(key: string, value: unknown, ttlMs: number): Promise<boolean>;
  /** Delete a key. @returns whether a live value was there */
  delete(key: string): Promise<boolean>;
  /** Live entries whose key starts with `prefix` (order unspecified; expired entries skipped). */
  scan(prefix: string): AsyncIterable<[string, unknown]>;
  /** All live keys of the scope. */
  keys(): Promise<string[]>;
}

/** Envelope of an expiring value in a store that has no expiry of its own (the context-API adapter). */
interface Expiring {
  $mlcExp: number;
  v: unknown;
}
function isExpiring(x: unknown): x is Expiring {
  return x !== null && typeof x === "object" && typeof (x as Expiring).$mlcExp === "number" && "v" in (x as object) && Object.keys(x as object).length === 2;
}

/**
 * A {@link KvStore} over any {@link KvBackend} (a Node-RED context store through the context API).
 * Best effort: durable only as far as that store is (`durable` says what the caller was told); claims are
 * serialised through this adapter, so they are atomic among its users in this process only. Expiring
 * values are kept as `{ $mlcExp, v }` and unwrapped on read.
 */
export function backendStore(backend: KvBackend, opts: { durable?: boolean; now?: () => number } = {}): KvStore {
  const now = opts.now ?? Date.now;
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => undefined);
    return run;
  };
  const unwrap = (raw: unknown): unknown => {
    if (!isExpiring(raw)) return raw;
    return raw.$mlcExp > now() ? raw.v : undefined;
  };
  const wrap = (value: unknown, ttlMs?: number): unknown => (value !== undefined && ttlMs && ttlMs > 0 ? { $mlcExp: now() + ttlMs, v: value } : value);
  return {
    durable: opts.durable ?? false,
    get: async (key) => unwrap(await backend.get(key)),
    set: (key, value, ttlMs) => serial(() => backend.set(key, wrap(value, ttlMs))),
    claim: (key, value, ttlMs) =>
      serial(async () => {
        if (unwrap(await backend.get(key)) !== undefined) return false;
        await backend.set(key, wrap(value ?? null, ttlMs));
        return true;
      }),
    delete: (key) =>
      serial(async () => {
        const had = unwrap(await backend.get(key)) !== undefined;
        await backend.set(key, undefined);
        return had;
      }),
    keys: async () => {
      const out: string[] = [];
      for (const k of await backend.keys()) if (unwrap(await backend.get(k)) !== undefined) out.push(k);
      return out;
    },
    scan: (prefix) => ({
      async *[Symbol.asyncIterator]() {
        for (const k of await backend.keys()) {
          if (!k.startsWith(prefix)) continue;
          const v = unwrap(await backend.get(k));
          if (v !== undefined) yield [k, v] as [string, unknown];
        }
      },
    }),
  };
}

/** What is stored per key: value, creation time (ms since epoch), expiry (ms since epoch, 0 = never). */
export interface StoredEntry<T> {
  v: T;
  t: number;
  e: number;
  /** Original (unhashed) id, kept only when the store is asked to (`keepIds`). */
  id?: string;
}

export interface BoundedStoreOptions<T = unknown> {
  /** Key prefix, [A-Za-z0-9]+; separates several stores in one context scope. */
  prefix: string;
  /** Lifetime of an entry, ms; 0 = no expiry. */
  ttlMs: number;
  /** Maximum number of entries; the oldest are evicted first. */
  maxEntries: number;
  /** Keep the original id inside the entry (for listings); off for anything that may be personal data. */
  keepIds?: boolean;
  /**
   * Called with each entry that leaves the index because it expired or was evicted (not for deletes, clear or
   * overwrites), so an owner's own indexes can follow without rescanning. Local stores only (a shared store expires
   * rows itself). Must not throw.
   */
  onDrop?: (entry: StoredEntry<T>) => void;
  now?: () => number;
}

/**
 * A Map-backed {@link KvStore}, for unit tests and memory-only use (not durable). `map` holds the values
 * as stored; expiries are kept beside them.
 */
export class MapBackend implements KvStore {
  readonly durable = false;
  readonly map = new Map<string, unknown>();
  private readonly expiries = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}
  private live(key: string): boolean {
    const at = this.expiries.get(key);
    if (at !== undefined && at <= this.now()) {
      this.map.delete(key);
      this.expiries.delete(key);
    }
    return this.map.has(key);
  }
  async get(key: string): Promise<unknown> {
    return this.live(key) ? this.map.get(key) : undefined;
  }
  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    this.expiries.delete(key);
    if (value === undefined) {
      this.map.delete(key);
      return;
    }
    this.map.set(key, value);
    if (ttlMs && ttlMs > 0) this.expiries.set(key, this.now() + ttlMs);
  }
  async claim(key: string, value: unknown, ttlMs: number): Promise<boolean> {
    if (this.live(key)) return false;
    await this.set(key, value ?? null, ttlMs);
    return true;
  }
  async delete(key: string): Promise<boolean> {
    const had = this.live(key);
    await this.set(key, undefined);
    return had;
  }
  async keys(): Promise<string[]> {
    return [...this.map.keys()].filter((k) => this.live(k));
  }
  scan(prefix: string): AsyncIterable<[string, unknown]> {
    const map = this.map;
    const live = (k: string): boolean => this.live(k);
    return {
      async *[Symbol.asyncIterator]() {
        for (const k of [...map.keys()]) if (k.startsWith(prefix) && live(k)) yield [k, map.get(k)] as [string, unknown];
      },
    };
  }
}

/** `entry` with value `v` (a new object; creation time, expiry and id kept). */
function withValue<T>(entry: StoredEntry<T>, v: T): StoredEntry<T> {
  const next = shallowCopy(entry);
  next.v = v;
  return next;
}

/** How many id → key hashes a {@link BoundedStore} remembers (then it starts over). */
const RECENT_KEYS = 1024;

export class BoundedStore<T> {
  private readonly index = new Map<string, StoredEntry<T>>();
  private readonly recentKeys = new Map<string, string>();
  private readonly backend: KvBackend;
  private readonly opts: Required<Omit<BoundedStoreOptions<T>, "now" | "onDrop">> & { now: () => number; onDrop?: (entry: StoredEntry<T>) => void };
  /** Set when the backend is shared across processes: every call is delegated to it. */
  private readonly shared?: SharedBounded<T>;
  /** Resolves when existing entries have been read from the backend. */
  readonly ready: Promise<void>;
  private loaded = false;
  /** Iterator over the index's keys, oldest first, kept across evictions (see {@link oldestKey}). */
  private oldest?: IterableIterator<string>;

  constructor(backend: KvBackend, opts: BoundedStoreOptions<T>) {
    if (!/^[A-Za-z0-9]+$/.test(opts.prefix)) throw new Error(`store prefix must be alphanumeric: ${opts.prefix}`);
    this.backend = backend;
    this.opts = { keepIds: false, now: Date.now, ...opts };
    if (isSharedKv(backend)) {
      this.shared = new SharedBounded<T>(backend, this.opts);
      this.ready = Promise.resolve();
    } else this.ready = this.load();
  }

  /**
   * Store key of an id. The last ids' keys are remembered: one send reads and writes the same id several times
   * (claim, then update), and each key is a SHA-256.
   */
  private keyOf(id: string): string {
    let key = this.recentKeys.get(id);
    if (key === undefined) {
      key = hashedKey(this.opts.prefix, id);
      if (this.recentKeys.size >= RECENT_KEYS) this.recentKeys.clear();
      this.recentKeys.set(id, key);
    }
    return key;
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
    this.loaded = true;
  }

  /** Whether {@link ready} has resolved (the `…Now` methods may be used). */
  get isLoaded(): boolean {
    return this.loaded;
  }

  /** True when the backend is shared by several processes (no in-memory index; see lib/shared-store.ts). */
  get isShared(): boolean {
    return this.shared !== undefined;
  }

  /** Number of live entries. */
  get size(): number {
    if (this.shared) return this.shared.size;
    return this.index.size;
  }

  /**
   * The live entry under `key`, or undefined. An expired entry leaves the index at once; its row is
   * deleted by the caller: through `drops` (then awaited with {@link drop}), or by overwriting it.
   */
  private live(key: string, drops?: string[]): StoredEntry<T> | undefined {
    const e = this.index.get(key);
    if (!e) return undefined;
    if (e.e && e.e <= this.opts.now()) {
      this.index.delete(key);
      this.opts.onDrop?.(e);
      drops?.push(key);
      return undefined;
    }
    return e;
  }

  /**
   * Delete the rows of keys that left the index. Every delete is issued before this returns (so a later
   * write of the same key is ordered after it); a key written again meanwhile is skipped.
   */
  private drop(keys: string[]): Promise<void> {
    const issued = keys.filter((k) => !this.index.has(k)).map((k) => this.backend.set(k, undefined));
    return issued.length === 0 ? Promise.resolve() : Promise.all(issued).then(() => undefined);
  }

  async get(id: string): Promise<T | undefined> {
    if (this.shared) return this.shared.get(this.keyOf(id));
    await this.ready;
    const drops: string[] = [];
    const v = this.live(this.keyOf(id), drops)?.v;
    await this.drop(drops);
    return v;
  }

  async has(id: string): Promise<boolean> {
    if (this.shared) return (await this.shared.get(this.keyOf(id))) !== undefined;
    await this.ready;
    const drops: string[] = [];
    const found = this.live(this.keyOf(id), drops) !== undefined;
    await this.drop(drops);
    return found;
  }

  /**
   * Insert `value` under `id` unless a live entry exists. Atomic within the process. Resolves once the
   * backend has accepted the write (committed, for a durable store) and any eviction it caused.
   * @returns true when this call inserted (first time), false when `id` was already present
   */
  async claim(id: string, value: T): Promise<boolean> {
    if (this.shared) return this.shared.claim(id, this.keyOf(id), value);
    await this.ready;
    const r = this.claimNow(id, value);
    await r.committed;
    return r.first;
  }

  /**
   * {@link claim} decided and issued in the current turn, for callers that must order writes or batch them into one
   * commit (a durable store commits the writes issued in one event turn together): the decision is returned at once,
   * `committed` resolves once the write (and any eviction) is committed.
   * @throws Error when called before {@link ready} resolved
   */
  claimNow(id: string, value: T): { first: boolean; committed: Promise<void> } {
    this.assertLoaded();
    const key = this.keyOf(id);
    if (this.live(key)) return { first: false, committed: Promise.resolve() };
    return { first: true, committed: this.write(key, this.newEntry(id, value)) };
  }

  /**
   * {@link claimNow} on any backend: on a local store decided and issued in this turn (after {@link ready}); on a shared
   * store decided by the store itself, `committed` then already resolved.
   */
  async claimIssued(id: string, value: T): Promise<{ first: boolean; committed: Promise<void> }> {
    if (this.shared) return { first: await this.shared.claim(id, this.keyOf(id), value), committed: Promise.resolve() };
    if (!this.loaded) await this.ready;
    return this.claimNow(id, value);
  }

  /** {@link updateNow} on any backend (see {@link claimIssued}; on a shared store `fn` may run more than once). */
  async updateIssued(id: string, fn: (current: T | undefined) => T | undefined): Promise<{ written: boolean; committed: Promise<void> }> {
    if (this.shared) return { written: await this.shared.update(id, this.keyOf(id), fn), committed: Promise.resolve() };
    if (!this.loaded) await this.ready;
    return this.updateNow(id, fn);
  }

  /**
   * Atomic read-modify-write: `fn` sees the current value (undefined when absent) and returns the new
   * value, or undefined to leave the entry unchanged. No other call interleaves between read and write. On a shared
   * store `fn` may run more than once (compare-and-set retried after another process's write): only the last call's
   * result is written, so a caller that records something from inside `fn` must reset it at the start of `fn`.
   * @returns true when a new value was written
   */
  async update(id: string, fn: (current: T | undefined) => T | undefined): Promise<boolean> {
    if (this.shared) return this.shared.update(id, this.keyOf(id), fn);
    await this.ready;
    const r = this.updateNow(id, fn);
    await r.committed;
    return r.written;
  }

  /**
   * {@link update} decided and issued in the current turn (see {@link claimNow}).
   * @throws Error when called before {@link ready} resolved; what `fn` throws (nothing written)
   */
  updateNow(id: string, fn: (current: T | undefined) => T | undefined): { written: boolean; committed: Promise<void> } {
    this.assertLoaded();
    const key = this.keyOf(id);
    const drops: string[] = [];
    const prev = this.live(key, drops);
    const next = fn(prev?.v);
    if (next === undefined) return { written: false, committed: this.drop(drops) };
    const entry: StoredEntry<T> = prev ? withValue(prev, next) : this.newEntry(id, next);
    return { written: true, committed: this.write(key, entry) };
  }

  /** Insert or replace (keeps the original creation time and expiry of an existing entry unless `renew`). */
  async set(id: string, value: T, renew = false): Promise<void> {
    if (this.shared) return this.shared.set(id, this.keyOf(id), value, renew);
    await this.ready;
    await this.setNow(id, value, renew);
  }

  /**
   * {@link set} issued in the current turn (see {@link claimNow}); resolves once committed.
   * @throws Error when called before {@link ready} resolved
   */
  setNow(id: string, value: T, renew = false): Promise<void> {
    this.assertLoaded();
    const key = this.keyOf(id);
    const prev = this.live(key);
    const entry: StoredEntry<T> = prev && !renew ? withValue(prev, value) : this.newEntry(id, value);
    if (!prev || renew) this.index.delete(key);
    return this.write(key, entry);
  }

  /** Put `entry` in the index and issue its row and the evictions it causes; resolves once all are committed. */
  private write(key: string, entry: StoredEntry<T>): Promise<void> {
    this.index.set(key, entry);
    const row = this.backend.set(key, entry);
    // Below the bound (the usual case) nothing is evicted: the row's own promise, without a Promise.all around it.
    if (this.index.size <= this.opts.maxEntries) return row;
    return Promise.all([row, this.evict()]).then(() => undefined);
  }

  private assertLoaded(): void {
    if (!this.loaded) throw new Error("BoundedStore used before it was loaded (await ready first)");
  }

  /** Delete an entry; resolves once the backend has deleted its row. @returns whether it was present */
  async delete(id: string): Promise<boolean> {
    if (this.shared) return this.shared.delete(this.keyOf(id));
    await this.ready;
    const key = this.keyOf(id);
    const had = this.index.delete(key);
    await this.backend.set(key, undefined);
    return had;
  }

  /** Live entries, oldest first (expired ones found on the way are deleted before this resolves). */
  async entries(): Promise<StoredEntry<T>[]> {
    if (this.shared) return this.shared.entries();
    await this.ready;
    const out: StoredEntry<T>[] = [];
    const drops: string[] = [];
    for (const k of [...this.index.keys()]) {
      const e = this.live(k, drops);
      if (e) out.push(e);
    }
    await this.drop(drops);
    return out;
  }

  /** Drop expired entries now (also happens lazily on access); resolves once their rows are deleted. @returns how many were removed */
  async sweep(): Promise<number> {
    if (this.shared) return 0; // the shared store expires rows itself
    await this.ready;
    const now = this.opts.now();
    const drops: string[] = [];
    for (const [k, e] of [...this.index]) {
      if (e.e && e.e <= now) {
        this.index.delete(k);
        this.opts.onDrop?.(e);
        drops.push(k);
      }
    }
    await this.drop(drops);
    return drops.length;
  }

  /** Remove every entry of this store; resolves once every row is deleted. */
  async clear(): Promise<void> {
    if (this.shared) return this.shared.clear();
    await this.ready;
    const keys = [...this.index.keys()];
    this.index.clear();
    this.oldest = undefined;
    await this.drop(keys);
  }

  private newEntry(id: string, value: T): StoredEntry<T> {
    const t = this.opts.now();
    const entry: StoredEntry<T> = { v: value, t, e: this.opts.ttlMs > 0 ? t + this.opts.ttlMs : 0 };
    if (this.opts.keepIds) entry.id = id;
    return entry;
  }

  /**
   * The key of the oldest entry (the index is in insertion order). One iterator is kept across calls: a Map keeps
   * deleted slots until it is rehashed, and a fresh iterator would step over all of them again on every eviction
   * (measured: 6 µs per eviction at 10,000 entries, 33 µs at 100,000; with the kept iterator under 1 µs). Every key
   * it has passed was evicted, so the next one it yields is the oldest live entry; an entry renewed by {@link setNow}
   * is deleted and inserted again, so the iterator meets it at its new place.
   */
  private oldestKey(): string | undefined {
    for (let fresh = 0; fresh < 2; fresh++) {
      this.oldest ??= this.index.keys();
      const next = this.oldest.next();
      if (!next.done) return next.value;
      this.oldest = undefined; // exhausted (the index was emptied once): an exhausted iterator never yields again
    }
    return undefined;
  }

  /** Evict the oldest entries above `maxEntries` (deletes issued now); resolves once their rows are deleted. */
  private evict(): Promise<void> {
    const drops: string[] = [];
    while (this.index.size > this.opts.maxEntries) {
      const oldest = this.oldestKey();
      if (oldest === undefined) break; // not reached: the index is not empty
      const entry = this.index.get(oldest) as StoredEntry<T>;
      this.index.delete(oldest);
      this.opts.onDrop?.(entry);
      drops.push(oldest);
    }
    return this.drop(drops);
  }
}
