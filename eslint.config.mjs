// House rules as a linter (typescript-eslint "strict", without type information so `npm test` stays fast on a
// 2-core machine). The layer rule: nodes/lib is plain TypeScript that must never import Node-RED or the
// Node-RED toolkit in nodes/shared (see ../shared/design.md); test/unit/lint.test.ts shows it fails.
import tseslint from "typescript-eslint";

/** Imports nodes/lib may not use: Node-RED itself and nodes/shared (relative paths of any depth). */
export const LIB_FORBIDDEN = [
  { group: ["node-red", "node-red/**", "@node-red/**", "node-red-node-test-helper"], message: "nodes/lib is plain TypeScript: it must not import Node-RED." },
  { group: ["**/shared", "**/shared/**"], message: "nodes/lib must not import nodes/shared (the Node-RED toolkit); pass what it needs in." },
];

export default tseslint.config(
  // What git ignores is not ours to lint either: build output, installs, and what the demo and e2e runs leave behind.
  { ignores: ["dist/**", "node_modules/**", "examples/**", "scripts/*.js", "**/*.d.ts", ".demo/**", ".e2e-*/**", ".ci/nr5/**", "coverage/**"] },
  ...tseslint.configs.strict,
  {
    files: ["**/*.ts"],
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@typescript-eslint/ban-ts-comment": ["error", { "ts-expect-error": "allow-with-description", "ts-ignore": true, "ts-nocheck": true, "ts-check": false }],
      // `import x = require(...)` is how TypeScript imports an `export =` module (the context store must be
      // `module.exports = plugin` for settings.js); a bare require() stays forbidden.
      "@typescript-eslint/no-require-imports": ["error", { allowAsImport: true }],
    },
  },
  {
    // Tests may assert non-null (a null there fails the test at once) and empty the records they keep; the
    // product code may not.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/no-non-null-assertion": "off", "@typescript-eslint/no-dynamic-delete": "off" },
  },
  {
    // The Intacct simulator walks XML trees parsed by fast-xml-parser, which are untyped by nature.
    files: ["test/sims/intacct*.ts"],
    rules: { "@typescript-eslint/no-explicit-any": "off" },
  },
  {
    files: ["nodes/lib/**/*.ts"],
    rules: {
      "no-restricted-imports": "off",
      "@typescript-eslint/no-restricted-imports": ["error", { patterns: LIB_FORBIDDEN }],
    },
  },
);
