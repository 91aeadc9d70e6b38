/**
 * The test-only family's trigger (test/kit/nodes.ts, `mlc-kit-trigger`) through the same family trigger suite as
 * Acumatica (trigger-suite.ts), in a real Node-RED runtime against test/sims/kit-odata.ts: pushes signed with an
 * HMAC-SHA256 of the body, polling of the fake OData list; and the skeleton's hooks as Business Central and Exact
 * Online will use them: a webhook subscription registered through the validation handshake, deleted with the node.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, until } from "../harness/red-testbed";
import { registerKitNodes } from "../kit/nodes";
import { KitSim } from "../sims/kit-odata";
import { SUITE_SETTINGS, triggerSuite } from "./trigger-suite";

const sim = new KitSim();
const bed = new Testbed([registerKitNodes as (RED: unknown) => void], SUITE_SETTINGS);
const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };
const pushNode = (props: Record<string, unknown> = {}): TestFlowNode => ({ id: "trg", type: "mlc-kit-trigger", z: "t1", url: sim.url, clientId: sim.clientId, store: "", mode: "push", endpoint: "suite", ...props, wires: [["events"]] });
const CREDS = { trg: { clientSecret: sim.clientSecret, signingKey: "kit-signing-key" } };
const iso = (ms: number): string => new Date(ms).toISOString();

triggerSuite({
  title: "mlc-kit-trigger (test-only family)",
  bed,
  sims: [sim],
  flow: (props) => [
    { id: "t1", type: "tab", label: "main" },
    { id: "trg", type: "mlc-kit-trigger", z: "t1", url: sim.url, clientId: sim.clientId, store: "", ...props, wires: [["events"]] },
  ],
  credentials: (secret) => ({ trg: { clientSecret: sim.clientSecret, ...(secret ? { signingKey: secret } : {}) } }),
  pushProps: { mode: "push", endpoint: "suite" },
  pushPath: "/mlc/kit/suite",
  pollProps: (startFrom) => ({ mode: "poll", interval: 1, overlap: 60, startFrom }),
  pushBody: (deliveryId, rows) => Buffer.from(JSON.stringify({ deliveryId, items: rows.map((r) => ({ id: r.ref, name: `item ${r.ref}`, modifiedAt: iso(r.atMs) })) })),
  authHeaders: (body, secret) => ({ "X-Kit-Signature": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}` }),
  addRecord: (ref, atMs) => {
    const item = sim.items.find((i) => i.id === ref);
    if (item) item.modifiedAt = iso(atMs);
    else sim.items.push({ id: ref, name: `item ${ref}`, modifiedAt: iso(atMs) });
  },
  ref: (msg) => String((msg.payload as { id: string }).id),
  extraCases: () => {
    it("hooks: a public URL registers a subscription through the validation handshake; deleting the node deletes it", async () => {
      await bed.load([TAB, pushNode({ publicUrl: bed.url }), { id: "events", type: "helper", z: "t1" }], { trg: { ...CREDS.trg, clientSecret: sim.clientSecret } });
      await until(() => sim.subscriptions.size === 1, () => `a subscription; sim log ${JSON.stringify(sim.log.filter((l) => l.kind === "subscription"))}`);
      const [sub] = [...sim.subscriptions.values()];
      assert.equal(sub.notificationUrl, `${bed.url}/mlc/kit/suite`);
      await bed.redeploy([TAB]); // the trigger deleted
      await until(() => sim.subscriptions.size === 0, () => `the subscription deleted; sim log ${JSON.stringify(sim.log.slice(-4))}`);
      assert.deepEqual(sim.log.filter((l) => l.kind === "subscription").map((l) => (l as { op: string }).op), ["created", "deleted"]);
    });

    it("hooks: the validation handshake echoes a safe token only (anything else meets the signature check)", async () => {
      await bed.load([TAB, pushNode({ publicUrl: bed.url }), { id: "events", type: "helper", z: "t1" }], { trg: { ...CREDS.trg, clientSecret: sim.clientSecret } });
      await until(() => sim.subscriptions.size === 1, "a subscription");
      const res = await fetch(`${bed.url}/mlc/kit/suite?validationToken=${encodeURIComponent("<script>")}`, { method: "POST" });
      assert.equal(res.status, 401, "not a handshake: the signature check refuses it");
      assert.ok(!(await res.text()).includes("script"));
      const ok = await fetch(`${bed.url}/mlc/kit/suite?validationToken=abc-123`, { method: "POST" });
      assert.deepEqual([ok.status, await ok.text()], [200, "abc-123"]);
    });
  },
});
