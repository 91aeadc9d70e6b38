/**
 * One token, one refresh across instances (nodes/lib/auth/shared-secret.ts, nodes/lib/exact/tokens.ts `shared`)
 * against a real redis-server and the Exact simulator: each "instance" is its own Redis connection (RedisEngine) and
 * its own ExactClient, as two Node-RED processes on one Redis would have. The simulator refuses a reused refresh
 * token ("Old refresh token used" ends the chain), so a double refresh cannot pass unnoticed.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { SharedSecret } from "../../nodes/lib/auth/shared-secret";
import { ExactClient } from "../../nodes/lib/exact/client";
import type { ExactTokens } from "../../nodes/lib/exact/tokens";
import { RedisEngine } from "../../nodes/store/redis";
import { RedisKvStore } from "../../nodes/store/redis-kv";
import { RedisServer, startRedis } from "../harness/redis";
import { ExactSim, type ExactLogEntry } from "../sims/exact";
import { SapB1Client } from "../../nodes/lib/sapb1/client";
import type { KeptSapB1Session } from "../../nodes/lib/sapb1/session";
import { SapB1Sim, selfSignedCert } from "../sims/sapb1";
import { AcumaticaClient } from "../../nodes/lib/acumatica/client";
import type { SharedGrant } from "../../nodes/lib/auth/oauth";
import { AcumaticaSim } from "../sims/acumatica";

const SECRET = "the-shared-credential-secret";
const BINDING = "exact\u0000nl\u0000sim\u0000client";

describe("shared sessions on Redis (real redis-server): one token, one refresh", function () {
  this.timeout(60000);
  let redis: RedisServer;
  let sim: ExactSim;
  let clock: { t: number };
  const engines: RedisEngine[] = [];
  const clients: ExactClient[] = [];
  let n = 0;
  let prefix = "";

  async function kv(): Promise<RedisKvStore> {
    const e = new RedisEngine({ url: redis.url, prefix });
    engines.push(e);
    await e.open();
    return new RedisKvStore(e, "mlc-auth");
  }
  async function instance(tokens: ExactTokens): Promise<ExactClient> {
    const shared = new SharedSecret<ExactTokens>({ kv: await kv(), binding: BINDING, secret: SECRET, pollMs: 20 });
    const c = new ExactClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, now: () => clock.t, tokens, shared, division: sim.division });
    clients.push(c);
    return c;
  }
  const tokenLog = (): Extract<ExactLogEntry, { kind: "token" }>[] => sim.log.filter((l) => l.kind === "token") as Extract<ExactLogEntry, { kind: "token" }>[];

  before(async function () {
    redis = await startRedis(this);
  });
  beforeEach(async () => {
    prefix = `s${++n}:`;
    sim = new ExactSim();
    clock = { t: Date.now() };
    sim.now = () => clock.t;
    await sim.start();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await sim.stop();
  });
  after(async () => {
    for (const e of engines) await e.close();
    await redis?.stop();
  });

  it("Exact: two instances racing a refresh make one token request, end with the same grant, never reuse a refresh token", async () => {
    const pasted = sim.grant();
    const a = await instance({ refreshToken: pasted });
    const b = await instance({ refreshToken: pasted });
    await Promise.all([a.auth.ensure(), b.auth.ensure()]);
    assert.equal(tokenLog().length, 1, "one token request for two instances");
    assert.equal(tokenLog()[0].status, 200);
    assert.deepEqual(a.tokens.headers(), b.tokens.headers(), "both use the same access token");
    // both call the API with it
    await Promise.all([a.me(), b.me()]);

    // past 570 s: both want a new token at once; one asks, the other takes the stored one
    for (let round = 0; round < 3; round++) {
      clock.t += 580_000;
      await Promise.all([b.auth.ensure(), a.auth.ensure()]);
      assert.equal(tokenLog().length, 2 + round, `round ${round}: one more token request`);
      assert.deepEqual(a.tokens.headers(), b.tokens.headers());
      await Promise.all([a.me(), b.me()]);
    }
    const log = tokenLog();
    assert.ok(log.every((l) => l.status === 200), JSON.stringify(log.map((l) => l.reason)));
    const used = log.map((l) => l.usedRefreshToken);
    assert.equal(new Set(used).size, used.length, "no refresh token presented twice");
    for (let i = 1; i < log.length; i++) assert.equal(used[i], log[i - 1].refreshToken, "each refresh presents the newest token");
  });

  it("Exact: Redis unreachable: no refresh without the lock (retryable store_unavailable), the held token stays in use", async () => {
    const pasted = sim.grant();
    const a = await instance({ refreshToken: pasted });
    await a.auth.ensure();
    await engines[engines.length - 1].close();
    await a.me(); // the held access token needs no store
    clock.t += 580_000;
    await assert.rejects(a.auth.ensure(), (e: { code?: string; retryable?: boolean }) => e.code === "store_unavailable" && e.retryable === true);
    assert.equal(tokenLog().length, 1, "no token request without the lock");
  });

  it("Exact: an instance with an old token file takes the newest refresh token from the shared store", async () => {
    const pasted = sim.grant();
    const a = await instance({ refreshToken: pasted });
    await a.auth.ensure();
    clock.t += 580_000;
    await a.auth.ensure(); // the pasted token is now used twice over
    const late = await instance({ refreshToken: pasted }); // e.g. started from its own old file
    clock.t += 580_000;
    await late.auth.ensure();
    await late.me();
    const log = tokenLog();
    assert.equal(log.length, 3);
    assert.ok(log.every((l) => l.status === 200));
    assert.equal(log[2].usedRefreshToken, log[1].refreshToken);
  });

  it("keeps the secret encrypted in Redis, bound to the connection and the credential secret", async () => {
    const store = await kv();
    const s = new SharedSecret<ExactTokens>({ kv: store, binding: BINDING, secret: SECRET });
    await s.write({ refreshToken: "Gcp7!IAAAAB-very-secret-refresh", accessToken: "AAEAA-secret-access" });
    const raw: string[] = [];
    for await (const [k, v] of store.scan("")) raw.push(k + JSON.stringify(v));
    assert.equal(raw.length, 1);
    assert.doesNotMatch(raw[0], new RegExp(SECRET), "nor the credential secret");
    assert.doesNotMatch(raw[0], /very-secret|secret-access|exact|client/, "neither the token nor the connection in clear");
    assert.equal((await s.read())?.refreshToken, "Gcp7!IAAAAB-very-secret-refresh");
    const other = new SharedSecret<ExactTokens>({ kv: store, binding: BINDING, secret: "another-secret" });
    assert.equal(await other.read(), undefined, "another credential secret cannot read it");
    await other.write({ refreshToken: "theirs" });
    assert.equal((await s.read())?.refreshToken, "Gcp7!IAAAAB-very-secret-refresh", "nor overwrite it");
    assert.equal(await new SharedSecret<ExactTokens>({ kv: store, binding: BINDING + "x", secret: SECRET }).read(), undefined);
    await s.remove();
    assert.equal(await s.read(), undefined);
  });

  it("the lock admits one holder at a time across connections, and a dead holder's lock expires", async () => {
    const s1 = new SharedSecret<number>({ kv: await kv(), binding: BINDING, secret: SECRET, pollMs: 5 });
    const s2 = new SharedSecret<number>({ kv: await kv(), binding: BINDING, secret: SECRET, pollMs: 5 });
    let inside = 0;
    let most = 0;
    const work = (s: SharedSecret<number>) =>
      s.exclusive(async () => {
        inside++;
        most = Math.max(most, inside);
        await s.write(((await s.read()) ?? 0) + 1); // read-modify-write: lost updates if two ran at once
        await new Promise((r) => setImmediate(r));
        inside--;
      });
    await Promise.all(Array.from({ length: 20 }, (_, i) => work(i % 2 ? s1 : s2)));
    assert.equal(most, 1);
    assert.equal(await s1.read(), 20);
    // a holder that died: its lock (taken by hand, as a crashed process leaves it) expires after lockTtlMs
    const store = await kv();
    const shortLived = new SharedSecret<number>({ kv: store, binding: BINDING, secret: SECRET, lockTtlMs: 300, pollMs: 20 });
    assert.equal(await store.claim(lockKeyOf(), "dead-owner", 300), true);
    assert.equal(await shortLived.exclusive(async () => "ran"), "ran");
    // and a waiter gives up with a retryable error while a live holder keeps it
    const waiter = new SharedSecret<number>({ kv: await kv(), binding: BINDING, secret: SECRET, waitMs: 200, pollMs: 20 });
    await s1.exclusive(async () => {
      assert.equal(await store.claim(lockKeyOf(), "x", 300), false, "lockKeyOf names the lock row in use");
      await assert.rejects(waiter.exclusive(async () => "never"), (e: { code?: string; retryable?: boolean }) => e.code === "auth_busy" && e.retryable === true);
    });
  });
});

/** The lock row of BINDING under SECRET (the same key SharedSecret derives). */
function lockKeyOf(): string {
  const fingerprint = createHash("sha256").update(createHash("sha256").update(SECRET).digest()).digest("hex");
  return `lock_${createHash("sha256").update(`${fingerprint}\u0000${BINDING}`).digest("hex")}`;
}

describe("shared sessions on Redis (real redis-server): one SAP Business One session, logout by the last", function () {
  this.timeout(60000);
  const PAIR = selfSignedCert();
  let redis: RedisServer;
  let sim: SapB1Sim;
  const engines: RedisEngine[] = [];
  const clients: SapB1Client[] = [];
  let n = 0;
  let prefix = "";

  /** One "instance": its own Redis connection and client. @returns the client, its engine and its shared secret */
  async function instance(holderTtlMs?: number): Promise<{ c: SapB1Client; engine: RedisEngine; shared: SharedSecret<KeptSapB1Session> }> {
    const engine = new RedisEngine({ url: redis.url, prefix });
    engines.push(engine);
    await engine.open();
    const shared = new SharedSecret<KeptSapB1Session>({ kv: new RedisKvStore(engine, "mlc-auth"), binding: "sapb1\u0000" + sim.url, secret: SECRET, pollMs: 20, holderTtlMs });
    const c = new SapB1Client({ url: sim.url, companyDb: sim.companyDb, username: sim.username, password: sim.password, tls: { ca: PAIR.cert }, sharedSession: shared });
    clients.push(c);
    return { c, engine, shared };
  }
  const docNum = async (c: SapB1Client): Promise<unknown> => (await c.get("Invoices", 1))?.DocNum;

  before(async function () {
    redis = await startRedis(this);
  });
  beforeEach(async () => {
    prefix = `b${++n}:`;
    sim = new SapB1Sim({ tls: PAIR });
    await sim.start();
    sim.put("Invoices", { DocEntry: 1, DocNum: 10001, CardCode: "C20000", DocDate: "2024-03-01", DocTotal: 100, UpdateDate: "2024-03-01", UpdateTime: "10:00:00" });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await sim.stop();
  });
  after(async () => {
    for (const e of engines) await e.close();
    await redis?.stop();
  });

  it("two instances: one Login, one session in use; stopping one keeps the other's session, stopping the last logs out", async () => {
    const a = await instance();
    const b = await instance();
    assert.deepEqual(await Promise.all([docNum(a.c), docNum(b.c), docNum(a.c), docNum(b.c)]), [10001, 10001, 10001, 10001]);
    assert.equal(sim.logins.length, 1, "one Login for two instances");
    assert.equal(sim.sessions.size, 1);
    assert.ok(sim.dataRequests.every((r) => r.sessionOk));
    // the session ends on the server (timeout): both need a new one at once, one logs in
    sim.expireSessions();
    assert.deepEqual(await Promise.all([docNum(a.c), docNum(b.c)]), [10001, 10001]);
    assert.equal(sim.logins.length, 2, "one re-Login for two instances");
    assert.equal(sim.sessions.size, 1);
    await a.c.close();
    assert.deepEqual(sim.logouts, [], "the other instance still holds the session");
    assert.equal(await docNum(b.c), 10001);
    assert.equal(sim.logins.length, 2);
    await b.c.close();
    assert.equal(sim.logouts.length, 1, "the last instance logs out");
    assert.equal(sim.sessions.size, 0);
    assert.equal(await b.shared.read(), undefined, "the shared session is gone with the logout");
  });

  it("Redis unreachable: an instance logs in on its own and does not log out on close (the session times out)", async () => {
    const alone = await instance();
    await alone.engine.close(); // every store call now fails as unreachable
    assert.equal(await docNum(alone.c), 10001);
    assert.equal(sim.logins.length, 1);
    await alone.c.close();
    assert.deepEqual(sim.logouts, [], "no logout without knowing whether others use the session");
    assert.equal(sim.sessions.size, 1);
  });

  it("an instance that dies stops counting after its holder row expires; the survivor is then the last and logs out", async () => {
    const dying = await instance(300);
    const survivor = await instance();
    assert.equal(await docNum(dying.c), 10001);
    assert.equal(await docNum(survivor.c), 10001);
    assert.equal(sim.logins.length, 1);
    await dying.engine.close(); // as kill -9: no more renewals, no leave
    await dying.c.close(); // Redis gone for it: no logout (the survivor uses the session)
    assert.deepEqual(sim.logouts, []);
    const kv = new RedisKvStore(survivor.engine, "mlc-auth");
    const holders = async (): Promise<number> => {
      let k = 0;
      for await (const [key] of kv.scan("holder_")) if (key) k++;
      return k;
    };
    while ((await holders()) > 1) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await docNum(survivor.c), 10001);
    await survivor.c.close();
    assert.equal(sim.logouts.length, 1);
    assert.equal(sim.sessions.size, 0);
  });
});

describe("shared sessions on Redis (real redis-server): one Acumatica grant (API user), signed out by the last", function () {
  this.timeout(60000);
  let redis: RedisServer;
  let sim: AcumaticaSim;
  let base = "";
  const engines: RedisEngine[] = [];
  const clients: AcumaticaClient[] = [];
  let n = 0;
  let prefix = "";

  async function instance(): Promise<{ c: AcumaticaClient; shared: SharedSecret<SharedGrant> }> {
    const engine = new RedisEngine({ url: redis.url, prefix });
    engines.push(engine);
    await engine.open();
    const shared = new SharedSecret<SharedGrant>({ kv: new RedisKvStore(engine, "mlc-auth"), binding: "acumatica\u0000" + base, secret: SECRET, pollMs: 20 });
    const c = new AcumaticaClient({
      instanceUrl: base,
      tenant: "AcmeProd",
      auth: { mode: "oauth", clientId: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd", clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" },
      http: { retry: { baseDelayMs: 5, maxDelayMs: 20 } },
      sharedGrant: shared,
    });
    clients.push(c);
    return { c, shared };
  }
  const stats = (): { logins: number; refreshes: number; active: number; logouts: number } => ({ logins: sim.stats.logins, refreshes: sim.stats.refreshes, active: sim.stats.activeSessions, logouts: sim.stats.logouts });

  before(async function () {
    redis = await startRedis(this);
    sim = new AcumaticaSim({ maxApiUsers: 2 });
    base = await sim.start();
  });
  beforeEach(() => {
    prefix = `a${++n}:`;
    sim.reset();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
  });
  after(async () => {
    await sim?.stop();
    for (const e of engines) await e.close();
    await redis?.stop();
  });

  it("three instances on a licence of two API users: one grant, one refresh after expiry; the last one out signs out", async () => {
    const a = await instance();
    const b = await instance();
    const c = await instance();
    await Promise.all([a.c.list("Vendor", { top: 1 }), b.c.list("Vendor", { top: 1 }), c.c.list("Vendor", { top: 1 })]);
    assert.deepEqual(stats(), { logins: 1, refreshes: 0, active: 1, logouts: 0 }, "one password grant for three instances");
    sim.expireAllTokens(); // every access token refused from now on: all three renew at once
    await Promise.all([a.c.list("Vendor", { top: 1 }), b.c.list("Vendor", { top: 1 }), c.c.list("Vendor", { top: 1 })]);
    assert.deepEqual(stats(), { logins: 1, refreshes: 1, active: 1, logouts: 0 }, "one refresh for three instances");
    await a.c.close();
    await b.c.close();
    assert.deepEqual(stats(), { logins: 1, refreshes: 1, active: 1, logouts: 0 }, "the grant lives while an instance holds it");
    await c.c.list("Vendor", { top: 1 });
    await c.c.close();
    assert.deepEqual(stats(), { logins: 1, refreshes: 1, active: 0, logouts: 1 }, "the last instance signed out once");
    assert.equal(await c.shared.read(), undefined);
  });
});
