#!/usr/bin/env node
// Places the editor files next to the compiled node-set entries, where Node-RED looks for them:
//   nodes/<set>.html      -> dist/nodes/<set>.html        (editor definitions)
//   locales/<lang>/*      -> dist/nodes/locales/<lang>/*   (message catalogs and help)
//   icons/*               -> dist/nodes/icons/*
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const out = path.join(root, "dist", "nodes");
fs.mkdirSync(out, { recursive: true });
for (const f of fs.readdirSync(path.join(root, "nodes"))) {
  if (f.endsWith(".html")) fs.copyFileSync(path.join(root, "nodes", f), path.join(out, f));
}
for (const dir of ["locales", "icons"]) {
  const src = path.join(root, dir);
  if (fs.existsSync(src)) fs.cpSync(src, path.join(out, dir), { recursive: true });
}
