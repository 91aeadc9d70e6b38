/**
 * The Intacct node set in a real Node-RED runtime (node-red-node-test-helper via test/harness/red-testbed.ts) against
 * the strict Intacct simulator: fetch by key with the enrichment cache (one gateway call for many alerts about one
 * vendor, one getAPISession in all), query with a JSON filter, Intacct errors in 200 answers at Catch with their error
 * number, a refused sign-in paused instead of repeated per message, and the Test connection endpoint.
 */
import assert from "node:assert/strict";
import type { TestFlowNode, TestNode } from "node-red-node-test-helper";
import { Testbed, until, Msg } from "../harness/red-testbed";
import { IntacctSim } from "../sims/intacct";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const intacctSet = require("../../nodes/intacct") as (RED: unknown) => void;

const sim = new IntacctSim();
const CREDS = { senderId: sim.senderId, senderPassword: sim.senderPassword, userId: sim.userId, userPassword: sim.userPassword };
const bed = new Testbed([intacctSet], {}, { credentials: { cfg: CREDS } });
const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };

function flow(props: Msg = {}): TestFlowNode[] {
  return [
    TAB,
    { id: "cfg", type: "mlc-intacct-config", endpoint: sim.endpoint, companyId: sim.companyId, timeZone: sim.timeZone, maxConcurrent: 2, timeout: 30 },
    { id: "f1", type: "mlc-intacct-fetch", z: "t1", intacct: "cfg", operation: "get", object: "VENDOR", objectType: "str", keyField: "VENDORID", key: "payload.VENDORID", keyType: "msg", fields: "VENDORID,NAME,DISPLAYCONTACT.CELLPHONE,WHENMODIFIED", cacheSeconds: 300, property: "vendor", ...props, wires: [["out"]] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["f1"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

function statuses(node: TestNode): { fill?: string; text?: string }[] {
  return node.status
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args[0] as { fill?: string; text?: string });
}

describe("intacct nodes in Node-RED", function () {
  this.timeout(20000);
  bed.hooks({
    sims: [sim],
    beforeEach: () => {
      sim.upsert("VENDOR", { RECORDNO: "11", VENDORID: "V1007", NAME: "Blue Ridge Paper & Co", "DISPLAYCONTACT.CELLPHONE": "+14155550100", WHENMODIFIED: "03/10/2025 14:22:31" });
      sim.upsert("VENDOR", { RECORDNO: "12", VENDORID: "V1010", NAME: "Coastal Freight", "DISPLAYCONTACT.CELLPHONE": "", WHENMODIFIED: "03/11/2025 08:00:00" });
    },
    afterEach: () => {
      const all = JSON.stringify([bed.received.out, bed.received.caught]);
      for (const secret of [sim.senderPassword, sim.userPassword]) assert.ok(!all.includes(secret), "no secret in any message");
    },
  });

  it("get by key enriches the message; many alerts about one vendor cost one call and one session", async () => {
    await bed.load(flow());
    for (let i = 0; i < 5; i++) {
      bed.node("f1").receive({ payload: { VENDORID: "V1007", RECORDID: `INV-${i}` } });
      await until(() => bed.received.out.length === i + 1, `message ${i + 1} out`);
    }
    assert.deepEqual(bed.received.out[0].vendor, { VENDORID: "V1007", NAME: "Blue Ridge Paper & Co", "DISPLAYCONTACT.CELLPHONE": "+14155550100", WHENMODIFIED: "2025-03-10T21:22:31.000Z" });
    assert.equal(bed.received.out[4].payload.RECORDID, "INV-4");
    assert.equal(sim.logins, 1);
    assert.deepEqual(sim.log.map((l) => l.functions[0]), ["getAPISession", "query"]);
    assert.deepEqual(sim.violations, []);
  });

  it("a key that matches nothing reaches Catch as not found", async () => {
    await bed.load(flow());
    bed.node("f1").receive({ payload: { VENDORID: "V9999" } });
    await until(() => bed.received.caught.length === 1, "error at Catch");
    assert.equal((bed.received.caught[0].errorDetails as Msg).code, "not_found");
  });

  it("query with a JSON filter returns every matching row", async () => {
    await bed.load(flow({ operation: "query", filter: JSON.stringify({ field: "NAME", op: "like", value: "%Freight%" }), filterType: "json", orderBy: "-VENDORID", limit: 10, property: "payload" }));
    bed.node("f1").receive({});
    await until(() => bed.received.out.length === 1, "rows out");
    assert.deepEqual((bed.received.out[0].payload as Msg[]).map((r) => r.VENDORID), ["V1010"]);
  });

  it("an Intacct function error in a 200 answer reaches Catch with its error number", async () => {
    await bed.load(flow({ object: "NOSUCHOBJECT" }));
    bed.node("f1").receive({ payload: { VENDORID: "V1007" } });
    await until(() => bed.received.caught.length === 1, "error at Catch");
    const d = bed.received.caught[0].errorDetails as Msg;
    assert.equal(d.code, "intacct_result");
    assert.equal(d.vendorCode, "Query Failed");
    assert.match(d.message, /Object definition NOSUCHOBJECT not found/);
  });

  it("a wrong user password: one sign-in for many messages, every message at Catch, nodes show the pause", async () => {
    await bed.load(flow(), { cfg: { ...CREDS, userPassword: "not-it" } });
    for (let i = 0; i < 4; i++) {
      bed.node("f1").receive({ payload: { VENDORID: "V1007" } });
      await until(() => bed.received.caught.length === i + 1, `error ${i + 1} at Catch`);
    }
    assert.equal(sim.log.length, 1, "one sign-in attempt");
    assert.equal((bed.received.caught[0].errorDetails as Msg).vendorCode, "XL03000006");
    assert.ok(statuses(bed.node("f1")).some((s) => s.fill === "red"), "the fetch node shows the problem");
  });

  it("Test connection signs in and names company and user, never a secret", async () => {
    await bed.load(flow());
    const post = async (credentials: Msg) => {
      const res = await fetch(`${bed.url}/mlc/mlc-intacct-config/test`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ config: { endpoint: sim.endpoint, companyId: sim.companyId }, credentials }) });
      return { status: res.status, text: await res.text() };
    };
    const good = await post(CREDS);
    assert.equal(good.status, 200);
    assert.equal(JSON.parse(good.text).ok, true, good.text);
    assert.match(good.text, /ACME-US/);
    const bad = await post({ ...CREDS, senderPassword: "wrong-one" });
    assert.equal(JSON.parse(bad.text).ok, false);
    assert.equal(JSON.parse(bad.text).code, "sender_refused");
    assert.ok(!bad.text.includes("wrong-one") && !good.text.includes(sim.userPassword));
  });

  it("Test connection of a deployed connection uses its session: no second getAPISession while it lives", async () => {
    await bed.load(flow());
    bed.node("f1").receive({ payload: { VENDORID: "V1007" } });
    await until(() => bed.received.out.length === 1, "vendor read");
    const form = { endpoint: sim.endpoint, companyId: sim.companyId, locationId: "", timeZone: sim.timeZone, maxConcurrent: "2", timeout: "30" };
    const res = await fetch(`${bed.url}/mlc/mlc-intacct-config/test`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      // as the editor posts it: the node's id, passwords not retyped
      body: JSON.stringify({ id: "cfg", config: form, credentials: { ...CREDS, senderPassword: "__PWRD__", userPassword: "__PWRD__" } }),
    });
    const json = (await res.json()) as { ok: boolean; message: string };
    assert.equal(json.ok, true, json.message);
    assert.equal(sim.logins, 1, "the deployed session was used");
    assert.deepEqual(sim.violations, []);
    // other settings than the deployed ones (another user) are tested on their own client
    const other = await fetch(`${bed.url}/mlc/mlc-intacct-config/test`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: "cfg", config: form, credentials: { ...CREDS, userId: "someone_else" } }) });
    assert.equal(((await other.json()) as { code?: string }).code, "auth_failed");
  });
});
