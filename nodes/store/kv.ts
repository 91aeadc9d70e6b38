/**
 * The store seam ({@link KvStore}) on the durable engine, for one context scope: every promise resolves
 * only after LMDB has committed the write (flushed too, in the default "flush" durability). A claim is
 * decided synchronously against committed and in-flight writes, so it is atomic in this process.
 * The same rows are what Node-RED's context API shows for that scope (Context sidebar, function nodes).
 */
import type { KvStore } from "../lib/store";
import type { StoreEngine } from "./engine";

export class EngineKvStore implements KvStore {
  readonly durable = true;

  /**
   * @param engine the open engine (see nodes/store/index.ts `engineFor`)
   * @param scope a Node-RED context scope id: `<nodeId>:<flowId>`, `<flowId>` or `global`
   */
  constructor(
    private readonly engine: StoreEngine,
    readonly scope: string,
  ) {}

  async get(key: string): Promise<unknown> {
    return this.engine.get(this.scope, key);
  }

  /** @throws TypeError when the value is not JSON-serialisable */
  set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    try {
      return this.engine.set(this.scope, key, value, ttlMs ?? 0);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  claim(key: string, value: unknown, ttlMs: number): Promise<boolean> {
    try {
      return this.engine.claim(this.scope, key, value, ttlMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  delete(key: string): Promise<boolean> {
    try {
      return this.engine.delete(this.scope, key);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async keys(): Promise<string[]> {
    return this.engine.keys(this.scope);
  }

  scan(prefix: string): AsyncIterable<[string, unknown]> {
    const engine = this.engine;
    const scope = this.scope;
    return {
      async *[Symbol.asyncIterator]() {
        for (const entry of engine.scan(scope, prefix)) yield entry;
      },
    };
  }
}
