/**
 * Calls shared among instances (nodes/lib/twilio/call-share.ts) against a real redis-server: the keypress of a call
 * placed by instance A, answered by instance B, is decided from the store (acknowledged, retry prompt, goodbye) and the
 * call's outcome is claimed once, so A does not also report "no input" when its tracker sees the call end. On a
 * local store nothing is shared and every outcome is the instance's own.
 */
import assert from "node:assert/strict";
import { SharedCalls } from "../../nodes/lib/twilio/call-share";
import { MapBackend } from "../../nodes/lib/store";
import { RedisEngine } from "../../nodes/store/redis";
import { RedisKvStore } from "../../nodes/store/redis-kv";
import { RedisServer, startRedis } from "../harness/redis";

interface Data {
  msg: { payload: string };
}

describe("calls shared among instances on Redis (real redis-server)", function () {
  this.timeout(60000);
  let redis: RedisServer;
  const engines: RedisEngine[] = [];
  async function node(prefix: string): Promise<SharedCalls<Data>> {
    const e = new RedisEngine({ url: redis.url, prefix });
    engines.push(e);
    await e.open();
    return new SharedCalls<Data>(new RedisKvStore(e, "call1:flow1"), { ttlMs: 60000, ackDigit: "1" });
  }
  before(async function () {
    redis = await startRedis(this);
  });
  after(async () => {
    for (const e of engines) await e.close();
    await redis?.stop();
  });

  it("a keypress at the instance that did not place the call acknowledges it, and only that instance emits the outcome", async () => {
    const a = await node("c1:");
    const b = await node("c1:");
    assert.equal(a.active, true);
    await a.put("corrA", { sid: "CA1", jobId: "J1", data: { msg: { payload: "bill 7" } } });
    assert.deepEqual(await b.gather("corrA", "CA2", "1"), { kind: "unknown" }, "another call's sid");
    const g = await b.gather("corrA", "CA1", "1");
    if (g.kind === "unknown") assert.fail("the call was not found in the store");
    assert.equal(g.kind, "thanks");
    assert.equal(g.result, "acknowledged");
    assert.deepEqual(g.call.data, { msg: { payload: "bill 7" } });
    assert.equal(await b.claimOutcome("corrA"), true, "B emits acknowledged");
    assert.equal(await a.claimOutcome("corrA"), false, "A's tracker, seeing the call end, emits nothing");
  });

  it("reply() answers from the store only what the local tracker does not know; once() emits an outcome at one instance", async () => {
    const a = await node("c3:");
    const b = await node("c3:");
    await a.put("corrC", { sid: "CA3", jobId: "J3", data: { msg: { payload: "p" } } });
    const ended: string[] = [];
    const errors: unknown[] = [];
    const r = await b.reply({ kind: "unknown" }, "corrC", "CA3", "1", undefined, (c, result) => ended.push(`${c.sid}:${result}`), (e) => errors.push(e));
    assert.equal(r.kind, "thanks");
    assert.deepEqual(ended, ["CA3:acknowledged"]);
    assert.deepEqual(errors, []);
    const emitted: string[] = [];
    a.once("corrD", () => emitted.push("A"));
    b.once("corrD", () => emitted.push("B"));
    // one more claim on each connection: answered after the earlier ones (a connection answers in order), so both
    // once() claims have settled when these have; the key is taken, so these lose
    assert.deepEqual(await Promise.all([a.claimOutcome("corrD"), b.claimOutcome("corrD")]), [false, false]);
    assert.equal(emitted.length, 1, `emitted by ${emitted.join(", ")}`);
  });

  it("a wrong key gets one retry prompt across instances, then goodbye (no input)", async () => {
    const a = await node("c2:");
    const b = await node("c2:");
    await a.put("corrB", { sid: "CA9", jobId: "J9", data: { msg: { payload: "x" } } });
    const first = await b.gather("corrB", "CA9", "7");
    assert.equal(first.kind, "retry");
    const second = await a.gather("corrB", "CA9", "7");
    if (second.kind === "unknown") assert.fail("the call was not found in the store");
    assert.equal(second.kind, "goodbye");
    assert.equal(second.result, "no-input");
    assert.equal((await b.gather("nope", undefined, "1")).kind, "unknown");
  });

  it("on a local store nothing is shared and every outcome is the instance's own", async () => {
    const m = new MapBackend();
    const local = new SharedCalls<Data>(m, { ttlMs: 1000, ackDigit: "1" });
    assert.equal(local.active, false);
    await local.put("c", { sid: "CA1", jobId: "J", data: { msg: { payload: "" } } });
    assert.equal(m.map.size, 0);
    assert.equal(await local.claimOutcome("c"), true);
    assert.equal(await local.claimOutcome("c"), true);
    assert.equal((await local.gather("c", "CA1", "1")).kind, "unknown");
  });
});
