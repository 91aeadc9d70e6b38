/**
 * `mlc-bc-trigger` in a real Node-RED (node-red-node-test-helper) against BcSim, BC posting to the runtime's own
 * HTTP server: subscriptions created through a passing handshake; a notification POST becomes the changed records
 * (read from BC); a forged POST gets 401 and emits nothing; a burst over BC's batch limit (a `collection`
 * notification) gives one message per changed invoice; an entity set BC cannot notify about (purchaseOrders) is polled;
 * removing the node deletes its subscriptions; renewal after simulated days repeats the handshake.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, settle, until } from "../harness/red-testbed";
import { sendRequest } from "../sims/http-server";
import { BcSim } from "../sims/bc";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcSet = require("../../nodes/bc") as (RED: unknown) => void;

const sim = new BcSim();
const SECRET = "k7Qp9v-shared-secret";
const bed = new Testbed([bcSet]);
const creds = () => ({ cfg: { clientId: sim.clientId, clientSecret: sim.clientSecret, caPem: BcSim.caPem }, trig: { clientState: SECRET } });

function flow(entities: string, mode = "webhook", startFrom = ""): TestFlowNode[] {
  return [
    { id: "t1", type: "tab", label: "main" },
    { id: "cfg", type: "mlc-bc-config", tenant: sim.tenant, environment: sim.environment, companyId: sim.companyId, authorityHost: sim.authorityHost, apiHost: sim.apiHost },
    { id: "trig", type: "mlc-bc-trigger", z: "t1", bc: "cfg", mode, entities, endpoint: "events", publicUrl: bed.url, interval: 1, overlap: 0, startFrom, wires: [["out"]] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["trig"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

describe("bc trigger in Node-RED", function () {
  this.timeout(30000);
  bed.hooks({ sims: [sim] });

  it("subscribes through the handshake; a notification becomes the changed record; a forged POST is refused", async () => {
    await bed.load(flow("salesInvoices,customers"), creds());
    await until(() => sim.subs.size === 2, "two subscriptions");
    assert.ok(sim.log.filter((l) => l.kind === "handshake").every((l) => l.kind === "handshake" && l.ok));
    // answered before any body check (§8.1), whatever media type labels the empty body
    const shake = await sendRequest(`${bed.url}/mlc/bc/events?validationToken=vt-1`, { headers: { "content-type": "text/plain; charset=utf-8" }, body: "", timeoutMs: 5000 });
    assert.deepEqual([shake.status, shake.body], [200, "vt-1"]);
    const inv = sim.upsert("salesInvoices", { number: "PS-INV1", status: "In_x0020_Review", phoneNumber: "+14155550101" });
    const [delivery] = await sim.flush();
    assert.equal(delivery.status, 200);
    await until(() => bed.received.out.length === 1, "one event");
    const msg = bed.received.out[0];
    assert.equal(msg.topic, "bc/salesInvoices/created");
    assert.equal(msg.payload.number, "PS-INV1");
    assert.equal(msg.payload.status, "In Review");
    assert.equal(msg.erp.id, inv.id);
    const forged = await sendRequest(`${bed.url}/mlc/bc/events`, { headers: { "content-type": "application/json" }, body: JSON.stringify({ value: [{ subscriptionId: "x", clientState: "guess", resource: `/api/v2.0/companies(${sim.companyId})/salesInvoices(${inv.id})`, changeType: "updated" }] }), timeoutMs: 5000 });
    assert.equal(forged.status, 401);
    // our clientState on an item we cannot act on (a change type BC adds later): 202, reported, never a 4xx that
    // would make BC delete every subscription of the URL
    const sub = [...sim.subs.values()][0];
    const odd = await sendRequest(`${bed.url}/mlc/bc/events`, { headers: { "content-type": "application/json" }, body: JSON.stringify({ value: [{ subscriptionId: sub.subscriptionId, clientState: SECRET, resource: `/api/v2.0/companies(${sim.companyId})/salesInvoices(${inv.id})`, changeType: "archived" }] }), timeoutMs: 5000 });
    assert.equal(odd.status, 200);
    await until(() => bed.received.caught.some((m) => (m.errorDetails as { code?: string })?.code === "bad_record"), "the unusable item reported");
    await settle(300);
    assert.equal(bed.received.out.length, 1);
    assert.equal(sim.subs.size, 2, "nothing got the subscriptions deleted");
  });

  it("a clientState typed as ${VAR} whose variable is unset subscribes nothing and refuses a notification carrying that text", async () => {
    const literal = "${BC_CLIENT_STATE_NOT_SET}"; // Node-RED leaves the text of an unset variable; the examples print it
    assert.equal(process.env.BC_CLIENT_STATE_NOT_SET, undefined);
    await bed.load(flow("salesInvoices"), { ...creds(), trig: { clientState: literal } });
    const inv = sim.upsert("salesInvoices", { number: "PS-ENV1" });
    const forged = await sendRequest(`${bed.url}/mlc/bc/events`, { headers: { "content-type": "application/json" }, body: JSON.stringify({ value: [{ subscriptionId: "x", clientState: literal, resource: `/api/v2.0/companies(${sim.companyId})/salesInvoices(${inv.id})`, changeType: "updated" }] }), timeoutMs: 5000 });
    assert.equal(forged.status, 404);
    await until(() => bed.received.caught.length === 1, "reported to Catch");
    assert.match(String((bed.received.caught[0].errorDetails as { message: string }).message), /BC_CLIENT_STATE_NOT_SET/);
    await settle(300);
    assert.equal(bed.received.out.length, 0);
    assert.equal(sim.subs.size, 0, "no subscription made with a clientState anyone can read in the example");
  });

  it("a burst that becomes a collection notification sends one message per changed invoice", async () => {
    sim.collectionThreshold = 3;
    try {
      await bed.load(flow("salesInvoices"), creds());
      await until(() => sim.subs.size === 1, "subscription");
      for (let i = 0; i < 6; i++) sim.upsert("salesInvoices", { number: `B${i}` });
      await sim.flush();
      await until(() => bed.received.out.length === 6, () => `six events, got ${bed.received.out.length}`);
      assert.deepEqual(bed.received.out.map((m) => m.payload.number).sort(), ["B0", "B1", "B2", "B3", "B4", "B5"]);
    } finally {
      sim.collectionThreshold = 1000;
    }
  });

  it("a full deploy while notifications arrive: BC never gets a 4xx, the subscription stays, the change arrives", async () => {
    await bed.load(flow("salesInvoices"), creds());
    await until(() => sim.subs.size === 1, "subscription");
    sim.upsert("salesInvoices", { number: "D1" });
    const [deploy, deliveries] = await Promise.all([bed.redeploy(flow("salesInvoices"), creds()), sim.flush()]);
    void deploy;
    assert.ok(deliveries.every((d) => d.status === 200 || d.status === 503), JSON.stringify(deliveries));
    assert.equal(sim.subs.size, 1, "the subscription was not deleted");
    // BC retries what was answered 503 (the simulator keeps it for the next delivery)
    for (let i = 0; i < 20 && !bed.received.out.some((m) => m.payload.number === "D1"); i++) {
      await sim.flush();
      await settle(100);
    }
    assert.ok(bed.received.out.some((m) => m.payload.number === "D1"), "the change arrived");
    assert.equal(sim.log.filter((l) => l.kind === "sub-deleted").length, 0);
  });

  it("polls purchaseOrders (not webhook-enabled); removing the node deletes its subscriptions", async () => {
    await bed.load(flow("salesInvoices,purchaseOrders", "webhook", new Date(Date.now() - 1000).toISOString()), creds());
    await until(() => sim.subs.size === 1, "one subscription (purchaseOrders cannot be subscribed)");
    await settle(300);
    sim.upsert("purchaseOrders", { number: "PO-1" });
    await until(() => bed.received.out.some((m) => m.payload.number === "PO-1"), "polled purchase order");
    // deploy the same flow without the trigger: Node-RED closes it with removed = true
    await bed.redeploy(flow("salesInvoices").filter((n) => n.id !== "trig" && n.id !== "c1"), creds());
    await until(() => sim.subs.size === 0, () => `subscriptions deleted with the node: ${JSON.stringify(bed.logCalls().map((c) => c.args).filter((a) => JSON.stringify(a).includes("trig") || JSON.stringify(a).includes("rror")).slice(-6))}`);
  });
});
