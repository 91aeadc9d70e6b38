/**
 * The durable store (nodes/store/: LMDB engine, Node-RED context-store plugin, property paths) and the
 * store seam (nodes/lib/store.ts KvStore) on its three implementations: Map, Node-RED context API
 * (best effort) and the durable engine. Includes the crash test: a child process writes through the
 * plugin's `set`, is killed with SIGKILL part-way, and every value whose callback fired is read back.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import type { ErpEventMsg } from "../../nodes/lib/envelope";
import { PushJournal } from "../../nodes/lib/journal";
import { shallowCopy } from "../../nodes/lib/json-copy";
import { BoundedStore, KvBackend, KvStore, MapBackend, backendStore } from "../../nodes/lib/store";
import { StoreEngine, acquireEngine, releaseEngine } from "../../nodes/store/engine";
import { openEngine } from "../../nodes/store/registry";
import { EngineKvStore } from "../../nodes/store/kv";
import { getPath, parsePath, setPath } from "../../nodes/store/path";
import { DurableContextStore } from "../../nodes/store/plugin";
import mlcStore = require("../../nodes/store");
import { contextBackend, kvStore, resolveStore, warnIfLossy } from "../../nodes/shared/context";
import type { RedAPI, RedNode } from "../../nodes/shared/types";
import { shown } from "../harness/catalog";
import { REPO_ROOT, writeSettings } from "../harness/nodered";

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-store-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Callback API → promise (what the nodes' context adapter does). */
function cbGet(s: DurableContextStore, scope: string, key: string | string[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => s.get(scope, key, (err, ...v) => (err ? reject(err) : resolve(v))));
}
function cbSet(s: DurableContextStore, scope: string, key: string | string[], value: unknown): Promise<void> {
  return new Promise((resolve, reject) => s.set(scope, key, value, (err) => (err ? reject(err) : resolve())));
}
function cbKeys(s: DurableContextStore, scope: string): Promise<string[]> {
  return new Promise((resolve, reject) => s.keys(scope, (err, k) => (err ? reject(err) : resolve(k ?? []))));
}
async function collect(it: AsyncIterable<[string, unknown]>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const [k, v] of it) out[k] = v;
  return out;
}

describe("store/path: context keys as property paths", () => {
  it("parses the forms Node-RED accepts", () => {
    assert.deepEqual(parsePath("a"), ["a"]);
    assert.deepEqual(parsePath("a.b.c"), ["a", "b", "c"]);
    assert.deepEqual(parsePath('a["b.c"][0].d'), ["a", "b.c", 0, "d"]);
    assert.deepEqual(parsePath("a['x']"), ["a", "x"]);
    assert.deepEqual(parsePath("dd_0123abcd"), ["dd_0123abcd"]);
  });
  it("refuses malformed expressions with code INVALID_EXPR", () => {
    for (const bad of ["", "a..b", "a.", ".a", "a[", "a[x]", "a]", "[0]", 'a["b]', "a[0]b"]) {
      assert.throws(() => parsePath(bad), (e: Error & { code?: string }) => e.code === "INVALID_EXPR", bad);
    }
  });
  it("reads and writes nested values without mutating the original", () => {
    const root = { a: { b: [1, 2] } };
    assert.equal(getPath(root, ["a", "b", 1]), 2);
    assert.equal(getPath(root, ["a", "x", "y"]), undefined);
    const next = setPath(root, ["a", "c"], 3) as Record<string, unknown>;
    assert.deepEqual(next, { a: { b: [1, 2], c: 3 } });
    assert.deepEqual(root, { a: { b: [1, 2] } });
    assert.deepEqual(setPath(undefined, ["x", 0], "v"), { x: ["v"] });
    assert.deepEqual(setPath({ a: 1, b: 2 }, ["a"], undefined), { b: 2 });
    assert.throws(() => setPath({}, ["__proto__", "polluted"], 1));
  });
});

describe("store/engine (LMDB)", () => {
  it("commits, reads its own writes before the commit, and survives a reopen", async () => {
    const dir = tmp();
    const e = new StoreEngine({ dir, sweepIntervalMs: 0 });
    const p = e.set("n1:f1", "a", { x: 1, d: new Date(0) });
    assert.deepEqual(e.get("n1:f1", "a"), { x: 1, d: "1970-01-01T00:00:00.000Z" }, "visible at once, JSON semantics");
    assert.ok(e.pendingWrites >= 1);
    await p;
    assert.equal(e.pendingWrites, 0);
    await e.set("n1:f1", "b", 2);
    await e.set("global", "g", "G");
    assert.deepEqual(e.keys("n1:f1"), ["a", "b"]);
    await e.close();
    const again = new StoreEngine({ dir, sweepIntervalMs: 0 });
    assert.deepEqual(again.get("n1:f1", "a"), { x: 1, d: "1970-01-01T00:00:00.000Z" });
    assert.equal(again.get("global", "g"), "G");
    await again.close();
  });

  it("refuses a value JSON cannot hold, leaving the row unchanged", async () => {
    const e = new StoreEngine({ dir: tmp(), sweepIntervalMs: 0 });
    await e.set("s", "k", 1);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => e.set("s", "k", cyclic), TypeError);
    assert.throws(() => e.set("s", "k", 10n), TypeError);
    assert.equal(e.get("s", "k"), 1);
    await e.close();
  });

  it("claim race: 50 concurrent claims of one key → exactly one wins, and it is committed", async () => {
    const dir = tmp();
    const e = new StoreEngine({ dir, sweepIntervalMs: 0 });
    const results = await Promise.all(Array.from({ length: 50 }, (_x, i) => e.claim("n:f", "job1", { by: i }, 60000)));
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    assert.deepEqual(e.get("n:f", "job1"), { by: winner });
    await e.close();
    const again = new StoreEngine({ dir, sweepIntervalMs: 0 });
    assert.deepEqual(again.get("n:f", "job1"), { by: winner });
    assert.equal(await again.claim("n:f", "job1", { by: -1 }, 60000), false, "a committed claim still holds after a reopen");
    await again.close();
  });

  it("claims expire: free again after ttlMs; the sweep deletes expired rows", async () => {
    let now = 1_000_000;
    const e = new StoreEngine({ dir: tmp(), sweepIntervalMs: 0, now: () => now });
    assert.equal(await e.claim("s", "k", "first", 1000), true);
    now += 999;
    assert.equal(await e.claim("s", "k", "second", 1000), false);
    now += 1;
    assert.equal(e.get("s", "k"), undefined, "expired rows are invisible");
    assert.deepEqual(e.keys("s"), []);
    assert.equal(await e.claim("s", "k", "third", 1000), true);
    assert.equal(e.get("s", "k"), "third");
    await e.set("s", "plain", 1); // no expiry
    await e.set("s", "short", 1, 10);
    now += 5000;
    assert.equal(await e.sweep(), 2, "the re-claimed row and 'short' had expired; the first claim's index entry was replaced");
    assert.deepEqual(e.keys("s"), ["plain"]);
    // A row written again without TTL loses its old expiry.
    await e.set("s", "t", 1, 10);
    await e.set("s", "t", 2);
    now += 100;
    assert.equal(e.get("s", "t"), 2);
    assert.equal(await e.sweep(), 0);
    await e.close();
  });

  it("expiries hold across a reopen, and in a scope whose first expiring row comes later", async () => {
    let now = 1_000_000;
    const dir = tmp();
    const e = new StoreEngine({ dir, sweepIntervalMs: 0, now: () => now });
    await e.set("ttl", "a", 1, 1000);
    await e.set("plain", "b", 2);
    await e.close();
    const r = new StoreEngine({ dir, sweepIntervalMs: 0, now: () => now });
    assert.equal(r.get("ttl", "a"), 1);
    await r.set("plain", "c", 3, 500); // the scope's first expiring row
    await r.set("ttl", "a", 4); // a row written again without TTL loses its old expiry
    now += 1000;
    assert.equal(r.get("plain", "c"), undefined, "expired after its ttl");
    assert.deepEqual(r.keys("plain"), ["b"]);
    assert.equal(r.get("ttl", "a"), 4);
    await r.set("ttl", "d", 5, 10);
    await r.close();
    now += 10;
    const r2 = new StoreEngine({ dir, sweepIntervalMs: 0, now: () => now });
    assert.equal(r2.get("ttl", "d"), undefined, "the expiry written before the reopen is read after it");
    assert.deepEqual(r2.scan("ttl", ""), [["a", 4]]);
    assert.equal(await r2.sweep(), 2);
    await r2.close();
  });

  it("scan by prefix, delete, deleteScope and Node-RED's clean", async () => {
    const e = new StoreEngine({ dir: tmp(), sweepIntervalMs: 0 });
    await Promise.all([e.set("n1:f1", "dd_1", 1), e.set("n1:f1", "dd_2", 2), e.set("n1:f1", "pn_1", 3), e.set("n2:f1", "dd_9", 9), e.set("f1", "flowkey", 1), e.set("global", "g", 1)]);
    const pending = e.set("n1:f1", "dd_3", 3); // uncommitted rows are scanned too
    assert.deepEqual(e.scan("n1:f1", "dd_"), [["dd_1", 1], ["dd_2", 2], ["dd_3", 3]]);
    await pending;
    assert.equal(await e.delete("n1:f1", "dd_2"), true);
    assert.equal(await e.delete("n1:f1", "dd_2"), false);
    assert.deepEqual(e.keys("n1:f1"), ["dd_1", "dd_3", "pn_1"]);
    await e.clean(["n2", "f1"]); // n1 was removed from the flows
    assert.deepEqual(e.keys("n1:f1"), []);
    assert.deepEqual(e.keys("n2:f1"), ["dd_9"]);
    assert.deepEqual(e.keys("f1"), ["flowkey"]);
    assert.deepEqual(e.keys("global"), ["g"], "global is never cleaned");
    await e.deleteScope("global");
    assert.deepEqual(e.keys("global"), []);
    await e.close();
  });

  it("one engine per directory: acquire shares, the last release closes", async () => {
    const dir = tmp();
    const a = acquireEngine({ dir, sweepIntervalMs: 0 });
    const b = acquireEngine({ dir, sweepIntervalMs: 0 });
    assert.equal(a, b);
    assert.equal(openEngine(dir), a);
    await releaseEngine(a);
    assert.equal(openEngine(dir), a);
    await releaseEngine(b);
    assert.equal(openEngine(dir), undefined);
    assert.equal(a.isClosed, true);
    assert.throws(() => a.get("s", "k"), /closed/);
  });
});

describe("store plugin: Node-RED's context-store contract", () => {
  it("module(config) → open/get/set/keys/delete/clean/close, callbacks and synchronous forms", async () => {
    const dir = tmp();
    assert.equal(mlcStore.isStoreModule(mlcStore), true);
    assert.equal(mlcStore.isStoreModule(() => undefined), false);
    assert.equal(String(mlcStore), "node-red-contrib-ml-connector/store");
    const s = mlcStore({ dir });
    await s.open();
    await cbSet(s, "n1:f1", "a", { b: [1, 2] });
    await cbSet(s, "n1:f1", "a.c", "nested");
    assert.deepEqual(await cbGet(s, "n1:f1", "a"), [{ b: [1, 2], c: "nested" }]);
    assert.deepEqual(await cbGet(s, "n1:f1", ["a.b[1]", "missing", "a.c"]), [2, undefined, "nested"]);
    await cbSet(s, "n1:f1", ["x", "y"], [1, 2]);
    assert.deepEqual(await cbKeys(s, "n1:f1"), ["a", "x", "y"]);
    await cbSet(s, "n1:f1", "x", undefined);
    assert.deepEqual(await cbKeys(s, "n1:f1"), ["a", "y"]);
    // synchronous forms (Node-RED allows them for stores that can answer at once)
    s.set("n1:f1", "sync", 5);
    assert.equal(s.get("n1:f1", "sync"), 5);
    assert.deepEqual(s.keys("n1:f1"), ["a", "sync", "y"]);
    // a returned object is a copy
    const got = s.get("n1:f1", "a") as Record<string, unknown>;
    got.c = "mutated";
    assert.equal(s.get("n1:f1", "a.c"), "nested");
    // errors reach the callback, never a throw past it
    await assert.rejects(cbGet(s, "n1:f1", "a..b"), /Invalid property expression/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(cbSet(s, "n1:f1", "c", cyclic), TypeError);
    // several keys, one malformed: the callback gets the error; nothing is left unhandled
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => void unhandled.push(r);
    process.on("unhandledRejection", onUnhandled);
    await assert.rejects(cbSet(s, "n1:f1", ["fine", "bad..key"], [1, 2]), /Invalid property expression/);
    await new Promise((r) => setTimeout(r, 50));
    process.off("unhandledRejection", onUnhandled);
    assert.deepEqual(unhandled, []);
    await s.clean(["f1"]);
    assert.deepEqual(await cbKeys(s, "n1:f1"), []);
    await cbSet(s, "global", "g", 1);
    await s.delete("global");
    assert.deepEqual(await cbKeys(s, "global"), []);
    await s.close();
  });

  it("defaults to <userDir>/mlc-store and finds the open engine from a settings config", async () => {
    const userDir = tmp();
    const s = mlcStore({ settings: { userDir } });
    await s.open();
    await cbSet(s, "global", "k", "v");
    assert.ok(fs.existsSync(path.join(userDir, "mlc-store")));
    const engine = mlcStore.engineFor({}, userDir);
    assert.ok(engine, "found through the same config and userDir");
    assert.equal(engine.get("global", "k"), "v");
    await s.close();
    assert.equal(mlcStore.engineFor({}, userDir), undefined);
    assert.throws(() => mlcStore({}), /config\.dir/);
  });

  for (const durability of ["flush", "commit"]) {
    it(`a set whose callback fired survives SIGKILL of the writing process (durability ${durability})`, async function () {
      this.timeout(60000);
      const dir = tmp();
      const writer = path.join(__dirname, "store-writer.js");
      const acked: number[] = [];
      const child = spawn(process.execPath, [writer, dir, "1000000", "32", durability], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (b: Buffer) => (err += b.toString()));
      let buf = "";
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once("exit", (code, sig) => resolve(sig ?? code)));
      child.stdout.on("data", (b: Buffer) => {
        buf += b.toString();
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = /^ack (\d+)$/.exec(line);
          if (m) acked.push(Number(m[1]));
          if (acked.length === 2000 && child.exitCode === null) child.kill("SIGKILL");
        }
      });
      const how = await exited;
      assert.equal(how, "SIGKILL", `writer was killed, not finished (stderr: ${err})`);
      assert.ok(acked.length >= 2000 && acked.length < 1000000, `killed part-way (${acked.length} acknowledged)`);
      const s = mlcStore({ dir });
      await s.open();
      const missing: number[] = [];
      for (const i of acked) {
        const key = i % 10 === 9 ? `nested.k${i}` : `k${i}`;
        const v = s.get("writer:flow", key) as { i: number } | undefined;
        if (!v || v.i !== i) missing.push(i);
      }
      await s.close();
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${acked.length} acknowledged writes lost`);
    });
  }
});

// The seam contract, run on every implementation.
const seams: [string, () => { store: KvStore; close?: () => Promise<void> }][] = [
  ["MapBackend", () => ({ store: new MapBackend() })],
  ["backendStore over a context-API-like backend", () => ({ store: backendStore(plainBackend()) })],
  [
    "EngineKvStore (durable)",
    () => {
      const e = new StoreEngine({ dir: tmp(), sweepIntervalMs: 0 });
      return { store: new EngineKvStore(e, "node1:flow1"), close: () => e.close() };
    },
  ],
];

/** A KvBackend that, like Node-RED's context API, answers asynchronously and knows nothing of expiry. */
function plainBackend(): KvBackend {
  const m = new Map<string, unknown>();
  const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
  return {
    get: async (k) => (await tick(), structuredClone(m.get(k))),
    set: async (k, v) => {
      await tick();
      if (v === undefined) m.delete(k);
      else m.set(k, structuredClone(v));
    },
    keys: async () => (await tick(), [...m.keys()]),
  };
}

for (const [name, make] of seams) {
  describe(`store seam (KvStore): ${name}`, () => {
    it("get / set / delete / keys / scan by prefix", async () => {
      const { store, close } = make();
      await store.set("dd_1", { n: 1 });
      await store.set("dd_2", { n: 2 });
      await store.set("pn_1", "x");
      assert.deepEqual(await store.get("dd_1"), { n: 1 });
      assert.deepEqual(await collect(store.scan("dd_")), { dd_1: { n: 1 }, dd_2: { n: 2 } });
      assert.equal(await store.delete("dd_1"), true);
      assert.equal(await store.delete("dd_1"), false);
      assert.deepEqual((await store.keys()).sort(), ["dd_2", "pn_1"]);
      await store.set("dd_2", undefined);
      assert.equal(await store.get("dd_2"), undefined);
      await close?.();
    });

    it("claim race: 30 concurrent claims → exactly one true; a claim expires", async () => {
      const { store, close } = make();
      const results = await Promise.all(Array.from({ length: 30 }, (_x, i) => store.claim("job", i, 600000)));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal(await store.get("job"), results.indexOf(true));
      assert.equal(await store.claim("lease", "first", 30), true);
      const deadline = Date.now() + 10000;
      while ((await store.get("lease")) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await store.claim("lease", "again", 0), true, "free after its ttl");
      await store.delete("job");
      assert.equal(await store.claim("job", "again", 0), true);
      assert.equal(await store.claim("job", "third", 0), false, "ttl 0 holds until deleted");
      await store.delete("job");
      assert.equal(await store.claim("job", "fourth", 0), true);
      await close?.();
    });

    it("an expiring set is hidden from get, keys and scan after its ttl", async () => {
      const { store, close } = make();
      await store.set("dd_short", 1, 30);
      await store.set("dd_long", 2);
      const deadline = Date.now() + 10000;
      while ((await store.get("dd_short")) !== undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await store.get("dd_short"), undefined);
      assert.deepEqual(await store.keys(), ["dd_long"]);
      assert.deepEqual(await collect(store.scan("dd_")), { dd_long: 2 });
      await close?.();
    });
  });
}

describe("lib/store BoundedStore on the durable seam", () => {
  it("awaits the deletes of expired and evicted entries (no fire-and-forget)", async () => {
    let now = 1000;
    const backend = new MapBackend();
    const gate: { release?: () => void } = {};
    const deletes: string[] = [];
    const realSet = backend.set.bind(backend);
    backend.set = async (key: string, value: unknown) => {
      if (value === undefined) {
        deletes.push(key);
        await new Promise<void>((r) => (gate.release = r));
      }
      return realSet(key, value);
    };
    const store = new BoundedStore<string>(backend, { prefix: "dd", ttlMs: 100, maxEntries: 2, now: () => now });
    await store.claim("a", "a");
    now += 200;
    let resolved = false;
    const got = store.get("a").then((v) => {
      resolved = true;
      return v;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(deletes.length, 1, "the expired row's delete was issued");
    assert.equal(resolved, false, "get waits for the delete");
    gate.release?.();
    assert.equal(await got, undefined);
    assert.equal(backend.map.size, 0, "row deleted by the time get resolved");
    // eviction: the third claim resolves only after the oldest row is deleted
    await store.claim("b", "b");
    await store.claim("c", "c");
    let claimed = false;
    const third = store.claim("d", "d").then(() => (claimed = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(claimed, false, "claim waits for the eviction delete");
    gate.release?.();
    await third;
    assert.deepEqual([...backend.map.keys()].length, 2);
  });

  it("evicts oldest first through any mix of claims, renewals, updates, deletes and a clear (its kept key iterator)", async () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const dropped: string[] = [];
    const store = new BoundedStore<number>(new MapBackend(), { prefix: "dd", ttlMs: 0, maxEntries: 5, keepIds: true, onDrop: (e) => dropped.push(e.id as string) });
    await store.ready;
    let model: string[] = []; // ids, oldest first
    const expectDropped: string[] = [];
    const add = (id: string): void => {
      model.push(id);
      if (model.length > 5) expectDropped.push(model.shift() as string);
    };
    for (let step = 0; step < 3000; step++) {
      const id = `id${rand(30)}`;
      const op = rand(step === 1500 ? 1 : 9);
      const present = model.includes(id);
      if (step === 1500) {
        await store.clear();
        model = [];
      } else if (op === 0 || op === 1) {
        await store.claim(id, step);
        if (!present) add(id);
      } else if (op === 2) {
        await store.set(id, step, true); // renewed: moves to the newest place
        if (present) model.splice(model.indexOf(id), 1);
        add(id);
      } else if (op === 3) {
        await store.set(id, step); // kept in place
        if (!present) add(id);
      } else if (op === 4) {
        await store.update(id, () => step);
        if (!present) add(id);
      } else if (op === 5 || op === 6 || op === 7) {
        await store.claim(`new${step}`, step); // a new id each time
        add(`new${step}`);
      } else {
        await store.delete(id);
        if (present) model.splice(model.indexOf(id), 1);
      }
      assert.deepEqual((await store.entries()).map((e) => e.id), model, `step ${step}`);
    }
    assert.deepEqual(dropped, expectDropped);
    assert.ok(dropped.length > 100, `evictions exercised: ${dropped.length}`);
  });

  it("keeps its entries in the durable store across a reopen", async () => {
    const dir = tmp();
    const e1 = new StoreEngine({ dir, sweepIntervalMs: 0 });
    const s1 = new BoundedStore<number>(new EngineKvStore(e1, "dedupe:flow"), { prefix: "dd", ttlMs: 60000, maxEntries: 100 });
    assert.equal(await s1.claim("INV-1", 1), true);
    await e1.close();
    const e2 = new StoreEngine({ dir, sweepIntervalMs: 0 });
    const s2 = new BoundedStore<number>(new EngineKvStore(e2, "dedupe:flow"), { prefix: "dd", ttlMs: 60000, maxEntries: 100 });
    assert.equal(await s2.claim("INV-1", 2), false);
    assert.equal(await s2.get("INV-1"), 1);
    await e2.close();
  });
});

describe("kept entries share hidden classes (lib/json-copy.ts shallowCopy)", () => {
  // V8's own test for "same hidden class (map)"; natives syntax is enabled for the functions compiled after this.
  v8.setFlagsFromString("--allow-natives-syntax");
  const sameMap = new Function("a", "b", "return %HaveSameMap(a, b)") as (a: object, b: object) => boolean;
  const ev = (jobId: string): ErpEventMsg => ({ topic: "acumatica/Bill/updated", payload: { ReferenceNbr: jobId }, erp: { system: "acumatica", tenant: "T", entity: "Bill", id: `Bill/${jobId}`, action: "updated", jobId } });

  it("entries a BoundedStore updates share one map, as do journal entries after a settle", async () => {
    const store = new BoundedStore<{ state: string; sid?: string }>(new MapBackend(), { prefix: "sl", ttlMs: 60000, maxEntries: 1000 });
    await store.ready;
    for (let i = 0; i < 40; i++) {
      store.claimNow(`job-${i}`, { state: "sending" });
      store.updateNow(`job-${i}`, (cur) => (cur ? { state: "sent", sid: `SM${i}` } : undefined));
    }
    const entries = await store.entries();
    assert.equal(entries.length, 40);
    assert.ok(sameMap(entries[1], entries[39]), "every updated entry has the map of the first");

    const backend = new MapBackend();
    const j = new PushJournal(backend);
    for (let i = 0; i < 40; i++) {
      await j.accept(`Q|${i}`, [ev(`a${i}`), ev(`b${i}`)]);
      await j.settle(`a${i}`); // one of two events finished: the entry is copied with the other still pending
    }
    const rows = [...backend.map.values()] as { v: object }[];
    assert.equal(rows.length, 40);
    assert.ok(sameMap(rows[1].v, rows[39].v), "every settled journal entry has the map of the first");
  });

  it("shallowCopy copies own enumerable properties, like spread syntax", () => {
    const src = { a: 1, b: { c: 2 }, u: undefined };
    const copy = shallowCopy(src);
    assert.deepEqual(copy, { a: 1, b: { c: 2 }, u: undefined });
    assert.notEqual(copy, src);
    assert.equal(copy.b, src.b, "shallow: nested objects are shared");
  });
});

describe("shared/context: which store a node gets (kvStore, resolveStore, warnIfLossy)", () => {
  type Status = { fill?: string; text?: string };
  function fakeNode(): RedNode & { statuses: Status[]; ctx: Map<string, unknown> } {
    const ctx = new Map<string, unknown>();
    const scope = {
      get: (k: string, _s: string | undefined, cb: (e: Error | null, v?: unknown) => void) => setImmediate(() => cb(null, ctx.get(k))),
      set: (k: string, v: unknown, _s: string | undefined, cb: (e?: Error | null) => void) => setImmediate(() => (v === undefined ? ctx.delete(k) : ctx.set(k, v), cb(null))),
      keys: (_s: string | undefined, cb: (e: Error | null, k?: string[]) => void) => setImmediate(() => cb(null, [...ctx.keys()])),
    };
    const statuses: Status[] = [];
    return { id: "n1", z: "f1", statuses, ctx, status: (s: Status) => statuses.push(s), context: () => ({ ...scope, flow: scope, global: scope }) } as unknown as RedNode & { statuses: Status[]; ctx: Map<string, unknown> };
  }
  function fakeRed(contextStorage: Record<string, unknown> | undefined, userDir?: string): RedAPI & { warnings: string[] } {
    const warnings: string[] = [];
    return {
      settings: { contextStorage, userDir },
      log: { warn: (m: unknown) => warnings.push(String(m)), info: () => undefined, error: () => undefined, debug: () => undefined },
      _: (k: string) => k,
      warnings,
    } as unknown as RedAPI & { warnings: string[] };
  }

  it("classifies stores: memory and cached localfilesystem are lossy; ours and cache:false are durable", () => {
    const red = fakeRed({ default: "lfs", lfs: { module: "localfilesystem" }, nocache: { module: "localfilesystem", config: { cache: false } }, mem: { module: "memory" }, ours: { module: mlcStore }, other: { module: () => undefined } });
    assert.deepEqual([resolveStore(red, undefined).lossy, resolveStore(red, undefined).module], [true, "localfilesystem"]);
    assert.deepEqual([resolveStore(red, "nocache").lossy, resolveStore(red, "nocache").durable], [false, true]);
    assert.deepEqual([resolveStore(red, "mem").lossy, resolveStore(red, "mem").memoryOnly], [true, true]);
    assert.deepEqual([resolveStore(red, "ours").module, resolveStore(red, "ours").lossy, resolveStore(red, "ours").durable], ["mlc-store", false, true]);
    assert.deepEqual([resolveStore(red, "other").module, resolveStore(red, "other").lossy, resolveStore(red, "other").durable], ["custom", false, false]);
    assert.equal(resolveStore(fakeRed(undefined), undefined).lossy, true);
    assert.throws(() => resolveStore(red, "typo"), /not defined/);
  });

  it("warnIfLossy: yellow status on each node, one log line per store name", () => {
    const red = fakeRed({ default: { module: "localfilesystem" }, mem: { module: "memory" }, ours: { module: mlcStore } });
    const a = fakeNode();
    const b = fakeNode();
    assert.equal(warnIfLossy(red, a, resolveStore(red, undefined)), true);
    assert.equal(warnIfLossy(red, b, resolveStore(red, undefined)), true);
    // The status text is a catalog key; every node set's catalog has it (the shared fragment) and the editor shows it translated.
    for (const set of ["acumatica", "flow", "twilio"]) assert.equal(shown(set, "mlc-store.status.cached"), "not durable (cache)");
    assert.deepEqual(a.statuses.at(-1), { fill: "yellow", shape: "ring", text: "mlc-store.status.cached" });
    assert.deepEqual(b.statuses.at(-1), { fill: "yellow", shape: "ring", text: "mlc-store.status.cached" });
    assert.equal(red.warnings.filter((w) => w.includes('"default"')).length, 1);
    assert.equal(warnIfLossy(red, a, resolveStore(red, "mem")), true);
    assert.deepEqual(a.statuses.at(-1), { fill: "yellow", shape: "ring", text: "mlc-store.status.memory" });
    assert.equal(shown("twilio", "mlc-store.status.memory"), "memory only");
    const c = fakeNode();
    assert.equal(warnIfLossy(red, c, resolveStore(red, "ours")), false);
    assert.deepEqual(c.statuses, []);
  });

  it("kvStore: our open store gives the committed direct API on the node's context scope; others the context API", async () => {
    const dir = tmp();
    const plugin = mlcStore({ dir });
    await plugin.open();
    const red = fakeRed({ default: { module: mlcStore, config: { dir } }, mem: { module: "memory" } });
    const node = fakeNode();
    const direct = kvStore(red, node, "node", undefined);
    assert.ok(direct instanceof EngineKvStore);
    assert.equal(direct.durable, true);
    assert.equal(await direct.claim("dd_x", 1, 60000), true);
    // the same row Node-RED's context API reads for node n1 on flow f1
    assert.equal(plugin.get("n1:f1", "dd_x"), 1);
    assert.equal((kvStore(red, node, "global", undefined) as EngineKvStore).scope, "global");
    const viaContext = kvStore(red, node, "node", "mem");
    assert.equal(viaContext instanceof EngineKvStore, false);
    assert.equal(viaContext.durable, false);
    assert.equal(await viaContext.claim("dd_y", 2, 60000), true);
    assert.equal(await viaContext.claim("dd_y", 3, 60000), false);
    assert.equal(await viaContext.get("dd_y"), 2);
    assert.ok(node.ctx.has("dd_y"), "written through the node's context");
    await plugin.close();
  });

  it("contextBackend: our open store is written directly, committed, on the rows the context API shows; others through the context API", async () => {
    const dir = tmp();
    const plugin = mlcStore({ dir });
    await plugin.open();
    const red = fakeRed({ default: { module: mlcStore, config: { dir } }, mem: { module: "memory" } });
    resolveStore(red, undefined); // what a node's setup does first (and how the adapter learns the settings)
    const node = fakeNode();
    const direct = contextBackend(node, "node", undefined);
    const store = new BoundedStore<number>(direct, { prefix: "dd", ttlMs: 60000, maxEntries: 100 });
    assert.equal(await store.claim("INV-1", 1), true);
    assert.equal(plugin.storeEngine?.pendingWrites, 0, "committed when the claim resolved");
    const keys = plugin.keys("n1:f1") ?? [];
    assert.equal(keys.length, 1, "one row in node n1's context scope");
    assert.equal((plugin.get("n1:f1", keys[0]) as { v: number }).v, 1);
    assert.equal(node.ctx.size, 0, "not through the (fake) context API");
    assert.deepEqual(await contextBackend(node, "global", undefined).keys(), []);
    const viaContext = contextBackend(node, "node", "mem");
    await viaContext.set("dd_y", 2);
    assert.equal(node.ctx.get("dd_y"), 2, "another store: through the node's context");
    await plugin.close();
  });
});

describe("README settings = e2e harness settings", () => {
  it("the contextStorage lines of 'What survives a crash' are the ones the e2e harness writes", () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## What survives a crash"));
    const block = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block && block.includes("contextStorage"), "README shows a settings.js block");
    const userDir = tmp();
    const settings = fs.readFileSync(writeSettings(userDir, 1880), "utf8");
    const norm = (s: string): string[] => s.split("\n").map((l) => l.trim().replace(/,$/, "")).filter(Boolean);
    const harness = norm(settings);
    for (const line of norm(block)) assert.ok(harness.includes(line), `harness settings lack README line: ${line}`);
  });
});

describe("node sets do not load LMDB", () => {
  it("requiring the node sets leaves lmdb unloaded (a platform without its binary keeps every node)", () => {
    const sets = ["flow", "acumatica", "intacct", "twilio", "sapb1"].map((s) => path.join(REPO_ROOT, "dist", "nodes", `${s}.js`));
    const script = `for (const f of ${JSON.stringify(sets)}) require(f); process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((p) => /[\\\\/]lmdb[\\\\/]|[\\\\/]@lmdb[\\\\/]/.test(p))));`;
    const loaded = JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })) as string[];
    assert.deepEqual(loaded, []);
    // and the store module itself does load it
    const viaStore = execFileSync(process.execPath, ["-e", `require(${JSON.stringify(path.join(REPO_ROOT, "dist", "nodes", "store", "index.js"))}); process.stdout.write(String(Object.keys(require.cache).some((p) => p.includes("lmdb"))))`], { encoding: "utf8" });
    assert.equal(viaStore, "true");
  });
});
