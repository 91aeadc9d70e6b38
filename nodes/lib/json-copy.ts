/**
 * Copies of JSON data, for values a store keeps or hands out (journal entries, audit records, store entries).
 */

/**
 * A shallow copy of a plain object (own enumerable properties), for objects that are copied then changed and kept.
 * Same result as `{ ...o }`, but on Node 20 (V8 11.3) each object made by spread syntax gets a hidden class (map) of its
 * own, while `Object.assign({}, o)` reuses the map of every earlier copy with the same keys. Measured in the push
 * pipeline (test/bench/flow.ts, heap snapshot after ~18,000 events): one extra map, descriptor array and enum cache
 * per kept send ledger, journal and audit entry, ~105,000 maps and 10.7 MB; and code that reads such objects meets a
 * new map each time.
 */
export function shallowCopy<T extends object>(o: T): T {
  return Object.assign({}, o);
}

const NOT_JSON_DATA = Symbol("not JSON data");

/**
 * A deep copy equal to `JSON.parse(JSON.stringify(value))`. Plain JSON data (plain objects, arrays, strings, finite
 * numbers, booleans, null; `undefined` object members are left out, as JSON does) is copied directly, which is several
 * times faster than the text round trip. Anything JSON would transform (a Date, `toJSON`, a class instance, a
 * non-finite number, a function) or that nests deeper than 64 takes the round trip.
 * @throws TypeError for what `JSON.stringify` refuses (a cycle, a BigInt)
 */
export function jsonCopy<T>(value: T): T {
  const fast = copyPlain(value, 0);
  return (fast === NOT_JSON_DATA ? JSON.parse(JSON.stringify(value)) : fast) as T;
}

function copyPlain(v: unknown, depth: number): unknown {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") return Number.isFinite(v) ? v : NOT_JSON_DATA;
  if (typeof v !== "object" || depth > 64) return NOT_JSON_DATA;
  if (Array.isArray(v)) {
    const out: unknown[] = new Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = copyPlain(v[i], depth + 1);
      if (c === NOT_JSON_DATA) return NOT_JSON_DATA;
      out[i] = c;
    }
    return out;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if ((proto !== Object.prototype && proto !== null) || typeof (v as { toJSON?: unknown }).toJSON === "function") return NOT_JSON_DATA;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const item = (v as Record<string, unknown>)[k];
    if (item === undefined) continue;
    if (k === "__proto__") return NOT_JSON_DATA;
    const c = copyPlain(item, depth + 1);
    if (c === NOT_JSON_DATA) return NOT_JSON_DATA;
    out[k] = c;
  }
  return out;
}
