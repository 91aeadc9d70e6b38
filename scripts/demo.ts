/**
 * `npm run demo [-- <family>…] [-- --exit]`: each ERP family's story on the built-in simulators. Starts the simulators
 * the families need (Twilio and SendGrid always), a Node-RED on http://127.0.0.1:1880 (MLC_DEMO_PORT to change; 0 =
 * any free port) with this package linked and the families' examples (examples/<family>/) deployed unchanged, then
 * runs each story (scripts/demo/<family>.ts) and prints what happened: what the ERP simulator did, the SMS, calls and
 * e-mails Twilio received, the statuses, the audit trail and any write-back.
 * No family: every family, in one Node-RED, one story after the other. An unknown argument: usage, exit code 2.
 * In a terminal it keeps running (open the editor) until Ctrl+C; otherwise, or with --exit, it stops. Exit code 1 when
 * a story did not see what it expected (each such line is marked "(!)"). MLC_DEMO_DIR: the Node-RED user dir's parent
 * (default <repo>/.demo, emptied first); MLC_DEMO_LOG=1 prints Node-RED's warnings and errors at the end.
 */
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "../test/harness/nodered";
import { startStack } from "../test/harness/stack";
import { DemoContext, FAMILIES, Family, FamilyDemo, PROBE } from "./demo/common";
import { acumatica } from "./demo/acumatica";
import { intacct } from "./demo/intacct";
import { exact } from "./demo/exact";
import { bc } from "./demo/bc";
import { sapb1 } from "./demo/sapb1";

const DEMOS: Record<Family, FamilyDemo> = { acumatica, intacct, exact, bc, sapb1 };
const USAGE = `usage: npm run demo [-- <family>...] [--exit]
  family: ${FAMILIES.join(", ")} (none: every family, one after the other)
  --exit: stop when the stories are told (otherwise, in a terminal, Node-RED keeps running until Ctrl+C)`;

const out = (line = ""): void => {
  process.stdout.write(line + "\n");
};

/** The families asked for, or undefined (usage printed) for an argument that is neither a family nor --exit. */
function parseArgs(args: string[]): Family[] | undefined {
  const families: Family[] = [];
  for (const a of args) {
    if (a === "--exit") continue;
    if (!(FAMILIES as readonly string[]).includes(a)) {
      process.stderr.write(`unknown ${a.startsWith("-") ? "option" : "family"} "${a}"\n${USAGE}\n`);
      return undefined;
    }
    if (!families.includes(a as Family)) families.push(a as Family);
  }
  return families.length ? FAMILIES.filter((f) => families.includes(f)) : [...FAMILIES];
}

async function main(): Promise<number> {
  const families = parseArgs(process.argv.slice(2));
  if (!families) return 2;
  const demos = families.map((f) => DEMOS[f]);
  const port = Number(process.env.MLC_DEMO_PORT ?? 1880);
  const root = process.env.MLC_DEMO_DIR || path.join(REPO_ROOT, ".demo");
  fs.rmSync(root, { recursive: true, force: true });
  out(`ml-connector demo: ${families.join(", ")} on the built-in simulators`);
  out("Starting the simulators and Node-RED …");
  const stack = await startStack({
    userDir: path.join(root, "user"),
    port,
    install: "link",
    pollIntervalSec: 1,
    families,
    erps: [...new Set(demos.flatMap((d) => d.erps ?? []))],
    extraFlows: PROBE,
  });
  const ctx: DemoContext = { stack, out, problems: [] };
  try {
    out(`  Node-RED   ${stack.nodeRed.url}  (examples deployed from ${families.map((f) => `examples/${f}/`).join(", ")})`);
    out(`  Twilio sim ${stack.twilio.url}`);
    for (const d of demos) await d.prepare?.(ctx);
    for (const d of demos) {
      out();
      out(`== ${d.family}: ${d.title} ==`);
      out();
      await d.story(ctx);
    }
    if (process.env.MLC_DEMO_LOG) {
      out();
      out("Node-RED's warnings and errors:");
      for (const l of stack.nodeRed.log.filter((x) => /\[(warn|error)\]/.test(x))) out(`  ${l}`);
    }
    out();
    out(ctx.problems.length ? `${ctx.problems.length} step(s) did not go as expected: ${ctx.problems.join("; ")}` : `Done: ${families.length} ${families.length === 1 ? "story" : "stories"} told.`);
    const keepRunning = process.stdin.isTTY && !process.argv.includes("--exit") && !process.env.CI;
    if (keepRunning) {
      out();
      out(`Node-RED is still running: open ${stack.nodeRed.url} to look at the flows. Ctrl+C stops everything.`);
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    }
  } finally {
    await stack.stop();
  }
  return ctx.problems.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
