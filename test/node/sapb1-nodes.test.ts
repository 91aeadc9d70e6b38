/**
 * The sapb1 node set (config + fetch) in a real Node-RED runtime (node-red-node-test-helper via
 * test/harness/red-testbed.ts) against the HTTPS Service Layer simulator with a self-signed certificate: the
 * configured CA is trusted for this connection only (refused without it, with a clear status), one Login shared by
 * every message, an expired session renewed once, PATCH write-back of a delivery status, a wrong password not
 * retried per message, logout on redeploy, and Test connection.
 */
import assert from "node:assert/strict";
import type { TestFlowNode, TestNode } from "node-red-node-test-helper";
import { Testbed, until } from "../harness/red-testbed";
import { SapB1Sim } from "../sims/sapb1";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const sapb1Set = require("../../nodes/sapb1") as (RED: unknown) => void;

const sim = new SapB1Sim();
const CREDS = { username: sim.username, password: sim.password };
const bed = new Testbed([sapb1Set], {}, { credentials: { cfg: CREDS } });
const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };

function flow(cfg: Record<string, unknown> = {}, fetch: Record<string, unknown> = {}): TestFlowNode[] {
  return [
    TAB,
    { id: "cfg", type: "mlc-sapb1-config", url: sim.url, version: "v2", companyDb: sim.companyDb, timeZone: "UTC", ca: sim.cert, ...cfg },
    { id: "f1", type: "mlc-sapb1-fetch", z: "t1", sapb1: "cfg", operation: "get", entity: "Invoices", entityType: "str", key: "erp.id", keyType: "msg", property: "payload", ...fetch, wires: [["out"]] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["f1"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

function statusTexts(node: TestNode): string[] {
  return node.status
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => `${(c.args[0] as { fill?: string }).fill}:${(c.args[0] as { text?: string }).text}`);
}

describe("sapb1 nodes in Node-RED", function () {
  this.timeout(20000);
  bed.hooks({
    sims: [sim],
    beforeEach: () => {
      sim.put("Invoices", { DocEntry: 812, DocNum: 10412, CardCode: "C20000", DocTotal: 1250, DocumentStatus: "bost_Open", Cancelled: "tNO", UpdateDate: "2024-03-01", UpdateTime: "09:14:22" });
      sim.put("Invoices", { DocEntry: 813, DocNum: 10413, CardCode: "C20000", DocTotal: 80, DocumentStatus: "bost_Open", Cancelled: "tNO", UpdateDate: "2024-03-01", UpdateTime: "09:15:00" });
    },
    afterEach: () => assert.doesNotMatch(bed.emitted(), new RegExp(`${sim.password}|B1SESSION`), "no password or session cookie in any message"),
  });

  it("gets records by msg.erp.id over HTTPS with the configured CA, one Login for every message", async () => {
    await bed.load(flow());
    for (const id of ["Invoices(812)", "Invoices(813)", "Invoices(812)"]) {
      bed.node("f1").receive({ erp: { id } });
    }
    await until(() => bed.received.out.length === 3, "three records");
    assert.deepEqual(bed.received.out.map((m) => m.payload.DocNum).sort(), [10412, 10412, 10413]);
    assert.equal(sim.logins.length, 1);
    assert.ok(sim.dataRequests.every((r) => r.sessionOk));
  });

  it("renews an expired session once and completes the message", async () => {
    await bed.load(flow());
    bed.node("f1").receive({ erp: { id: "Invoices(812)" } });
    await until(() => bed.received.out.length === 1, "first record");
    sim.expireSessions();
    bed.node("f1").receive({ erp: { id: "Invoices(813)" } });
    await until(() => bed.received.out.length === 2, "record after the session expired");
    assert.equal(sim.logins.length, 2);
    assert.equal(sim.logins[1].alive, 0);
    assert.deepEqual(sim.violations, []);
  });

  it("writes the delivery status back onto the document with PATCH (Write field + template)", async () => {
    await bed.load(flow({}, { operation: "patch", field: "Comments", value: "SMS {{twilio.status}} {{twilio.sid}}" }));
    bed.node("f1").receive({ erp: { id: "Invoices(812)" }, twilio: { status: "delivered", sid: "SM123" } });
    await until(() => bed.received.out.length === 1, "patched");
    assert.equal(sim.data.Invoices.get("812")?.Comments, "SMS delivered SM123");
  });

  it("refuses the self-signed certificate without the CA: Catch gets tls_refused and the status says so", async () => {
    await bed.load(flow({ ca: "" }));
    bed.node("f1").receive({ erp: { id: "Invoices(812)" } });
    await until(() => bed.received.caught.length === 1, "TLS error at Catch");
    assert.equal((bed.received.caught[0].errorDetails as { code: string }).code, "tls_refused");
    // a catalog key the editor translates ("TLS refused")
    assert.ok(statusTexts(bed.node("f1")).includes("red:errors.tls_refused"), statusTexts(bed.node("f1")).join(", "));
    assert.equal(sim.logins.length, 0);
  });

  it("a wrong password is tried once, not per message; the nodes show the pause", async () => {
    await bed.load(flow(), { cfg: { ...CREDS, password: "wrong-password" } });
    for (let i = 0; i < 3; i++) {
      bed.node("f1").receive({ erp: { id: "Invoices(812)" } });
      await until(() => bed.received.caught.length === i + 1, `error ${i + 1} at Catch`);
    }
    assert.equal(sim.logins.length, 1);
    assert.deepEqual(bed.received.caught.map((m) => (m.errorDetails as { code: string }).code), ["login_failed", "login_failed", "login_failed"]);
    assert.doesNotMatch(JSON.stringify(bed.received.caught), /wrong-password/);
    assert.ok(statusTexts(bed.node("cfg")).includes("red:errors.auth_cooldown"), statusTexts(bed.node("cfg")).join(", "));
  });

  it("logs out when the flow stops", async () => {
    await bed.load(flow());
    bed.node("f1").receive({ erp: { id: "Invoices(812)" } });
    await until(() => bed.received.out.length === 1, "record");
    await bed.unload();
    assert.equal(sim.logouts.length, 1);
    assert.equal(sim.liveSessions(), 0);
  });

  it("Test connection logs in, reads one item and logs out", async () => {
    await bed.load(flow());
    sim.put("Items", { ItemCode: "A00001", ItemName: "Helmet" });
    const res = await fetch(`${bed.url}/mlc/mlc-sapb1-config/test`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ config: { url: sim.url, version: "v1", companyDb: sim.companyDb, ca: sim.cert }, credentials: CREDS }),
    });
    const json = (await res.json()) as { ok: boolean; message: string };
    assert.equal(json.ok, true, json.message);
    assert.match(json.message, /SBODEMOUS/);
    assert.equal(sim.logouts.length, 1);
  });

  it("Test connection of a deployed connection reads on its session: no second Login, no Logout", async () => {
    await bed.load(flow());
    sim.put("Items", { ItemCode: "A00001", ItemName: "Helmet" });
    bed.node("f1").receive({ erp: { id: "Invoices(812)" } });
    await until(() => bed.received.out.length === 1, "record");
    const form = { url: sim.url, version: "v2", companyDb: sim.companyDb, timeZone: "UTC", ca: sim.cert, pin: "", timeout: "" };
    const post = async (credentials: Record<string, string>) => {
      // as the editor posts it: the node's id, the password not retyped
      const res = await fetch(`${bed.url}/mlc/mlc-sapb1-config/test`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ id: "cfg", config: form, credentials }) });
      return (await res.json()) as { ok: boolean; message: string; code?: string };
    };
    const json = await post({ username: sim.username, password: "__PWRD__" });
    assert.equal(json.ok, true, json.message);
    assert.equal(sim.logins.length, 1, "the deployed session was used");
    assert.equal(sim.logouts.length, 0);
    assert.equal(sim.liveSessions(), 1);
    assert.deepEqual(sim.violations, []);
    // other settings (a wrong password being tried) get a client of their own
    assert.equal((await post({ username: sim.username, password: "not-it" })).code, "login_failed");
    assert.equal(sim.liveSessions(), 1);
  });
});
