/**
 * `mlc-dedupe`: passes the first message of each key (default `msg.erp.jobId`) to output 1 and every
 * repeat within the TTL to output 2. A journal replay (`msg.erp.replay`, lib/journal.ts) always goes to output 1:
 * its earlier pass never settled a send, and the send nodes' ledger stops a double. State is a {@link BoundedStore} in node-scope context on a named
 * store that must exist (Node-RED would silently fall back to the default store for a typo); keys are
 * hashed, never stored raw.
 * (Node-RED context: https://nodered.org/docs/user-guide/context)
 */
import { ValidationError } from "../lib/errors";
import { hashedKey } from "../lib/ids";
import { BoundedStore } from "../lib/store";
import { contextBackend, resolveStore, StoreInfo, warnIfLossy } from "../shared/context";
import { Status, errorStatusKey, evaluate, num, onInput, registerNode, statusTemplate } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";

/** Editor properties of `mlc-dedupe`. */
export interface DedupeProps extends Record<string, unknown> {
  name?: string;
  /** TypedInput value of the key; default `erp.jobId`. */
  key?: string;
  /** TypedInput type of the key (msg, jsonata, flow, global, env); default `msg`. */
  keyType?: string;
  /** How long a key is remembered, in `ttlUnits`; 0 = until evicted by `maxEntries`. Default 7. */
  ttl?: number | string;
  /** s | m | h | d; default d. */
  ttlUnits?: string;
  /** Maximum number of remembered keys (oldest forgotten first); default 10000. */
  maxEntries?: number | string;
  /** Context store name; "" = the default store. */
  store?: string;
}

/** `msg.dedupe`: the outcome. `keyHash` is the hashed key (the raw key may be personal data). */
export interface DedupeInfo {
  keyHash: string;
  duplicate: boolean;
  /** ISO 8601 time the key was first seen. */
  firstSeen: string;
  /** The message is a journal replay (msg.erp.replay): passed on even when the key was seen. */
  replay?: boolean;
}

/** Milliseconds per TTL unit. */
export const TTL_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Store key prefix of dedupe entries in node context. */
export const DEDUPE_PREFIX = "dd";

/** TTL in ms from the editor's value and unit (unknown unit → days; negative/invalid → default 7 d). */
export function dedupeTtlMs(ttl: unknown, units: unknown): number {
  const unit = TTL_UNITS_MS[typeof units === "string" ? units : "d"] ?? TTL_UNITS_MS.d;
  return Math.round(num(ttl, 7, 0) * unit);
}

/** Human name of the key property, for error messages ("msg.erp.jobId", "jsonata: …"). */
function keyName(key: string, keyType: string): string {
  return keyType === "msg" ? `msg.${key}` : `${keyType}:${key}`;
}

/** The key value as text; objects as JSON. Empty or missing → undefined. */
function keyText(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v.trim() === "" ? undefined : v;
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  const json = JSON.stringify(v);
  return json === undefined || json === "{}" || json === "[]" ? undefined : json;
}

/**
 * Register `mlc-dedupe`. Runtime errors (to Catch via done(err)): ValidationError "missing_key" when the
 * key evaluates to nothing (or its msg path does not exist); "invalid_key" when a JSONata/context/env
 * key cannot be evaluated; "unknown_store" on every input when the configured store does not exist
 * (the node also shows a red status and logs at start).
 */
export function registerDedupe(RED: RedAPI): void {
  registerNode<DedupeProps>(RED, "mlc-dedupe", (node, config) => {
    const key = typeof config.key === "string" && config.key.trim() !== "" ? config.key.trim() : "erp.jobId";
    const keyType = typeof config.keyType === "string" && config.keyType !== "" ? config.keyType : "msg";
    const ttlMs = dedupeTtlMs(config.ttl, config.ttlUnits);
    const maxEntries = Math.floor(num(config.maxEntries, 10000, 1));
    let fresh = 0;
    let dup = 0;

    let startError: Error | undefined;
    let info: StoreInfo = { name: undefined, memoryOnly: true };
    let store: BoundedStore<number> | undefined;
    try {
      info = resolveStore(RED, config.store);
      store = new BoundedStore<number>(contextBackend(node, "node", info.name), { prefix: DEDUPE_PREFIX, ttlMs, maxEntries });
      store.ready.catch((err: unknown) => {
        startError = err instanceof Error ? err : new Error(String(err));
        node.status(Status.error(errorStatusKey(err)));
        node.error(startError);
      });
    } catch (err) {
      startError = err instanceof Error ? err : new Error(String(err));
      node.status(Status.error(errorStatusKey(err)));
      node.error(startError);
    }

    if (!startError) node.status(info.memoryOnly ? Status.warn("mlc-dedupe.status.memoryOnly") : Status.idle("mlc-dedupe.status.ready"));
    // Translated once here; each message only fills in the numbers.
    const countsText = info.memoryOnly
      ? statusTemplate(RED, "mlc-dedupe.status.countsMemory", "__fresh__ new / __dup__ dup (mem)")
      : statusTemplate(RED, "mlc-dedupe.status.counts", "__fresh__ new / __dup__ dup");
    if (!startError) warnIfLossy(RED, node, info);

    onInput(RED, node, async (msg: NodeMessage, { send, status }) => {
      if (startError || !store) throw startError ?? new ValidationError("Dedupe store not available", { code: "unknown_store" });
      let value: unknown;
      try {
        value = await evaluate(RED, node, key, keyType, msg);
      } catch (err) {
        // A msg path through a missing object ("erp.jobId" without msg.erp) throws a TypeError: that is a missing key.
        if (keyType !== "msg") {
          throw new ValidationError(`Dedupe key ${keyName(key, keyType)} could not be evaluated: ${(err as Error)?.message ?? String(err)}`, { code: "invalid_key" });
        }
        value = undefined;
      }
      const text = keyText(value);
      if (text === undefined) {
        throw new ValidationError(`Dedupe key ${keyName(key, keyType)} is missing or empty`, { code: "missing_key" });
      }
      const now = Date.now();
      const first = await store.claim(text, now);
      const firstSeen = first ? now : ((await store.get(text)) ?? now);
      // A replay from a trigger's push journal (msg.erp.replay) is an event whose earlier pass never settled its send
      // (a crash between this claim and the send): it goes on, and the send ledger stops a double.
      const replay = (msg.erp as { replay?: unknown } | undefined)?.replay === true;
      const pass = first || replay;
      const dedupe: DedupeInfo = { keyHash: hashedKey(DEDUPE_PREFIX, text), duplicate: !pass, firstSeen: new Date(firstSeen).toISOString(), ...(replay ? { replay: true } : {}) };
      msg.dedupe = dedupe;
      if (pass) fresh++;
      else dup++;
      const counts = countsText({ fresh, dup });
      status(info.memoryOnly ? Status.warn(counts) : Status.ok(counts));
      send(pass ? [msg, null] : [null, msg]);
    });
  });
}
