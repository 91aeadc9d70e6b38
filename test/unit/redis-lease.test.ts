/**
 * One poller per trigger across instances (nodes/lib/poll/lease.ts + the Poller's lease hook) against a real
 * redis-server: one holder at a time, renew/release only by the holder, takeover after the holder dies, and two
 * pollers on one shared watermark of which only the holder reads. On a store of one process the lease is always held.
 */
import assert from "node:assert/strict";
import { Lease } from "../../nodes/lib/poll/lease";
import { Poller } from "../../nodes/lib/poll/poller";
import { WatermarkWindow, type PollState } from "../../nodes/lib/poll/window";
import { MapBackend } from "../../nodes/lib/store";
import type { ErpEventMsg } from "../../nodes/lib/envelope";
import { RedisEngine } from "../../nodes/store/redis";
import { RedisKvStore } from "../../nodes/store/redis-kv";
import { RedisServer, startRedis } from "../harness/redis";

describe("poll lease on Redis (real redis-server)", function () {
  this.timeout(60000);
  let redis: RedisServer;
  const engines: RedisEngine[] = [];
  let n = 0;
  async function kv(prefix: string): Promise<RedisKvStore> {
    const e = new RedisEngine({ url: redis.url, prefix });
    engines.push(e);
    await e.open();
    return new RedisKvStore(e, "trig1:flow1");
  }
  const pfx = (): string => `l${++n}:`;

  before(async function () {
    redis = await startRedis(this);
  });
  after(async () => {
    for (const e of engines) await e.close();
    await redis?.stop();
  });

  it("has one holder; only the holder renews or releases it", async () => {
    const p = pfx();
    const changes: boolean[] = [];
    const a = new Lease(await kv(p), "lease_poll", { ttlMs: 60000, onChange: (h) => changes.push(h) });
    const b = new Lease(await kv(p), "lease_poll", { ttlMs: 60000 });
    assert.equal(a.shared, true);
    assert.equal(await a.acquire(), true);
    assert.equal(await b.acquire(), false);
    assert.equal(await a.acquire(), true, "the holder renews");
    await b.release(); // not ours: nothing happens
    assert.equal(await b.acquire(), false);
    await a.release();
    assert.equal(await b.acquire(), true, "free after the holder released it");
    assert.equal(await a.acquire(), false);
    assert.deepEqual(changes, [true, false]);
    await b.release();
  });

  it("passes to another instance after the holder dies, within the lease time", async () => {
    const p = pfx();
    const dying = await kv(p);
    const a = new Lease(dying, "lease_poll", { ttlMs: 400 });
    const b = new Lease(await kv(p), "lease_poll", { ttlMs: 400 });
    assert.equal(await a.acquire(), true);
    // keeps it while alive: renewed every ttl/3, so B keeps failing over several lease times
    for (let i = 0; i < 3; i++) {
      assert.equal(await b.acquire(), false);
      await new Promise((r) => setTimeout(r, 150));
    }
    dying.engine.client.disconnect(); // the holder's process is gone: no renewal, no release
    let tries = 0;
    while (!(await b.acquire())) {
      tries++;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(tries > 0);
    assert.equal(b.held, true);
    await b.release();
  });

  it("two pollers on one shared watermark: only the holder reads, the other stands by, then takes over from the watermark", async () => {
    const p = pfx();
    const reads: string[] = [];
    const saves: string[] = [];
    let standby = 0;
    const makePoller = async (name: string): Promise<Poller> => {
      const store = await kv(p);
      return new Poller({
        window: new WatermarkWindow({ overlapMs: 0, modifiedField: "Modified" }),
        intervalMs: 60000,
        startFrom: "2025-01-01T00:00:00Z",
        load: async () => (await store.get("state")) as PollState | undefined,
        save: async (s) => {
          saves.push(`${name}:${s.scannedUntil ?? ""}`);
          await store.set("state", s);
        },
        read: (r) => {
          reads.push(`${name}:${r.filter}`);
          const first = reads.length === 1;
          const ev = { topic: "t/E/updated", payload: {}, erp: { system: "t", tenant: "t", entity: "E", id: "1", action: "updated", modifiedAt: "2025-06-01T00:00:00.000Z", jobId: "j1" } } as unknown as ErpEventMsg;
          return (async function* (): AsyncIterable<ErpEventMsg> {
            if (first) yield ev;
          })();
        },
        deliver: () => undefined,
        onError: (err) => assert.fail(String(err)),
        lease: new Lease(store, "lease_poll", { ttlMs: 60000 }),
        onStandby: () => standby++,
      });
    };
    const a = await makePoller("A");
    const b = await makePoller("B");
    await a.tick();
    await b.tick();
    await a.tick();
    assert.equal(standby, 1);
    assert.deepEqual(reads.map((r) => r.slice(0, 1)), ["A", "A"]);
    await a.stop(); // releases
    await b.tick();
    assert.equal(reads.length, 3);
    assert.equal(reads[2].slice(0, 1), "B");
    // B continues from the watermark A's read moved (the event of 2025-06-01), not from startFrom
    assert.match(reads[0], /Modified ge 2025-01-01T00:00:00/);
    assert.match(reads[2], /^B:Modified ge 2025-06-01T00:00:00/);
    assert.ok(saves.some((s) => s.startsWith("A:")));
    await b.stop();
  });

  it("on a store of one process the lease is always held and nothing is written", async () => {
    const m = new MapBackend();
    const l = new Lease(m, "lease_poll", { ttlMs: 1000 });
    assert.equal(l.shared, false);
    assert.equal(l.held, true);
    assert.equal(await l.acquire(), true);
    await l.release();
    assert.equal(m.map.size, 0);
  });
});
