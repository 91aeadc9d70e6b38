#!/usr/bin/env node
// Places the editor files next to the compiled node-set entries, where Node-RED looks for them.
// A node set's editor, help and catalog may be split into one fragment per node:
//   nodes/editor-common.js (as a <script>) + nodes/<set>.html + nodes/<set>/*.html -> dist/nodes/<set>.html
//   locales/<lang>/<set>.html + locales/<lang>/<set>/*.html   -> dist/nodes/locales/<lang>/<set>.html
//   locales/<lang>/<set>.json + locales/<lang>/<set>/*.json   -> dist/nodes/locales/<lang>/<set>.json (deep merge)
//   locales/<lang>/errors.json (errors.* and shared status keys) -> merged into every set's catalog, since the
//     editor looks a status key up in the namespace of the node's own set
//   icons/*                                                   -> dist/nodes/icons/*
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const out = path.join(root, "dist", "nodes");

function fragments(dir, ext) {
  return fs.existsSync(dir) && fs.statSync(dir).isDirectory()
    ? fs.readdirSync(dir).filter((f) => f.endsWith(ext)).sort().map((f) => path.join(dir, f))
    : [];
}

function concat(files) {
  return files.map((f) => fs.readFileSync(f, "utf8").trimEnd() + "\n").join("\n");
}

function merge(a, b, where) {
  for (const [k, v] of Object.entries(b)) {
    if (v && typeof v === "object" && !Array.isArray(v) && a[k] && typeof a[k] === "object") merge(a[k], v, `${where}.${k}`);
    else if (k in a && JSON.stringify(a[k]) !== JSON.stringify(v)) throw new Error(`catalog conflict at ${where}.${k}`);
    else a[k] = v;
  }
  return a;
}

fs.mkdirSync(out, { recursive: true });
const sets = fs.readdirSync(path.join(root, "nodes")).filter((f) => f.endsWith(".html")).map((f) => f.slice(0, -5));
// Helpers every set's editor uses, first in each set so a set works when the others are disabled.
const common = `<script type="text/javascript">\n${fs.readFileSync(path.join(root, "nodes", "editor-common.js"), "utf8").trimEnd()}\n</script>\n\n`;
for (const set of sets) {
  fs.writeFileSync(path.join(out, `${set}.html`), common + concat([path.join(root, "nodes", `${set}.html`), ...fragments(path.join(root, "nodes", set), ".html")]));
}
const locales = path.join(root, "locales");
for (const lang of fs.readdirSync(locales)) {
  const src = path.join(locales, lang);
  const dst = path.join(out, "locales", lang);
  fs.mkdirSync(dst, { recursive: true });
  for (const set of sets) {
    const help = [path.join(src, `${set}.html`), ...fragments(path.join(src, set), ".html")].filter((f) => fs.existsSync(f));
    if (help.length) fs.writeFileSync(path.join(dst, `${set}.html`), concat(help));
    const cats = [path.join(src, `${set}.json`), ...fragments(path.join(src, set), ".json")].filter((f) => fs.existsSync(f));
    if (cats.length && fs.existsSync(path.join(src, "errors.json"))) cats.push(path.join(src, "errors.json"));
    if (cats.length) {
      const merged = cats.reduce((acc, f) => merge(acc, JSON.parse(fs.readFileSync(f, "utf8")), path.relative(root, f)), {});
      fs.writeFileSync(path.join(dst, `${set}.json`), JSON.stringify(merged, null, 2) + "\n");
    }
  }
}
if (fs.existsSync(path.join(root, "icons"))) fs.cpSync(path.join(root, "icons"), path.join(out, "icons"), { recursive: true });
