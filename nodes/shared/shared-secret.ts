/**
 * The shared secret of a connection (nodes/lib/auth/shared-secret.ts) for a config node, when Node-RED runs this
 * package's store on Redis (`contextStorage.<name>.module` = the package's store with `config.redis`; README "Several
 * Node-RED instances on one Redis"). The first such store in settings.contextStorage (the default one first) holds
 * the connections' secrets in its scope `mlc-auth`, encrypted with Node-RED's credential secret.
 */
import { SharedSecret } from "../lib/auth/shared-secret";
import { RedisKvStore } from "../store/redis-kv";
import { AUTH_SCOPE, isStoreModule, redisEngineFor, type StoreConfig } from "../store/registry";
import { credentialSecretOf } from "./config";
import type { RedAPI } from "./types";

/** Context scope of the shared store that holds connection secrets and renewal locks (never cleaned). */
export { AUTH_SCOPE };

/**
 * @param binding identity of the connection: vendor + URL + company/tenant + user (never the node id alone)
 * @returns the shared secret, or undefined when no Redis store is open or Node-RED has no credential secret (the
 *   config node then keeps its secrets locally, as a single instance does)
 */
export function sharedSecretFor<T>(RED: RedAPI, binding: string): SharedSecret<T> | undefined {
  const storage = RED.settings.contextStorage as Record<string, { module?: unknown; config?: StoreConfig } | string> | undefined;
  if (!storage) return undefined;
  const names = Object.keys(storage).sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : 0));
  for (const name of names) {
    const def = storage[name];
    if (typeof def !== "object" || !isStoreModule(def.module)) continue;
    const engine = redisEngineFor(def.config);
    if (!engine) continue;
    const secret = credentialSecretOf(RED);
    if (secret === undefined) return undefined;
    return new SharedSecret<T>({ kv: new RedisKvStore(engine, AUTH_SCOPE), binding, secret });
  }
  return undefined;
}
