/**
 * The house rules are tools (`npm run lint`, run by `npm test`): this runs ESLint with the project's
 * eslint.config.mjs on temporary files and shows it fails on a layer violation (nodes/lib importing
 * Node-RED or nodes/shared, also as a type import or from a subfolder), on `@ts-ignore`, and passes the
 * same imports outside nodes/lib.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { ESLint } from "eslint";

const root = path.resolve(__dirname, "..", "..", "..");

/** Lint `source` written to `rel` (under the repository) and return the rule ids reported, then delete it. */
async function lint(rel: string, source: string): Promise<string[]> {
  const file = path.join(root, rel);
  const dir = path.dirname(file);
  const made = !fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, source);
  try {
    const [result] = await new ESLint({ cwd: root }).lintFiles([file]);
    return result.messages.map((m) => String(m.ruleId ?? m.message));
  } finally {
    fs.rmSync(file, { force: true });
    if (made) fs.rmSync(dir, { recursive: true, force: true });
  }
}

const probe = `lint-probe-${process.pid}`;

describe("lint: the house rules", function () {
  this.timeout(60_000);

  it("passes a clean nodes/lib file (so the failures below are the rule, not the setup)", async () => {
    assert.deepEqual(await lint(`nodes/lib/${probe}.ts`, `import { MlcError } from "./errors";\nexport const e = (m: string): MlcError => new MlcError(m, { code: "x" });\n`), []);
  });

  it("fails when nodes/lib imports node-red or @node-red/*", async () => {
    const rules = await lint(`nodes/lib/${probe}.ts`, `import RED from "node-red";\nimport { util } from "@node-red/util";\nexport const x = [RED, util];\n`);
    assert.deepEqual(rules, ["@typescript-eslint/no-restricted-imports", "@typescript-eslint/no-restricted-imports"]);
  });

  it("fails when nodes/lib imports nodes/shared, also as a type and from a subfolder", async () => {
    const top = await lint(`nodes/lib/${probe}.ts`, `import { Status } from "../shared/node";\nexport const s = Status;\n`);
    assert.deepEqual(top, ["@typescript-eslint/no-restricted-imports"]);
    const deep = await lint(`nodes/lib/${probe}/a.ts`, `import type { RedNode } from "../../shared/types";\nexport type N = RedNode;\n`);
    assert.deepEqual(deep, ["@typescript-eslint/no-restricted-imports"]);
  });

  it("allows the same imports in an adapter outside nodes/lib", async () => {
    assert.deepEqual(await lint(`nodes/flow/${probe}.ts`, `import { Status } from "../shared/node";\nexport const s = Status;\n`), []);
  });

  it("bans @ts-ignore", async () => {
    const rules = await lint(`nodes/lib/${probe}.ts`, `// @ts-ignore\nexport const n: number = "x";\n`);
    assert.deepEqual(rules, ["@typescript-eslint/ban-ts-comment"]);
  });
});
