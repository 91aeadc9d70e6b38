/**
 * Issue 6 §4 "Sessions survive crashes" and the edges of §5, against the Acumatica simulator (test/sims/acumatica.ts):
 * a persisted rotating refresh token reused by the next process (one grant, not one per crash), a refused sign-in
 * remembered for a cool-down (1 sign-in for 5 calls), a bounded close, anchored paging (rows leaving the result
 * between pages are not skipped), OData literal escaping of templated filters, and unambiguous jobIds.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { AcumaticaClient, AcumaticaClientOptions, AuthCooldownError, AuthState } from "../../nodes/lib/acumatica/client";
import { PollWindow } from "../../nodes/lib/acumatica/events";
import { TokenFile } from "../../nodes/lib/auth/token-file";
import { AuthError, ErpError, ValidationError } from "../../nodes/lib/errors";
import { deriveJobId, encodeParts } from "../../nodes/lib/ids";
import { odataStringLiteral, renderODataFilter } from "../../nodes/lib/odata";
import { AcumaticaSim, AcuRequestLog } from "../sims/acumatica";

const CLIENT_ID = "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd";
const FAST_RETRY = { retry: { baseDelayMs: 5, maxDelayMs: 20 } };

describe("acumatica sessions and edges (issue 6)", function () {
  this.timeout(20000);
  let sim: AcumaticaSim;
  let base: string;
  let dir: string;
  const clients: AcumaticaClient[] = [];

  function client(over: Partial<AcumaticaClientOptions> = {}, password = "P@ss-w0rd"): AcumaticaClient {
    const c = new AcumaticaClient({
      instanceUrl: base,
      tenant: "AcmeProd",
      auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: "s3cr3t", username: "api.user", password },
      http: FAST_RETRY,
      ...over,
    });
    clients.push(c);
    return c;
  }
  const tokenPosts = (): AcuRequestLog[] => sim.requests.filter((r) => r.method === "POST" && r.path === "/identity/connect/token");

  before(async () => {
    sim = new AcumaticaSim({ maxApiUsers: 2 });
    base = await sim.start();
  });
  after(async () => {
    await sim.stop();
  });
  beforeEach(() => {
    sim.reset();
    sim.beforeList = undefined;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-sessions-"));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("refresh token persisted across processes", () => {
    it("a second process refreshes the saved grant instead of signing in again; two crashes leave one grant", async () => {
      const file = (): TokenFile => new TokenFile({ dir, name: "acumatica-cfg1", secret: "node-red-secret", binding: "acme|client|api.user" });
      // process 1: signs in, the refresh token is on disk before the access token is used; then it crashes (no close)
      const p1 = client({ refreshToken: file().read(), onTokens: ({ refreshToken }) => file().write(refreshToken) });
      await p1.list("Vendor", { top: 1 });
      const first = file().read();
      assert.ok(first, "refresh token saved");
      assert.ok(!fs.readFileSync(file().file, "utf8").includes(first as string), "saved encrypted, never in clear");
      // process 2 and 3 after a crash each: refresh with the saved (rotated) token
      for (let i = 0; i < 2; i++) {
        const f = file();
        const p = client({ refreshToken: f.read(), onTokens: ({ refreshToken }) => f.write(refreshToken) });
        await p.list("Vendor", { top: 1 });
      }
      assert.deepEqual({ logins: sim.stats.logins, refreshes: sim.stats.refreshes, active: sim.stats.activeSessions }, { logins: 1, refreshes: 2, active: 1 });
      assert.notEqual(file().read(), first, "the newest (rotated) token is the one saved");
      // the simulator refuses a rotated-away token: a process holding the first token has to sign in again
      const stale = client({ refreshToken: first });
      await stale.list("Vendor", { top: 1 });
      assert.equal(sim.stats.logins, 2);
    });

    it("close signs out and forgets the saved token; a failed sign-out keeps it", async () => {
      const f = new TokenFile({ dir, name: "cfg", secret: "s", binding: "b" });
      let forgotten = 0;
      const c = client({ onTokens: ({ refreshToken }) => f.write(refreshToken), onSignedOut: async () => (forgotten++, f.clear()) });
      await c.list("Vendor", { top: 1 });
      assert.ok(f.read());
      await c.close();
      assert.equal(forgotten, 1);
      assert.equal(f.read(), undefined);
      assert.equal(sim.stats.activeSessions, 0);

      const g = new TokenFile({ dir, name: "cfg2", secret: "s", binding: "b" });
      const d = client({ onTokens: ({ refreshToken }) => g.write(refreshToken), onSignedOut: () => g.clear() });
      await d.list("Vendor", { top: 1 });
      sim.injectFault({ status: 500, pathPrefix: "/entity/auth/logout" }, 1);
      await d.close();
      assert.ok(g.read(), "kept: the grant is still alive and the next start can reuse it");
    });

    it("a token file is bound to its secret and connection, and is unencrypted only when Node-RED's is", async () => {
      const a = new TokenFile({ dir, name: "x", secret: "one", binding: "acme|c|u" });
      await a.write("TOKEN-123");
      assert.equal(a.read(), "TOKEN-123");
      assert.equal(new TokenFile({ dir, name: "x", secret: "two", binding: "acme|c|u" }).read(), undefined);
      assert.equal(new TokenFile({ dir, name: "x", secret: "one", binding: "other|c|u" }).read(), undefined);
      const raw = JSON.parse(fs.readFileSync(a.file, "utf8")) as { $: string };
      assert.match(raw.$, /^[0-9a-f]{32}[A-Za-z0-9+/=]+$/, "Node-RED's credential format: IV hex + base64 ciphertext");
      if (process.platform !== "win32") assert.equal(fs.statSync(a.file).mode & 0o777, 0o600);
      const p = new TokenFile({ dir, name: "plain", secret: false, binding: "b" });
      await p.write("PLAIN");
      assert.equal(p.read(), "PLAIN");
      assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")).length, 0, "no temp file left behind");
    });
  });

  describe("refused sign-in cool-down", () => {
    it("wrong password, 5 calls → 1 sign-in; the others fail at once with the refusal and the time it ends", async () => {
      const states: AuthState[] = [];
      const c = client({ onAuthState: (s) => states.push(s) }, "Wr0ng-Secret-77");
      const errors: unknown[] = [];
      for (let i = 0; i < 5; i++) await c.list("Bill").catch((e: unknown) => errors.push(e));
      assert.equal(tokenPosts().length, 1);
      assert.ok(errors[0] instanceof AuthError);
      for (const e of errors.slice(1)) {
        assert.ok(e instanceof AuthCooldownError);
        assert.equal((e as AuthCooldownError).code, "auth_failed");
        assert.match((e as Error).message, /not signing in again until/);
        assert.doesNotMatch((e as Error).message, /Wr0ng-Secret-77/);
      }
      assert.equal(states.length, 1);
      assert.equal(states[0].blocked, true);
      assert.equal(c.authState().blocked, true);
    });

    it("cookie sessions too; after the cool-down one new attempt is made, and a success clears it", async () => {
      let clock = Date.parse("2026-01-01T00:00:00Z");
      const states: boolean[] = [];
      const c = client({ auth: { mode: "cookie", username: "api.user", password: "wrong" }, now: () => clock, authCooldownMs: 60_000, onAuthState: (s) => states.push(s.blocked) });
      for (let i = 0; i < 5; i++) await c.list("Bill").catch(() => undefined);
      const logins = (): number => sim.requests.filter((r) => r.path === "/entity/auth/login").length;
      assert.equal(logins(), 1);
      clock += 60_001;
      await c.list("Bill").catch(() => undefined);
      assert.equal(logins(), 2);
      assert.deepEqual(states, [true, true]);
    });

    it("API Login Limit is a refusal too (no sign-in storm against a full licence)", async () => {
      await client().list("Vendor", { top: 1 });
      await client().list("Vendor", { top: 1 });
      const c = client();
      for (let i = 0; i < 4; i++) await c.list("Vendor", { top: 1 }).catch(() => undefined);
      const err = await c.list("Vendor").catch((e: unknown) => e);
      assert.ok(err instanceof ErpError || err instanceof AuthCooldownError);
      assert.equal((err as ErpError).code, "api_login_limit");
      assert.equal(tokenPosts().length, 3);
    });
  });

  describe("close", () => {
    it("is bounded when the sign-out hangs, and never signs in again", async function () {
      this.timeout(8000); // the unbounded close waited ≥ 10 s per attempt for the hung logout
      const c = client({ auth: { mode: "cookie", username: "api.user", password: "P@ss-w0rd" }, closeTimeoutMs: 300, http: { timeoutMs: 120_000, ...FAST_RETRY } });
      await c.list("Vendor", { top: 1 });
      sim.injectFault({ status: 500, hang: true, pathPrefix: "/entity/auth/logout" }, 5);
      await c.close();
      assert.equal(sim.requests.filter((r) => r.path === "/entity/auth/logout").length, 1);
      const logins = sim.stats.logins;
      await assert.rejects(c.list("Vendor"), (e: unknown) => e instanceof ErpError && e.code === "client_closed");
      assert.equal(sim.stats.logins, logins);
    });
  });

  describe("poll upper bound", () => {
    it("filterFor adds LastModifiedDateTime le <poll start> to the window and the user filter", () => {
      const w = new PollWindow({ overlapMs: 60_000, userFilter: "Status eq 'Open'" });
      const s = PollWindow.initial("2025-03-10T14:22:31.117Z");
      assert.equal(
        w.filterFor(s, undefined, "2025-03-10T15:00:00Z"),
        "(LastModifiedDateTime gt datetimeoffset'2025-03-10T14:21:31.117+00:00' and LastModifiedDateTime le datetimeoffset'2025-03-10T15:00:00.000+00:00') and (Status eq 'Open')",
      );
      assert.equal(new PollWindow().filterFor(PollWindow.initial(), 0, Date.parse("2025-03-10T15:00:00Z")), "LastModifiedDateTime le datetimeoffset'2025-03-10T15:00:00.000+00:00'");
      assert.throws(() => w.filterFor(s, undefined, "not a time"), ValidationError);
    });
  });

  describe("anchored paging", () => {
    it("a record leaving the result between pages does not make the next row skipped", async () => {
      for (let i = 1; i <= 7; i++) sim.upsert("Bill", { Type: "Bill", ReferenceNbr: `00050${i}`, Vendor: "V000042", Amount: i, Status: "Open" });
      let lists = 0;
      sim.beforeList = () => {
        // after the first page was read, the first bill is closed (it leaves the result): rows shift back by one
        if (++lists === 2) sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "000501", Status: "Closed" });
      };
      const c = client();
      const refs: string[] = [];
      for await (const r of c.listAll("Bill", { filter: "Status eq 'Open'", select: "Type,ReferenceNbr" }, 3)) refs.push(String(r.ReferenceNbr));
      assert.deepEqual([...refs].sort(), ["000501", "000502", "000503", "000504", "000505", "000506", "000507"]);
      assert.equal(new Set(refs).size, refs.length, "nothing yielded twice");
    });

    it("gives up with a retryable unstable_paging error when rows keep moving", async () => {
      for (let i = 1; i <= 6; i++) sim.upsert("Bill", { Type: "Bill", ReferenceNbr: `00060${i}`, Vendor: "V000042", Amount: i, Status: "Open" });
      // a row leaving the set every page: delete the first open one
      sim.beforeList = (_e, skip) => {
        if (skip === 0) return;
        const open = sim.all("Bill").filter((b) => b.Status === "Open");
        if (open.length) sim.upsert("Bill", { Type: "Bill", ReferenceNbr: String(open[0].ReferenceNbr), Status: "Closed" });
      };
      const c = client();
      const err = await (async () => {
        for await (const r of c.listAll("Bill", { filter: "Status eq 'Open'" }, 2)) void r;
      })().catch((e: unknown) => e);
      assert.ok(err instanceof ErpError, String(err));
      assert.equal((err as ErpError).code, "unstable_paging");
      assert.equal((err as ErpError).retryable, true);
    });
  });

  describe("OData literals", () => {
    it("escapes templated values inside quotes and refuses bare non-numbers", () => {
      const msg = { payload: { Vendor: "O'BRIEN", evil: "X' or VendorID ne '", min: 1000, word: "1 or true" } };
      assert.equal(renderODataFilter("VendorID eq '{{payload.Vendor}}'", msg), "VendorID eq 'O''BRIEN'");
      assert.equal(renderODataFilter("VendorID eq '{{payload.evil}}'", msg), "VendorID eq 'X'' or VendorID ne '''");
      assert.equal(renderODataFilter("Amount gt {{payload.min}} and VendorID eq 'it''s {{payload.Vendor}}'", msg), "Amount gt 1000 and VendorID eq 'it''s O''BRIEN'");
      assert.throws(() => renderODataFilter("Amount gt {{payload.word}}", msg), (e: unknown) => e instanceof ValidationError && e.code === "bad_filter");
      assert.equal(renderODataFilter("{{{payload.word}}}", msg), "1 or true", "triple mustache is the explicit raw escape hatch");
      assert.equal(odataStringLiteral("O'BRIEN"), "'O''BRIEN'");
    });

    it("against the simulator: O'BRIEN is found, the injection matches nothing", async () => {
      sim.seedDemoData();
      sim.upsert("Vendor", { VendorID: "O'BRIEN", VendorName: "O'Brien Plumbing" });
      const c = client();
      const one = await c.list("Vendor", { filter: renderODataFilter("VendorID eq '{{v}}'", { v: "O'BRIEN" }), select: "VendorID" });
      assert.deepEqual(one.map((r) => r.VendorID), ["O'BRIEN"]);
      const none = await c.list("Vendor", { filter: renderODataFilter("VendorID eq '{{v}}'", { v: "X' or VendorID ne '" }), select: "VendorID" });
      assert.deepEqual(none, []);
    });
  });

  describe("jobIds", () => {
    const base = { system: "acumatica", tenant: "T", entity: "Bill", id: "Bill/000123", version: "2026-03-02T10:15:00Z", action: "updated" };
    it("`T|` + `Bill` and `T` + `|Bill` no longer collide", () => {
      assert.notEqual(deriveJobId({ ...base, tenant: "T|", entity: "Bill" }), deriveJobId({ ...base, tenant: "T", entity: "|Bill" }));
      assert.notEqual(encodeParts(["a\\", "b"]), encodeParts(["a", "\\b"]));
      assert.notEqual(encodeParts(["a\\|", "b"]), encodeParts(["a", "|b"]));
    });
    it("jobIds of values without | or \\ keep their 0.1.0 value", () => {
      const text = ["acumatica", "T", "Bill", "Bill/000123", "2026-03-02T10:15:00.000Z", ""].join("|");
      assert.equal(deriveJobId(base), "j" + createHash("sha256").update(text, "utf8").digest("hex").slice(0, 32));
    });
  });
});
