/**
 * The store seam ({@link KvStore}, and the {@link SharedKvStore} writes a bounded store needs) on Redis, for one
 * context scope. Every promise resolves once Redis has applied the command; a command while Redis is unreachable
 * rejects (never waits), so callers refuse work instead of acknowledging it. Same expiry semantics as the LMDB
 * engine: a TTL'd row disappears at its expiry (Redis PX), a set without a TTL clears it.
 */
import type { SharedKvStore } from "../lib/shared-store";
import type { RedisEngine } from "./redis";

/** JSON like Node-RED's stores; `undefined` means "delete". @throws TypeError on a cycle or BigInt */
function toJson(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}

export class RedisKvStore implements SharedKvStore {
  readonly durable = true;
  readonly shared = true;

  /**
   * @param engine the open Redis engine (see nodes/store/registry.ts `redisEngineFor`)
   * @param scope a Node-RED context scope id: `<nodeId>:<flowId>`, `<flowId>` or `global`
   */
  constructor(
    readonly engine: RedisEngine,
    readonly scope: string,
  ) {}

  async get(key: string): Promise<unknown> {
    const json = await this.engine.readJson(this.scope, key);
    return json === undefined ? undefined : JSON.parse(json);
  }

  getJson(key: string): Promise<string | undefined> {
    return this.engine.readJson(this.scope, key);
  }

  /** @throws TypeError when the value is not JSON-serialisable; the store is unchanged */
  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    const json = toJson(value);
    if (json === undefined) {
      await this.engine.remove(this.scope, key);
      return;
    }
    await this.engine.write(this.scope, key, json, ttlMs && ttlMs > 0 ? ttlMs : 0);
  }

  /** `SET key value NX [PX ttlMs]`. */
  async claim(key: string, value: unknown, ttlMs: number): Promise<boolean> {
    const json = toJson(value ?? null) as string;
    return (await this.engine.write(this.scope, key, json, ttlMs > 0 ? ttlMs : 0, { kind: "absent" })).written;
  }

  delete(key: string): Promise<boolean> {
    return this.engine.remove(this.scope, key);
  }

  keys(): Promise<string[]> {
    return this.engine.scanKeys(this.scope, "");
  }

  /** `SCAN MATCH` then `MGET` in batches of 500; rows that expire in between are skipped. */
  scan(prefix: string): AsyncIterable<[string, unknown]> {
    const engine = this.engine;
    const scope = this.scope;
    return {
      async *[Symbol.asyncIterator]() {
        for (const [k, json] of await engine.scanJson(scope, prefix)) yield [k, JSON.parse(json)] as [string, unknown];
      },
    };
  }

  async writeIf(key: string, value: unknown, ttlMs: number, ifJson: string | null | undefined, index?: { name: string; at: number; max: number }): Promise<{ written: boolean; size: number }> {
    const json = toJson(value ?? null) as string;
    const cond = ifJson === undefined ? { kind: "any" as const } : ifJson === null ? { kind: "absent" as const } : { kind: "equals" as const, expect: ifJson };
    return this.engine.write(this.scope, key, json, ttlMs, cond, index);
  }

  removeFrom(key: string, indexName?: string, ifJson?: string): Promise<boolean> {
    return this.engine.remove(this.scope, key, indexName, ifJson);
  }

  renewIf(key: string, ifJson: string, ttlMs: number): Promise<boolean> {
    return this.engine.renew(this.scope, key, ifJson, ttlMs);
  }
}
