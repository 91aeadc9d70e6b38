/**
 * The message catalogs cover what the nodes show: every error code thrown in nodes/ has an `errors.<code>`
 * entry (the shared fragment locales/en-US/errors.json, merged into every set's catalog by
 * scripts/copy-assets.js), and every status key a node sends exists in its set's catalog, since the editor
 * shows an unknown key as it is. Reads the TypeScript sources and the built catalogs.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { catalog, lookup } from "../harness/catalog";
import { AuthError, ErpError, MlcError, TimeoutError, ValidationError } from "../../nodes/lib/errors";
import { errorStatusKey, Status, statusTemplate } from "../../nodes/shared/node";
import type { RedAPI } from "../../nodes/shared/types";

const root = path.resolve(__dirname, "..", "..", "..");
/** Every node set the package registers (package.json "node-red".nodes), so a new family is checked as soon as it ships. */
const SETS = Object.keys((JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { "node-red": { nodes: Record<string, string> } })["node-red"].nodes);

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** The source without comments (block comments and whole-line `//` comments), line numbers kept. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " ")).replace(/^\s*\/\/.*$/gm, "");
}

const files = sources(path.join(root, "nodes")).map((file) => ({ file: path.relative(root, file), text: code(fs.readFileSync(file, "utf8")) }));

/** The sets whose nodes may run a file: its own family's set, or every set for nodes/shared and nodes/lib. */
function setsOf(file: string): string[] {
  const family = file.split(path.sep)[1];
  return SETS.includes(family) ? [family] : SETS;
}

/** Every string literal in `text` matching `re` (first group), with its line. */
function literals(text: string, re: RegExp): { value: string; line: number }[] {
  const out: { value: string; line: number }[] = [];
  for (const m of text.matchAll(re)) out.push({ value: m[1], line: text.slice(0, m.index).split("\n").length });
  return out;
}

describe("message catalogs", () => {
  it("finds the sources and the built catalogs", () => {
    assert.ok(files.length > 40, `only ${files.length} source files`);
    for (const set of SETS) assert.ok(Object.keys(catalog(set)).length > 1, set);
  });

  it("has an errors.<code> entry in every set for every error code thrown in nodes/", () => {
    const codes = new Map<string, string>();
    for (const { file, text } of files) {
      // `code: "x"` in error options, and the classes' own defaults (`opts.code ?? "x"`)
      for (const { value, line } of literals(text, /\bcode:\s*"([a-z][a-z0-9_]*)"/g)) codes.set(value, `${file}:${line}`);
      for (const { value, line } of literals(text, /code\s*\?\?\s*"([a-z][a-z0-9_]*)"/g)) codes.set(value, `${file}:${line}`);
    }
    for (const fixed of ["internal", "rate_limited", "invalid_input", "erp_error", "auth_failed", "timeout"]) codes.set(fixed, "nodes/lib/errors.ts");
    assert.ok(codes.size > 40, `only ${codes.size} codes found`);
    const missing: string[] = [];
    for (const [code, where] of codes) {
      for (const set of SETS) if (lookup(set, `errors.${code}`) === undefined) missing.push(`${set}: errors.${code} (${where})`);
    }
    assert.deepEqual(missing, []);
  });

  it("has every status key a node sends in that node's set catalog", () => {
    const missing: string[] = [];
    let seen = 0;
    for (const { file, text } of files) {
      // Keys given to Status.*, statusTemplate(), and any other "mlc….status.…" / "errors.…" literal.
      const keys = [
        ...literals(text, /Status\.\w+\(\s*"([^"]+)"\s*\)/g),
        ...literals(text, /"((?:mlc[\w-]*\.status|errors)\.[A-Za-z0-9_]+)"/g),
      ];
      for (const { value, line } of keys) {
        seen++;
        // Shared code runs in every set, so its keys must be in every set's catalog (the shared fragment).
        for (const set of setsOf(file)) if (lookup(set, value) === undefined) missing.push(`${set}: ${value} (${file}:${line})`);
      }
    }
    assert.ok(seen > 10, `only ${seen} keys found`);
    assert.deepEqual(missing, []);
  });

  it("errorStatusKey: a key for codes, the code itself for numbered codes, errors.internal otherwise", () => {
    assert.equal(errorStatusKey(new ValidationError("x", { code: "missing_key" })), "errors.missing_key");
    assert.equal(errorStatusKey(new AuthError("x", {})), "errors.auth_failed");
    assert.equal(errorStatusKey(new ErpError("x", {})), "errors.erp_error");
    assert.equal(errorStatusKey(new TimeoutError("x", { outcomeUnknown: true })), "errors.timeout");
    assert.equal(errorStatusKey(new MlcError("x", { code: "http_503" })), "http 503");
    assert.equal(errorStatusKey(new Error("boom")), "errors.internal");
    assert.equal(errorStatusKey("a string"), "errors.internal");
    for (const set of SETS) assert.equal(lookup(set, "errors.auth_cooldown"), "sign-in paused");
    assert.equal(Status.error("errors.timeout").text, "errors.timeout");
  });

  it("statusTemplate translates once and fills values per call", () => {
    let lookups = 0;
    const RED = { _: (key: string) => (lookups++, key === "k.status.counts" ? "__fresh__ nouveaux / __dup__ doublons" : key) } as unknown as RedAPI;
    const text = statusTemplate(RED, "k.status.counts", "__fresh__ new / __dup__ dup");
    assert.equal(text({ fresh: 3, dup: 1 }), "3 nouveaux / 1 doublons");
    assert.equal(text({ fresh: 4 }), "4 nouveaux /  doublons");
    assert.equal(lookups, 1);
    const fallback = statusTemplate(RED, "k.status.none", "__n__ found");
    assert.equal(fallback({ n: 2 }), "2 found");
  });
});
