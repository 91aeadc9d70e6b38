/**
 * Acumatica contract-based REST value objects ↔ plain JSON.
 *
 * On the wire every field of an entity is wrapped: `{"Amount": {"value": 1250.0}}`; linked entities are objects
 * (`MainContact`), detail collections are arrays of entities (`Details`); the entity base fields are `id` (session
 * GUID), `rowNumber`, `note` (a StringValue), `error`, `files`, `_links` and `custom`
 * (`{"<View>": {"<Field>": {"type": "CustomStringField", "value": …}}}`).
 * Null fields may be omitted or sent as `{}`; both read as `null`.
 *
 * Follows: MYOB-IDG `IntegrationDev_RESTExample_Basic_Login.html` (entity format), `…_Parameter_custom.html`
 * (custom fields); official C# client `Acumatica.RESTClient.ContractBasedApi/Model/EntityBase/Entity.cs` and the
 * OpenAPI `components.schemas` of Default/24.200.001 (reference §3).
 */

/** A plain JSON object (record, row, nested entity). */
export type PlainRecord = Record<string, unknown>;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Keys a value object may carry: `value`, a field-level `error`, and `type` on custom fields. */
const VALUE_OBJECT_KEYS = new Set(["value", "error", "type"]);

/**
 * True when `v` looks like a value object (`{value}`, `{value, error}`, `{error}`, custom `{type, value}`, or the
 * empty `{}` the API sends for a null field) rather than a linked entity.
 */
export function isValueObject(v: unknown): v is { value?: unknown; error?: string; type?: string } {
  if (!isObj(v)) return false;
  const keys = Object.keys(v);
  if (keys.length === 0) return true;
  if (!keys.every((k) => VALUE_OBJECT_KEYS.has(k))) return false;
  return "value" in v || ("error" in v && typeof v.error === "string" && keys.length === 1);
}

function unwrapField(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.map((row) => (isObj(row) ? unwrapValues(row) : row));
  if (isValueObject(v)) return v.value ?? null;
  if (isObj(v)) return unwrapValues(v);
  return v; // already plain (older endpoints sent some base fields bare)
}

function unwrapCustom(custom: unknown): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  if (!isObj(custom)) return out;
  for (const [view, fields] of Object.entries(custom)) {
    if (!isObj(fields)) continue;
    const plainFields: Record<string, unknown> = {};
    for (const [field, fv] of Object.entries(fields)) plainFields[field] = isObj(fv) ? (fv.value ?? null) : (fv ?? null);
    out[view] = plainFields;
  }
  return out;
}

/**
 * Turn an entity as returned by the API into plain JSON.
 *
 * - `{"value": x}` → `x`; `{}` and missing values → `null`; field-level `error` texts are dropped (read them from
 *   the raw 422 body instead, see the client).
 * - linked entities (objects) and detail collections (arrays) are unwrapped recursively.
 * - `id` (GUID string) and `rowNumber` (number) are kept as they are; `note` becomes a string (or `null`);
 *   an entity-level `error` string is kept; `files` entries are kept as plain objects.
 * - `custom` becomes `{ View: { Field: value } }` (the `type` discriminator is dropped).
 * - `_links` is dropped.
 *
 * @param entity one entity object (an array of entities is mapped element by element)
 * @returns a new object; the input is not modified. Non-objects are returned unchanged.
 */
export function unwrapValues(entity: unknown): PlainRecord {
  if (Array.isArray(entity)) return entity.map((e) => unwrapValues(e)) as unknown as PlainRecord;
  if (!isObj(entity)) return entity as PlainRecord;
  const out: PlainRecord = {};
  for (const [k, v] of Object.entries(entity)) {
    switch (k) {
      case "_links":
        continue;
      case "id":
      case "rowNumber":
        out[k] = v;
        continue;
      case "note":
        out.note = isObj(v) ? (v.value === undefined || v.value === null ? null : String(v.value)) : v === undefined || v === null ? null : String(v);
        continue;
      case "error":
        if (typeof v === "string") out.error = v;
        continue;
      case "custom":
        out.custom = unwrapCustom(v);
        continue;
      default:
        out[k] = unwrapField(v);
    }
  }
  return out;
}

/** The `Custom<T>Field` discriminator Acumatica needs on a custom field in a PUT, inferred from a JS value. */
function customFieldType(v: unknown): string {
  if (typeof v === "boolean") return "CustomBooleanField";
  if (typeof v === "number") return "CustomDecimalField";
  if (v instanceof Date) return "CustomDateTimeField";
  return "CustomStringField";
}

function wrapScalar(v: unknown): { value: unknown } {
  if (v instanceof Date) return { value: v.toISOString() };
  return { value: v };
}

function wrapField(v: unknown): unknown {
  if (v === null) return { value: null };
  if (v instanceof Date) return wrapScalar(v);
  if (Array.isArray(v)) {
    // detail collection: an array of entities; an array of scalars has no Acumatica counterpart, send it as one value
    if (v.every((row) => isObj(row))) return v.map((row) => wrapValues(row as PlainRecord));
    return { value: v };
  }
  if (isObj(v)) {
    if (isValueObject(v) && Object.keys(v).length > 0) return v; // already wrapped: keep (makes wrapValues idempotent)
    return wrapValues(v);
  }
  return wrapScalar(v);
}

/**
 * Turn a plain record into the wrapped form a `PUT /{Entity}` expects.
 *
 * - scalars → `{"value": x}` (a `Date` → its ISO string; `null` → `{"value": null}` which clears the field);
 *   `undefined` fields are left out.
 * - plain objects → linked entities, wrapped recursively; arrays of objects → detail rows, wrapped recursively.
 * - `id` (GUID) stays bare, `rowNumber` stays bare, `delete: true` on a detail row stays bare (row deletion);
 *   `note` (string) is wrapped like any field.
 * - `custom: {View: {Field: value}}` → `{View: {Field: {type: "Custom<T>Field", value}}}` with `T` inferred
 *   (string → String, number → Decimal, boolean → Boolean, Date → DateTime); an already wrapped
 *   `{type, value}` is passed through (use it for Int/Guid custom fields).
 * - read-only `_links`, `files` and entity-level `error` are left out.
 * - already wrapped fields (`{"value": …}`) are passed through, so wrapping twice is harmless.
 *
 * @param record plain record (e.g. `{ Type: "Bill", Vendor: "V000042", Amount: 10, note: "hi" }`)
 * @returns a new object; the input is not modified
 */
export function wrapValues(record: PlainRecord): PlainRecord {
  const out: PlainRecord = {};
  for (const [k, v] of Object.entries(record)) {
    if (v === undefined) continue;
    switch (k) {
      case "id":
      case "rowNumber":
        out[k] = v;
        continue;
      case "delete":
        if (v === true) out.delete = true;
        continue;
      case "_links":
      case "files":
      case "error":
        continue;
      case "custom": {
        if (!isObj(v)) continue;
        const custom: PlainRecord = {};
        for (const [view, fields] of Object.entries(v)) {
          if (!isObj(fields)) continue;
          const wrapped: PlainRecord = {};
          for (const [field, fv] of Object.entries(fields)) {
            if (fv === undefined) continue;
            if (isObj(fv) && "value" in fv) wrapped[field] = fv.type ? fv : { type: customFieldType(fv.value), ...fv };
            else wrapped[field] = { type: customFieldType(fv), value: fv instanceof Date ? fv.toISOString() : fv };
          }
          custom[view] = wrapped;
        }
        out.custom = custom;
        continue;
      }
      default:
        out[k] = wrapField(v);
    }
  }
  return out;
}
