/**
 * `node-red-contrib-ml-connector/store`: a Node-RED context store that commits each write before its
 * `set` callback fires (LMDB through lmdb-js). In settings.js:
 *
 * ```js
 * contextStorage: {
 *   default: { module: require("node-red-contrib-ml-connector/store") },   // <userDir>/mlc-store
 *   memory: { module: "memory" }
 * }
 * ```
 *
 * `config` (optional): `dir` (default `<userDir>/mlc-store`; relative to userDir), `durability`
 * ("flush" = after fsync, the default; "commit" = survives kill -9 but not power loss), `sweepIntervalMs`.
 * `config.redis` (`{ url, prefix?, passwordEnv?, tls? }`) shares the store between Node-RED instances on Redis
 * (nodes/store/redis.ts) instead of LMDB.
 * Follows Node-RED's context store plugin API (https://nodered.org/docs/api/context/).
 */
import type { StoreEngine } from "./engine";
import { DurableContextStore } from "./plugin";
import type { RedisStoreConfig } from "./redis";
import { RedisContextStore } from "./redis-plugin";
import { STORE_MARK, engineFor as registryEngineFor, isStoreModule as registryIsStoreModule, type StoreConfig } from "./registry";

/** `config.redis` set: the shared store on Redis (nodes/store/redis-plugin.ts); else LMDB. */
function mlcStore(config?: StoreConfig & { redis?: undefined }): DurableContextStore;
function mlcStore(config: StoreConfig & { redis: RedisStoreConfig }): RedisContextStore;
function mlcStore(config?: StoreConfig): DurableContextStore | RedisContextStore;
function mlcStore(config?: StoreConfig): DurableContextStore | RedisContextStore {
  return config?.redis ? new RedisContextStore(config) : new DurableContextStore(config ?? {});
}

// eslint-disable-next-line @typescript-eslint/no-namespace
namespace mlcStore {
  /** Node-RED logs this as the store's module name ("Context store : 'default' [module=…]"). */
  export const toString = (): string => "node-red-contrib-ml-connector/store";
  /** True when `mod` is this store module (any copy of it). */
  export function isStoreModule(mod: unknown): boolean {
    return registryIsStoreModule(mod);
  }
  /**
   * The engine Node-RED opened for a store configured with `config` (as written in settings.js), or
   * undefined when it is not open (yet).
   */
  export function engineFor(config: StoreConfig | undefined, userDir: string | undefined): StoreEngine | undefined {
    return registryEngineFor(config, userDir);
  }
}
Object.defineProperty(mlcStore, STORE_MARK, { value: true });
Object.defineProperty(mlcStore, "toString", { value: mlcStore.toString, enumerable: false });

export = mlcStore;
