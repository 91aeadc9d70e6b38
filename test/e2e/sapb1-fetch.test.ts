/**
 * End to end, packed and installed into a fresh Node-RED user dir (test/harness/nodered.ts), against the HTTPS
 * Service Layer simulator with a self-signed certificate: the sapb1 node set loads in a real Node-RED, the config
 * node's CA (from an environment variable, as a user would set it) makes the self-signed certificate work, a
 * connection without it fails clearly (tls_refused at Catch, nothing reaches the server), an expired session is
 * renewed with exactly one Login and the request completes, PATCH writes back, a clean stop logs out, and neither the
 * password nor the session cookie appears in Node-RED's log or in answers. The alert triggers join when the kit's
 * trigger skeleton lands. MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { FlowNode } from "../harness/stack";
import { NodeRed, freePort, installInto, packRepo, tempDir } from "../harness/nodered";
import { SapB1Sim } from "../sims/sapb1";

const TAB = "sb10000000000000";
const CREDS = { username: "${SAPB1_USERNAME}", password: "${SAPB1_PASSWORD}" };

/** GET /e2e/sapb1/<name>?id=… → fetch through the named config → the record, or the error details with 502. */
function endpoint(name: string, cfg: string, y: number, fetch: Record<string, unknown> = {}): FlowNode[] {
  const id = (n: number): string => `sb1${name.padEnd(4, "0")}0000000${n}`.slice(0, 16);
  return [
    { id: id(1), type: "http in", z: TAB, url: `/e2e/sapb1/${name}`, method: "get", upload: false, swaggerDoc: "", x: 100, y, wires: [[id(2)]] },
    { id: id(2), type: "mlc-sapb1-fetch", z: TAB, sapb1: cfg, operation: "get", entity: "Invoices", entityType: "str", key: "req.query.id", keyType: "msg", property: "payload", ...fetch, x: 300, y, wires: [[id(3)]] },
    { id: id(3), type: "http response", z: TAB, statusCode: "", headers: {}, x: 500, y, wires: [] },
    { id: id(4), type: "catch", z: TAB, scope: [id(2)], uncaught: false, x: 100, y: y + 40, wires: [[id(5)]] },
    { id: id(5), type: "change", z: TAB, rules: [{ t: "set", p: "payload", pt: "msg", to: "errorDetails", tot: "msg" }, { t: "set", p: "statusCode", pt: "msg", to: "502", tot: "num" }], x: 300, y: y + 40, wires: [[id(3)]] },
  ];
}

const FLOW: FlowNode[] = [
  { id: TAB, type: "tab", label: "sapb1 e2e" },
  { id: "sb100000000000c1", type: "mlc-sapb1-config", name: "SAP B1 (env)", url: "${SAPB1_URL}", version: "v2", companyDb: "${SAPB1_COMPANY_DB}", timeZone: "UTC", ca: "${SAPB1_CA}", pin: "", timeout: 30, credentials: CREDS },
  { id: "sb100000000000c2", type: "mlc-sapb1-config", name: "SAP B1 without CA", url: "${SAPB1_URL}", version: "v1", companyDb: "${SAPB1_COMPANY_DB}", timeZone: "UTC", ca: "", pin: "", timeout: 30, credentials: CREDS },
  ...endpoint("get", "sb100000000000c1", 40),
  ...endpoint("noca", "sb100000000000c2", 140),
  ...endpoint("note", "sb100000000000c1", 240, { operation: "patch", field: "Comments", value: "SMS {{req.query.status}}" }),
];

describe("end to end: SAP Business One fetch over the Service Layer's self-signed HTTPS (packed and installed)", function () {
  this.timeout(240000);
  let sim: SapB1Sim;
  let nodeRed: NodeRed;
  let root: string;

  before(async function () {
    sim = new SapB1Sim();
    await sim.start();
    sim.put("Invoices", { DocEntry: 812, DocNum: 10412, CardCode: "C20000", DocTotal: 1250, DocumentStatus: "bost_Open", Cancelled: "tNO", UpdateDate: "2024-03-01", UpdateTime: "09:14:22" });
    sim.put("Invoices", { DocEntry: 813, DocNum: 10413, CardCode: "C20000", DocTotal: 80, DocumentStatus: "bost_Open", Cancelled: "tNO", UpdateDate: "2024-03-01", UpdateTime: "09:15:00" });
    root = tempDir("mlc-e2e-sapb1-");
    const userDir = path.join(root, "user");
    installInto(userDir, packRepo(path.join(root, "pack")));
    nodeRed = new NodeRed({
      userDir,
      port: await freePort(),
      env: { SAPB1_URL: sim.url, SAPB1_COMPANY_DB: sim.companyDb, SAPB1_USERNAME: sim.username, SAPB1_PASSWORD: sim.password, SAPB1_CA: sim.cert ?? "" },
    });
    await nodeRed.start();
    await nodeRed.deploy(FLOW);
  });

  after(async () => {
    await nodeRed?.stop();
    await sim?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  const get = async (p: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await fetch(`${nodeRed.url}${p}`);
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };

  it("trusts the self-signed certificate through the configured CA; one Login serves every request", async () => {
    for (const id of ["812", "813", "812"]) {
      const r = await get(`/e2e/sapb1/get?id=${id}`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.DocEntry, Number(id));
    }
    assert.equal(sim.logins.filter((l) => l.ok).length, 1);
  });

  it("renews an expired session with one Login and completes the request", async () => {
    const before = sim.logins.length;
    sim.expireSessions();
    const r = await get("/e2e/sapb1/get?id=813");
    assert.equal(r.status, 200);
    assert.equal(sim.logins.length, before + 1);
    assert.equal(sim.logins[sim.logins.length - 1].alive, 0);
    assert.deepEqual(sim.violations, []);
  });

  it("without the CA the connection fails clearly and nothing reaches the server", async () => {
    const requests = sim.requests.length;
    const r = await get("/e2e/sapb1/noca?id=812");
    assert.equal(r.status, 502);
    assert.equal(r.json.code, "tls_refused");
    assert.match(String(r.json.message), /not trusted by this connection's settings/);
    assert.equal(sim.requests.length, requests);
  });

  it("writes the delivery status onto the document (PATCH)", async () => {
    const r = await get("/e2e/sapb1/note?id=812&status=delivered");
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(sim.data.Invoices.get("812")?.Comments, "SMS delivered");
  });

  it("logs out on a clean stop; no password or session cookie in the log", async () => {
    const live = sim.liveSessions();
    assert.equal(live, 1);
    await nodeRed.stop();
    assert.equal(sim.liveSessions(), 0);
    assert.equal(sim.logouts.length, 1);
    const log = nodeRed.log.join("\n");
    assert.doesNotMatch(log, new RegExp(`${sim.password}|B1SESSION=`));
    for (const id of sim.logouts) assert.ok(!log.includes(id), "session id in the log");
  });
});
