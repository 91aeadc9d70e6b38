/**
 * The Intacct trigger (mlc-intacct-trigger) through the family trigger suite (trigger-suite.ts), in a real Node-RED
 * runtime against the strict Intacct simulator: polling APBILL on WHENMODIFIED in the company's time zone (poll only:
 * the XML API has no push, so the suite's push cases do not apply). Intacct's own cases: an Intacct error inside an
 * HTTP 200 answer reaches Catch with its error number and the next poll recovers the event; a bill recreated from
 * Purchasing (new RECORDNO, same vendor and invoice number, same state) is not a new event; the state condition.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";
import { IntacctSim } from "../sims/intacct";
import { SUITE_SETTINGS, triggerSuite } from "./trigger-suite";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const intacctSet = require("../../nodes/intacct") as (RED: unknown) => void;

const sim = new IntacctSim();
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-node-ia-trigger-"));
const CREDS = { senderId: sim.senderId, senderPassword: sim.senderPassword, userId: sim.userId, userPassword: sim.userPassword };
const bed = new Testbed([intacctSet], { ...SUITE_SETTINGS, userDir, credentialSecret: "node-test-secret" });
const iso = (ms: number): string => new Date(ms).toISOString();

/** A record's later change is a state change (the APBILL jobId follows STATE): each upsert of a ref moves it on. */
const STATES = ["Submitted", "Partially Approved", "Approved"];
const changes = new Map<string, number>();
const recordNos = new Map<string, string>();
function addBill(ref: string, atMs: number, state?: string, recordNo?: string): void {
  const n = changes.get(ref) ?? 0;
  changes.set(ref, n + 1);
  if (recordNo) recordNos.set(ref, recordNo);
  if (!recordNos.has(ref)) recordNos.set(ref, String(4400 + recordNos.size));
  const no = recordNos.get(ref) ?? "";
  sim.upsert("APBILL", { RECORDNO: no, RECORDID: ref, VENDORID: "V1007", VENDORNAME: "Blue Ridge Paper", STATE: state ?? STATES[n % STATES.length], TOTALENTERED: "1250.00", WHENMODIFIED: sim.timeText(atMs) });
}

const pollProps = (startFrom: string): Msg => ({ object: "APBILL", states: STATES.join(","), interval: 1, overlap: 60, startFrom, pageSize: 2 });
const flowOf = (props: Msg): TestFlowNode[] => [
  { id: "t1", type: "tab", label: "main" },
  { id: "cfg", type: "mlc-intacct-config", endpoint: sim.endpoint, companyId: sim.companyId, timeZone: sim.timeZone, maxConcurrent: 2, timeout: 30 },
  { id: "trg", type: "mlc-intacct-trigger", z: "t1", intacct: "cfg", store: "", ...props, wires: [["events"]] },
];
const full = (props: Msg): TestFlowNode[] => [
  ...flowOf(props),
  { id: "events", type: "helper", z: "t1" },
  { id: "c1", type: "catch", z: "t1", scope: ["trg"], uncaught: false, wires: [["caught"]] },
  { id: "caught", type: "helper", z: "t1" },
];
const polled = (): number =>
  bed
    .node("trg")
    .status.getCalls()
    .filter((c) => /polled/.test(String((c.args[0] as { text?: string }).text))).length;

triggerSuite({
  title: "mlc-intacct-trigger",
  bed,
  sims: [sim],
  flow: (props) => flowOf(props),
  credentials: () => ({ cfg: CREDS }),
  pollProps,
  addRecord: (ref, atMs) => addBill(ref, atMs),
  ref: (msg) => String((msg.payload as { RECORDID: string }).RECORDID),
  extraCases: () => {
    it("an Intacct error inside a 200 answer reaches Catch with its error number; the next poll emits the bill once", async () => {
      const t0 = Date.now() - 600_000;
      addBill("F1", t0 + 1000);
      sim.failFunctions.readByQuery = 1;
      await bed.load(full(pollProps(iso(t0))), { cfg: CREDS });
      await until(() => bed.received.caught.length === 1, "the failed poll at Catch");
      const details = bed.received.caught[0].errorDetails as Msg;
      assert.equal(details.vendorCode, "BL34000061");
      await until(() => bed.received.events.length === 1, "F1 from the next poll");
      const before = polled();
      await until(() => polled() >= before + 2, "two more polls");
      assert.equal(bed.received.events.length, 1);
      assert.equal(bed.received.events[0].erp.id, "APBILL/V1007/F1");
      assert.equal(sim.logins, 1, "one getAPISession for all polls");
      assert.deepEqual(sim.violations, []);
    });

    it("a bill recreated from Purchasing (new RECORDNO, same vendor, invoice number and state) is not a new event; states outside the condition are not read", async () => {
      const t0 = Date.now() - 600_000;
      addBill("G1", t0 + 1000, "Submitted", "5001");
      addBill("G2", t0 + 2000, "Draft", "5002");
      await bed.load(full(pollProps(iso(t0))), { cfg: CREDS });
      await until(() => bed.received.events.length === 1, "G1");
      sim.remove("APBILL", "5001");
      addBill("G1", Date.now() - 2000, "Submitted", "5003");
      const before = polled();
      await until(() => polled() >= before + 2, "two more polls");
      await settle();
      assert.equal(bed.received.events.length, 1, "the recreated bill was dropped as already journaled");
      assert.equal(bed.received.events[0].erp.modifiedAt, iso(Math.floor((t0 + 1000) / 1000) * 1000));
      assert.ok(sim.log.some((l) => l.functions.includes("readByQuery")));
      assert.equal(bed.received.caught.length, 0);
    });
  },
});

after(() => fs.rmSync(userDir, { recursive: true, force: true }));
