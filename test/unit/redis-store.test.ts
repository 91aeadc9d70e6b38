/**
 * The package's store on Redis (nodes/store/redis*.ts) against a real redis-server (test/harness/redis.ts): the
 * KvStore seam's semantics (claim = SET NX PX, set with/without TTL, scan, delete), bounded stores shared by two
 * engines (two connections stand for two Node-RED instances: claims, compare-and-set updates, eviction), the push
 * journal and send ledger shared, the Node-RED context-store plugin contract, and Redis going away and coming back.
 */
import assert from "node:assert/strict";
import { BoundedStore } from "../../nodes/lib/store";
import { AuditTrail } from "../../nodes/lib/audit";
import { PushJournal } from "../../nodes/lib/journal";
import { SendLedger } from "../../nodes/lib/twilio/ledger";
import type { ErpEventMsg } from "../../nodes/lib/envelope";
import { RedisEngine, redactUrl } from "../../nodes/store/redis";
import { RedisKvStore } from "../../nodes/store/redis-kv";
import { RedisContextStore } from "../../nodes/store/redis-plugin";
import { redisEngineFor } from "../../nodes/store/registry";
import mlcStore = require("../../nodes/store");
import { RedisServer, startRedis } from "../harness/redis";

describe("Redis store (real redis-server)", function () {
  this.timeout(60000);
  let redis: RedisServer;
  const engines: RedisEngine[] = [];
  let n = 0;
  /** A fresh engine on its own connection (a second "instance"); `prefix` isolates each test. */
  async function engine(prefix: string): Promise<RedisEngine> {
    const e = new RedisEngine({ url: redis.url, prefix });
    engines.push(e);
    await e.open();
    return e;
  }
  const pfx = (): string => `t${++n}:`;

  before(async function () {
    redis = await startRedis(this);
  });
  after(async () => {
    for (const e of engines) await e.close();
    await redis?.stop();
  });

  it("get/set/delete/scan with the LMDB engine's semantics (TTL = PX, no TTL clears it)", async () => {
    const e = await engine(pfx());
    const kv = new RedisKvStore(e, "n1:f1");
    assert.equal(kv.durable, true);
    await kv.set("a", { x: 1 });
    assert.deepEqual(await kv.get("a"), { x: 1 });
    await kv.set("b", 2, 60000);
    const ttl = await e.client.pttl(e.rowKey("n1:f1", "b"));
    assert.ok(ttl > 0 && ttl <= 60000, `PX set: ${ttl}`);
    await kv.set("b", 3); // a set without TTL clears the expiry
    assert.equal(await e.client.pttl(e.rowKey("n1:f1", "b")), -1);
    await kv.set("c*[x]", "glob chars are literal");
    await kv.set("other", 1);
    assert.deepEqual((await kv.keys()).sort(), ["a", "b", "c*[x]", "other"]);
    const scanned: [string, unknown][] = [];
    for await (const row of kv.scan("c*")) scanned.push(row);
    assert.deepEqual(scanned, [["c*[x]", "glob chars are literal"]]);
    assert.deepEqual(await new RedisKvStore(e, "n2:f1").keys(), [], "scopes are separate");
    assert.equal(await kv.delete("a"), true);
    assert.equal(await kv.delete("a"), false);
    await kv.set("other", undefined);
    assert.equal(await kv.get("other"), undefined);
    const cyc: Record<string, unknown> = {};
    cyc.self = cyc;
    await assert.rejects(kv.set("cyc", cyc), TypeError);
  });

  it("an expired row is gone for get, claim and scan", async () => {
    const e = await engine(pfx());
    const kv = new RedisKvStore(e, "s");
    assert.equal(await kv.claim("k", 1, 30), true);
    // wait on the condition (Redis's clock), not a fixed sleep
    while ((await e.client.exists(e.rowKey("s", "k"))) === 1) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await kv.get("k"), undefined);
    assert.equal(await kv.claim("k", 2, 0), true);
    assert.deepEqual(await kv.get("k"), 2);
  });

  it("claims are atomic across two connections: 2 × 40 concurrent claims of one key, exactly one wins", async () => {
    const p = pfx();
    const a = new RedisKvStore(await engine(p), "g");
    const b = new RedisKvStore(await engine(p), "g");
    const results = await Promise.all(Array.from({ length: 80 }, (_, i) => (i % 2 ? a : b).claim("job-1", i, 60000)));
    assert.equal(results.filter(Boolean).length, 1);
  });

  it("a BoundedStore on two instances shares claims, updates (compare-and-set) and its bound", async () => {
    const p = pfx();
    const opts = { prefix: "dd", ttlMs: 60000, maxEntries: 5 };
    const a = new BoundedStore<number>(new RedisKvStore(await engine(p), "n:f"), opts);
    const b = new BoundedStore<number>(new RedisKvStore(await engine(p), "n:f"), opts);
    assert.equal(await a.claim("E1", 1), true);
    assert.equal(await b.claim("E1", 1), false, "B sees A's claim");
    assert.equal(await b.get("E1"), 1);
    // 2 × 30 concurrent increments through both instances: none lost
    await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).update("count", (c) => (c ?? 0) + 1)));
    assert.equal(await a.get("count"), 60);
    // bound: 5 entries, the oldest evicted first (by creation time)
    for (let i = 0; i < 6; i++) await (i % 2 ? a : b).claim(`X${i}`, i);
    const left = (await a.entries()).map((e) => e.v).sort();
    assert.deepEqual(left, [1, 2, 3, 4, 5], "E1 and count evicted, oldest first");
    assert.equal(await b.has("E1"), false);
    assert.equal(await b.delete("X5"), true);
    assert.equal((await a.entries()).length, 4);
    await a.clear();
    assert.equal((await b.entries()).length, 0);
  });

  it("the push journal and the send ledger are shared: a redelivery to the other instance is recognised, a send claimed once", async () => {
    const p = pfx();
    const ja = new PushJournal(new RedisKvStore(await engine(p), "trig:f"));
    const jb = new PushJournal(new RedisKvStore(await engine(p), "trig:f"));
    const ev = { topic: "acumatica/Bill/updated", payload: {}, erp: { jobId: "J1" } } as unknown as ErpEventMsg;
    assert.equal(await ja.accept("Q|1", [ev]), true);
    assert.equal(await jb.accept("Q|1", [ev]), false, "the same notification at the other instance is a redelivery");
    const la = new SendLedger(new RedisKvStore(await engine(p), "sms:f"), { scope: "sms" });
    const lb = new SendLedger(new RedisKvStore(await engine(p), "sms:f"), { scope: "sms" });
    const claims = await Promise.all([la.claim("J1|+14155550100|sms"), lb.claim("J1|+14155550100|sms")]);
    assert.deepEqual(claims.map((c) => c.outcome).sort(), ["claimed", "unknown"]);
    await la.settle("J1|+14155550100|sms", "SM1", "queued");
    assert.equal((await lb.claim("J1|+14155550100|sms")).outcome, "sent");
  });

  it("the audit trail is shared: a record written before the send at one instance gets its sid there and its callback at the other", async () => {
    const p = pfx();
    const a = new AuditTrail(new RedisKvStore(await engine(p), "global"));
    const b = new AuditTrail(new RedisKvStore(await engine(p), "global"));
    await a.recordSend({ jobId: "J7", channel: "sms", to: "+14155550132", status: "pending" });
    await b.recordSend({ jobId: "J7", channel: "sms", to: "+14155550132", sid: "SM7", status: "queued" }); // completes A's record
    const r = await a.applyStatus({ sid: "SM7", status: "delivered" });
    assert.equal(r.changed, true);
    const byJob = await b.findByJobId("J7");
    assert.equal(byJob.length, 1, "one record, not one per instance");
    assert.deepEqual(byJob[0].history.map((h) => h.status), ["pending", "queued", "delivered"]);
    assert.equal((await b.findBySid("SM7"))?.recordId, "J7/1");
  });

  it("is the package's store module with config.redis: Node-RED's context contract, found by the nodes", async () => {
    const prefix = pfx();
    const s = mlcStore({ redis: { url: redis.url, prefix } });
    assert.ok(s instanceof RedisContextStore);
    await s.open();
    try {
      const cb = <T>(fn: (done: (err?: Error | null, ...v: unknown[]) => void) => void): Promise<T[]> =>
        new Promise((resolve, reject) => fn((err, ...v) => (err ? reject(err) : resolve(v as T[]))));
      await cb((d) => s.set("n1:f1", "a", { b: [1, 2] }, d));
      await cb((d) => s.set("n1:f1", "a.c", "nested", d));
      assert.deepEqual(await cb((d) => s.get("n1:f1", ["a.b[1]", "missing", "a.c"], d)), [2, undefined, "nested"]);
      await cb((d) => s.set("n1:f1", ["x", "y"], [1, 2], d));
      assert.deepEqual((await cb<string[]>((d) => s.keys("n1:f1", d)))[0], ["a", "x", "y"]);
      assert.throws(() => s.get("n1:f1", "a"), /asynchronous/);
      const engineSeen = redisEngineFor({ redis: { url: redis.url, prefix } });
      assert.ok(engineSeen, "registry finds the engine Node-RED opened");
      assert.deepEqual(await new RedisKvStore(engineSeen, "n1:f1").get("a"), { b: [1, 2], c: "nested" });
      await s.delete("n1:f1");
      assert.deepEqual((await cb<string[]>((d) => s.keys("n1:f1", d)))[0], []);
    } finally {
      await s.close();
    }
    assert.equal(redisEngineFor({ redis: { url: redis.url, prefix } }), undefined, "closed");
  });

  it("Node-RED's clean: scopes of removed nodes and flows go (subflow aliases kept), global, secrets and budgets stay", async () => {
    const prefix = pfx();
    const s = mlcStore({ redis: { url: redis.url, prefix } });
    await s.open();
    try {
      const e = s.storeEngine as RedisEngine;
      const put = (scope: string, key: string): Promise<unknown> => e.write(scope, key, "1", 0);
      for (const scope of ["n1:f1", "n2:f1", "f1", "n3:f2", "f2", "global", "mlc-auth", "sfi-n4:sfi"]) await put(scope, "k");
      await e.write("n2:f1", "row", "1", 0, { kind: "any" }, { name: "dedupe", at: Date.now(), max: 10 });
      await e.rates.reserve(["acct|sender"], [5], [1000], 100, "x", undefined);
      // Node-RED (context/index.js clean) passes every active node and flow id, subflow instance contents as `<instance>-<id>`
      await s.clean(["n2", "f1", "sfi-n4"]);
      const left = (await e.client.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)).sort();
      assert.deepEqual(left, ["{f1}:k", "{global}:k", "{mlc-auth}:k", "{n2:f1}#dedupe", "{n2:f1}#dedupe:seq", "{n2:f1}:k", "{n2:f1}:row", "{rate|acct}|sender", "{sfi-n4:sfi}:k"]);
      const kept = mlcStore({ redis: { url: redis.url, prefix, keepRemovedNodes: true } });
      await kept.open();
      await kept.clean([]);
      await kept.close();
      assert.equal((await e.client.keys(`${prefix}*`)).length, left.length, "keepRemovedNodes: clean leaves every row");
    } finally {
      await s.close();
    }
  });

  it("a set without a callback is applied (like Node-RED's asynchronous stores); its failure reaches the next set's callback", async () => {
    const prefix = pfx();
    const s = mlcStore({ redis: { url: redis.url, prefix } });
    await s.open();
    try {
      s.set("n1:f1", "fire", { and: "forget" });
      const e = s.storeEngine as RedisEngine;
      for (let i = 0; i < 100 && (await e.readJson("n1:f1", "fire")) === undefined; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await e.readJson("n1:f1", "fire"), JSON.stringify({ and: "forget" }));
      // a Function node's flow.set("obj.a", 1); flow.set("obj.b", 2): both nested writes land, and a get sees them
      for (let i = 0; i < 20; i++) s.set("n1:f1", `obj.k${i}`, i);
      const [obj] = await new Promise<unknown[]>((resolve, reject) => s.get("n1:f1", "obj", (err, ...v) => (err ? reject(err) : resolve(v))));
      assert.deepEqual(obj, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])));
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      s.set("n1:f1", "bad", cyclic);
      await new Promise((r) => setTimeout(r, 50));
      const err = await new Promise<Error | null | undefined>((resolve) => s.set("n1:f1", "ok", 1, (x) => resolve(x)));
      assert.match(String(err?.message), /circular/i, "the lost write is reported, not swallowed");
      assert.throws(() => s.get("n1:f1", "fire"), /only asynchronous access supported/);
      assert.throws(() => s.keys("n1:f1"), /only asynchronous access supported/);
    } finally {
      await s.close();
    }
  });

  it("never puts the password in what it shows", async () => {
    assert.equal(redactUrl("redis://user:s3cret@host:6379/0"), "redis://user:***@host:6379/0");
    const e = new RedisEngine({ url: "redis://:s3cret@127.0.0.1:1", prefix: "x:" });
    assert.ok(!e.target.includes("s3cret"));
    await assert.rejects(e.readJson("s", "k"), (err: Error) => err.message.includes("store unreachable") || (!err.message.includes("s3cret") && /unreachable/.test(err.message)));
    e.client.disconnect();
  });

  it("while Redis is down every call fails at once (no hang), and works again after a restart", async () => {
    const e = await engine(pfx());
    const kv = new RedisKvStore(e, "s");
    await kv.set("before", 1);
    await redis.stop();
    const down = { code: "store_unavailable", retryable: true };
    await assert.rejects(kv.claim("k", 1, 1000), down);
    await assert.rejects(kv.get("before"), down);
    await assert.rejects(new BoundedStore<number>(kv, { prefix: "dd", ttlMs: 1000, maxEntries: 10 }).claim("E", 1), down);
    await redis.start(); // same port, empty (no persistence in this test)
    while (!e.connected) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await kv.claim("k", 1, 1000), true);
  });
});
