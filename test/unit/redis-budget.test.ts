/**
 * One Twilio budget per account across instances (nodes/lib/budget/gate.ts through the account's RateBudget) against
 * a real redis-server and the Twilio simulator enforcing 10 creates/s per sender and per account strictly (429 / 20429
 * for the 11th in any sliding second): two TwilioClients (two instances, each with its own local budget and Redis
 * connection) send 300 SMS together. Asserted: nothing lost, no 429, no second of arrivals over 10. The achieved rate
 * is printed (a figure, not asserted: tests never assert on wall-clock time).
 */
import assert from "node:assert/strict";
import { SharedRateGate } from "../../nodes/lib/budget/gate";
import { TwilioClient } from "../../nodes/lib/twilio/client";
import { RedisEngine } from "../../nodes/store/redis";
import { TwilioSim, maxInWindow } from "../sims/twilio";
import { RedisServer, startRedis } from "../harness/redis";

describe("shared Twilio budget on Redis (real redis-server, Twilio simulator enforcing 10/s)", function () {
  this.timeout(180000);
  let redis: RedisServer;
  let sim: TwilioSim;
  const engines: RedisEngine[] = [];
  const clients: TwilioClient[] = [];

  before(async function () {
    redis = await startRedis(this);
    sim = new TwilioSim({ senderRatePerSecond: 10, ratePerSecond: 10 });
    await sim.start();
  });
  after(async () => {
    for (const c of clients) await c.close();
    for (const e of engines) await e.close();
    await sim?.stop();
    await redis?.stop();
  });

  async function instance(ratePerSec = 10): Promise<{ client: TwilioClient; gate: SharedRateGate }> {
    const e = new RedisEngine({ url: redis.url, prefix: "b:" });
    engines.push(e);
    await e.open();
    const gate = new SharedRateGate(e.rates, { prefix: sim.defaultAccount.accountSid });
    const client = new TwilioClient({
      credentials: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken },
      apiHost: sim.url,
      pacing: { ratePerSec, maxConcurrent: 5, senderRates: { longCode: 10 }, shared: gate },
    });
    clients.push(client);
    return { client, gate };
  }

  it("300 SMS from two instances at a 10/s account budget: no 429, no second over 10, none lost", async () => {
    const a = await instance();
    const b = await instance();
    const from = "+15005550006";
    const t0 = performance.now();
    const results = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).client.sendMessage({ to: `+1415${String(3000000 + i)}`, from, body: `Bill ${i} needs approval` })),
    );
    const ms = performance.now() - t0;
    const failed = results.filter((r) => r.status === "rejected");
    assert.equal(failed.length, 0, String((failed[0] as PromiseRejectedResult | undefined)?.reason));
    assert.equal(sim.messages.length, 300);
    assert.equal(sim.rejected429, 0, "429s");
    const starts = sim.createStarts({ admittedOnly: true });
    assert.ok(maxInWindow(starts) <= 10, `busiest second: ${maxInWindow(starts)}`);
    const achieved = ((starts.length - 1) / (starts[starts.length - 1] - starts[0])) * 1000;
    process.stdout.write(
      `      300 SMS over 2 instances: achieved ${achieved.toFixed(2)}/s (${(((achieved - 10) / 10) * 100).toFixed(2)} % vs 10/s), busiest second ${maxInWindow(starts)}, 429s ${sim.rejected429}, Redis round trips ${a.gate.calls + b.gate.calls} (${((a.gate.calls + b.gate.calls) / 300).toFixed(1)}/SMS), ${Math.round(ms)} ms\n`,
    );
  });

  it("2-segment SMS from two instances at a sender's 10 segments/s: the shared window spends segments (no 429, no second over 10 segments)", async () => {
    sim.reset();
    const a = await instance(100);
    const b = await instance(100);
    const from = "+15005550006";
    const body = `Bill 4711 from Contoso Freight LLC needs your approval before Friday. ${"Amount 12,500.00 USD, due 2026-12-31. ".repeat(4)}`;
    assert.ok(body.length > 160 && body.length <= 306, "a 2-segment GSM-7 body");
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).client.sendMessage({ to: `+1415${String(4000000 + i)}`, from, body })));
    const failed = results.filter((r) => r.status === "rejected");
    assert.equal(failed.length, 0, String((failed[0] as PromiseRejectedResult | undefined)?.reason));
    assert.equal(sim.messages.length, 40);
    assert.equal(sim.rejected429, 0, "429s: the shared sender window counted messages, not segments");
  });
});
