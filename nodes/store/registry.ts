/**
 * What the nodes need to know about the durable store without loading it (and its native LMDB addon):
 * whether a settings.js `module` is this package's store, where a store config keeps its data, and the
 * engine Node-RED opened for it. Node sets import this file only, so a platform where LMDB cannot load
 * still runs every node with Node-RED's own stores.
 */
import path from "node:path";
import type { StoreEngine } from "./engine";
import type { RedisEngine, RedisStoreConfig } from "./redis";

/** Marks the store module function (settings.js keeps `module` by reference, also through Node-RED's settings clone). */
export const STORE_MARK = Symbol.for("node-red-contrib-ml-connector.store");

/** `config` of the store in settings.js (`contextStorage.<name>.config`); Node-RED adds `settings.userDir`. */
export interface StoreConfig {
  /** Directory of the store; relative paths are resolved against userDir. Default `<userDir>/mlc-store`. */
  dir?: string;
  /** "flush" (default): set callback after fsync; "commit": after commit (survives kill -9, not power loss). */
  durability?: "flush" | "commit";
  /** Expiry sweep interval, ms (default 60000). */
  sweepIntervalMs?: number;
  /** Share the store between Node-RED instances on Redis instead of LMDB (nodes/store/redis.ts). */
  redis?: RedisStoreConfig;
  settings?: { userDir?: string };
}

/** Scope of the Redis store that holds the connections' secrets (nodes/shared/shared-secret.ts); never cleaned. */
export const AUTH_SCOPE = "mlc-auth";

/** Default directory name under Node-RED's userDir. */
export const DEFAULT_DIR_NAME = "mlc-store";

/**
 * The directory a store config resolves to.
 * @throws Error when neither `dir` is absolute nor a userDir is known
 */
export function storeDir(config: StoreConfig | undefined, userDir?: string): string {
  const base = config?.settings?.userDir ?? userDir;
  const dir = config?.dir;
  if (dir && path.isAbsolute(dir)) return path.resolve(dir);
  if (!base) throw new Error("ml-connector store: set config.dir (an absolute path) or run under a Node-RED userDir");
  return path.resolve(base, dir ?? DEFAULT_DIR_NAME);
}

/** True when `mod` is this package's store module (any copy of it). */
export function isStoreModule(mod: unknown): boolean {
  return typeof mod === "function" && (mod as unknown as Record<symbol, unknown>)[STORE_MARK] === true;
}

/** Open engines by directory, one per directory per process, shared by every copy of this package. */
interface Entry {
  engine: StoreEngine;
  users: number;
}
const REGISTRY_KEY = Symbol.for("node-red-contrib-ml-connector.store.registry");

export function engines(): Map<string, Entry> {
  const g = globalThis as unknown as Record<symbol, Map<string, Entry> | undefined>;
  let r = g[REGISTRY_KEY];
  if (!r) {
    r = new Map();
    g[REGISTRY_KEY] = r;
  }
  return r;
}

/** The open engine of a directory, if any (how nodes find the store Node-RED opened from settings.js). */
export function openEngine(dir: string): StoreEngine | undefined {
  const cur = engines().get(path.resolve(dir));
  return cur && !cur.engine.isClosed ? cur.engine : undefined;
}

/**
 * The engine Node-RED opened for a store configured with `config` (as in settings.js), or undefined
 * when it is not open (yet).
 */
export function engineFor(config: StoreConfig | undefined, userDir: string | undefined): StoreEngine | undefined {
  try {
    return openEngine(storeDir(config, userDir));
  } catch {
    return undefined;
  }
}

/** Open Redis engines by `url + "\0" + prefix`, one per process, shared by every copy of this package. */
interface RedisEntry {
  engine: RedisEngine;
  users: number;
}
const REDIS_REGISTRY_KEY = Symbol.for("node-red-contrib-ml-connector.store.redis-registry");

export function redisEngines(): Map<string, RedisEntry> {
  const g = globalThis as unknown as Record<symbol, Map<string, RedisEntry> | undefined>;
  let r = g[REDIS_REGISTRY_KEY];
  if (!r) {
    r = new Map();
    g[REDIS_REGISTRY_KEY] = r;
  }
  return r;
}

/** The Redis engine Node-RED opened for a store configured with `config` (with `config.redis`), or undefined. */
export function redisEngineFor(config: StoreConfig | undefined): RedisEngine | undefined {
  const r = config?.redis;
  if (!r || typeof r.url !== "string") return undefined;
  const cur = redisEngines().get(r.url + "\u0000" + (r.prefix ?? "mlc:"));
  return cur && !cur.engine.isClosed ? cur.engine : undefined;
}
