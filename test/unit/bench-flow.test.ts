/**
 * The flow benchmark's pipeline variants (test/bench/flow.ts MLC_BENCH_PIPELINE): each cut-down pipeline still reaches
 * the SMS node, and the nodes it drops are gone with their wires, so a per-step figure measures what it says.
 */
import assert from "node:assert/strict";
import { PipelineSteps, pipelineSteps, withSteps } from "../bench/flow";

const FLOW: Record<string, unknown>[] = [
  { id: "bench-tab", type: "tab" },
  { id: "bench-trigger", z: "bench-tab", type: "mlc-acumatica-trigger", wires: [["bench-dedupe"]] },
  { id: "bench-dedupe", z: "bench-tab", type: "mlc-dedupe", wires: [["bench-sms"], []] },
  { id: "bench-sms", z: "bench-tab", type: "mlc-twilio-sms", wires: [["bench-audit"]] },
  { id: "bench-audit", z: "bench-tab", type: "mlc-audit", wires: [[]] },
  { id: "core-in", z: "bench-tab", type: "http in", wires: [["core-fn"]] },
];

/** Every id a node of `nodes` is wired to. */
function targets(nodes: Record<string, unknown>[]): Set<string> {
  return new Set(nodes.flatMap((n) => ((n.wires as string[][] | undefined) ?? []).flat()));
}

describe("flow bench pipeline variants", () => {
  it("reads MLC_BENCH_PIPELINE, full by default, and refuses an unknown value", () => {
    assert.equal(pipelineSteps(undefined), "full");
    assert.equal(pipelineSteps(""), "full");
    assert.equal(pipelineSteps("push-sms"), "push-sms");
    assert.throws(() => pipelineSteps("no-dedupe"), /full, no-audit or push-sms/);
  });

  it("keeps the full pipeline as it is", () => {
    assert.deepEqual(withSteps(FLOW, "full"), FLOW);
  });

  const cases: [PipelineSteps, string[], string[]][] = [
    ["no-audit", ["bench-trigger", "bench-dedupe", "bench-sms"], ["bench-audit"]],
    ["push-sms", ["bench-trigger", "bench-sms"], ["bench-audit", "bench-dedupe"]],
  ];
  for (const [steps, kept, dropped] of cases) {
    it(`${steps}: drops ${dropped.join(" and ")}, leaves no wire to them, and the push still reaches the SMS node`, () => {
      const out = withSteps(FLOW, steps);
      const ids = out.map((n) => n.id as string);
      for (const id of kept) assert.ok(ids.includes(id), `${id} kept`);
      for (const id of dropped) assert.ok(!ids.includes(id), `${id} dropped`);
      assert.ok(ids.includes("core-in"), "the core flow is untouched");
      const wiredTo = targets(out);
      for (const id of dropped) assert.ok(!wiredTo.has(id), `no wire to ${id}`);
      const trigger = out.find((n) => n.id === "bench-trigger") as { wires: string[][] };
      const next = trigger.wires[0][0];
      if (next === "bench-dedupe") assert.deepEqual((out.find((n) => n.id === "bench-dedupe") as { wires: string[][] }).wires[0], ["bench-sms"]);
      else assert.equal(next, "bench-sms");
      assert.equal(FLOW.find((n) => n.id === "bench-sms")?.wires?.toString(), "bench-audit", "the input flows are not changed");
    });
  }
});
