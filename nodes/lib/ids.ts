/**
 * Stable identifiers: the envelope's `jobId` and hashed context-store keys.
 *
 * Context-store keys are property paths in Node-RED ("INV.001" nests, "SO[5000000]" allocates an array),
 * so raw ERP numbers are never used as keys: every key is a SHA-256 hex digest with a fixed prefix.
 */
import crypto, { createHash } from "node:crypto";

/**
 * SHA-256 of `text` (UTF-8) as hex. Node's one-shot `crypto.hash` (Node 20.12+) takes ~0.27 µs for a key-sized text
 * where a Hash object takes ~0.75 µs; every store access hashes its key, so older Node 20 releases fall back to it.
 */
const sha256hex: (text: string) => string =
  typeof crypto.hash === "function" ? (text) => crypto.hash("sha256", text, "hex") : (text) => createHash("sha256").update(text, "utf8").digest("hex");

/** What identifies one ERP change: the same record at the same version yields the same jobId. */
export interface JobIdParts {
  /** ERP family, e.g. "acumatica". */
  system: string;
  /** Tenant / company the record belongs to. */
  tenant: string;
  /** Vendor entity name, e.g. "Bill". */
  entity: string;
  /** Record key, e.g. "Bill/000123" or a GUID. */
  id: string;
  /** Version of the record: its last modification time (ISO 8601) or the vendor's transaction id. */
  version: string;
  /**
   * Event action. Only "deleted" changes the identity: "created" vs "updated" is a guess when polling and
   * must not make the same change read by push and by poll look like two jobs.
   */
  action?: string;
}

/**
 * Join text parts into one string that names exactly one list of parts: `\` is written `\\`, `|` is written `\|`,
 * and parts are separated by a bare `|`. So `["T|", "Bill"]` → `T\||Bill` and `["T", "|Bill"]` → `T|\|Bill` differ
 * (the 0.1.0 encoding, `|` doubled, made both `T|||Bill`). Parts without `\` or `|` are joined unchanged, so keys of
 * ordinary values keep the text (and hash) they had in 0.1.0.
 * @param parts any strings (non-strings are converted with String())
 * @returns the encoded text
 */
export function encodeParts(parts: readonly unknown[]): string {
  return parts.map((s) => String(s).replace(/[\\|]/g, (c) => `\\${c}`)).join("|");
}

/**
 * Derive the stable `jobId` for "this event on this record".
 * The parts are encoded with {@link encodeParts} (unambiguous). Compared with 0.1.0, jobIds are unchanged unless a
 * part contains `|` or `\`; for those the 0.1.0 jobId could collide with another record's and is now different (a
 * dedupe entry written by 0.1.0 for such a record does not match).
 * @returns "j" + 32 lowercase hex chars (128 bits of SHA-256), safe in URLs and context keys
 */
export function deriveJobId(p: JobIdParts): string {
  const canonicalVersion = normaliseVersion(p.version);
  const text = encodeParts([p.system, p.tenant, p.entity, p.id, canonicalVersion, p.action === "deleted" ? "deleted" : ""]);
  return "j" + sha256hex(text).slice(0, 32);
}

/** ISO timestamps written with different offsets or precision name the same instant; compare instants. */
function normaliseVersion(version: string): string {
  if (/^\d{4}-\d{2}-\d{2}T/.test(version)) {
    const t = Date.parse(version);
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  }
  return version;
}

/**
 * A context-store key for arbitrary text: `${prefix}_${sha256(text) as 40 hex}`.
 * @param prefix [A-Za-z0-9]+, identifies the kind of entry ("dd", "audit")
 */
export function hashedKey(prefix: string, text: string): string {
  return `${prefix}_${sha256hex(text).slice(0, 40)}`;
}

/** A random id for one send attempt ("s" + 24 hex), used to correlate a status callback with its send. */
export function randomId(prefix = "s"): string {
  return prefix + createHash("sha256").update(`${Date.now()}-${Math.random()}-${process.hrtime.bigint()}`).digest("hex").slice(0, 24);
}
