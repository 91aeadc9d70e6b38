/**
 * Context-store adapter: Node-RED's callback context API as a {@link KvBackend}, on a named store that
 * must exist. Node-RED silently falls back to the default store for an unknown name (a typo would put
 * dedupe state in memory unnoticed), so an unknown name is refused here.
 * (Node-RED: https://nodered.org/docs/user-guide/context#using-multiple-context-stores)
 */
import type { SharedRateStore } from "../lib/budget/gate";
import { ValidationError } from "../lib/errors";
import { backendStore, type KvBackend, type KvStore } from "../lib/store";
import { EngineKvStore } from "../store/kv";
import { RedisKvStore } from "../store/redis-kv";
import { engineFor, isStoreModule, redisEngineFor, type StoreConfig } from "../store/registry";
import { Status } from "./node";
import type { ContextScope, RedAPI, RedNode } from "./types";

export type ContextScopeName = "node" | "flow" | "global";

/** Which kind of context store a name resolves to. */
export type StoreModuleKind = "memory" | "localfilesystem" | "mlc-store" | "custom";

export interface StoreInfo {
  /** Store name to pass to context calls (undefined = default store). */
  name: string | undefined;
  /** The resolved store is the in-memory one: nothing survives a restart. */
  memoryOnly: boolean;
  /** The module behind the name (absent on infos built by hand: treat as unknown). */
  module?: StoreModuleKind;
  /**
   * The store can lose writes it has acknowledged (its `set` callback fired before the write reached
   * disk): memory, or localfilesystem with its cache on (the default; flushed every `flushInterval`).
   */
  lossy?: boolean;
  /** The store commits a write before acknowledging it (this package's store, localfilesystem with `cache: false`). */
  durable?: boolean;
  /** The store's `config` from settings.js (used to find this package's open store). */
  config?: Record<string, unknown>;
}

/**
 * Resolve and check a store name against settings.contextStorage.
 * @throws ValidationError code "unknown_store" when the name is not defined
 */
export function resolveStore(RED: RedAPI, storeName: string | undefined): StoreInfo {
  knownSettings = RED.settings;
  const storage = RED.settings.contextStorage as Record<string, unknown> | undefined;
  const name = storeName && storeName.trim() !== "" ? storeName.trim() : undefined;
  if (!storage || Object.keys(storage).length === 0) {
    if (name && name !== "default" && name !== "memory") {
      throw new ValidationError(`Context store "${name}" is not defined: settings.contextStorage is not set`, { code: "unknown_store" });
    }
    return { name: undefined, memoryOnly: true, module: "memory", lossy: true, durable: false };
  }
  if (name && !(name in storage)) {
    throw new ValidationError(`Context store "${name}" is not defined in settings.contextStorage (defined: ${Object.keys(storage).join(", ")})`, { code: "unknown_store" });
  }
  // Follow "default" aliases to the store actually used.
  let key: string = name ?? ("default" in storage ? "default" : Object.keys(storage)[0]);
  for (let i = 0; i < 4 && typeof storage[key] === "string"; i++) key = storage[key] as string;
  const def = storage[key] as { module?: unknown; config?: Record<string, unknown> } | undefined;
  const config = def?.config && typeof def.config === "object" ? def.config : {};
  const kind: StoreModuleKind =
    def?.module === undefined || def.module === "memory"
      ? "memory"
      : def.module === "localfilesystem"
        ? "localfilesystem"
        : isStoreModule(def.module)
          ? "mlc-store"
          : "custom";
  // localfilesystem acknowledges from its cache (flushed every flushInterval s) unless cache is false.
  const lfsCached = kind === "localfilesystem" && config.cache !== false;
  return {
    name,
    memoryOnly: kind === "memory",
    module: kind,
    lossy: kind === "memory" || lfsCached,
    durable: kind === "mlc-store" || (kind === "localfilesystem" && !lfsCached),
    config,
  };
}

/** Node-RED's settings, as last seen by {@link resolveStore} (one runtime per process). */
let knownSettings: RedAPI["settings"] | undefined;

/** What {@link resolveStore} says of a store name with the settings last seen; undefined when unknown or none seen. */
function knownStoreInfo(storeName: string | undefined): StoreInfo | undefined {
  if (!knownSettings?.contextStorage) return undefined;
  try {
    return resolveStore({ settings: knownSettings } as RedAPI, storeName);
  } catch {
    return undefined;
  }
}

/** The shared (Redis) store behind a store name, when that store is this package's store with `config.redis`. */
function sharedStore(node: RedNode, scope: ContextScopeName, storeName: string | undefined): KvStore | undefined {
  const info = knownStoreInfo(storeName);
  if (info?.module !== "mlc-store") return undefined;
  const engine = redisEngineFor(info.config as StoreConfig);
  return engine ? new RedisKvStore(engine, scopeId(node, scope)) : undefined;
}

/**
 * The shared rate windows of a store name (instances sharing one account budget, lib/budget/gate.ts), when that store
 * is this package's store on Redis; undefined otherwise (and for an unknown name: the caller reports that itself).
 */
export function sharedRates(RED: RedAPI, storeName: string | undefined): SharedRateStore | undefined {
  try {
    const info = resolveStore(RED, storeName);
    return info.module === "mlc-store" ? redisEngineFor(info.config as StoreConfig)?.rates : undefined;
  } catch {
    return undefined;
  }
}

/** Node-RED's id of a context scope (`@node-red/runtime/lib/nodes/context/index.js` getContext). */
export function scopeId(node: RedNode, scope: ContextScopeName): string {
  if (scope === "global") return "global";
  const z = node.z;
  if (scope === "flow") {
    if (!z) throw new ValidationError("A node outside a flow has no flow context", { code: "no_flow_context" });
    return z;
  }
  const id = (node as RedNode & { _alias?: string })._alias ?? node.id;
  return z ? `${id}:${z}` : id;
}

/**
 * The store seam for a node's configured store name: the one way nodes reach their state.
 * - This package's store (`node-red-contrib-ml-connector/store`): its direct, committed API on the
 *   same rows the context API shows (atomic claims, native expiry, `durable: true`).
 * - Any other store: Node-RED's context API wrapped as a {@link KvStore} (best effort: `durable` true
 *   only for localfilesystem with `cache: false`; claims atomic among this adapter's callers).
 * @throws ValidationError code "unknown_store" when the name is not defined in settings.contextStorage
 */
export function kvStore(RED: RedAPI, node: RedNode, scope: ContextScopeName, storeName: string | undefined): KvStore {
  const info = resolveStore(RED, storeName);
  const shared = sharedStore(node, scope, storeName);
  if (shared) return shared;
  const direct = engineStore(node, scope, info);
  if (direct) return direct;
  return backendStore(contextBackend(node, scope, info.name), { durable: info.durable === true });
}

/** This package's open LMDB store behind `info`, on the node's context scope (the rows the context API shows). */
function engineStore(node: RedNode, scope: ContextScopeName, info: StoreInfo): EngineKvStore | undefined {
  if (info.module !== "mlc-store") return undefined;
  const userDir = knownSettings?.userDir;
  const engine = engineFor(info.config as StoreConfig, typeof userDir === "string" ? userDir : undefined);
  return engine ? new EngineKvStore(engine, scopeId(node, scope)) : undefined;
}

const warnedStores = new Set<string>();

/**
 * Say when a node's store can lose acknowledged work (memory, or localfilesystem with its cache):
 * a yellow status on the node, and one log line per store name and process. Call it after the node has
 * set its own start status ("ready", "watching /bills"), which would hide it.
 * @returns true when the store is lossy (the status was set)
 */
export function warnIfLossy(RED: RedAPI, node: RedNode, info: StoreInfo | undefined): boolean {
  if (!info?.lossy) return false;
  const memory = info.module === "memory";
  node.status(Status.warn(memory ? "mlc-store.status.memory" : "mlc-store.status.cached"));
  const label = info.name ?? "default";
  if (!warnedStores.has(label)) {
    warnedStores.add(label);
    const why = memory
      ? `context store "${label}" keeps state in memory only: acknowledged events, dedupe claims and audit records are lost on a restart or crash`
      : `context store "${label}" (localfilesystem with cache) acknowledges writes before they reach disk: a crash loses up to flushInterval seconds of acknowledged work`;
    RED.log.warn(`ml-connector: ${why}. Use node-red-contrib-ml-connector/store (see the README, "What survives a crash").`);
  }
  return true;
}

function scopeOf(node: RedNode, scope: ContextScopeName): ContextScope {
  const ctx = node.context();
  return scope === "node" ? ctx : scope === "flow" ? ctx.flow : ctx.global;
}

/**
 * A KvBackend on one context scope and store. Always uses the asynchronous (callback) form. When the store is this
 * package's store on Redis, the shared {@link KvStore} itself (so bounded stores on it are shared across instances);
 * when it is this package's open LMDB store, its direct API on the same rows (each write committed before its promise
 * resolves, as through the context API, without the context API's layers: ~7 writes an event in the push pipeline).
 */
export function contextBackend(node: RedNode, scope: ContextScopeName, store: string | undefined): KvBackend {
  const shared = sharedStore(node, scope, store);
  if (shared) return shared;
  const direct = knownStoreInfo(store);
  const engine = direct ? engineStore(node, scope, direct) : undefined;
  if (engine) return engine;
  const c = (): ContextScope => scopeOf(node, scope);
  return {
    get: (key) => new Promise((resolve, reject) => c().get(key, store, (err, v) => (err ? reject(err) : resolve(v)))),
    set: (key, value) => new Promise((resolve, reject) => c().set(key, value, store, (err) => (err ? reject(err) : resolve()))),
    keys: () => new Promise((resolve, reject) => c().keys(store, (err, k) => (err ? reject(err) : resolve(k ?? [])))),
  };
}
