/**
 * End to end, two packed installs on one Redis (the README's settings.js lines, "Several Node-RED instances on one
 * Redis"): one Acumatica OAuth grant (one licensed API user) for both instances. Both read through the same
 * connection; the simulator sees one password grant and one API user in use; a clean stop of one instance does not
 * sign out the grant the other still uses; the stop of the last one does. This checks the config node's wiring
 * (nodes/shared/shared-secret.ts finds the Redis store Node-RED opened), which the unit tests do not reach.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { AcumaticaSim } from "../sims/acumatica";
import { CREDENTIAL_REFS, FlowNode } from "../harness/stack";
import { NodeRed, freePort, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";
import { RedisServer, startRedis } from "../harness/redis";

/** settings.js `contextStorage`, exactly as the README section gives it. */
const README_CONTEXT_STORAGE = `{
    default: { module: require("node-red-contrib-ml-connector/store"), config: { redis: { url: process.env.MLC_REDIS_URL } } },
    memory: { module: "memory" }
  }`;

const FLOW: FlowNode[] = [
  { id: "rss0000000000000", type: "tab", label: "shared session" },
  {
    id: "rss00000000000c1",
    type: "mlc-acumatica-config",
    name: "Acumatica",
    instanceUrl: "${ACUMATICA_URL}",
    tenant: "${ACUMATICA_TENANT}",
    endpointName: "Default",
    endpointVersion: "24.200.001",
    authMode: "oauth",
    credentials: { ...CREDENTIAL_REFS["mlc-acumatica-config"] },
  },
  { id: "rss0000000000001", type: "inject", z: "rss0000000000000", props: [{ p: "payload" }], payload: "V000042", payloadType: "str", repeat: "", once: false, wires: [["rss0000000000002"]] },
  { id: "rss0000000000002", type: "mlc-acumatica-fetch", z: "rss0000000000000", acumatica: "rss00000000000c1", operation: "get", entity: "Vendor", entityType: "str", key: "payload", keyType: "msg", wires: [[]] },
];

describe("end to end: two Node-RED instances on one Redis share one Acumatica grant (packed and installed)", function () {
  this.timeout(300000);
  let sim: AcumaticaSim;
  let redis: RedisServer;
  let root: string;
  const instances: NodeRed[] = [];

  before(async function () {
    redis = await startRedis(this);
    sim = new AcumaticaSim(); // trial licence: 2 API users
    await sim.start();
    sim.seedDemoData();
    root = tempDir("mlc-e2e-redis-sessions-");
    const tarball = packRepo(path.join(root, "pack"));
    for (const name of ["a", "b"]) {
      const userDir = path.join(root, name);
      installInto(userDir, tarball);
      const env = {
        MLC_REDIS_URL: redis.url,
        ACUMATICA_URL: sim.url,
        ACUMATICA_TENANT: "AcmeProd",
        ACUMATICA_CLIENT_ID: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd",
        ACUMATICA_CLIENT_SECRET: "s3cr3t",
        ACUMATICA_USERNAME: "api.user",
        ACUMATICA_PASSWORD: "P@ss-w0rd",
      };
      const nr = new NodeRed({ userDir, port: await freePort(), env, contextStorage: README_CONTEXT_STORAGE });
      instances.push(nr);
      await nr.start(120000);
      await nr.deploy(FLOW);
    }
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") for (const nr of instances) process.stderr.write(nr.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    for (const nr of instances) await nr.stop();
    await sim?.stop();
    await redis?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const reads = (): number => sim.requests.filter((r) => r.method === "GET" && r.path.endsWith("/Vendor/V000042") && r.status === 200).length;
  async function readOnce(nr: NodeRed): Promise<void> {
    const before = reads();
    await nr.inject("rss0000000000001");
    await waitFor(() => reads() > before, 30000, "the fetch node read the vendor");
  }
  const stats = (): { logins: number; active: number; logouts: number } => ({ logins: sim.stats.logins, active: sim.stats.activeSessions, logouts: sim.stats.logouts });

  it("one grant for both instances; stopping one keeps it, stopping the last signs out", async () => {
    const [a, b] = instances;
    await readOnce(a);
    await readOnce(b);
    await readOnce(a);
    assert.deepEqual(stats(), { logins: 1, active: 1, logouts: 0 }, "one API user for two instances");
    await b.stop();
    assert.deepEqual(stats(), { logins: 1, active: 1, logouts: 0 }, "B's stop leaves the grant A uses");
    await readOnce(a);
    assert.equal(sim.stats.logins, 1, "A still on the same grant");
    const refused = sim.requests.filter((r) => r.path === "/identity/connect/token" && r.status !== 200);
    assert.deepEqual(refused, [], "no refused token request");
    for (const nr of instances) assert.ok(!nr.log.some((l) => /API Login Limit|store unreachable/i.test(l)), "no API Login Limit, store reachable");
    await a.stop();
    assert.deepEqual(stats(), { logins: 1, active: 0, logouts: 1 }, "the last instance signed out once");
  });
});
