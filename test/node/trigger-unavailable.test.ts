/**
 * A push trigger whose shared store (Redis) is unreachable (issue 13): every push is answered 503 with the fixed short
 * body and the status says "store unreachable", but the log gets one error line a minute per node, with the count
 * refused since the last line, not one line per refused push (112 lines in 14 s were seen in the two-instance e2e).
 * The test-only family's trigger (test/kit/nodes.ts, on the shared skeleton nodes/shared/trigger.ts) in a real
 * Node-RED runtime on this package's store with `config.redis`, against a real redis-server stopped for the test.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import type { TestFlowNode } from "node-red-node-test-helper";
import mlcStore from "../../nodes/store";
import { Testbed, until } from "../harness/red-testbed";
import { type RedisServer, startRedis } from "../harness/redis";
import { registerKitNodes } from "../kit/nodes";

const KEY = "kit-signing-key";
const redisConfig = { url: "" };
const bed = new Testbed(
  [registerKitNodes as (RED: unknown) => void],
  { contextStorage: { default: { module: mlcStore, config: { redis: redisConfig } }, memory: { module: "memory" } } },
  { credentials: { trg: { clientSecret: "unused", signingKey: KEY } }, loadContextStores: true },
);
const FLOW: TestFlowNode[] = [
  { id: "t1", type: "tab", label: "main" },
  { id: "trg", type: "mlc-kit-trigger", z: "t1", url: "http://127.0.0.1:9", clientId: "unused", store: "", mode: "push", endpoint: "suite", wires: [["events"]] },
  { id: "events", type: "helper", z: "t1" },
];

interface LogCall {
  level?: number;
  id?: string;
  msg?: unknown;
}
/** Node-RED log levels: error 20, warn 30 (@node-red/util log.js). */
const errorLines = (): LogCall[] =>
  bed
    .logCalls()
    .map((c) => c.args[0] as LogCall)
    .filter((l) => l?.id === "trg" && l.level === 20);

async function push(i: number): Promise<Response> {
  const body = Buffer.from(JSON.stringify({ deliveryId: `d${i}`, items: [{ id: `r${i}`, name: `item ${i}`, modifiedAt: new Date().toISOString() }] }));
  return fetch(`${bed.url}/mlc/kit/suite`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Kit-Signature": `sha256=${createHmac("sha256", KEY).update(body).digest("hex")}` },
    body,
  });
}

describe("push trigger with its Redis store unreachable: 503 every time, one log line a minute", function () {
  this.timeout(60000);
  let redis: RedisServer;

  before(async function () {
    redis = await startRedis(this);
    redisConfig.url = redis.url;
  });
  bed.hooks();
  after(async () => {
    await redis?.stop();
  });

  it("30 refused pushes: 30 × 503 'Service unavailable', status 'store unreachable', 1 error line; a minute later 1 more, with the count", async () => {
    await bed.load(FLOW);
    // Until the store's Redis connection is up the endpoint answers 503 (a sender retries): retry as a sender would.
    let ok = await push(0);
    for (let tries = 1; ok.status === 503 && tries < 50; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      ok = await push(0);
    }
    assert.equal(ok.status, 200, "the store works before the outage");
    await until(() => (bed.received.events ?? []).length === 1, "the first event");
    await redis.stop();
    const statuses: number[] = [];
    const bodies = new Set<string>();
    for (let i = 1; i <= 30; i++) {
      const r = await push(i);
      statuses.push(r.status);
      bodies.add(await r.text());
    }
    assert.deepEqual(statuses, Array<number>(30).fill(503));
    assert.deepEqual([...bodies], ["Service unavailable"]);
    const texts = bed.node("trg").status.getCalls().map((c) => (c.args[0] as { text?: string }).text);
    assert.equal(texts.at(-1), "errors.store_unavailable", "the status says store unreachable (catalog key)");
    const lines = errorLines();
    assert.equal(lines.length, 1, `error lines for 30 refused pushes: ${lines.length}`);
    assert.match(String(lines[0].msg), /unreachable/i);

    // a minute later (Date.now moved on: the throttle reads it) the next refusal is reported with the count
    const realNow = Date.now;
    Date.now = (): number => realNow() + 61_000;
    try {
      assert.equal((await push(31)).status, 503);
    } finally {
      Date.now = realNow;
    }
    const after = errorLines();
    assert.equal(after.length, 2);
    assert.match(String(after[1].msg), /\(29 more refused since the last report\)/);
    process.stdout.write(`      31 pushes refused with 503 over the outage: ${after.length} error lines ("${String(after[1].msg).slice(-44)}")\n`);
  });
});
