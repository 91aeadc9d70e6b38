/**
 * nodes/lib/auth against the kit simulator (test/sims/kit-odata.ts): single-flight renewal under concurrency, the
 * 401 replay, rotating refresh tokens persisted before the new access token is used, the refusal cool-down, the
 * cookie jar's Path and Domain rules, and the XML-session source.
 */
import assert from "node:assert/strict";
import { ClientCredentialsSource, PasswordGrantSource, expiresInSeconds } from "../../nodes/lib/auth/oauth";
import { AuthManager } from "../../nodes/lib/auth/renewal";
import { CookieJar } from "../../nodes/lib/auth/cookie-jar";
import { XmlSession, XmlSessionSource } from "../../nodes/lib/auth/session";
import { AuthCooldownError, AuthState } from "../../nodes/lib/auth/source";
import { AuthError } from "../../nodes/lib/errors";
import { HttpClient } from "../../nodes/lib/http";
import { KitClient } from "../kit/family";
import { KitSim } from "../sims/kit-odata";

async function drain(it: AsyncIterable<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("kit: auth (nodes/lib/auth)", function () {
  this.timeout(20000);
  let sim: KitSim;
  const closers: (() => Promise<void>)[] = [];

  beforeEach(async () => {
    sim = new KitSim();
    await sim.start();
    sim.items.push({ id: "A", name: "a", modifiedAt: "2025-03-10T10:00:00.000Z" });
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    await sim.stop();
  });

  function kit(user?: ConstructorParameters<typeof KitClient>[0]["user"]): KitClient {
    const c = new KitClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, user });
    closers.push(() => c.close());
    return c;
  }
  const grants = (): string[] => sim.log.filter((l) => l.kind === "token").map((l) => (l as { grant: string }).grant);

  it("single flight: 25 concurrent calls share one token; after a revocation 10 concurrent 401s renew once", async () => {
    const c = kit();
    const results = await Promise.all(Array.from({ length: 25 }, () => drain(c.items(""))));
    assert.ok(results.every((r) => r.length === 1));
    assert.deepEqual(grants(), ["client_credentials"]);
    const gen = c.auth.currentGeneration;
    sim.revokeAccessTokens();
    const again = await Promise.all(Array.from({ length: 10 }, () => drain(c.items(""))));
    assert.ok(again.every((r) => r.length === 1));
    assert.deepEqual(grants(), ["client_credentials", "client_credentials"]);
    assert.equal(c.auth.currentGeneration, gen + 1);
    assert.equal(sim.log.filter((l) => l.kind === "api" && l.status === 401).length, 10);
  });

  it("a rotated refresh token is persisted before its access token is first used; the old one is dead", async () => {
    const saved: { rt: string; usedBefore: boolean }[] = [];
    const onRefreshToken = (rt: string): void => {
      const issued = sim.log.find((l) => l.kind === "token" && l.refreshToken === rt);
      assert.ok(issued && issued.kind === "token");
      saved.push({ rt, usedBefore: sim.log.some((l) => l.kind === "api" && l.accessToken === issued.accessToken) });
    };
    const c = kit({ username: sim.username, password: sim.password, onRefreshToken });
    await drain(c.items(""));
    sim.revokeAccessTokens();
    await drain(c.items("")); // 401 → refresh grant (rotation) → replay
    assert.deepEqual(grants(), ["password", "refresh_token"]);
    assert.equal(saved.length, 2);
    assert.ok(saved.every((s) => !s.usedBefore), "the access token was used before its refresh token was saved");
    assert.notEqual(saved[0].rt, saved[1].rt);
    // a later process with the first (rotated, used) token falls back to the password grant ...
    const stale = kit({ username: sim.username, password: sim.password, refreshToken: saved[0].rt });
    await drain(stale.items(""));
    assert.deepEqual(sim.log.filter((l) => l.kind === "token-refused").map((l) => (l as { error: string }).error), ["invalid_grant"]);
    // ... while one with the persisted newest token refreshes that grant (no new password grant)
    const resumed = kit({ username: sim.username, password: sim.password, refreshToken: saved[1].rt });
    await drain(resumed.items(""));
    assert.deepEqual(grants(), ["password", "refresh_token", "password", "refresh_token"]);
  });

  it("a refused sign-in pauses for the cool-down: one token request for six calls, then one more after it", async () => {
    let clock = Date.parse("2025-03-10T12:00:00Z");
    const http = new HttpClient();
    closers.push(() => http.close());
    const states: AuthState[] = [];
    const source = new PasswordGrantSource({ http, tokenUrl: `${sim.url}/oauth/token`, clientId: sim.clientId, clientSecret: sim.clientSecret, username: sim.username, password: "Wr0ng-Secret-77", now: () => clock });
    const mgr = new AuthManager(source, { cooldownMs: 60_000, onState: (s) => states.push(s), now: () => clock });
    const errors = await Promise.all(Array.from({ length: 3 }, () => mgr.ensure().catch((e: unknown) => e)));
    for (let i = 0; i < 3; i++) errors.push(await mgr.ensure().catch((e: unknown) => e));
    assert.equal(sim.log.filter((l) => l.kind === "token-refused").length, 1);
    assert.ok(errors.slice(0, 3).every((e) => e instanceof AuthError && e.vendorCode === "invalid_grant"));
    assert.ok(errors.slice(3).every((e) => e instanceof AuthCooldownError && e.code === "auth_failed" && !e.message.includes("Wr0ng-Secret-77")));
    assert.equal(mgr.state().blocked, true);
    clock += 60_001;
    sim.password = "Wr0ng-Secret-77"; // the administrator set the password the node holds
    await mgr.ensure();
    assert.deepEqual(states.map((s) => s.blocked), [true, false]);
    assert.equal(mgr.state().blocked, false);
  });

  it("client credentials: scope sent, token renewed inside the refresh skew", async () => {
    let clock = 1_000_000;
    const http = new HttpClient();
    closers.push(() => http.close());
    sim.expiresIn = 300;
    const src = new ClientCredentialsSource({ http, tokenUrl: `${sim.url}/oauth/token`, clientId: sim.clientId, clientSecret: sim.clientSecret, scope: "api", refreshSkewMs: 60_000, now: () => clock });
    const mgr = new AuthManager(src, { now: () => clock });
    await mgr.ensure();
    clock += 239_000; // 61 s before expiry: still valid
    await mgr.ensure();
    assert.deepEqual(grants(), ["client_credentials"]);
    clock += 2_000; // 59 s before expiry: inside the skew
    await mgr.ensure();
    assert.deepEqual(grants(), ["client_credentials", "client_credentials"]);
  });

  it("an expires_in sent as a JSON string (\"300\", as Exact Online does) is honoured, not replaced by the default", async () => {
    let clock = 1_000_000;
    const http = new HttpClient();
    closers.push(() => http.close());
    (sim as unknown as { expiresIn: unknown }).expiresIn = "300";
    const src = new ClientCredentialsSource({ http, tokenUrl: `${sim.url}/oauth/token`, clientId: sim.clientId, clientSecret: sim.clientSecret, scope: "api", refreshSkewMs: 60_000, now: () => clock });
    const mgr = new AuthManager(src, { now: () => clock });
    await mgr.ensure();
    clock += 241_000; // 59 s before the 300 s expiry: inside the skew (the 3600 s default would still be valid)
    await mgr.ensure();
    assert.deepEqual(grants(), ["client_credentials", "client_credentials"]);
    assert.equal(expiresInSeconds(" 600 "), 600);
    assert.equal(expiresInSeconds(600), 600);
    for (const bad of ["", "10m", "-5", 0, null, undefined, "1e3"]) assert.equal(expiresInSeconds(bad), undefined, String(bad));
  });

  it("after close nothing signs in again", async () => {
    const c = kit();
    c.auth.close();
    await assert.rejects(c.auth.ensure(), (e: unknown) => e instanceof AuthError && e.code === "client_closed");
    assert.equal(grants().length, 0);
  });
});

describe("kit: cookie jar (RFC 6265 Path and Domain)", () => {
  it("host-only without Domain; Domain cookies reach subdomains; foreign Domain refused", () => {
    const jar = new CookieJar();
    jar.absorb("https://erp.example.com/b1s/v2/Login", ["B1SESSION=s1; Path=/b1s; HttpOnly", "ROUTEID=.node1; Domain=example.com; Path=/", "EVIL=x; Domain=other.com; Path=/"]);
    assert.equal(jar.header("https://erp.example.com/b1s/v2/Items"), "B1SESSION=s1; ROUTEID=.node1");
    assert.equal(jar.header("https://api.example.com/b1s/v2/Items"), "ROUTEID=.node1");
    assert.equal(jar.header("https://example.com.evil.net/b1s/"), "");
    assert.deepEqual(jar.names().sort(), ["B1SESSION", "ROUTEID"]);
  });

  it("Path matches on segment boundaries; the default path is the request's directory; longest path first", () => {
    const jar = new CookieJar();
    jar.absorb("http://127.0.0.1:8080/entity/auth/login", ["D=1", "ROOT=r; Path=/", "E=e; Path=/entity"]);
    assert.equal(jar.header("http://127.0.0.1:8080/entity/auth/logout"), "D=1; E=e; ROOT=r");
    assert.equal(jar.header("http://127.0.0.1:8080/entity/Default/24.200.001/Bill"), "E=e; ROOT=r");
    assert.equal(jar.header("http://127.0.0.1:8080/entityX"), "ROOT=r");
    assert.equal(jar.header("http://127.0.0.2:8080/entity/auth/x"), "", "an IP host never domain-matches another");
  });

  it("an expired or empty cookie deletes; Max-Age beats Expires; Secure only over https", () => {
    let clock = Date.parse("2025-03-10T12:00:00Z");
    const jar = new CookieJar(() => clock);
    jar.absorb("https://h.example/", ["A=1; Path=/; Max-Age=10; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "S=2; Path=/; Secure", "B=3; Path=/"]);
    assert.equal(jar.header("https://h.example/x"), "A=1; S=2; B=3");
    assert.equal(jar.header("http://h.example/x"), "A=1; B=3");
    jar.absorb("https://h.example/", ["B=; Path=/"]);
    clock += 10_001;
    assert.equal(jar.header("https://h.example/x"), "S=2");
    jar.absorb("https://h.example/", ["S=gone; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"]);
    assert.equal(jar.size, 0);
  });
});

describe("kit: cookie jar by name (SAP Business One B1SESSION, reference sap-business-one.md §2)", () => {
  const login = "https://sl.example.local:50000/b1s/v2/Login";
  const setCookie = ["B1SESSION=4f2d7c1a-9b3e;HttpOnly;", "ROUTEID=.node2; path=/b1s"];

  it("with RFC path rules B1SESSION is scoped to the Login URL's directory; by name it reaches every path", () => {
    const rfc = new CookieJar();
    rfc.absorb(login, setCookie);
    assert.equal(rfc.header("https://sl.example.local:50000/b1s/v2/Orders"), "B1SESSION=4f2d7c1a-9b3e; ROUTEID=.node2");
    assert.equal(rfc.header("https://sl.example.local:50000/b1s/v1/Logout"), "ROUTEID=.node2", "the RFC jar drops B1SESSION outside /b1s/v2");
    const byName = new CookieJar(Date.now, { ignorePath: true });
    byName.absorb(login, setCookie);
    for (const p of ["/b1s/v2/Orders", "/b1s/v1/Logout", "/"]) assert.equal(byName.header(`https://sl.example.local:50000${p}`), "B1SESSION=4f2d7c1a-9b3e; ROUTEID=.node2", p);
    assert.equal(byName.header("https://other.example.local/b1s/v2/Orders"), "", "still host-only");
    byName.absorb("https://sl.example.local:50000/b1s/v2/Items", ["ROUTEID=.node3; path=/b1s/v2"]);
    assert.equal(byName.size, 2, "one cookie per name: the new ROUTEID replaces the old one");
    assert.ok(byName.header(login).includes("ROUTEID=.node3"));
  });
});

describe("kit: XML session source", () => {
  it("single flight, renewal before expiry, sign-out with the session", async () => {
    let clock = 0;
    let logins = 0;
    const loggedOut: string[] = [];
    const src = new XmlSessionSource({
      login: async (): Promise<XmlSession> => {
        logins++;
        await new Promise((r) => setImmediate(r));
        return { sessionId: `sid-${logins}`, endpoint: "https://api.intacct.example/ia/xml/xmlgw.phtml", expiresAt: clock + 600_000 };
      },
      logout: async (s) => {
        loggedOut.push(s.sessionId);
        return true;
      },
      refreshSkewMs: 60_000,
      now: () => clock,
    });
    const mgr = new AuthManager(src, { now: () => clock });
    await Promise.all([mgr.ensure(), mgr.ensure(), mgr.ensure()]);
    assert.equal(logins, 1);
    assert.equal(src.session?.sessionId, "sid-1");
    clock = 539_000;
    await mgr.ensure();
    assert.equal(logins, 1);
    clock = 541_000;
    await mgr.ensure();
    assert.equal(src.session?.sessionId, "sid-2");
    assert.equal(await src.signOut(new AbortController().signal), true);
    assert.deepEqual(loggedOut, ["sid-2"]);
  });
});

describe("kit: XML session source with a sliding timeout (Sage Intacct)", () => {
  it("slides the expiry on each answer, keeps the session when it moved, discards it on failure, reuses a kept one", async () => {
    let clock = 1_000_000;
    let logins = 0;
    const kept: (XmlSession | undefined)[] = [];
    const opts = {
      login: async (): Promise<XmlSession> => ({ sessionId: `sid-${++logins}`, endpoint: "https://api.intacct.example/ia/xml/xmlgw.phtml", expiresAt: clock + 3_600_000 }),
      refreshSkewMs: 300_000,
      now: () => clock,
      onSession: (s: XmlSession | undefined) => {
        kept.push(s && { ...s });
      },
    };
    const src = new XmlSessionSource(opts);
    const mgr = new AuthManager(src, { now: () => clock });
    await mgr.ensure();
    assert.equal(kept.length, 1, "kept before first use");
    assert.equal(kept[0]?.lifetimeMs, 3_600_000);
    clock += 3_000_000; // 10 min left: still valid (margin 5 min)
    assert.equal(src.valid(clock), true);
    src.slide(3_600_000); // an answer says the timeout moved an hour from now
    assert.equal(src.session?.expiresAt, clock + 3_600_000);
    assert.equal(kept.length, 2, "a move of more than a minute is kept");
    clock += 30_000;
    src.slide(3_600_000); // moved by 30 s only: not written again
    assert.equal(kept.length, 2);
    clock += 3_400_000; // 4.5 min left: renewed
    assert.equal(src.valid(clock), false);
    await mgr.ensure();
    assert.equal(src.session?.sessionId, "sid-2");
    assert.equal(src.logins, 2);
    src.invalidate();
    assert.equal(kept.at(-1), undefined, "a failed session is forgotten");

    const again = new XmlSessionSource({ ...opts, initial: { sessionId: "sid-kept", endpoint: "https://x.example/", expiresAt: clock + 3_000_000, lifetimeMs: 3_600_000 } });
    assert.equal(again.valid(clock), true);
    assert.equal(again.session?.sessionId, "sid-kept");
    assert.equal(new XmlSessionSource({ ...opts, initial: { sessionId: "", endpoint: "x", expiresAt: clock + 1 } }).session, undefined, "an unreadable kept session is not used");
  });
});
