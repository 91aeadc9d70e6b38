/**
 * Intacct polling on the kit's Poller against the simulator: the envelope, one alert per ERP event across repeated
 * polls (overlap re-reads, bills recreated from Purchasing with a new RECORDNO keep their jobId), an Intacct error
 * in a 200 answer fails the poll with its error number and the next poll recovers, an expired session between polls
 * is renewed without a lost or repeated event, and one getAPISession for all of it.
 */
import assert from "node:assert/strict";
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { IntacctError } from "../../nodes/lib/intacct/answers";
import { IntacctClient } from "../../nodes/lib/intacct/client";
import { intacctPollRead, intacctRecordToEvent, intacctWindow, stateFilter } from "../../nodes/lib/intacct/events";
import { Poller } from "../../nodes/lib/poll/poller";
import { PollState } from "../../nodes/lib/poll/window";
import { IntacctSim } from "../sims/intacct";

describe("intacct: polling APBILL on the kit's Poller", () => {
  let sim: IntacctSim;
  let client: IntacctClient;
  let state: PollState | undefined;
  let delivered: ErpEventMsg[];
  let poller: Poller;

  const ago = (s: number) => sim.timeText(Date.now() - s * 1000);

  beforeEach(async () => {
    sim = new IntacctSim();
    await sim.start();
    client = new IntacctClient({ ...sim.clientOptions(), retryBaseMs: 5 });
    state = undefined;
    delivered = [];
    poller = new Poller({
      window: intacctWindow({ timeZone: sim.timeZone, overlapMs: 60_000, userFilter: stateFilter(["Submitted", "Partially Approved"]) }),
      intervalMs: 3_600_000,
      startFrom: Date.now() - 3_600_000,
      load: async () => state,
      save: async (s) => {
        state = JSON.parse(JSON.stringify(s)) as PollState;
      },
      read: intacctPollRead(client, sim.companyId, { object: "APBILL", fields: ["RECORDID", "VENDORNAME", "TOTALENTERED"], pageSize: 2 }),
      deliver: (evs) => {
        delivered.push(...evs);
      },
      onError: () => undefined,
    });
  });

  afterEach(async () => {
    await poller.stop();
    await client.close();
    await sim.stop();
  });

  it("emits the envelope once per bill that reached an approval state, across polls and pages", async () => {
    sim.upsert("APBILL", { RECORDNO: "4411", RECORDID: "INV-88231", VENDORID: "V1007", VENDORNAME: "Blue Ridge Paper", STATE: "Submitted", TOTALENTERED: "1250.00", WHENMODIFIED: ago(50) });
    sim.upsert("APBILL", { RECORDNO: "4412", RECORDID: "A-7731", VENDORID: "V1010", VENDORNAME: "Coastal Freight & Co", STATE: "Partially Approved", TOTALENTERED: "980.50", WHENMODIFIED: ago(40) });
    sim.upsert("APBILL", { RECORDNO: "4413", RECORDID: "D-1", VENDORID: "V1010", STATE: "Draft", WHENMODIFIED: ago(30) });
    sim.upsert("APBILL", { RECORDNO: "4414", RECORDID: "P-9", VENDORID: "V1011", STATE: "Posted", WHENMODIFIED: ago(20) });
    await poller.tick();
    await poller.tick();
    assert.deepEqual(delivered.map((e) => e.erp.id), ["APBILL/V1007/INV-88231", "APBILL/V1010/A-7731"]);
    const [e] = delivered;
    assert.equal(e.topic, "intacct/APBILL/updated");
    assert.equal(e.erp.system, "intacct");
    assert.equal(e.erp.tenant, "ACME-US");
    assert.equal(e.erp.number, "INV-88231");
    assert.match(e.erp.jobId, /^j[0-9a-f]{32}$/);
    assert.equal(e.payload.TOTALENTERED, "1250.00");
    assert.match(String(e.erp.modifiedAt), /Z$/);
    assert.equal(sim.logins, 1);
    assert.deepEqual(sim.violations, []);
  });

  it("a bill recreated from Purchasing (new RECORDNO) in the same state keeps its jobId; a new state is a new jobId", async () => {
    sim.upsert("APBILL", { RECORDNO: "4411", RECORDID: "INV-88231", VENDORID: "V1007", STATE: "Submitted", WHENMODIFIED: ago(50) });
    await poller.tick();
    sim.remove("APBILL", "4411");
    sim.upsert("APBILL", { RECORDNO: "4500", RECORDID: "INV-88231", VENDORID: "V1007", STATE: "Submitted", WHENMODIFIED: ago(10) });
    await poller.tick();
    assert.equal(delivered.length, 2, "the window sees a new modification");
    assert.equal(delivered[0].erp.jobId, delivered[1].erp.jobId, "dedupe downstream drops the recreated bill");
    sim.upsert("APBILL", { RECORDNO: "4500", RECORDID: "INV-88231", VENDORID: "V1007", STATE: "Partially Approved", WHENMODIFIED: ago(5) });
    await poller.tick();
    assert.notEqual(delivered[2].erp.jobId, delivered[0].erp.jobId);
  });

  it("an Intacct error in a 200 answer fails the poll with its error number; the next poll delivers what it missed", async () => {
    sim.upsert("APBILL", { RECORDNO: "1", RECORDID: "A", VENDORID: "V1", STATE: "Submitted", WHENMODIFIED: ago(50) });
    sim.failFunctions.readByQuery = 1;
    await assert.rejects(poller.tick(), (e: unknown) => e instanceof IntacctError && e.vendorCode === "BL34000061");
    assert.equal(delivered.length, 0);
    await poller.tick();
    assert.deepEqual(delivered.map((e) => e.erp.id), ["APBILL/V1/A"]);
  });

  it("an expired session between polls is renewed: nothing lost, nothing repeated, and never resent", async () => {
    sim.upsert("APBILL", { RECORDNO: "1", RECORDID: "A", VENDORID: "V1", STATE: "Submitted", WHENMODIFIED: ago(50) });
    await poller.tick();
    sim.expireSessions();
    sim.upsert("APBILL", { RECORDNO: "2", RECORDID: "B", VENDORID: "V1", STATE: "Submitted", WHENMODIFIED: ago(5) });
    await poller.tick();
    await poller.tick();
    assert.deepEqual(delivered.map((e) => e.erp.id), ["APBILL/V1/A", "APBILL/V1/B"]);
    assert.equal(sim.logins, 2);
    assert.deepEqual(sim.violations, []);
  });

  it("rows become events with stable keys; rows without a key or time are refused", () => {
    const ev = intacctRecordToEvent({ RECORDNO: "9", RECORDID: "", VENDORID: "V", WHENMODIFIED: "2025-03-10T21:22:31.000Z", STATE: "Submitted" }, { tenant: "T", object: "apbill" });
    assert.equal(ev.erp.id, "APBILL/9", "no RECORDID: RECORDNO is the only key there is");
    assert.throws(() => intacctRecordToEvent({ WHENMODIFIED: "2025-03-10T21:22:31.000Z" }, { tenant: "T", object: "VENDOR" }), /without VENDORID/);
    assert.throws(() => intacctRecordToEvent({ RECORDNO: "1" }, { tenant: "T", object: "GLBATCH" }), /no valid WHENMODIFIED/);
    assert.equal(stateFilter(["Submitted", "O'Brien"]), "STATE IN ('Submitted','O\\'Brien')");
  });
});
