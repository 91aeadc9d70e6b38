/**
 * Exact Online's OData v2 JSON (reference `exact-online.md` §3) → the plain JSON of `msg.payload`:
 * - `"/Date(1741600000000)/"` → ISO 8601 UTC (`2025-03-10T09:46:40.000Z`), via the kit's {@link msDate};
 * - `__metadata: { uri, type }` → `@odata.id` and `@odata.type` (annotations kept, as the design's envelope says);
 * - deferred navigation properties `{ __deferred: { uri } }` are dropped; expanded ones `{ results: [...] }` become arrays.
 * Everything else is returned unchanged; the input is not modified.
 */
import { msDate } from "../poll/modified-time";

const MS_DATE_RE = /^\/Date\(-?\d+(?:[+-]\d{4})?\)\/$/;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** One Exact value → plain JSON (see module doc). */
export function fromExact(v: unknown): unknown {
  if (typeof v === "string") return MS_DATE_RE.test(v) ? (msDate(v) ?? v) : v;
  if (Array.isArray(v)) return v.map(fromExact);
  if (!isObj(v)) return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && Array.isArray(v.results)) return v.results.map(fromExact);
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const x = v[k];
    if (k === "__metadata" && isObj(x)) {
      if (typeof x.uri === "string") out["@odata.id"] = x.uri;
      if (typeof x.type === "string") out["@odata.type"] = x.type;
      continue;
    }
    if (isObj(x) && isObj(x.__deferred)) continue;
    out[k] = fromExact(x);
  }
  return out;
}

/** Epoch ms of an Exact `/Date(ms)/` value; undefined when it is not one. */
export function exactDateMs(v: unknown): number | undefined {
  const iso = msDate(v);
  return iso ? Date.parse(iso) : undefined;
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a GUID written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
export function isGuid(v: unknown): v is string {
  return typeof v === "string" && GUID_RE.test(v);
}

/** The OData v2 key segment Exact expects: `(guid'…')`. @throws nothing; callers check {@link isGuid} first */
export function guidKey(id: string): string {
  return `(guid'${id.toLowerCase()}')`;
}

/**
 * An OData v2 `$filter` literal for `value`, typed the way Exact's properties are (reference §4): GUID strings as
 * `guid'…'`, `Date` objects as `datetime'yyyy-mm-ddThh:mm:ss'` (UTC field accessors, no zone suffix), other strings
 * quoted with `'` doubled, numbers and booleans bare. @throws TypeError for other types
 */
export function exactLiteral(value: unknown): string {
  if (value instanceof Date) return `datetime'${value.toISOString().slice(0, 19)}'`;
  if (isGuid(value)) return `guid'${value}'`;
  if (typeof value === "string") return `'${value.replace(/'/g, "''")}'`;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return String(value);
  throw new TypeError("Exact filter literal must be a string, finite number, boolean or Date");
}
