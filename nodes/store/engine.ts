/**
 * The durable store engine: one LMDB environment (lmdb-js, https://github.com/kriszyp/lmdb-js) per
 * directory, holding Node-RED context values row by row. A write's promise resolves only once LMDB has
 * committed it (and, by default, flushed it to disk), so "acknowledged" means "survives a crash".
 *
 * Layout (four named databases in one environment; the operations of one change are queued in one event
 * turn, so lmdb-js commits them in one transaction):
 * - `kv`     [scope, key] → JSON text of the value (values are JSON-serialisable, like Node-RED's stores)
 * - `exp`    [scope, key] → expiry, ms since epoch (only for rows written with a TTL)
 * - `due`    [expiry, scope, key] → 1 (expiry index, so a sweep reads only what has expired)
 * - `scopes` scope → 1 (so `clean` walks scopes, not rows)
 *
 * Reads are synchronous (LMDB is memory-mapped). Writes are asynchronous and batched by lmdb-js; until a
 * write is committed its new value sits in a small in-process overlay, so reads see their own writes
 * and a claim (check + insert) is decided synchronously: atomic among all callers in this process.
 * Memory stays bounded: the overlay holds only uncommitted writes; rows live in the file, not the heap;
 * nothing rewrites the whole store.
 *
 * Not for several processes on one directory at once (LMDB allows it, but claims are atomic per process
 * only); the shared-store step is Redis (`SET NX PX`).
 */
import fs from "node:fs";
import path from "node:path";
import { open, type Database, type RootDatabase } from "lmdb";
import { engines } from "./registry";

/** How far a write has gone when its promise resolves. */
export type Durability = "flush" | "commit";

export interface EngineOptions {
  /** Directory of the LMDB environment; created when missing. */
  dir: string;
  /**
   * "flush" (default): resolve after the commit is flushed to disk (fsync): survives power loss.
   * "commit": resolve when committed and visible; survives a killed process (kill -9, OOM), the OS
   * flushes shortly after. Measured no faster than "flush" here (lmdb-js flushes in the background either way), so
   * "flush" stays the default (README "What survives a crash" has the figures).
   */
  durability?: Durability;
  /** Interval of the expiry sweep, ms; 0 = no timer (sweep() may still be called). Default 60000. */
  sweepIntervalMs?: number;
  /** Clock, ms since epoch (tests). */
  now?: () => number;
}

type Key = [string, string];
interface Pending {
  /** JSON text, or undefined for a delete. */
  json: string | undefined;
  /** Expiry ms since epoch, 0 = none. */
  at: number;
}

/** Serialise like Node-RED's stores: JSON; `undefined` (or a function) means "delete". @throws TypeError on a cycle or BigInt */
export function toJson(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  return JSON.stringify(value);
}

const SEP = "\u0000";

export class StoreEngine {
  readonly dir: string;
  readonly durability: Durability;
  private readonly root: RootDatabase;
  private readonly kv: Database<string, Key>;
  private readonly exp: Database<number, Key>;
  private readonly due: Database<number, [number, string, string]>;
  private readonly scopesDb: Database<number, string>;
  private readonly overlay = new Map<string, Pending>();
  private readonly scopes = new Set<string>();
  /**
   * Scopes that have (or may have) rows with an expiry. Rows of other scopes have no `exp` entry, so their reads and
   * writes skip the expiry look-up (one LMDB read per write saved for stores that never expire rows).
   */
  private readonly ttlScopes = new Set<string>();
  private readonly now: () => number;
  private sweeper?: NodeJS.Timeout;
  private sweeping?: Promise<number>;
  private closed = false;
  /** Last error of a write nobody awaited (a Node-RED synchronous `set`); surfaced on the next awaited call. */
  private lastUnawaitedError?: Error;

  constructor(opts: EngineOptions) {
    this.dir = path.resolve(opts.dir);
    this.durability = opts.durability === "commit" ? "commit" : "flush";
    this.now = opts.now ?? Date.now;
    fs.mkdirSync(this.dir, { recursive: true });
    this.root = open({ path: this.dir, separateFlushed: this.durability === "commit" });
    this.kv = this.root.openDB<string, Key>({ name: "kv", encoding: "string" });
    this.exp = this.root.openDB<number, Key>({ name: "exp", encoding: "msgpack" });
    this.due = this.root.openDB<number, [number, string, string]>({ name: "due", encoding: "msgpack" });
    this.scopesDb = this.root.openDB<number, string>({ name: "scopes", encoding: "msgpack" });
    for (const s of this.scopesDb.getKeys()) this.scopes.add(s as string);
    for (const s of this.scopes) {
      for (const k of this.exp.getKeys({ start: [s, ""], limit: 1 })) if ((k as Key)[0] === s) this.ttlScopes.add(s);
    }
    const every = opts.sweepIntervalMs ?? 60000;
    if (every > 0) {
      this.sweeper = setInterval(() => {
        this.sweep().catch(() => undefined); // a failed sweep is retried at the next tick; rows stay hidden once expired
      }, every);
      this.sweeper.unref();
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Number of uncommitted writes (bounded by writes in flight). */
  get pendingWrites(): number {
    return this.overlay.size;
  }

  private ck(scope: string, key: string): string {
    return scope + SEP + key;
  }

  /** JSON text of a live row, or undefined (absent, deleted, or expired). Sees uncommitted writes. */
  readJson(scope: string, key: string): string | undefined {
    this.assertOpen();
    const p = this.overlay.get(this.ck(scope, key));
    if (p) return p.json !== undefined && (p.at === 0 || p.at > this.now()) ? p.json : undefined;
    const json = this.kv.get([scope, key]);
    if (json === undefined) return undefined;
    if (!this.ttlScopes.has(scope)) return json;
    const at = this.exp.get([scope, key]);
    if (at !== undefined && at <= this.now()) return undefined;
    return json;
  }

  /** Parsed value of a live row, or undefined. */
  get(scope: string, key: string): unknown {
    const json = this.readJson(scope, key);
    return json === undefined ? undefined : JSON.parse(json);
  }

  /**
   * Write a row (value `undefined` deletes it). The new value is visible to reads at once; the promise
   * resolves when LMDB has committed (and by default flushed) it.
   * @param ttlMs lifetime in ms; 0 or absent = no expiry
   * @throws TypeError when the value is not JSON-serialisable (cycle, BigInt); the store is unchanged
   */
  set(scope: string, key: string, value: unknown, ttlMs = 0): Promise<void> {
    this.assertOpen();
    const json = toJson(value);
    return this.writeJson(scope, key, json, json !== undefined && ttlMs > 0 ? this.now() + ttlMs : 0);
  }

  /**
   * Insert `value` unless a live row exists. Decided synchronously (atomic among callers in this
   * process); resolves once the insert is committed.
   * @param ttlMs lifetime of the claim in ms; 0 = until deleted
   * @returns true when this call inserted (the key was free or expired)
   */
  async claim(scope: string, key: string, value: unknown, ttlMs = 0): Promise<boolean> {
    this.assertOpen();
    if (this.readJson(scope, key) !== undefined) return false;
    const json = toJson(value ?? null) as string;
    await this.writeJson(scope, key, json, ttlMs > 0 ? this.now() + ttlMs : 0);
    return true;
  }

  /** Delete a row. @returns whether a live row was there */
  async delete(scope: string, key: string): Promise<boolean> {
    const had = this.readJson(scope, key) !== undefined;
    await this.writeJson(scope, key, undefined, 0);
    return had;
  }

  /** Top-level keys of a scope (live rows only), in key order. Reads keys only, not values. */
  keys(scope: string): string[] {
    this.assertOpen();
    const now = this.now();
    const out = new Set<string>();
    const expiring = this.ttlScopes.has(scope);
    for (const key of this.kv.getKeys({ start: [scope, ""] })) {
      const [s, k] = key as Key;
      if (s !== scope) break;
      const at = expiring ? this.exp.get([s, k]) : undefined;
      if (at === undefined || at > now) out.add(k);
    }
    for (const [ck, p] of this.overlay) {
      const i = ck.indexOf(SEP);
      if (ck.slice(0, i) !== scope) continue;
      const k = ck.slice(i + 1);
      if (p.json === undefined || (p.at !== 0 && p.at <= now)) out.delete(k);
      else out.add(k);
    }
    return [...out].sort();
  }

  /** Live rows of a scope whose key starts with `prefix`, in key order, values parsed. */
  scan(scope: string, prefix: string): [string, unknown][] {
    return this.entries(scope, prefix).map(([k, j]) => [k, JSON.parse(j)]);
  }

  private entries(scope: string, prefix: string): [string, string][] {
    this.assertOpen();
    const now = this.now();
    const out = new Map<string, string>();
    const expiring = this.ttlScopes.has(scope);
    for (const { key, value } of this.kv.getRange({ start: [scope, prefix] })) {
      const [s, k] = key as Key;
      if (s !== scope || !k.startsWith(prefix)) break;
      const at = expiring ? this.exp.get([s, k]) : undefined;
      if (at !== undefined && at <= now) continue;
      out.set(k, value);
    }
    for (const [ck, p] of this.overlay) {
      const i = ck.indexOf(SEP);
      if (ck.slice(0, i) !== scope) continue;
      const k = ck.slice(i + 1);
      if (!k.startsWith(prefix)) continue;
      if (p.json === undefined || (p.at !== 0 && p.at <= now)) out.delete(k);
      else out.set(k, p.json);
    }
    return [...out].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** Remove every row of one scope. */
  async deleteScope(scope: string): Promise<void> {
    this.assertOpen();
    for (const ck of [...this.overlay.keys()]) if (ck.startsWith(scope + SEP)) this.overlay.delete(ck);
    this.scopes.delete(scope);
    await this.root.transaction(() => {
      this.removeRange(scope);
      this.scopesDb.remove(scope);
    });
  }

  /**
   * Node-RED's clean: drop node and flow scopes whose id (the part before ":") is not in `activeIds`;
   * "global" is never cleaned.
   */
  async clean(activeIds: string[]): Promise<void> {
    const active = new Set(activeIds);
    for (const scope of [...this.scopes]) {
      if (scope === "global") continue;
      if (!active.has(scope.split(":")[0])) await this.deleteScope(scope);
    }
  }

  /** Delete rows whose expiry has passed (they are already invisible to reads). @returns rows removed */
  sweep(): Promise<number> {
    if (this.closed) return Promise.resolve(0);
    if (this.sweeping) return this.sweeping;
    const run = async (): Promise<number> => {
      const now = this.now();
      let removed = 0;
      // Bounded batches, so a large backlog never holds one long transaction.
      for (;;) {
        const batch: [number, string, string][] = [];
        for (const k of this.due.getKeys({ end: [now, "\uffff", "\uffff"], limit: 1000 })) batch.push(k as [number, string, string]);
        if (batch.length === 0 || this.closed) return removed;
        await this.root.transaction(() => {
          for (const [at, s, k] of batch) {
            this.due.remove([at, s, k]);
            if (this.exp.get([s, k]) === at) {
              this.kv.remove([s, k]);
              this.exp.remove([s, k]);
              removed++;
            }
          }
        });
        if (batch.length < 1000) return removed;
      }
    };
    this.sweeping = run().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** Wait for every write issued so far to be committed (and flushed, in "flush" mode). */
  async flushed(): Promise<void> {
    if (this.closed) return;
    await this.root.committed;
    if (this.durability === "flush") await this.root.flushed;
  }

  /** Stop the sweeper, wait for pending writes, close the environment. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.sweeper) clearInterval(this.sweeper);
    await this.sweeping?.catch(() => undefined);
    await this.flushed();
    this.closed = true;
    await this.root.close();
  }

  /** Error of the last write that nobody awaited (cleared when read). */
  takeUnawaitedError(): Error | undefined {
    const e = this.lastUnawaitedError;
    this.lastUnawaitedError = undefined;
    return e;
  }

  /** Record an error of a write nobody awaits (Node-RED's synchronous set) instead of rejecting unhandled. */
  noteUnawaited(p: Promise<unknown>): void {
    p.catch((err: unknown) => {
      this.lastUnawaitedError = err instanceof Error ? err : new Error(String(err));
    });
  }

  /**
   * Queue the puts/removes of one change. lmdb-js runs them on its write thread and commits every
   * operation queued in one event turn in one transaction (lmdb-js README, "Batching"), so the row, its
   * expiry and its index entry are committed together; nothing runs on the main thread meanwhile.
   */
  private writeJson(scope: string, key: string, json: string | undefined, at: number): Promise<void> {
    const ck = this.ck(scope, key);
    const k: Key = [scope, key];
    // The expiry in force: the latest uncommitted write's, else the committed one.
    const prev = this.overlay.get(ck);
    const oldAt = prev ? (prev.at > 0 ? prev.at : undefined) : this.ttlScopes.has(scope) ? this.exp.get(k) : undefined;
    if (at > 0) this.ttlScopes.add(scope);
    const pending: Pending = { json, at };
    this.overlay.set(ck, pending);
    const ops: Promise<unknown>[] = [];
    if (oldAt !== undefined && oldAt !== at) ops.push(this.due.remove([oldAt, scope, key]));
    if (json === undefined) {
      ops.push(this.kv.remove(k));
      if (oldAt !== undefined) ops.push(this.exp.remove(k));
    } else {
      ops.push(this.kv.put(k, json));
      if (at > 0) {
        if (oldAt !== at) ops.push(this.exp.put(k, at), this.due.put([at, scope, key], 1));
      } else if (oldAt !== undefined) ops.push(this.exp.remove(k));
      if (!this.scopes.has(scope)) {
        this.scopes.add(scope);
        ops.push(this.scopesDb.put(scope, 1));
      }
    }
    const settle = (): void => {
      if (this.overlay.get(ck) === pending) this.overlay.delete(ck);
    };
    // lmdb-js hands every unconditional write of one transaction the same commit promise: one op (a row without
    // expiry), or several that share it, need no Promise.all.
    const all = ops.every((op) => op === ops[0]) ? ops[0] : Promise.all(ops);
    return all.then(
      () => settle(),
      (err: unknown) => {
        settle();
        throw err;
      },
    );
  }

  private removeRange(scope: string): void {
    for (const key of this.kv.getKeys({ start: [scope, ""] })) {
      const [s, k] = key as Key;
      if (s !== scope) break;
      const at = this.exp.get([s, k]);
      if (at !== undefined) {
        this.due.remove([at, s, k]);
        this.exp.remove([s, k]);
      }
      this.kv.remove([s, k]);
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`ml-connector store ${this.dir} is closed`);
  }
}

/** Open (or share) the engine of a directory; pair every call with {@link releaseEngine}. */
export function acquireEngine(opts: EngineOptions): StoreEngine {
  const dir = path.resolve(opts.dir);
  const cur = engines().get(dir);
  if (cur && !cur.engine.isClosed) {
    cur.users++;
    return cur.engine as StoreEngine;
  }
  const engine = new StoreEngine({ ...opts, dir });
  engines().set(dir, { engine, users: 1 });
  return engine;
}

/** Release one user of an engine; the last one closes it. */
export async function releaseEngine(engine: StoreEngine): Promise<void> {
  const cur = engines().get(engine.dir);
  if (!cur || cur.engine !== engine) {
    await engine.close();
    return;
  }
  cur.users--;
  if (cur.users <= 0) {
    engines().delete(engine.dir);
    await engine.close();
  }
}
