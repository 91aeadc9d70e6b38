/**
 * End to end, packed and installed into a fresh Node-RED user dir (test/harness/nodered.ts): the Acumatica session
 * survives `kill -9`. The simulator has the trial licence's 2 API users and rotates refresh tokens (an old one is
 * refused). Before issue 6 every crash left its OAuth grant open and the third start hit "API Login Limit"; now the
 * saved refresh token is refreshed after each restart: one grant for the whole run, signed out on a clean stop.
 * MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { AcumaticaSim } from "../sims/acumatica";
import { CREDENTIAL_REFS, FlowNode } from "../harness/stack";
import { NodeRed, freePort, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";

const FLOW: FlowNode[] = [
  { id: "ses0000000000000", type: "tab", label: "session" },
  {
    id: "ses00000000000c1",
    type: "mlc-acumatica-config",
    name: "Acumatica",
    instanceUrl: "${ACUMATICA_URL}",
    tenant: "${ACUMATICA_TENANT}",
    endpointName: "Default",
    endpointVersion: "24.200.001",
    authMode: "oauth",
    credentials: { ...CREDENTIAL_REFS["mlc-acumatica-config"] },
  },
  { id: "ses0000000000001", type: "inject", z: "ses0000000000000", props: [{ p: "payload" }], payload: "V000042", payloadType: "str", repeat: "", once: false, wires: [["ses0000000000002"]] },
  { id: "ses0000000000002", type: "mlc-acumatica-fetch", z: "ses0000000000000", acumatica: "ses00000000000c1", operation: "get", entity: "Vendor", entityType: "str", key: "payload", keyType: "msg", wires: [[]] },
];

describe("end to end: the Acumatica session survives kill -9 (packed and installed)", function () {
  this.timeout(240000);
  let sim: AcumaticaSim;
  let nodeRed: NodeRed;
  let root: string;

  before(async function () {
    sim = new AcumaticaSim(); // trial licence: 2 API users
    await sim.start();
    sim.seedDemoData();
    root = tempDir("mlc-e2e-sessions-");
    const userDir = path.join(root, "user");
    installInto(userDir, packRepo(path.join(root, "pack")));
    nodeRed = new NodeRed({
      userDir,
      port: await freePort(),
      env: {
        ACUMATICA_URL: sim.url,
        ACUMATICA_TENANT: "AcmeProd",
        ACUMATICA_CLIENT_ID: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd",
        ACUMATICA_CLIENT_SECRET: "s3cr3t",
        ACUMATICA_USERNAME: "api.user",
        ACUMATICA_PASSWORD: "P@ss-w0rd",
      },
    });
    await nodeRed.start();
    await nodeRed.deploy(FLOW);
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && nodeRed) process.stderr.write(nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await nodeRed?.stop();
    await sim?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const reads = (): number => sim.requests.filter((r) => r.method === "GET" && r.path.endsWith("/Vendor/V000042") && r.status === 200).length;
  async function readOnce(): Promise<void> {
    const before = reads();
    await nodeRed.inject("ses0000000000001");
    await waitFor(() => reads() > before, 20000, "the fetch node read the vendor");
  }

  it("kill -9 twice, restart each time: one grant, no API Login Limit, signed out on a clean stop", async function () {
    await readOnce();
    assert.deepEqual({ logins: sim.stats.logins, active: sim.stats.activeSessions }, { logins: 1, active: 1 });

    for (let crash = 1; crash <= 2; crash++) {
      await nodeRed.kill();
      await nodeRed.start();
      await readOnce();
    }
    const tokenFile = path.join(root, "user", ".mlc-tokens", "acumatica-ses00000000000c1.json");
    assert.ok(fs.existsSync(tokenFile), "refresh token saved in the user dir");
    const stats = sim.stats;
    assert.deepEqual({ logins: stats.logins, refreshes: stats.refreshes, active: stats.activeSessions }, { logins: 1, refreshes: 2, active: 1 });
    const refused = sim.requests.filter((r) => r.path === "/identity/connect/token" && r.status !== 200);
    assert.deepEqual(refused, [], "no refused token request (API Login Limit, stale refresh token)");
    assert.ok(!nodeRed.log.some((l) => /API Login Limit/i.test(l)), "no API Login Limit in the log");
    const secret = fs.readFileSync(tokenFile, "utf8");
    assert.ok(!nodeRed.log.some((l) => l.includes(secret.slice(40, 80))), "token file content never logged");

    await nodeRed.stop();
    assert.deepEqual({ logouts: sim.stats.logouts, active: sim.stats.activeSessions }, { logouts: 1, active: 0 });
    assert.equal(fs.existsSync(tokenFile), false, "forgotten after the confirmed sign-out");
  });
});
