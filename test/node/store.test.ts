/**
 * The durable store in a real Node-RED: a Node-RED process (test/harness/nodered.ts, the settings the
 * README gives users: `contextStorage.default = { module: require("node-red-contrib-ml-connector/store") }`)
 * with this repo linked into its user directory. A flow of core nodes (http in → function → http
 * response) drives Node-RED's own context API (get/set/keys, node/flow/global, nested keys, the
 * synchronous forms); values must survive a clean restart and a SIGKILL of the process once their
 * set callback has fired.
 *
 * (node-red-node-test-helper never opens context plugins, hence a real process here.)
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { NodeRed, linkInto, tempDir } from "../harness/nodered";

const TAB = "5707e00000000001";
const FN = `
const p = msg.payload || {};
const scope = p.scope === "flow" ? flow : p.scope === "global" ? global : context;
const reply = (body) => { msg.payload = body; node.send(msg); };
const fail = (err) => { msg.statusCode = 500; reply({ error: err.message }); };
switch (p.op) {
  case "set":
    scope.set(p.key, p.value, p.store, (err) => err ? fail(err) : reply({ ok: true }));
    return null;
  case "mset":
    // many sets in flight at once; answer only when every callback fired
    Promise.all(p.keys.map((k, i) => new Promise((res, rej) => scope.set(k, p.values[i], p.store, (e) => e ? rej(e) : res()))))
      .then(() => reply({ ok: true }), fail);
    return null;
  case "get":
    scope.get(p.key, p.store, (err, v) => err ? fail(err) : reply({ value: v === undefined ? null : v, found: v !== undefined }));
    return null;
  case "mget":
    scope.get(p.keys, p.store, (err, ...vs) => err ? fail(err) : reply({ values: vs.map((v) => v === undefined ? null : v) }));
    return null;
  case "keys":
    scope.keys(p.store, (err, k) => err ? fail(err) : reply({ keys: k.sort() }));
    return null;
  case "sync":
    // synchronous forms work on this store (they throw on stores that cannot answer at once)
    scope.set(p.key, p.value);
    reply({ value: scope.get(p.key), keys: scope.keys().sort() });
    return null;
  default:
    msg.statusCode = 400;
    reply({ error: "op" });
    return null;
}`;

const flows = [
  { id: TAB, type: "tab", label: "store" },
  { id: "5707e00000000002", type: "http in", z: TAB, url: "/ctx", method: "post", upload: false, x: 100, y: 40, wires: [["5707e00000000003"]] },
  { id: "5707e00000000003", type: "function", z: TAB, name: "context", func: FN, outputs: 1, x: 260, y: 40, wires: [["5707e00000000004"]] },
  { id: "5707e00000000004", type: "http response", z: TAB, statusCode: "", headers: {}, x: 420, y: 40, wires: [] },
  // mlc-dedupe on the default store: first → {first: true}, duplicate → {first: false}
  { id: "5707e00000000005", type: "http in", z: TAB, url: "/dedupe", method: "post", upload: false, x: 100, y: 100, wires: [["5707e00000000006"]] },
  { id: "5707e00000000006", type: "mlc-dedupe", z: TAB, name: "", key: "payload.job", keyType: "msg", ttl: 7, ttlUnits: "d", maxEntries: 10000, store: "", x: 260, y: 100, wires: [["5707e00000000007"], ["5707e00000000008"]] },
  { id: "5707e00000000007", type: "function", z: TAB, func: "msg.payload = { first: true }; return msg;", outputs: 1, x: 420, y: 80, wires: [["5707e00000000004"]] },
  { id: "5707e00000000008", type: "function", z: TAB, func: "msg.payload = { first: false }; return msg;", outputs: 1, x: 420, y: 120, wires: [["5707e00000000004"]] },
];

describe("durable store in a real Node-RED process (context API)", function () {
  this.timeout(180000);
  let userDir: string;
  let red: NodeRed;

  async function call(body: Record<string, unknown>, route = "/ctx"): Promise<Record<string, unknown>> {
    const r = await fetch(`${red.url}${route}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const json = (await r.json()) as Record<string, unknown>;
    if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(json)}`);
    return json;
  }

  before(async () => {
    userDir = tempDir("mlc-store-nr-");
    linkInto(userDir);
    red = new NodeRed({ userDir });
    await red.start();
    await red.deploy(flows);
  });

  after(async () => {
    await red?.stop();
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  it("Node-RED opens the module from settings.js and the context API reads and writes through it", async () => {
    assert.ok(
      red.log.some((l) => /Context store\s*:\s*'default' \[\s*module=node-red-contrib-ml-connector\/store\s*\]/.test(l)),
      `store announced in the log:\n${red.log.filter((l) => /Context store/.test(l)).join("\n")}`,
    );
    assert.deepEqual(await call({ op: "set", key: "a", value: { n: 1, list: [1, 2] } }), { ok: true });
    assert.deepEqual(await call({ op: "set", key: "a.extra", value: "nested" }), { ok: true });
    assert.deepEqual(await call({ op: "get", key: "a" }), { value: { n: 1, list: [1, 2], extra: "nested" }, found: true });
    assert.deepEqual(await call({ op: "get", key: "a.list[1]" }), { value: 2, found: true });
    assert.deepEqual(await call({ op: "mget", keys: ["a.n", "nope"] }), { values: [1, null] });
    assert.deepEqual(await call({ op: "set", key: "f", value: "flow value", scope: "flow" }), { ok: true });
    assert.deepEqual(await call({ op: "set", key: "g", value: "global value", scope: "global" }), { ok: true });
    assert.deepEqual(await call({ op: "keys" }), { keys: ["a"] });
    assert.deepEqual(await call({ op: "keys", scope: "flow" }), { keys: ["f"] });
    assert.deepEqual(await call({ op: "sync", key: "s", value: 7 }), { value: 7, keys: ["a", "s"] });
    assert.deepEqual(await call({ op: "set", key: "s", value: null }), { ok: true });
    // the memory store stays reachable by name, and separate
    assert.deepEqual(await call({ op: "set", key: "m", value: 1, store: "memory" }), { ok: true });
    assert.deepEqual(await call({ op: "keys", store: "memory" }), { keys: ["m"] });
    assert.deepEqual(await call({ op: "get", key: "m" }), { value: null, found: false });
    // a malformed key is an error through the callback, not a crash
    await assert.rejects(call({ op: "get", key: "a..b" }), /HTTP 500.*Invalid/);
    assert.ok(fs.existsSync(path.join(userDir, "mlc-store")), "store under <userDir>/mlc-store");
  });

  it("keeps the values over a clean restart (the memory store does not)", async () => {
    await red.restart();
    assert.deepEqual(await call({ op: "get", key: "a" }), { value: { n: 1, list: [1, 2], extra: "nested" }, found: true });
    assert.deepEqual(await call({ op: "get", key: "g", scope: "global" }), { value: "global value", found: true });
    assert.deepEqual(await call({ op: "get", key: "f", scope: "flow" }), { value: "flow value", found: true });
    assert.deepEqual(await call({ op: "keys", store: "memory" }), { keys: [] });
  });

  it("keeps every value whose set callback fired when Node-RED is killed with SIGKILL", async () => {
    const batches = 40;
    const per = 25;
    const answered: string[] = [];
    for (let b = 0; b < batches; b++) {
      const keys = Array.from({ length: per }, (_x, i) => `job_${b}_${i}`);
      await call({ op: "mset", keys, values: keys.map((k) => ({ k, at: b })), scope: "global" });
      answered.push(...keys);
    }
    // More writes in flight while the process dies: these may or may not land, none was acknowledged.
    const inflight = call({ op: "mset", keys: ["late_1", "late_2"], values: [1, 2], scope: "global" }).catch(() => undefined);
    await red.kill("SIGKILL");
    await inflight;
    await red.start();
    const got = await call({ op: "mget", keys: answered, scope: "global" });
    const values = got.values as ({ k: string } | null)[];
    const lost = answered.filter((k, i) => values[i]?.k !== k);
    assert.equal(lost.length, 0, `${lost.length} of ${answered.length} acknowledged writes lost, e.g. ${lost.slice(0, 5).join(", ")}`);
  });

  it("mlc-dedupe on this store: no durability warning, and a claim made before SIGKILL still stops the duplicate after it", async () => {
    assert.equal(red.log.filter((l) => /ml-connector: context store/.test(l)).length, 0, "no 'store can lose work' warning for this store");
    const jobs = Array.from({ length: 50 }, (_x, i) => `job-${i}`);
    for (const job of jobs) assert.deepEqual(await call({ job }, "/dedupe"), { first: true });
    await red.kill("SIGKILL");
    await red.start();
    const again = await Promise.all(jobs.map((job) => call({ job }, "/dedupe")));
    assert.deepEqual(again.filter((r) => r.first !== false), [], "every job claimed before the crash is a duplicate after it");
    assert.deepEqual(await call({ job: "job-new" }, "/dedupe"), { first: true });
  });
});
