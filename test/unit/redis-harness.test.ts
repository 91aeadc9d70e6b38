/**
 * The Redis test harness's rule for a missing redis-server (test/harness/redis.ts requireRedis): skipped with a message
 * naming the apt package on a developer machine, a failure when env CI is set (so CI cannot hide a missing install).
 */
import assert from "node:assert/strict";
import { REDIS_APT_HINT, requireRedis } from "../harness/redis";

describe("Redis test harness: a missing redis-server", () => {
  const saved = { bin: process.env.MLC_REDIS_SERVER, ci: process.env.CI };
  afterEach(() => {
    for (const [k, v] of [["MLC_REDIS_SERVER", saved.bin], ["CI", saved.ci]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it("skips the suite with the apt package named when CI is not set", () => {
    process.env.MLC_REDIS_SERVER = "/nonexistent/redis-server";
    delete process.env.CI;
    let skipped = false;
    const warn = console.warn;
    const said: string[] = [];
    console.warn = (m: string) => said.push(m);
    try {
      requireRedis({ skip: () => (skipped = true) } as unknown as Mocha.Context);
    } finally {
      console.warn = warn;
    }
    assert.equal(skipped, true);
    assert.match(said.join("\n"), /apt-get install -y redis-server/);
  });

  it("fails when CI is set", () => {
    process.env.MLC_REDIS_SERVER = "/nonexistent/redis-server";
    process.env.CI = "true";
    assert.throws(() => requireRedis({ skip: () => assert.fail("must not skip under CI") } as unknown as Mocha.Context), (err: Error) => err.message.startsWith(REDIS_APT_HINT));
  });
});
