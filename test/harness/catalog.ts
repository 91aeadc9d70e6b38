/**
 * The built message catalogs (dist/nodes/locales/<lang>/<set>.json, written by scripts/copy-assets.js) and
 * what the editor shows for a node's status text: Node-RED editor-client red.js, "status/#" subscription,
 * translates text that starts with a letter or "@" with `node._(text, { defaultValue: text })` in the
 * namespace of the node's set, without values, and shows the text itself when the catalog has no such key.
 */
import fs from "node:fs";
import path from "node:path";

const catalogs = new Map<string, Record<string, unknown>>();

/** The merged catalog of node set `set` ("acumatica", "flow", "twilio") in `lang`; throws when it was not built. */
export function catalog(set: string, lang = "en-US"): Record<string, unknown> {
  const file = path.resolve(__dirname, "..", "..", "nodes", "locales", lang, `${set}.json`);
  let c = catalogs.get(file);
  if (!c) {
    c = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    catalogs.set(file, c);
  }
  return c;
}

/** The string at dotted `key` in the set's catalog, or undefined. */
export function lookup(set: string, key: string, lang = "en-US"): string | undefined {
  let v: unknown = catalog(set, lang);
  for (const part of key.split(".")) v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[part] : undefined;
  return typeof v === "string" ? v : undefined;
}

/** What the editor shows for status `text` of a node in `set`. */
export function shown(set: string, text: string | undefined, lang = "en-US"): string | undefined {
  if (text === undefined || !/^[@a-zA-Z]/.test(text)) return text;
  return lookup(set, text, lang) ?? text;
}
