/**
 * The test-only family's trigger (test/kit/nodes.ts, `mlc-kit-trigger`) through the same family trigger suite as
 * Acumatica (trigger-suite.ts), in a real Node-RED runtime against test/sims/kit-odata.ts: pushes signed with an
 * HMAC-SHA256 of the body, polling of the fake OData list.
 */
import { createHmac } from "node:crypto";
import { Testbed } from "../harness/red-testbed";
import { registerKitNodes } from "../kit/nodes";
import { KitSim } from "../sims/kit-odata";
import { SUITE_SETTINGS, triggerSuite } from "./trigger-suite";

const sim = new KitSim();
const iso = (ms: number): string => new Date(ms).toISOString();

triggerSuite({
  title: "mlc-kit-trigger (test-only family)",
  bed: new Testbed([registerKitNodes as (RED: unknown) => void], SUITE_SETTINGS),
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
});
