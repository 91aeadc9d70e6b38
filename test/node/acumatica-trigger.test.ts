/**
 * The Acumatica trigger (mlc-acumatica-trigger) through the family trigger suite (trigger-suite.ts), in a real
 * Node-RED runtime against the Acumatica simulator: push notifications with the shared-secret header, polling of Bill.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Testbed } from "../harness/red-testbed";
import { AcumaticaSim } from "../sims/acumatica";
import { SUITE_SETTINGS, triggerSuite } from "./trigger-suite";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const acumaticaSet = require("../../nodes/acumatica") as (RED: unknown) => void;

const sim = new AcumaticaSim();
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-node-acu-trigger-"));
const CREDS = { clientId: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd", clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" };
const iso = (ms: number): string => new Date(ms).toISOString();

triggerSuite({
  title: "mlc-acumatica-trigger",
  bed: new Testbed([acumaticaSet], { ...SUITE_SETTINGS, userDir, credentialSecret: "node-test-secret" }),
  sims: [sim],
  flow: (props) => [
    { id: "t1", type: "tab", label: "main" },
    { id: "cfg", type: "mlc-acumatica-config", instanceUrl: sim.url, tenant: "AcmeProd", endpointName: "Default", endpointVersion: "24.200.001", authMode: "oauth" },
    { id: "trg", type: "mlc-acumatica-trigger", z: "t1", acumatica: "cfg", store: "", ...props, wires: [["events"]] },
  ],
  credentials: (secret) => ({ cfg: CREDS, trg: secret ? { headerSecret: secret } : ({} as Record<string, string>) }),
  pushProps: { mode: "push", endpoint: "suite", entity: "Bill" },
  pushPath: "/mlc/acumatica/suite",
  pollProps: (startFrom) => ({ mode: "poll", entity: "Bill", interval: 1, overlap: 60, startFrom, pageSize: 2 }),
  pushBody: (id, rows) =>
    Buffer.from(
      JSON.stringify({
        Query: "BillsPendingApproval",
        Id: id,
        TimeStamp: Date.now(),
        Inserted: rows.map((r) => ({ Type: "Bill", ReferenceNbr: r.ref, VendorName: "Acme", Amount: 1250, LastModifiedDateTime: iso(r.atMs) })),
        Deleted: [],
      }),
    ),
  authHeaders: (_body, secret) => ({ "X-Notify-Secret": secret }),
  addRecord: (ref, atMs) => void sim.upsert("Bill", { Type: "Bill", ReferenceNbr: ref, Vendor: "V000042", Amount: 1, Status: "Open", LastModifiedDateTime: iso(atMs) }),
  ref: (msg) => String((msg.payload as { ReferenceNbr: string }).ReferenceNbr),
});

// During a full deploy a push can reach a trigger whose connection (config node) is not there: that is not the
// body's fault, so the sender must retry (503), never drop it (400; Business Central deletes its subscription on a 4xx).
describe("mlc-acumatica-trigger: a push while its connection is missing", function () {
  this.timeout(60000);
  const bed = new Testbed([acumaticaSet], { ...SUITE_SETTINGS, userDir, credentialSecret: "node-test-secret" });
  bed.loadContextStores = true;
  bed.hooks({ sims: [sim] });

  it("answers 503 with Retry-After (not 400), emits nothing and tells Catch no_config", async () => {
    await bed.load(
      [
        { id: "t1", type: "tab", label: "main" },
        { id: "trg", type: "mlc-acumatica-trigger", z: "t1", acumatica: "gone", store: "", mode: "push", endpoint: "nocfg", entity: "Bill", wires: [["events"]] },
        { id: "events", type: "helper", z: "t1" },
        { id: "c1", type: "catch", z: "t1", scope: ["trg"], uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "t1" },
      ],
      { trg: { headerSecret: "s3cr3t-header" } },
    );
    const body = JSON.stringify({ Query: "BillsPendingApproval", Id: "n-1", Inserted: [{ Type: "Bill", ReferenceNbr: "X1", LastModifiedDateTime: iso(Date.now()) }], Deleted: [] });
    const res = await fetch(`${bed.url}/mlc/acumatica/nocfg`, { method: "POST", headers: { "content-type": "application/json", "X-Notify-Secret": "s3cr3t-header" }, body });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "5");
    assert.equal(await res.text(), "Service unavailable");
    assert.equal((bed.received.events ?? []).length, 0);
    assert.equal((bed.received.caught?.[0]?.errorDetails as { code?: string } | undefined)?.code, "no_config");
  });
});

after(() => fs.rmSync(userDir, { recursive: true, force: true }));
