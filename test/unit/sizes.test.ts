/**
 * The size rules of the house (issue 7 "Done when"), checked with the TypeScript compiler API on the sources:
 * no function in nodes/ over 80 lines (declarations, methods, constructors, accessors, function expressions and
 * arrow functions, each measured from its first to its last line) and no adapter file (nodes/<family>/*.ts,
 * nodes/twilio/*.ts) over about 150 lines. `node dist/test/unit/sizes.test.js --print` is not needed: a failure
 * names every offender with its size.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";

const root = path.resolve(__dirname, "..", "..", "..");
const MAX_FUNCTION_LINES = 80;
/** "about 150": a few lines of slack, so a one-line fix in a full adapter does not fail the build. */
const MAX_ADAPTER_LINES = 155;

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** Every function-like node of `file` longer than `max` lines, as "path:line name (n lines)". */
export function longFunctions(file: string, max: number): string[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && "body" in n && n.body) {
      const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
      const lines = last - first + 1;
      const name = n.name && ts.isIdentifier(n.name) ? n.name.text : ts.SyntaxKind[n.kind];
      if (lines > max) found.push(`${path.relative(root, file)}:${first + 1} ${name} (${lines} lines)`);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

/** Lines as `wc -l` counts them. */
const lineCount = (file: string): number => (fs.readFileSync(file, "utf8").match(/\n/g) ?? []).length;

describe("sizes: the house rules on function and adapter size", () => {
  it(`has no function over ${MAX_FUNCTION_LINES} lines in nodes/`, () => {
    const long = tsFiles(path.join(root, "nodes")).flatMap((f) => longFunctions(f, MAX_FUNCTION_LINES));
    assert.deepEqual(long, []);
  });

  it(`has no adapter file (nodes/<family>/, nodes/twilio/) over ~150 lines`, () => {
    const families = fs
      .readdirSync(path.join(root, "nodes"), { withFileTypes: true })
      .filter((e) => e.isDirectory() && !["lib", "shared", "store"].includes(e.name))
      .map((e) => path.join(root, "nodes", e.name));
    assert.ok(families.some((d) => d.endsWith("twilio")), "the twilio adapters are checked");
    const big = families.flatMap(tsFiles).map((f) => ({ f: path.relative(root, f), n: lineCount(f) })).filter((x) => x.n > MAX_ADAPTER_LINES);
    assert.deepEqual(big.map((x) => `${x.f} (${x.n} lines)`), []);
  });

  it("finds a long function when there is one (the check can fail)", () => {
    const probe = path.join(root, "test", "unit", `sizes-probe-${process.pid}.ts`);
    fs.writeFileSync(probe, `export const f = (): number => {\n${"  void 0;\n".repeat(81)}  return 1;\n};\n`);
    try {
      assert.equal(longFunctions(probe, MAX_FUNCTION_LINES).length, 1);
      assert.equal(longFunctions(probe, 90).length, 0);
    } finally {
      fs.rmSync(probe, { force: true });
    }
  });
});
