/**
 * The Business Central node set in a real Node-RED runtime (node-red-node-test-helper via test/harness/red-testbed.ts)
 * against BcSim: fetch get/list/update through the config node's one client (one Entra token for all), a templated
 * `$filter` escaped as OData literals, the If-Match write-back refusing a stale ETag, a refused secret paused rather
 * than retried per message, and Test connection listing the companies. No secret in any message.
 */
import assert from "node:assert/strict";
import type { TestFlowNode, TestNode } from "node-red-node-test-helper";
import { Testbed, until } from "../harness/red-testbed";
import { BcSim } from "../sims/bc";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcSet = require("../../nodes/bc") as (RED: unknown) => void;

const sim = new BcSim();
const creds = (over: Record<string, string> = {}) => ({ cfg: { clientId: sim.clientId, clientSecret: sim.clientSecret, caPem: BcSim.caPem, ...over } });
const bed = new Testbed([bcSet]);

const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };
const cfgNode = (): TestFlowNode => ({ id: "cfg", type: "mlc-bc-config", tenant: sim.tenant, environment: sim.environment, companyId: sim.companyId, authorityHost: sim.authorityHost, apiHost: sim.apiHost });

function flow(props: Record<string, unknown>): TestFlowNode[] {
  return [
    TAB,
    cfgNode(),
    { id: "f1", type: "mlc-bc-fetch", z: "t1", bc: "cfg", entity: "salesInvoices", entityType: "str", key: "erp.id", keyType: "msg", property: "payload", ...props, wires: [["out"]] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["f1"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

/** The status texts `node` showed, as "fill:text" (texts are catalog keys the editor translates). */
function statusTexts(node: TestNode): string[] {
  return node.status
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => `${(c.args[0] as { fill?: string }).fill}:${(c.args[0] as { text?: string }).text}`);
}

describe("bc nodes in Node-RED", function () {
  this.timeout(30000);
  bed.hooks({
    sims: [sim],
    afterEach: () => assert.ok(!bed.emitted().includes(sim.clientSecret), "no secret in any message"),
  });

  it("get: reads the record named by msg.erp.id, enums decoded; many messages share one token", async () => {
    const inv = sim.upsert("salesInvoices", { number: "PS-INV104321", status: "In_x0020_Review", totalAmountIncludingTax: 1250 });
    await bed.load(flow({ operation: "get" }), creds());
    for (let i = 0; i < 3; i++) bed.node("f1").receive({ erp: { id: inv.id } });
    await until(() => bed.received.out.length === 3, "three records");
    assert.equal(bed.received.out[0].payload.number, "PS-INV104321");
    assert.equal(bed.received.out[0].payload.status, "In Review");
    assert.equal(sim.tokensIssued, 1);
  });

  it("list: a templated $filter is escaped; every page is read", async () => {
    for (let i = 0; i < 4; i++) sim.upsert("customers", { number: `C${i}`, displayName: i === 2 ? "O'Brien Bikes" : `Shop ${i}` });
    await bed.load(flow({ operation: "list", entity: "customers", filter: "displayName eq '{{payload.name}}'" }), creds());
    bed.node("f1").receive({ payload: { name: "O'Brien Bikes" } });
    await until(() => bed.received.out.length === 1, "listing");
    assert.deepEqual(bed.received.out[0].payload.map((r: { number: string }) => r.number), ["C2"]);
    const call = sim.apiCalls((l) => l.path.endsWith("/customers"))[0];
    assert.match(call.query, /displayName eq 'O''Brien Bikes'/);
  });

  it("update: PATCH with the record's ETag; a stale ETag reaches Catch as etag_mismatch and changes nothing", async () => {
    const v = sim.upsert("vendors", { number: "V1", displayName: "Fabrikam", phoneNumber: "+15555550100" });
    await bed.load(flow({ operation: "update", entity: "vendors" }), creds());
    bed.node("f1").receive({ erp: { id: v.id }, payload: { displayName: "Fabrikam Ltd", "@odata.etag": v["@odata.etag"] } });
    await until(() => bed.received.out.length === 1, "updated record");
    assert.equal(bed.received.out[0].payload.displayName, "Fabrikam Ltd");
    bed.node("f1").receive({ erp: { id: v.id }, payload: { displayName: "Overwritten" }, etag: v["@odata.etag"] });
    await until(() => bed.received.caught.length === 1, "stale ETag at Catch");
    assert.equal(bed.received.caught[0].errorDetails.code, "etag_mismatch");
    assert.equal(sim.rows.get("vendors")?.get(v.id)?.displayName, "Fabrikam Ltd");
  });

  it("a refused secret: every message reaches Catch, one token request in all", async () => {
    await bed.load(flow({ operation: "get" }), creds({ clientSecret: "not-the-secret" }));
    for (let i = 0; i < 3; i++) {
      bed.node("f1").receive({ erp: { id: "3f1c2a9e-0b7d-4e1a-9c55-1a2b3c4d5e6f" } });
      await until(() => bed.received.caught.length === i + 1, `error ${i + 1}`);
    }
    assert.deepEqual(bed.received.caught.map((m) => m.errorDetails.code), ["auth_failed", "auth_failed", "auth_failed"]);
    assert.equal(sim.log.filter((l) => l.kind === "token-refused").length, 1);
    assert.ok(!bed.emitted().includes("not-the-secret"));
    // the pause is a catalog key on the config node and on the node using it (not server-translated text)
    assert.ok(statusTexts(bed.node("cfg")).includes("red:errors.auth_cooldown"), statusTexts(bed.node("cfg")).join(", "));
    assert.ok(statusTexts(bed.node("f1")).includes("red:errors.auth_cooldown"), statusTexts(bed.node("f1")).join(", "));
  });

  it("Test connection signs in and lists the companies", async () => {
    await bed.load(flow({ operation: "get" }), creds());
    const res = await fetch(`${bed.url}/mlc/mlc-bc-config/test`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id: "cfg", config: { tenant: sim.tenant, environment: sim.environment, companyId: sim.companyId, authorityHost: sim.authorityHost, apiHost: sim.apiHost }, credentials: { clientSecret: "__PWRD__" } }),
    });
    const r = (await res.json()) as { ok: boolean; message: string; companies: Array<{ id: string; name: string }> };
    assert.equal(r.ok, true, r.message);
    assert.deepEqual(r.companies, [{ id: sim.companyId, name: "CRONUS USA, Inc." }]);
    assert.ok(!JSON.stringify(r).includes(sim.clientSecret));
  });
});
