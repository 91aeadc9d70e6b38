/**
 * AcumaticaClient against the Acumatica simulator (test/sims/acumatica.ts): OAuth and cookie sign-in, single-flight,
 * refresh and 401 replay, licence limits, endpoint pinning, paging, $filter encoding, PUT semantics, 429 retries.
 */
import assert from "node:assert/strict";
import { AuthError, ErpError, HttpError, RateLimitedError, ValidationError } from "../../nodes/lib/errors";
import { AcumaticaClient, AcumaticaClientOptions, datetimeOffsetLiteral, recordKeyOf } from "../../nodes/lib/acumatica/client";
import { unwrapValues, wrapValues } from "../../nodes/lib/acumatica/values";
import { AcumaticaSim, AcuRequestLog } from "../sims/acumatica";

const CLIENT_ID = "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd";
const SECRET = "s3cr3t";
const USER = "api.user";
const PASSWORD = "P@ss-w0rd";
const EP = "/entity/Default/24.200.001";
const FAST_RETRY = { retry: { baseDelayMs: 5, maxDelayMs: 20 } };

describe("acumatica client (against the simulator)", function () {
  let sim: AcumaticaSim;
  let base: string;
  const clients: AcumaticaClient[] = [];

  function oauthClient(over: Partial<AcumaticaClientOptions> = {}): AcumaticaClient {
    const c = new AcumaticaClient({
      instanceUrl: base,
      tenant: "AcmeProd",
      auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: SECRET, username: USER, password: PASSWORD },
      http: FAST_RETRY,
      ...over,
    });
    clients.push(c);
    return c;
  }

  function cookieClient(over: Partial<AcumaticaClientOptions> = {}): AcumaticaClient {
    const c = new AcumaticaClient({
      instanceUrl: base,
      tenant: "AcmeProd",
      auth: { mode: "cookie", username: USER, password: PASSWORD },
      http: FAST_RETRY,
      ...over,
    });
    clients.push(c);
    return c;
  }

  const reqs = (pred: (r: AcuRequestLog) => boolean): AcuRequestLog[] => sim.requests.filter(pred);
  const tokenPosts = (): AcuRequestLog[] => reqs((r) => r.method === "POST" && r.path === "/identity/connect/token");

  async function rejects<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T): Promise<T> {
    try {
      await p;
    } catch (e) {
      assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
      return e;
    }
    assert.fail(`expected ${cls.name} to be thrown`);
  }

  before(async () => {
    sim = new AcumaticaSim();
    base = await sim.start();
  });
  after(async () => {
    await sim.stop();
  });
  beforeEach(() => {
    sim.reset();
    sim.seedDemoData();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  describe("construction", () => {
    it("rejects a bare OAuth client id and says the full <id>@<Tenant> form is needed", () => {
      let err: unknown;
      try {
        new AcumaticaClient({ instanceUrl: base, tenant: "AcmeProd", auth: { mode: "oauth", clientId: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345", clientSecret: SECRET, username: USER, password: PASSWORD } });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof ValidationError);
      assert.equal(err.code, "invalid_input");
      assert.match(err.message, /full form <generated ID>@<Tenant>/);
      assert.match(err.message, /bare ID is not a valid client ID/);
    });

    it("rejects a malformed endpoint version and URL, defaults endpoint Default/24.200.001", () => {
      assert.throws(() => oauthClient({ endpointVersion: "24.200" }), (e: unknown) => e instanceof ValidationError && /must look like 24\.200\.001/.test(e.message));
      assert.throws(() => oauthClient({ instanceUrl: "not a url" }), (e: unknown) => e instanceof ValidationError && /not a valid URL/.test(e.message));
      assert.throws(() => oauthClient({ instanceUrl: "ftp://acme.example" }), ValidationError);
      const c = oauthClient({ instanceUrl: `${base}/` });
      assert.equal(c.endpointName, "Default");
      assert.equal(c.endpointVersion, "24.200.001");
      assert.equal(c.instanceUrl, base);
    });
  });

  describe("OAuth 2.0", () => {
    it("signs in once for 10 concurrent calls (single-flight) and sends the Bearer token", async () => {
      const seen: string[] = [];
      const c = oauthClient({ onTokens: (t) => seen.push(t.refreshToken) });
      const results = await Promise.all(Array.from({ length: 10 }, () => c.list("Bill", { select: ["Type", "ReferenceNbr"] })));
      assert.equal(sim.stats.tokensIssued, 1);
      assert.equal(sim.stats.logins, 1);
      assert.equal(tokenPosts().length, 1);
      assert.equal(seen.length, 1);
      assert.match(seen[0], /^[0-9A-F]{64}$/);
      for (const rows of results) assert.deepEqual(rows.map((r) => r.ReferenceNbr), ["000121", "000122", "000123", "000124"]);
      const billCalls = reqs((r) => r.path === `${EP}/Bill`);
      assert.equal(billCalls.length, 10);
      assert.ok(billCalls.every((r) => r.auth === "bearer" && r.status === 200));
    });

    it("refreshes after expireAllTokens, keeps the newest (rotated) refresh token, reuses one grant", async () => {
      const seen: string[] = [];
      const c = oauthClient({ onTokens: (t) => seen.push(t.refreshToken) });
      assert.equal((await c.get("Vendor", "V000042"))?.VendorName, "Contoso Freight LLC");
      sim.expireAllTokens();
      assert.equal((await c.get("Vendor", "V000041"))?.VendorName, "Bayside Office Supply");
      sim.expireAllTokens();
      // the simulator rotates refresh tokens: this only works if the client kept the newest one
      assert.equal((await c.get("Vendor", "V000043"))?.VendorName, "Fabrikam Maintenance");
      assert.deepEqual({ logins: sim.stats.logins, refreshes: sim.stats.refreshes, active: sim.stats.activeSessions }, { logins: 1, refreshes: 2, active: 1 });
      assert.equal(seen.length, 3);
      assert.equal(new Set(seen).size, 3);
      const vendorStatuses = reqs((r) => r.path.startsWith(`${EP}/Vendor/`)).map((r) => r.status);
      assert.deepEqual(vendorStatuses, [200, 401, 200, 401, 200]);
    });

    it("refreshes ~60 s before expiry without waiting for a 401", async () => {
      let clock = Date.parse("2025-06-01T08:00:00Z");
      const now = (): number => clock;
      const sim2 = new AcumaticaSim({ now, accessTokenTtlSec: 3600 });
      const base2 = await sim2.start();
      try {
        sim2.seedDemoData();
        const c = oauthClient({ instanceUrl: base2, now });
        await c.list("Vendor", { top: 1 });
        clock += 3600_000 - 30_000; // 30 s left: inside the 60 s skew
        await c.list("Vendor", { top: 1 });
        assert.equal(sim2.stats.refreshes, 1);
        assert.equal(sim2.stats.logins, 1);
        assert.deepEqual(
          sim2.requests.map((r) => `${r.method} ${r.path} ${r.status}`),
          ["POST /identity/connect/token 200", `GET ${EP}/Vendor 200`, "POST /identity/connect/token 200", `GET ${EP}/Vendor 200`],
        );
        await c.close();
      } finally {
        await sim2.stop();
      }
    });

    it("on an unexpected 401 renews once and replays once; a second 401 is an AuthError", async () => {
      const c = oauthClient();
      await c.list("Vendor", { top: 1 });
      sim.injectFault({ status: 401, pathPrefix: `${EP}/Vendor` }, 1);
      const rec = await c.get("Vendor", "V000042", { expand: "MainContact" });
      assert.equal((rec?.MainContact as Record<string, unknown>).Phone1, "(312) 555-0144");
      assert.equal(sim.stats.refreshes, 1);

      const before = sim.requests.length;
      sim.injectFault({ status: 401, pathPrefix: `${EP}/Vendor` }, 2);
      const err = await rejects(c.get("Vendor", "V000042"), AuthError);
      assert.equal(err.status, 401);
      assert.equal(err.code, "auth_failed");
      assert.match(err.message, /after signing in again/);
      assert.match(err.message, /The user is not logged in to the system\./);
      const after = sim.requests.slice(before).map((r) => `${r.method} ${r.path} ${r.status}`);
      assert.deepEqual(after, [`GET ${EP}/Vendor/V000042 401`, "POST /identity/connect/token 200", `GET ${EP}/Vendor/V000042 401`]);
      assert.equal(sim.stats.refreshes, 2);
    });

    it("maps token-endpoint errors to AuthError with the OAuth error as vendorCode", async () => {
      const badPw = await rejects(oauthClient({ auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: SECRET, username: USER, password: "wrong" } }).list("Bill"), AuthError);
      assert.equal(badPw.vendorCode, "invalid_grant");
      assert.equal(badPw.status, 400);
      assert.doesNotMatch(badPw.message, /wrong/);
      const badSecret = await rejects(oauthClient({ auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: "nope", username: USER, password: PASSWORD } }).list("Bill"), AuthError);
      assert.equal(badSecret.vendorCode, "invalid_client");
      assert.match(badSecret.message, /<generated ID>@<Tenant>/);
      const badScope = await rejects(
        oauthClient({ auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: SECRET, username: USER, password: PASSWORD, scope: "api offline_access api:concurrent_access" } }).list("Bill"),
        AuthError,
      );
      assert.equal(badScope.vendorCode, "invalid_scope");
      assert.equal(sim.stats.logins, 0);
    });

    it("close() signs the OAuth session out (licence slot freed) and later calls fail with client_closed", async () => {
      const c = oauthClient();
      await c.testConnection();
      assert.equal(sim.stats.activeSessions, 1);
      await c.close();
      assert.equal(sim.stats.logouts, 1);
      assert.equal(sim.stats.activeSessions, 0);
      const last = sim.requests[sim.requests.length - 1];
      assert.deepEqual([last.method, last.path, last.auth, last.status], ["POST", "/entity/auth/logout", "bearer", 204]);
      const err = await rejects(c.list("Bill"), ErpError);
      assert.equal(err.code, "client_closed");
      await c.close(); // idempotent
      assert.equal(sim.stats.logouts, 1);
    });

    it("maps the API Login Limit on the token endpoint to api_login_limit", async () => {
      const a = oauthClient();
      const b = cookieClient();
      await a.list("Vendor", { top: 1 });
      await b.list("Vendor", { top: 1 });
      const err = await rejects(oauthClient().list("Vendor", { top: 1 }), ErpError);
      assert.equal(err.code, "api_login_limit");
      assert.match(err.message, /API Login Limit/);
    });
  });

  describe("cookie session", () => {
    it("signs in once, keeps and returns every cookie, and signs out on close", async () => {
      const c = cookieClient();
      const rows = await Promise.all(Array.from({ length: 5 }, () => c.list("Vendor", { select: "VendorID" })));
      assert.deepEqual(rows[4].map((r) => r.VendorID), ["V000041", "V000042", "V000043"]);
      assert.equal(sim.stats.logins, 1);
      assert.deepEqual(c.sessionInfo().cookieNames.sort(), [".ASPXAUTH", "ASP.NET_SessionId", "Locale", "UserBranch", "requestid"]);
      assert.equal(c.sessionInfo().signedIn, true);
      assert.ok(reqs((r) => r.path === `${EP}/Vendor`).every((r) => r.auth === "cookie" && r.status === 200));
      assert.equal(sim.stats.activeSessions, 1);
      await c.close();
      assert.equal(sim.stats.logouts, 1);
      assert.equal(sim.stats.activeSessions, 0);
      const last = sim.requests[sim.requests.length - 1];
      assert.deepEqual([last.method, last.path, last.auth], ["POST", "/entity/auth/logout", "cookie"]);
      assert.deepEqual(c.sessionInfo().cookieNames, []);
    });

    it("signs in again once after idle expiry (401) and replays the call", async () => {
      const c = cookieClient();
      assert.equal((await c.get("Bill", "Bill/000123"))?.Amount, 1250);
      sim.expireAllTokens(); // ends cookie sessions
      assert.equal((await c.get("Bill", ["Bill", "000124"]))?.Amount, 15999.99);
      assert.equal(sim.stats.logins, 2);
      assert.deepEqual(
        reqs((r) => r.path.startsWith(`${EP}/Bill/`) || r.path === "/entity/auth/login").map((r) => `${r.path} ${r.status}`),
        ["/entity/auth/login 204", `${EP}/Bill/Bill/000123 200`, `${EP}/Bill/Bill/000124 401`, "/entity/auth/login 204", `${EP}/Bill/Bill/000124 200`],
      );
    });

    it("reports API Login Limit clearly and Invalid credentials as AuthError without server paths", async () => {
      const a = cookieClient();
      const b = cookieClient();
      await a.list("Vendor", { top: 1 });
      await b.list("Vendor", { top: 1 });
      assert.equal(sim.stats.activeSessions, 2);
      const limit = await rejects(cookieClient().list("Vendor", { top: 1 }), ErpError);
      assert.equal(limit.code, "api_login_limit");
      assert.equal(limit.status, 500);
      assert.match(limit.message, /API Login Limit/);
      assert.match(limit.message, /did not sign out/);
      assert.match(limit.message, /licence/);

      const bad = await rejects(cookieClient({ auth: { mode: "cookie", username: USER, password: "wrong-pw" } }).list("Vendor"), AuthError);
      assert.equal(bad.vendorCode, "invalid_credentials");
      assert.match(bad.message, /invalid credentials/);
      assert.doesNotMatch(bad.message, /wrong-pw|LoginService|C:\\|\.cs\b/);

      await a.close();
      await b.close();
      assert.equal(sim.stats.activeSessions, 0);
      assert.equal(sim.stats.logouts, 2);
    });
  });

  describe("endpoint pinning and reads", () => {
    it("names the configured endpoint and version when the instance does not serve them", async () => {
      const c = oauthClient({ endpointVersion: "21.200.001" });
      const err = await rejects(c.list("Bill"), ErpError);
      assert.equal(err.code, "endpoint_mismatch");
      assert.equal(err.status, 404);
      assert.match(err.message, /"Default" version 21\.200\.001/);
      assert.match(err.message, /SM207060/);
      // get() must not turn it into "not found"
      const err2 = await rejects(c.get("Bill", "Bill/000123"), ErpError);
      assert.equal(err2.code, "endpoint_mismatch");
      assert.ok(reqs((r) => r.path.startsWith("/entity/Default/21.200.001/")).length >= 2);
    });

    it("get: null when the record does not exist, unknown_entity for an entity the endpoint lacks", async () => {
      const c = oauthClient();
      assert.equal(await c.get("Bill", "Bill/999999"), null);
      const bill = await c.get("Bill", ["Bill", "000123"]);
      assert.equal(bill?.ReferenceNbr, "000123");
      assert.equal(bill?.Status, "Open");
      assert.equal(bill?.note, "");
      assert.equal("_links" in (bill ?? {}), false);
      const e = await rejects(c.list("Bil"), ErpError);
      assert.equal(e.code, "unknown_entity");
    });

    it("pages with $top/$skip until a short page", async () => {
      for (let i = 0; i < 25; i++) sim.upsert("Bill", { Type: "Bill", ReferenceNbr: `0009${String(i).padStart(2, "0")}`, Vendor: "V000042", Amount: i, Status: "Open" });
      const c = oauthClient();
      const refs: string[] = [];
      for await (const r of c.listAll("Bill", { select: "Type,ReferenceNbr" }, 10)) refs.push(String(r.ReferenceNbr));
      assert.equal(refs.length, 29);
      assert.equal(new Set(refs).size, 29);
      assert.deepEqual(refs.slice(0, 5), ["000121", "000122", "000123", "000124", "000900"]);
      const pages = reqs((r) => r.path === `${EP}/Bill`).map((r) => new URLSearchParams(r.query));
      // each later page re-reads the previous page's last row (anchor) to prove no row moved between pages
      assert.deepEqual(pages.map((q) => [q.get("$skip"), q.get("$top")]), [["0", "10"], ["9", "11"], ["19", "11"]]);

      sim.requests.length = 0;
      const capped: string[] = [];
      for await (const r of c.listAll("Bill", { top: 15 }, 10)) capped.push(String(r.ReferenceNbr));
      assert.equal(capped.length, 15);
      assert.deepEqual(reqs((r) => r.path === `${EP}/Bill`).map((r) => new URLSearchParams(r.query).get("$top")), ["10", "6"]);
    });

    it("URL-encodes a $filter with a datetimeoffset literal containing +02:00", async () => {
      const c = oauthClient();
      const lit = datetimeOffsetLiteral("2025-03-10T16:00:00+02:00"); // = 14:00 UTC
      assert.equal(lit, "datetimeoffset'2025-03-10T16:00:00.000+02:00'");
      const rows = await c.list("Bill", { filter: `LastModifiedDateTime gt ${lit} and Status eq 'Open'`, select: ["ReferenceNbr", "Status", "LastModifiedDateTime"] });
      assert.deepEqual(rows.map((r) => r.ReferenceNbr), ["000123"]);
      assert.equal(rows[0].LastModifiedDateTime, "2025-03-10T14:22:31.117+00:00");
      const q = reqs((r) => r.path === `${EP}/Bill`)[0].query;
      assert.ok(q.includes("%2B02%3A00"), q);
      assert.ok(!q.includes("+"), q);
      // the WHATWG URL parser may also turn ' into %27; what matters is that the server decodes the exact text
      assert.equal(new URLSearchParams(q).get("$filter"), "LastModifiedDateTime gt datetimeoffset'2025-03-10T16:00:00.000+02:00' and Status eq 'Open'");
    });

    it("datetimeOffsetLiteral keeps offsets, truncates to ms and refuses ambiguous input", () => {
      assert.equal(datetimeOffsetLiteral("2025-03-10T14:22:31.117Z"), "datetimeoffset'2025-03-10T14:22:31.117+00:00'");
      assert.equal(datetimeOffsetLiteral("2024-07-15T10:31:28.4029+03:00"), "datetimeoffset'2024-07-15T10:31:28.402+03:00'");
      assert.equal(datetimeOffsetLiteral("2024-07-15T10:31-0530"), "datetimeoffset'2024-07-15T10:31:00.000-05:30'");
      assert.equal(datetimeOffsetLiteral("2025-03-01"), "datetimeoffset'2025-03-01T00:00:00.000+00:00'");
      assert.throws(() => datetimeOffsetLiteral("2025-03-10T14:22:31"), /no UTC offset/);
      assert.throws(() => datetimeOffsetLiteral("2025-02-30T00:00:00Z"), ValidationError);
      assert.throws(() => datetimeOffsetLiteral("yesterday"), ValidationError);
    });

    it("testConnection makes one harmless read and reports the endpoint", async () => {
      const c = oauthClient();
      assert.deepEqual(await c.testConnection(), { ok: true, endpoint: "Default", version: "24.200.001" });
      const r = reqs((x) => x.path.startsWith("/entity/Default"));
      assert.deepEqual(r.map((x) => `${x.method} ${x.path}?${x.query}`), [`GET ${EP}/Vendor?$select=VendorID&$top=1`]);
    });
  });

  describe("PUT", () => {
    it("wraps values (note included), inserts with a new number and reads back", async () => {
      const c = oauthClient();
      const saved = await c.put("Bill", { Type: "Bill", Vendor: "V000041", Amount: 99.5, Description: "Courier", note: "call vendor first", Hold: true }, { mode: "insert" });
      assert.equal(saved.ReferenceNbr, "000125");
      assert.equal(saved.Amount, 99.5);
      assert.equal(saved.note, "call vendor first");
      assert.equal(saved.Hold, true);
      assert.match(String(saved.id), /^[0-9a-f-]{36}$/);
      const stored = sim.get("Bill", ["Bill", "000125"]);
      assert.equal(stored?.note, "call vendor first");
      assert.equal(stored?.Description, "Courier");
      // update by key, upsert mode
      const upd = await c.put("Bill", { Type: "Bill", ReferenceNbr: "000125", Description: "Courier (rush)" }, { mode: "update" });
      assert.equal(upd.Description, "Courier (rush)");
      assert.equal(sim.get("Bill", ["Bill", "000125"])?.Amount, 99.5);
    });

    it("422 → validation_failed with the field error text and the record key", async () => {
      const c = oauthClient();
      const err = await rejects(c.put("Bill", { Type: "Bill", ReferenceNbr: "000123", Vendor: "NOPE" }), ErpError);
      assert.equal(err.code, "validation_failed");
      assert.equal(err.status, 422);
      assert.equal(err.recordId, "Bill/000123");
      assert.match(err.message, /'Vendor' cannot be found in the system\./);
      assert.match(err.message, /Updating +'Bill' record raised at least one error/);
      assert.equal(sim.get("Bill", ["Bill", "000123"])?.Vendor, "V000042");
    });

    it("412 → precondition_failed for insert of an existing and update of a missing record", async () => {
      const c = oauthClient();
      const dup = await rejects(c.put("Bill", { Type: "Bill", ReferenceNbr: "000123", Description: "x" }, { mode: "insert" }), ErpError);
      assert.equal(dup.code, "precondition_failed");
      assert.equal(dup.status, 412);
      assert.equal(dup.recordId, "Bill/000123");
      assert.match(dup.message, /already exists/);
      const missing = await rejects(c.put("Bill", { Type: "Bill", ReferenceNbr: "777777", Description: "x" }, { mode: "update" }), ErpError);
      assert.equal(missing.code, "precondition_failed");
      assert.match(missing.message, /does not exist/);
      assert.equal(sim.get("Bill", ["Bill", "000123"])?.Description, "Freight, PO 4471");
      assert.equal(sim.get("Bill", ["Bill", "777777"]), undefined);
    });
  });

  describe("rate limits and server errors", () => {
    it("rides out injected 429s through the budget's backoff, then succeeds", async () => {
      const c = oauthClient();
      await c.list("Vendor", { top: 1 });
      sim.injectFault({ status: 429, pathPrefix: `${EP}/Bill` }, 2);
      const rows = await c.list("Bill", { select: "ReferenceNbr" });
      assert.equal(rows.length, 4);
      assert.deepEqual(reqs((r) => r.path === `${EP}/Bill`).map((r) => r.status), [429, 429, 200]);
    });

    it("429 for longer than the budget's re-queue time → RateLimitedError (retryable) with the vendor's text", async () => {
      const c = oauthClient({ budget: { maxRequeueMs: 300 } });
      await c.list("Vendor", { top: 1 });
      sim.injectFault({ status: 429, pathPrefix: `${EP}/Bill` }, 1000);
      const err = await rejects(c.list("Bill"), RateLimitedError);
      assert.equal(err.code, "rate_limited");
      assert.equal(err.retryable, true);
      assert.match(err.message, /number of requests per minute/);
      assert.ok(reqs((r) => r.path === `${EP}/Bill`).length >= 2, "re-queued at least once");
      assert.ok(reqs((r) => r.path === `${EP}/Bill`).every((r) => r.status === 429));
    });

    it("5xx → HttpError whose text has the vendor message but no stack trace, path or exception paths", async () => {
      const c = oauthClient();
      await c.list("Vendor", { top: 1 });
      sim.injectFault(
        {
          status: 500,
          pathPrefix: `${EP}/Bill`,
          body: {
            message: "An error has occurred.",
            exceptionMessage: "Could not load file C:\\Bld\\AC-FULL2024R2\\Bin\\PX.Data.dll",
            exceptionType: "System.IO.FileNotFoundException",
            stackTrace: "   at PX.Api.ContractBased.EntityService.Process() in C:\\Bld\\AC\\EntityService.cs:line 412",
          },
        },
        1,
      );
      const err = await rejects(c.list("Bill"), HttpError);
      assert.equal(err.status, 500);
      assert.equal(err.retryable, true); // idempotent GET
      assert.equal(err.vendorCode, "System.IO.FileNotFoundException");
      assert.match(err.message, /An error has occurred\./);
      assert.doesNotMatch(err.message, /C:\\|\.dll|\.cs|EntityService|stack/i);
    });
  });

  describe("values", () => {
    it("unwrap/wrap round trip: nested contact, details, custom, note, _links dropped", () => {
      const wire = {
        id: "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b",
        rowNumber: 1,
        note: { value: "hello" },
        Amount: { value: 1250.0 },
        Empty: {},
        MainContact: { id: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e", rowNumber: 1, Phone1: { value: "+1 555 0100" } },
        Details: [{ id: "11111111-2222-3333-4444-555555555555", rowNumber: 1, Qty: { value: 2 } }],
        custom: { Document: { UsrRoute: { type: "CustomStringField", value: "R1" } } },
        _links: { self: "/entity/Default/24.200.001/Bill/x" },
      };
      const plain = unwrapValues(wire);
      assert.deepEqual(plain, {
        id: "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b",
        rowNumber: 1,
        note: "hello",
        Amount: 1250,
        Empty: null,
        MainContact: { id: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e", rowNumber: 1, Phone1: "+1 555 0100" },
        Details: [{ id: "11111111-2222-3333-4444-555555555555", rowNumber: 1, Qty: 2 }],
        custom: { Document: { UsrRoute: "R1" } },
      });
      assert.deepEqual(wrapValues({ ...plain, Empty: undefined }), {
        id: "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b",
        rowNumber: 1,
        note: { value: "hello" },
        Amount: { value: 1250 },
        MainContact: { id: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e", rowNumber: 1, Phone1: { value: "+1 555 0100" } },
        Details: [{ id: "11111111-2222-3333-4444-555555555555", rowNumber: 1, Qty: { value: 2 } }],
        custom: { Document: { UsrRoute: { type: "CustomStringField", value: "R1" } } },
      });
      assert.deepEqual(wrapValues({ Amount: { value: 5 }, Cleared: null }), { Amount: { value: 5 }, Cleared: { value: null } });
      assert.equal(recordKeyOf("Bill", { Type: "Bill", ReferenceNbr: "000123" }), "Bill/000123");
      assert.equal(recordKeyOf("Bill", { id: "abc" }), "abc");
    });
  });
});
