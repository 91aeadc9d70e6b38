/**
 * Context-store adapter: Node-RED's callback context API as a {@link KvBackend}, on a named store that
 * must exist. Node-RED silently falls back to the default store for an unknown name (a typo would put
 * dedupe state in memory unnoticed), so an unknown name is refused here.
 * (Node-RED: https://nodered.org/docs/user-guide/context#using-multiple-context-stores)
 */
import { ValidationError } from "../lib/errors";
import type { KvBackend } from "../lib/store";
import type { ContextScope, RedAPI, RedNode } from "./types";

export type ContextScopeName = "node" | "flow" | "global";

export interface StoreInfo {
  /** Store name to pass to context calls (undefined = default store). */
  name: string | undefined;
  /** The resolved store is the in-memory one: nothing survives a restart. */
  memoryOnly: boolean;
}

/**
 * Resolve and check a store name against settings.contextStorage.
 * @throws ValidationError code "unknown_store" when the name is not defined
 */
export function resolveStore(RED: RedAPI, storeName: string | undefined): StoreInfo {
  const storage = RED.settings.contextStorage as Record<string, unknown> | undefined;
  const name = storeName && storeName.trim() !== "" ? storeName.trim() : undefined;
  if (!storage || Object.keys(storage).length === 0) {
    if (name && name !== "default" && name !== "memory") {
      throw new ValidationError(`Context store "${name}" is not defined: settings.contextStorage is not set`, { code: "unknown_store" });
    }
    return { name: undefined, memoryOnly: true };
  }
  if (name && !(name in storage)) {
    throw new ValidationError(`Context store "${name}" is not defined in settings.contextStorage (defined: ${Object.keys(storage).join(", ")})`, { code: "unknown_store" });
  }
  // Follow "default" aliases to the store actually used.
  let key: string = name ?? ("default" in storage ? "default" : Object.keys(storage)[0]);
  for (let i = 0; i < 4 && typeof storage[key] === "string"; i++) key = storage[key] as string;
  const def = storage[key] as { module?: unknown } | undefined;
  const module = typeof def?.module === "string" ? def.module : "memory";
  return { name, memoryOnly: module === "memory" };
}

function scopeOf(node: RedNode, scope: ContextScopeName): ContextScope {
  const ctx = node.context();
  return scope === "node" ? ctx : scope === "flow" ? ctx.flow : ctx.global;
}

/** A KvBackend on one context scope and store. Always uses the asynchronous (callback) form. */
export function contextBackend(node: RedNode, scope: ContextScopeName, store: string | undefined): KvBackend {
  const c = (): ContextScope => scopeOf(node, scope);
  return {
    get: (key) => new Promise((resolve, reject) => c().get(key, store, (err, v) => (err ? reject(err) : resolve(v)))),
    set: (key, value) => new Promise((resolve, reject) => c().set(key, value, store, (err) => (err ? reject(err) : resolve()))),
    keys: () => new Promise((resolve, reject) => c().keys(store, (err, k) => (err ? reject(err) : resolve(k ?? [])))),
  };
}
