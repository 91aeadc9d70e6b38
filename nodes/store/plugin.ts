/**
 * Node-RED context-store plugin over {@link StoreEngine}: the `open/close/get/set/keys/delete/clean`
 * contract of Node-RED's context stores (https://nodered.org/docs/api/context/ and
 * `@node-red/runtime/lib/nodes/context/memory.js`, whose behaviour it follows), with one difference that
 * is the point of it: a `set` callback fires only once the write is committed.
 *
 * - Keys are property paths (`a.b[0]`); a top-level key is one row, a nested set rewrites that row only.
 * - `get` returns a fresh copy (mutating it does not change the store; `set` it back).
 * - Synchronous `get`/`keys` (no callback) work; a synchronous `set` is applied at once and committed in
 *   the background (its error, if any, is returned by the next `set` that has a callback).
 * - Values are stored as JSON: what JSON cannot hold (functions, `undefined` members, cycles) is not
 *   stored; a cycle or a BigInt makes `set` fail with a TypeError instead of losing data silently.
 */
import { acquireEngine, releaseEngine, type StoreEngine } from "./engine";
import { getPath, parsePath, setPath } from "./path";
import { storeDir, type StoreConfig } from "./registry";

export { storeDir, type StoreConfig };

type Cb = (err?: Error | null, ...values: unknown[]) => void;

export class DurableContextStore {
  private engine?: StoreEngine;
  private readonly dir: string;

  constructor(private readonly config: StoreConfig = {}) {
    this.dir = storeDir(config);
  }

  /** The engine behind this store (open after `open()`). */
  get storeEngine(): StoreEngine | undefined {
    return this.engine;
  }

  open(): Promise<void> {
    try {
      this.engine = acquireEngine({ dir: this.dir, durability: this.config.durability, sweepIntervalMs: this.config.sweepIntervalMs });
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async close(): Promise<void> {
    const e = this.engine;
    this.engine = undefined;
    if (e) await releaseEngine(e);
  }

  private eng(): StoreEngine {
    if (!this.engine) throw new Error("ml-connector store is not open");
    return this.engine;
  }

  private getOne(scope: string, key: string): unknown {
    const segs = parsePath(key);
    const top = this.eng().get(scope, String(segs[0]));
    return segs.length === 1 ? top : getPath(top, segs.slice(1));
  }

  get(scope: string, key: string | string[], callback?: Cb): unknown {
    let values: unknown[];
    try {
      values = Array.isArray(key) ? key.map((k) => this.getOne(scope, k)) : [this.getOne(scope, key)];
    } catch (err) {
      if (!callback) throw err;
      callback(err as Error);
      return undefined;
    }
    if (callback) {
      callback(undefined, ...values);
      return undefined;
    }
    return Array.isArray(key) ? values : values[0];
  }

  private setOne(scope: string, key: string, value: unknown): Promise<void> {
    const segs = parsePath(key);
    const top = String(segs[0]);
    if (top === "__proto__") return Promise.resolve(); // Node-RED drops it too
    const e = this.eng();
    if (segs.length === 1) return e.set(scope, top, value);
    return e.set(scope, top, setPath(e.get(scope, top), segs.slice(1), value));
  }

  set(scope: string, key: string | string[], value: unknown, callback?: Cb): void {
    let done: Promise<unknown>;
    try {
      const pendingErr = callback ? this.engine?.takeUnawaitedError() : undefined;
      if (pendingErr) throw pendingErr;
      if (Array.isArray(key)) {
        const vals = Array.isArray(value) ? value : [value];
        done = Promise.all(key.map((k, i) => this.setOne(scope, k, i < vals.length ? vals[i] : null)));
      } else {
        done = this.setOne(scope, key, value);
      }
    } catch (err) {
      if (!callback) throw err;
      callback(err as Error);
      return;
    }
    if (callback) {
      done.then(
        () => callback(null),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
    } else {
      this.eng().noteUnawaited(done);
    }
  }

  keys(scope: string, callback?: (err: Error | null | undefined, keys?: string[]) => void): string[] | undefined {
    let keys: string[];
    try {
      keys = this.eng().keys(scope);
    } catch (err) {
      if (!callback) throw err;
      callback(err as Error);
      return undefined;
    }
    if (callback) {
      callback(null, keys);
      return undefined;
    }
    return keys;
  }

  async delete(scope: string): Promise<void> {
    await this.eng().deleteScope(scope);
  }

  async clean(activeNodes: string[]): Promise<void> {
    await this.eng().clean(activeNodes);
  }
}
