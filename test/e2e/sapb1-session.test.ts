/**
 * End to end, packed and installed into a fresh Node-RED (README's store settings) against the strict HTTPS Service
 * Layer simulator: the `mlc-sapb1-trigger` polling items below their minimum through a connection that trusts the
 * simulator's self-signed certificate (CA from an environment variable), and one that does not. Checked, each on the
 * poll itself (an alert that only a completed poll can deliver):
 * - an expired session (HTTP 401, code 301) is renewed with exactly one Login and the poll completes;
 * - a 400 `-5002` whose text says the session timed out is renewed the same way (issue 12); a 400 `-5002` about
 *   anything else (here a *transaction* timeout) reaches Catch as `business_error` with no Login, and the next poll
 *   works (reference sap-business-one.md §2, "Traps");
 * - without the CA the trigger shows `tls_refused` in its status, Catch gets the code, nothing reaches the server, and
 *   each poll makes one connection attempt (no retry storm).
 * MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { FlowNode } from "../harness/stack";
import { NodeRed, freePort, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";
import { SapB1Sim } from "../sims/sapb1";

const TAB = "sb2000000000000t";
const CREDS = { username: "${SAPB1_USERNAME}", password: "${SAPB1_PASSWORD}" };
const id = (n: number): string => `sb20000000000${String(n).padStart(3, "0")}`;
const TRUSTED = id(11);
const UNTRUSTED = id(12);
const keep = (key: string, expr: string): string => `const a = global.get("${key}") || []; a.push(${expr}); global.set("${key}", a); return null;`;

const FLOW: FlowNode[] = [
  { id: TAB, type: "tab", label: "sapb1 sessions e2e" },
  { id: id(1), type: "mlc-sapb1-config", name: "SAP B1 (env)", url: "${SAPB1_URL}", version: "v2", companyDb: "${SAPB1_COMPANY_DB}", timeZone: "UTC", ca: "${SAPB1_CA}", pin: "", timeout: "30", credentials: CREDS },
  { id: id(2), type: "mlc-sapb1-config", name: "SAP B1 without CA", url: "${SAPB1_URL}", version: "v1", companyDb: "${SAPB1_COMPANY_DB}", timeZone: "UTC", ca: "", pin: "", timeout: "30", credentials: CREDS },
  { id: TRUSTED, type: "mlc-sapb1-trigger", z: TAB, name: "low stock", sapb1: id(1), watch: "lowStock", entity: "Items", overdueDays: "30", filter: "", interval: "1", startFrom: "now", store: "", x: 120, y: 40, wires: [[id(21)]] },
  { id: UNTRUSTED, type: "mlc-sapb1-trigger", z: TAB, name: "low stock (no CA)", sapb1: id(2), watch: "lowStock", entity: "Items", overdueDays: "30", filter: "", interval: "1", startFrom: "now", store: "", x: 120, y: 100, wires: [[id(21)]] },
  { id: id(21), type: "function", z: TAB, name: "keep alert", func: keep("alerts", "msg.erp.jobId"), outputs: 1, x: 340, y: 40, wires: [[]] },
  { id: id(22), type: "catch", z: TAB, scope: [TRUSTED, UNTRUSTED], uncaught: false, x: 120, y: 160, wires: [[id(23)]] },
  { id: id(23), type: "function", z: TAB, name: "keep error", func: keep("errors", "{ node: msg.error.source.id, code: msg.errorDetails && msg.errorDetails.code }"), outputs: 1, x: 340, y: 160, wires: [[]] },
  { id: id(24), type: "status", z: TAB, scope: [UNTRUSTED], x: 120, y: 220, wires: [[id(25)]] },
  { id: id(25), type: "function", z: TAB, name: "keep red status", func: 'if (msg.status.fill === "red") global.set("status", msg.status); return null;', outputs: 1, x: 340, y: 220, wires: [[]] },
  { id: id(31), type: "http in", z: TAB, url: "/e2e/sapb1/state", method: "get", upload: false, swaggerDoc: "", x: 120, y: 280, wires: [[id(32)]] },
  { id: id(32), type: "function", z: TAB, name: "state", func: 'msg.payload = { alerts: global.get("alerts") || [], errors: global.get("errors") || [], status: global.get("status") || null }; return msg;', outputs: 1, x: 340, y: 280, wires: [[id(33)]] },
  { id: id(33), type: "http response", z: TAB, statusCode: "", headers: {}, x: 540, y: 280, wires: [] },
];

interface State {
  alerts: string[];
  errors: { node: string; code: string }[];
  status: { fill: string; shape: string; text: string } | null;
}

describe("end to end: SAP Business One trigger sessions and TLS (packed and installed)", function () {
  this.timeout(300000);
  let sim: SapB1Sim;
  let nodeRed: NodeRed;
  let root: string;
  let item = 0;

  before(async function () {
    sim = new SapB1Sim();
    await sim.start();
    root = tempDir("mlc-e2e-sapb1-sess-");
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

  afterEach(function () {
    if (this.currentTest?.state === "failed" && nodeRed) process.stderr.write(nodeRed.log.slice(-40).join("\n") + "\n");
  });

  after(async () => {
    await nodeRed?.stop();
    await sim?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const state = async (): Promise<State> => (await (await fetch(`${nodeRed.url}/e2e/sapb1/state`)).json()) as State;
  /** A new item below its minimum in warehouse 01: the next completed poll alerts it. */
  const lowItem = (): string => {
    const code = `LOW${++item}`;
    sim.put("Items", { ItemCode: code, ItemName: `Part ${item}`, InventoryItem: "tYES", QuantityOnStock: 1, MinInventory: 0, ItemWarehouseInfoCollection: [{ WarehouseCode: "01", InStock: 1, MinimalStock: 5 }] });
    return code;
  };
  const itemPolls = (): number => sim.dataRequests.filter((r) => r.path === "/b1s/v2/Items" && r.status === 200).length;
  const logins = (): number => sim.logins.filter((l) => l.ok).length;

  it("alerts an item below its minimum once across many polls, on one Login", async () => {
    lowItem();
    await waitFor(async () => (await state()).alerts.length === 1, 60000, "the first alert");
    const polled = itemPolls();
    await waitFor(() => itemPolls() >= polled + 5, 60000, "more polls");
    assert.equal((await state()).alerts.length, 1, "once per dip, not once per poll");
    assert.equal(logins(), 1);
  });

  it("renews an expired session (401, code 301) with one Login and the poll completes", async () => {
    const before = logins();
    const unauthorized = sim.dataRequests.filter((r) => r.status === 401).length;
    sim.expireSessions();
    lowItem();
    await waitFor(async () => (await state()).alerts.length === 2, 60000, "the alert of a poll after the expiry");
    assert.equal(logins(), before + 1, "exactly one Login");
    assert.ok(sim.dataRequests.filter((r) => r.status === 401).length > unauthorized, "the poll met the expired session");
    assert.equal(sim.logins[sim.logins.length - 1].alive, 0, "no Login while a session was alive");
    assert.deepEqual(sim.violations, []);
  });

  it("renews on a 400 -5002 whose text says the session timed out, once, and the poll completes", async () => {
    const before = logins();
    sim.inject.push({ match: /^GET Items$/, status: 400, code: -5002, message: "Session timeout, please log in again", times: 1, endSession: true });
    lowItem();
    await waitFor(async () => (await state()).alerts.length === 3, 60000, "the alert of the renewed poll");
    assert.equal(sim.inject[0].times, 0, "the poll met the -5002");
    assert.equal(logins(), before + 1);
    assert.deepEqual(sim.violations, []);
  });

  it("reports any other 400 -5002 (a transaction timeout) at Catch as business_error, without a Login; the next poll works", async () => {
    const before = logins();
    sim.inject.length = 0;
    sim.inject.push({ match: /^GET Items$/, status: 400, code: -5002, message: "Internal error (-5002) occurred: transaction timeout", times: 1 });
    await waitFor(async () => (await state()).errors.some((e) => e.node === TRUSTED && e.code === "business_error"), 60000, "the business error at Catch");
    lowItem();
    await waitFor(async () => (await state()).alerts.length === 4, 60000, "the alert of the next poll");
    assert.equal(logins(), before, "a business error is not a session error");
    assert.equal(new Set((await state()).alerts).size, 4, "each item alerted once");
  });

  it("without the CA: status and Catch say tls_refused, nothing reaches the server, one connection attempt per poll", async () => {
    await waitFor(async () => (await state()).errors.filter((e) => e.node === UNTRUSTED).length >= 3, 60000, "three failed polls");
    const handshakesBefore = sim.tlsFailures;
    const s = await state();
    const handshakesAfter = sim.tlsFailures;
    const failed = s.errors.filter((e) => e.node === UNTRUSTED);
    assert.deepEqual([...new Set(failed.map((e) => e.code))], ["tls_refused"]);
    assert.equal(s.status?.text, "errors.tls_refused");
    assert.equal(s.status?.fill, "red");
    assert.equal(sim.requests.filter((r) => r.path.startsWith("/b1s/v1/")).length, 0, "no request over the untrusted connection");
    // each failed poll made one connection attempt (one more may be in progress): no retries within a poll
    assert.ok(handshakesAfter >= failed.length, `handshakes ${handshakesAfter} ≥ failed polls ${failed.length}`);
    assert.ok(handshakesBefore <= failed.length + 1, `no retry storm: ${handshakesBefore} handshakes for ${failed.length} failed polls`);
    const log = nodeRed.log.join("\n");
    assert.doesNotMatch(log, new RegExp(`${sim.password}|B1SESSION=`));
  });
});
