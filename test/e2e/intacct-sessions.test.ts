/**
 * End to end, packed and installed into a fresh Node-RED user dir (test/harness/nodered.ts), against the strict
 * Intacct simulator: the config node reads its endpoint and company from environment variables and its credentials
 * from `${VAR}` references, the fetch node enriches a message, and the API session survives `kill -9` (one
 * getAPISession for the whole run); an expired session is renewed once without resending the failed id; no trap of
 * the reference is hit (`sim.violations`), and no secret reaches the log.
 * MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { IntacctSim } from "../sims/intacct";
import { FlowNode } from "../harness/stack";
import { NodeRed, freePort, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";

const CFG = "iac00000000000c1";
const FLOW: FlowNode[] = [
  { id: "iac0000000000000", type: "tab", label: "intacct" },
  {
    id: CFG,
    type: "mlc-intacct-config",
    name: "Intacct (env)",
    endpoint: "${INTACCT_URL}",
    companyId: "${INTACCT_COMPANY_ID}",
    locationId: "",
    timeZone: "${INTACCT_TIMEZONE}",
    maxConcurrent: 2,
    timeout: 30,
    credentials: { senderId: "${INTACCT_SENDER_ID}", senderPassword: "${INTACCT_SENDER_PASSWORD}", userId: "${INTACCT_USER_ID}", userPassword: "${INTACCT_USER_PASSWORD}" },
  },
  { id: "iac0000000000001", type: "inject", z: "iac0000000000000", props: [{ p: "payload" }], payload: '{"VENDORID":"V1007"}', payloadType: "json", repeat: "", once: false, wires: [["iac0000000000002"]] },
  { id: "iac0000000000002", type: "mlc-intacct-fetch", z: "iac0000000000000", intacct: CFG, operation: "get", object: "VENDOR", objectType: "str", keyField: "VENDORID", key: "payload.VENDORID", keyType: "msg", fields: "VENDORID,NAME,DISPLAYCONTACT.CELLPHONE", cacheSeconds: 0, property: "vendor", wires: [[]] },
];

describe("end to end: Intacct fetch and its API session (packed and installed)", function () {
  this.timeout(240000);
  let sim: IntacctSim;
  let nodeRed: NodeRed;
  let root: string;

  before(async function () {
    sim = new IntacctSim();
    await sim.start();
    sim.upsert("VENDOR", { RECORDNO: "11", VENDORID: "V1007", NAME: "Blue Ridge Paper", "DISPLAYCONTACT.CELLPHONE": "+14155550100" });
    root = tempDir("mlc-e2e-intacct-");
    const userDir = path.join(root, "user");
    installInto(userDir, packRepo(path.join(root, "pack")));
    nodeRed = new NodeRed({
      userDir,
      port: await freePort(),
      env: {
        INTACCT_URL: sim.endpoint,
        INTACCT_COMPANY_ID: sim.companyId,
        INTACCT_TIMEZONE: sim.timeZone,
        INTACCT_SENDER_ID: sim.senderId,
        INTACCT_SENDER_PASSWORD: sim.senderPassword,
        INTACCT_USER_ID: sim.userId,
        INTACCT_USER_PASSWORD: sim.userPassword,
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

  const queries = (): number => sim.log.filter((l) => l.functions[0] === "query" && l.outcome === "ok").length;
  async function readOnce(): Promise<void> {
    const before = queries();
    await nodeRed.inject("iac0000000000001");
    await waitFor(() => queries() > before, 20000, "the fetch node read the vendor");
  }

  it("kill -9 twice: the kept session is reused (one getAPISession); an expired one is renewed once", async function () {
    await readOnce();
    assert.equal(sim.logins, 1);
    for (let crash = 1; crash <= 2; crash++) {
      await nodeRed.kill();
      await nodeRed.start();
      await readOnce();
    }
    assert.equal(sim.logins, 1, "one session across two crashes");
    const file = path.join(root, "user", ".mlc-tokens", `intacct-${CFG}.json`);
    assert.ok(fs.existsSync(file), "session kept in the user dir");
    const sessionIds = [...sim.sessions.keys()];
    assert.ok(!fs.readFileSync(file, "utf8").includes(sessionIds[0]), "kept encrypted");

    sim.expireSessions();
    await readOnce();
    assert.equal(sim.logins, 2);
    assert.deepEqual(sim.log.filter((l) => l.outcome === "auth-failure").length, 1, "the expired id was sent once, then never again");
    assert.deepEqual(sim.violations, []);
    for (const secret of [sim.senderPassword, sim.userPassword, ...sim.sessions.keys()]) {
      assert.ok(!nodeRed.log.some((l) => l.includes(secret)), "no secret or session id in the log");
    }
  });
});
