/**
 * One Sage Intacct API session for several Node-RED instances on one Redis (nodes/lib/intacct/session.ts `shared`)
 * against a real redis-server and the strict Intacct simulator: each "instance" is its own Redis connection and its
 * own IntacctClient, as two Node-RED processes would have. The simulator records a getAPISession sent while the
 * user's session had more than 5 minutes left, and a failed session id sent again (reference sage-intacct.md §3).
 */
import assert from "node:assert/strict";
import { SharedSecret } from "../../nodes/lib/auth/shared-secret";
import { IntacctClient } from "../../nodes/lib/intacct/client";
import type { IntacctSession } from "../../nodes/lib/intacct/session";
import { RedisEngine } from "../../nodes/store/redis";
import { RedisKvStore } from "../../nodes/store/redis-kv";
import { RedisServer, startRedis } from "../harness/redis";
import { IntacctSim } from "../sims/intacct";

describe("shared sessions on Redis (real redis-server): one Sage Intacct API session", function () {
  this.timeout(60000);
  let redis: RedisServer;
  let sim: IntacctSim;
  const engines: RedisEngine[] = [];
  const clients: IntacctClient[] = [];
  let n = 0;
  let prefix = "";

  /** One "instance": its own Redis connection and client. */
  async function instance(): Promise<IntacctClient> {
    const engine = new RedisEngine({ url: redis.url, prefix });
    engines.push(engine);
    await engine.open();
    const shared = new SharedSecret<IntacctSession>({ kv: new RedisKvStore(engine, "mlc-auth"), binding: `intacct\u0000${sim.endpoint}`, secret: "the-shared-credential-secret", pollMs: 20 });
    const c = new IntacctClient({
      ...sim.clientOptions(),
      retryBaseMs: 1,
      sharedSession: shared,
    });
    clients.push(c);
    return c;
  }
  const vendor = async (c: IntacctClient): Promise<unknown> => (await c.get("VENDOR", "VENDORID", "V1007", ["VENDORID", "NAME"]))?.NAME;
  const sessionsUsed = (): Set<string | undefined> => new Set(sim.log.filter((l) => l.auth === "session").map((l) => l.sessionId));

  before(async function () {
    redis = await startRedis(this);
  });
  beforeEach(async () => {
    prefix = `ia${++n}:`;
    sim = new IntacctSim();
    await sim.start();
    sim.upsert("VENDOR", { RECORDNO: "11", VENDORID: "V1007", NAME: "Blue Ridge Paper" });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await sim.stop();
  });
  after(async () => {
    for (const e of engines) await e.close().catch(() => undefined);
    await redis?.stop();
  });

  it("two instances: one getAPISession, one session in use; after it expires one new session for both", async () => {
    const a = await instance();
    const b = await instance();
    assert.equal(await vendor(a), "Blue Ridge Paper");
    assert.equal(await vendor(b), "Blue Ridge Paper");
    assert.equal(sim.logins, 1, "the second instance took the first one's session");
    assert.equal(sessionsUsed().size, 1);
    assert.equal(a.logins + b.logins, 1, "an adopted session is not counted as a sign-in");
    sim.expireSessions();
    assert.equal(await vendor(a), "Blue Ridge Paper");
    assert.equal(await vendor(b), "Blue Ridge Paper", "b's failure finds a's new session in Redis");
    assert.equal(sim.logins, 2);
    assert.equal(sessionsUsed().size, 2);
    assert.deepEqual(sim.violations, []);
  });

  it("concurrent first requests of three instances: one getAPISession (the Redis lock makes it single-flight)", async () => {
    const all = [await instance(), await instance(), await instance()];
    assert.deepEqual(await Promise.all(all.map(vendor)), ["Blue Ridge Paper", "Blue Ridge Paper", "Blue Ridge Paper"]);
    assert.equal(sim.logins, 1);
    assert.deepEqual(sim.violations, []);
  });
});
