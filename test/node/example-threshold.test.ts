/**
 * The bill-approval example's threshold switch, exactly as shipped in examples/acumatica/bill-approval-sms.json,
 * in a real Node-RED with the core switch node: an unset APPROVAL_THRESHOLD texts nobody (the bill goes to the
 * "not set" output), a set one passes only bills newly pending above it: not a bill that left the inquiry, nor one
 * whose change did not lift it past the threshold (e.g. the delivery example's note write, which would loop).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { TestFlowNode } from "node-red-node-test-helper";
import { REPO_ROOT } from "../harness/nodered";
import { Testbed, settle, until } from "../harness/red-testbed";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const coreSwitch = require(require.resolve("@node-red/nodes/core/function/10-switch.js", { paths: [REPO_ROOT] })) as (RED: unknown) => void;

const VAR = "APPROVAL_THRESHOLD";
const bed = new Testbed([coreSwitch]);

function thresholdFlow(): TestFlowNode[] {
  const example = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "examples", "acumatica", "bill-approval-sms.json"), "utf8")) as TestFlowNode[];
  const sw = example.find((n) => n.type === "switch" && JSON.stringify(n.rules).includes(VAR));
  assert.ok(sw, "the example has a switch on APPROVAL_THRESHOLD");
  assert.equal(sw.outputs, 2);
  return [
    { id: "t1", type: "tab", label: "threshold" },
    { ...sw, id: "sw", z: "t1", wires: [["notSet"], ["above"]] },
    { id: "notSet", z: "t1", type: "helper" },
    { id: "above", z: "t1", type: "helper" },
  ];
}

describe("bill-approval example: APPROVAL_THRESHOLD", function () {
  this.timeout(30000);
  const saved = process.env[VAR];
  bed.hooks();
  after(() => {
    if (saved === undefined) delete process.env[VAR];
    else process.env[VAR] = saved;
  });
  const r = (id: string) => bed.received[id];

  it("unset: no bill goes on to be texted; each goes to the 'not set' output", async () => {
    delete process.env[VAR];
    await bed.load(thresholdFlow());
    for (const amount of [1250, 50]) bed.node("sw").receive({ payload: { ReferenceNbr: `B${amount}`, Amount: amount } });
    await until(() => r("notSet").length === 2, "both bills reported as not texted");
    await settle();
    assert.equal(r("above").length, 0);
  });

  it("set to 1000: only bills above it go on", async () => {
    process.env[VAR] = "1000";
    await bed.load(thresholdFlow());
    for (const amount of [1250, 1000, 50]) bed.node("sw").receive({ payload: { ReferenceNbr: `B${amount}`, Amount: amount } });
    await until(() => r("above").length === 1, "the bill above the threshold");
    await settle();
    assert.deepEqual(r("above").map((m) => (m.payload as { Amount: number }).Amount), [1250]);
    assert.equal(r("notSet").length, 0);
  });

  it("a bill that left the inquiry, or changed without crossing the threshold, is not texted again; one lifted above it is", async () => {
    process.env[VAR] = "1000";
    await bed.load(thresholdFlow());
    const push = (nbr: string, action: string, amount: number, before?: number) =>
      bed.node("sw").receive({ payload: { ReferenceNbr: nbr, Amount: amount }, erp: { action }, ...(before !== undefined ? { previous: { ReferenceNbr: nbr, Amount: before } } : {}) });
    push("LEFT", "deleted", 1250); // approved: a row in Deleted only
    push("NOTE", "updated", 1250, 1250); // its note written (the delivery example): only LastModifiedDateTime moved
    push("ROSE", "updated", 1500, 500); // amount raised past the threshold while pending
    push("NEW", "created", 1250);
    await until(() => r("above").length === 2, "the two bills newly pending above the threshold");
    await settle();
    assert.deepEqual(r("above").map((m) => (m.payload as { ReferenceNbr: string }).ReferenceNbr), ["ROSE", "NEW"]);
    assert.equal(r("notSet").length, 0);
  });

  it("unset: a bill that left the inquiry is not reported as 'not texted'", async () => {
    delete process.env[VAR];
    await bed.load(thresholdFlow());
    bed.node("sw").receive({ payload: { ReferenceNbr: "LEFT", Amount: 1250 }, erp: { action: "deleted" } });
    bed.node("sw").receive({ payload: { ReferenceNbr: "NEW", Amount: 1250 }, erp: { action: "created" } });
    await until(() => r("notSet").length === 1, "the new bill");
    await settle();
    assert.deepEqual(r("notSet").map((m) => (m.payload as { ReferenceNbr: string }).ReferenceNbr), ["NEW"]);
  });
});
