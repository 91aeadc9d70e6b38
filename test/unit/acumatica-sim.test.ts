/**
 * Behaviour tests of the Acumatica contract-based REST API simulator (test/sims/acumatica.ts).
 * Every assertion checks concrete values the real API documents (reference: /work/shared/reference/acumatica.md).
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  ACU_MSG_API_LOGIN_LIMIT,
  ACU_MSG_NO_ENTITY,
  ACU_MSG_NOT_LOGGED_IN,
  ACU_MSG_RATE_LIMIT,
  ACU_RE_ENDPOINT_NOT_FOUND,
  AcumaticaSim,
  type AcumaticaSimOptions,
  endpointNotFoundMessage,
} from "../sims/acumatica";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type J = any;

const EP = "/entity/Default/24.200.001";
const CLIENT_ID = "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd";
const BARE_CLIENT_ID = "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const started: AcumaticaSim[] = [];
async function startSim(opts: AcumaticaSimOptions = {}, seed = true): Promise<AcumaticaSim> {
  const sim = new AcumaticaSim(opts);
  await sim.start();
  started.push(sim);
  if (seed) sim.seedDemoData();
  return sim;
}

function tokenRequest(sim: AcumaticaSim, fields: Record<string, string>): Promise<Response> {
  return fetch(`${sim.url}/identity/connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
}

function passwordGrant(sim: AcumaticaSim, over: Record<string, string> = {}): Promise<Response> {
  return tokenRequest(sim, {
    grant_type: "password",
    client_id: CLIENT_ID,
    client_secret: "s3cr3t",
    username: "api.user",
    password: "P@ss-w0rd",
    scope: "api offline_access",
    ...over,
  });
}

async function bearer(sim: AcumaticaSim): Promise<J> {
  const r = await passwordGrant(sim);
  assert.equal(r.status, 200);
  return rj(r);
}

function getB(sim: AcumaticaSim, pathAndQuery: string, token: string): Promise<Response> {
  return fetch(`${sim.url}${pathAndQuery}`, { headers: { authorization: `Bearer ${token}` } });
}

function login(sim: AcumaticaSim, body: Record<string, string> = { name: "api.user", password: "P@ss-w0rd", tenant: "AcmeProd" }): Promise<Response> {
  return fetch(`${sim.url}/entity/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

function cookieHeader(r: Response): string {
  return r.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
}

function logout(sim: AcumaticaSim, cookie: string): Promise<Response> {
  return fetch(`${sim.url}/entity/auth/logout`, { method: "POST", headers: { cookie } });
}

/** `Response.json()` typed for the tests (the project's lib has no DOM typings, so it returns unknown). */
function rj(r: Response): Promise<J> {
  return r.json();
}

function refs(rows: J[]): string[] {
  return rows.map((r) => r.ReferenceNbr.value as string);
}

afterEach(async () => {
  while (started.length) await (started.pop() as AcumaticaSim).stop();
});

describe("AcumaticaSim (Acumatica contract-based REST API simulator)", () => {
  describe("OAuth 2.0 (/identity/connect/token)", () => {
    it("password grant returns a Bearer token (+ refresh token with offline_access) usable on entity calls", async () => {
      const sim = await startSim();
      const r = await passwordGrant(sim);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("cache-control"), "no-store");
      const j = await rj(r);
      assert.equal(j.token_type, "Bearer");
      assert.equal(j.expires_in, 3600);
      assert.equal(j.scope, "api offline_access");
      assert.match(j.access_token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      assert.match(j.refresh_token, /^[0-9A-F]{64}$/);

      const list = await getB(sim, `${EP}/Vendor`, j.access_token);
      assert.equal(list.status, 200);
      const vendors = await rj(list);
      assert.deepEqual(
        vendors.map((v: J) => v.VendorID.value),
        ["V000041", "V000042", "V000043"],
      );
      const last = sim.requests[sim.requests.length - 1];
      assert.deepEqual(last, { method: "GET", path: `${EP}/Vendor`, query: "", status: 200, auth: "bearer" });
      assert.deepEqual(sim.stats, { logins: 1, logouts: 0, activeSessions: 1, tokensIssued: 1, refreshes: 0 });

      // scope "api" only → no refresh token
      const r2 = await passwordGrant(sim, { scope: "api" });
      const j2 = await rj(r2);
      assert.equal(r2.status, 200);
      assert.equal(j2.scope, "api");
      assert.equal("refresh_token" in j2, false);
    });

    it("rejects a bare client_id (invalid_client), a wrong secret, a wrong password (invalid_grant) and an unenabled scope", async () => {
      const sim = await startSim();
      const bare = await passwordGrant(sim, { client_id: BARE_CLIENT_ID });
      assert.equal(bare.status, 400);
      assert.deepEqual(await rj(bare), { error: "invalid_client" });

      const otherTenant = await passwordGrant(sim, { client_id: `${BARE_CLIENT_ID}@OtherCo` });
      assert.deepEqual([otherTenant.status, (await rj(otherTenant)).error], [400, "invalid_client"]);

      const badSecret = await passwordGrant(sim, { client_secret: "nope" });
      assert.deepEqual([badSecret.status, (await rj(badSecret)).error], [400, "invalid_client"]);

      const badPw = await passwordGrant(sim, { password: "wrong" });
      assert.equal(badPw.status, 400);
      assert.equal((await rj(badPw)).error, "invalid_grant");

      const concurrent = await passwordGrant(sim, { scope: "api api:concurrent_access" });
      assert.deepEqual([concurrent.status, (await rj(concurrent)).error], [400, "invalid_scope"]);

      const json = await fetch(`${sim.url}/identity/connect/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ grant_type: "password" }),
      });
      assert.deepEqual([json.status, (await rj(json)).error], [400, "invalid_request"]);
      assert.equal(sim.stats.logins, 0);
      assert.equal(sim.stats.activeSessions, 0);
    });

    it("refresh rotates the refresh token (old one → invalid_grant) and reuses the same server session", async () => {
      const sim = await startSim({ maxApiUsers: 1 });
      const first = await bearer(sim);
      const r = await tokenRequest(sim, { grant_type: "refresh_token", client_id: CLIENT_ID, client_secret: "s3cr3t", refresh_token: first.refresh_token });
      assert.equal(r.status, 200);
      const second = await rj(r);
      assert.notEqual(second.access_token, first.access_token);
      assert.match(second.refresh_token, /^[0-9A-F]{64}$/);
      assert.notEqual(second.refresh_token, first.refresh_token);
      assert.equal(second.scope, "api offline_access");

      const replay = await tokenRequest(sim, { grant_type: "refresh_token", client_id: CLIENT_ID, client_secret: "s3cr3t", refresh_token: first.refresh_token });
      assert.equal(replay.status, 400);
      assert.deepEqual(await rj(replay), { error: "invalid_grant" });

      const bareRefresh = await tokenRequest(sim, { grant_type: "refresh_token", client_id: BARE_CLIENT_ID, client_secret: "s3cr3t", refresh_token: second.refresh_token });
      assert.deepEqual([bareRefresh.status, (await rj(bareRefresh)).error], [400, "invalid_client"]);

      assert.equal((await getB(sim, `${EP}/Bill/Bill/000123`, second.access_token)).status, 200);
      // still one API user (maxApiUsers: 1 would refuse a second grant)
      assert.deepEqual(sim.stats, { logins: 1, logouts: 0, activeSessions: 1, tokensIssued: 2, refreshes: 1 });
      const another = await passwordGrant(sim);
      assert.equal(another.status, 400);
      assert.equal((await rj(another)).error_description, ACU_MSG_API_LOGIN_LIMIT);

      // signing out with the Bearer token ends the grant; its refresh token is dead afterwards
      const out = await fetch(`${sim.url}/entity/auth/logout`, { method: "POST", headers: { authorization: `Bearer ${second.access_token}` } });
      assert.equal(out.status, 204);
      assert.equal(sim.stats.activeSessions, 0);
      assert.equal(sim.stats.logouts, 1);
      const dead = await tokenRequest(sim, { grant_type: "refresh_token", client_id: CLIENT_ID, client_secret: "s3cr3t", refresh_token: second.refresh_token });
      assert.equal(dead.status, 400);
    });
  });

  describe("cookie session (/entity/auth/login, /entity/auth/logout) and licence API users", () => {
    it("login sets the session cookies; entity calls need them all", async () => {
      const sim = await startSim();
      const r = await login(sim);
      assert.equal(r.status, 204);
      const setCookies = r.headers.getSetCookie();
      assert.deepEqual(
        setCookies.map((c) => c.split("=")[0]),
        ["ASP.NET_SessionId", ".ASPXAUTH", "UserBranch", "Locale", "requestid"],
      );
      for (const c of setCookies) {
        assert.match(c, /; path=\//i);
        assert.match(c, /HttpOnly/);
      }
      const cookie = cookieHeader(r);
      const ok = await fetch(`${sim.url}${EP}/Bill/Bill/000123`, { headers: { cookie } });
      assert.equal(ok.status, 200);
      assert.equal((await rj(ok)).Amount.value, 1250);
      assert.equal(sim.requests[sim.requests.length - 1].auth, "cookie");

      // only the session id (auth ticket dropped) is not enough
      const partial = await fetch(`${sim.url}${EP}/Bill`, { headers: { cookie: cookie.split("; ")[0] } });
      assert.equal(partial.status, 401);
      assert.equal((await rj(partial)).message, ACU_MSG_NOT_LOGGED_IN);

      // form encoding is accepted too
      const form = await fetch(`${sim.url}/entity/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "name=api.user&password=P%40ss-w0rd&tenant=AcmeProd&branch=HQ",
      });
      assert.equal(form.status, 204);
      assert.equal(sim.stats.logins, 2);
    });

    it("bad credentials, a wrong tenant and a missing tenant → 500 HttpError 'Invalid credentials'", async () => {
      const sim = await startSim();
      const bodies: Record<string, string>[] = [
        { name: "api.user", password: "nope", tenant: "AcmeProd" },
        { name: "nobody", password: "P@ss-w0rd", tenant: "AcmeProd" },
        { name: "api.user", password: "P@ss-w0rd", tenant: "OtherCo" },
        { name: "api.user", password: "P@ss-w0rd" },
      ];
      for (const body of bodies) {
        const r = await login(sim, body);
        assert.equal(r.status, 500, JSON.stringify(body));
        const j = await rj(r);
        assert.match(j.message, /Invalid credentials/);
        assert.equal(typeof j.stackTrace, "string"); // real bodies carry server paths — callers must scrub
      }
      assert.equal(sim.stats.activeSessions, 0);
    });

    it("refuses the sign-in over maxApiUsers with 'API Login Limit' (OAuth grants count too); logout frees a slot", async () => {
      const sim = await startSim({ maxApiUsers: 2 });
      const a = await login(sim);
      const b = await passwordGrant(sim);
      assert.equal(a.status, 204);
      assert.equal(b.status, 200);
      assert.equal(sim.stats.activeSessions, 2);

      const c = await login(sim);
      assert.equal(c.status, 500);
      const cj = await rj(c);
      assert.match(cj.message, /API Login Limit/);
      assert.equal(c.headers.getSetCookie().length, 0);

      const cookieA = cookieHeader(a);
      const out = await logout(sim, cookieA);
      assert.equal(out.status, 204);
      assert.deepEqual(
        [sim.stats.logouts, sim.stats.activeSessions],
        [1, 1],
      );
      // the old cookies are dead, and the freed slot can be used
      assert.equal((await fetch(`${sim.url}${EP}/Bill`, { headers: { cookie: cookieA } })).status, 401);
      assert.equal((await login(sim)).status, 204);
      assert.equal(sim.stats.activeSessions, 2);
      // a second logout with the same cookies is a no-op 204 and does not count
      assert.equal((await logout(sim, cookieA)).status, 204);
      assert.equal(sim.stats.logouts, 1);
    });

    it("entity calls without any auth → 401 HttpError", async () => {
      const sim = await startSim();
      const r = await fetch(`${sim.url}${EP}/Bill`);
      assert.equal(r.status, 401);
      assert.deepEqual(await rj(r), { message: ACU_MSG_NOT_LOGGED_IN });
      assert.equal(sim.requests[0].auth, "none");
    });
  });

  describe("expiry", () => {
    it("expireAllTokens → next Bearer and cookie calls get 401; a refresh recovers the OAuth grant", async () => {
      const sim = await startSim({ maxApiUsers: 3 });
      const tok = await bearer(sim);
      const cookie = cookieHeader(await login(sim));
      assert.equal((await getB(sim, `${EP}/Bill`, tok.access_token)).status, 200);
      assert.equal(sim.stats.activeSessions, 2);

      sim.expireAllTokens();
      const r1 = await getB(sim, `${EP}/Bill`, tok.access_token);
      assert.equal(r1.status, 401);
      assert.deepEqual(await rj(r1), { message: "The user is not logged in to the system." });
      const r2 = await fetch(`${sim.url}${EP}/Bill`, { headers: { cookie } });
      assert.equal(r2.status, 401);
      assert.equal(sim.stats.activeSessions, 1); // cookie session ended; refreshable grant still alive

      const ref = await tokenRequest(sim, { grant_type: "refresh_token", client_id: CLIENT_ID, client_secret: "s3cr3t", refresh_token: tok.refresh_token });
      assert.equal(ref.status, 200);
      const fresh = await rj(ref);
      assert.equal((await getB(sim, `${EP}/Bill`, fresh.access_token)).status, 200);
      assert.equal(sim.stats.activeSessions, 1);
    });

    it("idle cookie sessions expire after sessionIdleMs and access tokens after expires_in (simulated clock)", async () => {
      let clock = Date.parse("2025-06-02T08:00:00Z");
      const sim = await startSim({ now: () => clock, sessionIdleMs: 1_000, accessTokenTtlSec: 60, maxApiUsers: 5 });
      const cookie = cookieHeader(await login(sim));
      clock += 900;
      assert.equal((await fetch(`${sim.url}${EP}/Bill`, { headers: { cookie } })).status, 200); // touches the session
      clock += 900;
      assert.equal((await fetch(`${sim.url}${EP}/Bill`, { headers: { cookie } })).status, 200);
      clock += 1_001;
      assert.equal((await fetch(`${sim.url}${EP}/Bill`, { headers: { cookie } })).status, 401);
      assert.equal(sim.stats.activeSessions, 0);

      const tok = await bearer(sim);
      assert.equal(tok.expires_in, 60);
      clock += 59_000;
      assert.equal((await getB(sim, `${EP}/Bill`, tok.access_token)).status, 200);
      clock += 1_001;
      assert.equal((await getB(sim, `${EP}/Bill`, tok.access_token)).status, 401);
    });
  });

  describe("URL layout", () => {
    it("an unknown endpoint name/version → 404 with a recognisable message; unknown entity → 404", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const r = await getB(sim, "/entity/Default/21.200.001/Bill", t);
      assert.equal(r.status, 404);
      const j = await rj(r);
      assert.equal(j.message, "The endpoint Default/21.200.001 is not found.");
      assert.equal(j.message, endpointNotFoundMessage("Default", "21.200.001"));
      assert.deepEqual([...(ACU_RE_ENDPOINT_NOT_FOUND.exec(j.message) ?? [])].slice(1), ["Default", "21.200.001"]);

      const name = await getB(sim, "/entity/MLConnector/24.200.001/Bill", t);
      assert.equal(name.status, 404);
      assert.match((await rj(name)).message, ACU_RE_ENDPOINT_NOT_FOUND);

      const ent = await getB(sim, `${EP}/Widget`, t);
      assert.equal(ent.status, 404);
      assert.match((await rj(ent)).message, /'Widget' is not found/);

      const v23 = await getB(sim, "/entity/Default/23.200.001/Bill", t);
      assert.equal(v23.status, 200);
      assert.equal((await rj(v23)).length, 4);
    });

    it("serves under a virtual directory", async () => {
      const sim = await startSim({ virtualDirectory: "/AcmeERP" });
      assert.match(sim.url, /^http:\/\/127\.0\.0\.1:\d+\/AcmeERP$/);
      const { access_token: t } = await bearer(sim);
      const r = await getB(sim, `${EP}/Bill/Bill/000121`, t);
      assert.equal(r.status, 200);
      assert.equal((await rj(r))._links.self.startsWith(`/AcmeERP${EP}/Bill/`), true);
    });
  });

  describe("value objects, $expand, $select, get by key/id", () => {
    it("wraps every scalar as {value}, includes id/rowNumber/note/custom/_links, hides linked entities unless $expand-ed", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const r = await getB(sim, `${EP}/Vendor/V000042`, t);
      assert.equal(r.status, 200);
      const v = await rj(r);
      assert.match(v.id, GUID);
      assert.equal(v.rowNumber, 2);
      assert.deepEqual(v.note, { value: "" });
      assert.deepEqual(v.custom, {});
      assert.equal(v._links.self, `${EP}/Vendor/${v.id}`);
      assert.deepEqual(v.VendorID, { value: "V000042" });
      assert.deepEqual(v.VendorName, { value: "Contoso Freight LLC" });
      assert.deepEqual(v.LastModifiedDateTime, { value: "2025-03-04T11:03:10.250+00:00" });
      assert.equal("MainContact" in v, false);

      const ex = await rj(await getB(sim, `${EP}/Vendor/V000042?$expand=MainContact`, t));
      assert.match(ex.MainContact.id, GUID);
      assert.deepEqual(ex.MainContact.Phone1, { value: "(312) 555-0144" });
      assert.deepEqual(ex.MainContact.Email, { value: "ar@contoso-freight.example" });
      assert.equal("Address" in ex.MainContact, false);

      const nested = await rj(await getB(sim, `${EP}/Vendor/V000042?$expand=MainContact,MainContact/Address`, t));
      assert.deepEqual(nested.MainContact.Address.City, { value: "Chicago" });

      const sel = await rj(await getB(sim, `${EP}/Vendor/V000042?$expand=MainContact&$select=VendorID,MainContact/Phone1`, t));
      assert.deepEqual(sel.VendorID, { value: "V000042" });
      assert.equal("VendorName" in sel, false);
      assert.deepEqual(sel.MainContact.Phone1, { value: "(312) 555-0144" });
      assert.equal("Email" in sel.MainContact, false);

      const emp = await rj(await getB(sim, `${EP}/Employee?$expand=ContactInfo&$select=EmployeeID,ContactInfo/Phone1,ContactInfo/DisplayName`, t));
      assert.deepEqual(
        emp.map((e: J) => [e.EmployeeID.value, e.ContactInfo.DisplayName.value, e.ContactInfo.Phone1.value]),
        [
          ["EP00000001", "Maria Chen", "(415) 555-0132"],
          ["EP00000002", "David Okafor", "(212) 555-0187"],
          ["EP00000003", "Priya Raman", "555-01"],
        ],
      );

      const badExpand = await getB(sim, `${EP}/Vendor?$expand=Nope`, t);
      assert.equal(badExpand.status, 400);
      const badSelect = await getB(sim, `${EP}/Vendor?$select=Nope`, t);
      assert.equal(badSelect.status, 400);
    });

    it("gets by key and by id; a miss → 404 'No entity satisfies the condition.'; null fields → {}", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const bill = await rj(await getB(sim, `${EP}/Bill/Bill/000123`, t));
      assert.deepEqual(
        [bill.Type.value, bill.ReferenceNbr.value, bill.Vendor.value, bill.Amount.value, bill.Balance.value, bill.Status.value, bill.ApprovedForPayment.value, bill.CurrencyID.value],
        ["Bill", "000123", "V000042", 1250, 1250, "Open", false, "USD"],
      );
      assert.equal(bill.DueDate.value, "2025-04-09T00:00:00+00:00");
      assert.equal(bill.LastModifiedDateTime.value, "2025-03-10T14:22:31.117+00:00");
      assert.equal("Details" in bill, false);

      const byId = await rj(await getB(sim, `${EP}/Bill/${bill.id}`, t));
      assert.equal(byId.ReferenceNbr.value, "000123");

      const miss = await getB(sim, `${EP}/Bill/Bill/999999`, t);
      assert.equal(miss.status, 404);
      assert.deepEqual(await rj(miss), { message: ACU_MSG_NO_ENTITY });

      const wrongKeyCount = await getB(sim, `${EP}/Bill/000123`, t);
      assert.equal(wrongKeyCount.status, 400);

      sim.upsert("Bill", { Type: "Credit Adj.", ReferenceNbr: "000200", Vendor: "V000041", Amount: 10, Description: null });
      const adj = await rj(await getB(sim, `${EP}/Bill/Credit%20Adj./000200`, t));
      assert.deepEqual(adj.Description, {});
      assert.deepEqual(adj.Type, { value: "Credit Adj." });
      assert.throws(() => sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "1", Phone1: "x" }), /'Phone1' is not a field of Bill/);
    });
  });

  describe("$filter, $top, $skip", () => {
    it("filters on a URL-encoded datetimeoffset and pages with $top/$skip until a short page", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const lit = encodeURIComponent("2025-03-10T13:00:00.000+00:00"); // → %3A … %2B
      assert.equal(lit, "2025-03-10T13%3A00%3A00.000%2B00%3A00");
      const collected: string[] = [];
      const pageSizes: number[] = [];
      for (let skip = 0; ; skip += 2) {
        const r = await getB(sim, `${EP}/Bill?$filter=LastModifiedDateTime gt datetimeoffset'${lit}'&$top=2&$skip=${skip}`, t);
        assert.equal(r.status, 200);
        const page = await rj(r);
        assert.ok(Array.isArray(page));
        pageSizes.push(page.length);
        collected.push(...refs(page));
        if (page.length < 2) break;
      }
      assert.deepEqual(pageSizes, [2, 1]);
      assert.deepEqual(collected, ["000122", "000123", "000124"]);

      // gt excludes the exact watermark, ge includes it; another offset denotes the same instant
      const exact = encodeURIComponent("2025-03-10T14:22:31.117+00:00");
      assert.deepEqual(refs(await rj(await getB(sim, `${EP}/Bill?$filter=LastModifiedDateTime gt datetimeoffset'${exact}'`, t))), ["000124"]);
      const plus3 = encodeURIComponent("2025-03-10T17:22:31.117+03:00");
      assert.deepEqual(refs(await rj(await getB(sim, `${EP}/Bill?$filter=LastModifiedDateTime ge datetimeoffset'${plus3}'`, t))), ["000123", "000124"]);

      // the whole $filter encoded in one go works the same
      const whole = encodeURIComponent("LastModifiedDateTime gt datetimeoffset'2025-03-10T13:00:00.000+00:00' and Status eq 'Open'");
      assert.deepEqual(refs(await rj(await getB(sim, `${EP}/Bill?$filter=${whole}`, t))), ["000122", "000123"]);

      // $skip past the end → empty array; $top=0 → empty array
      assert.deepEqual(await rj(await getB(sim, `${EP}/Bill?$skip=10`, t)), []);
      assert.deepEqual(await rj(await getB(sim, `${EP}/Bill?$top=0`, t)), []);
    });

    it("supports eq/ne/gt, and/or/parentheses, booleans, substringof/startswith and linked paths; rejects bad input with 400", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const q = async (entity: string, filter: string): Promise<J> => {
        const r = await getB(sim, `${EP}/${entity}?$filter=${encodeURIComponent(filter)}`, t);
        return { status: r.status, body: await rj(r) };
      };
      assert.deepEqual(refs((await q("Bill", "Status eq 'Open' and Amount gt 2000")).body), ["000122"]);
      assert.deepEqual(refs((await q("Bill", "(Status eq 'Pending Approval' or Status eq 'Balanced') and Vendor ne 'V000041'")).body), ["000124"]);
      assert.deepEqual(refs((await q("Bill", "Status eq 'open'")).body), ["000122", "000123"]); // CI collation
      assert.deepEqual(refs((await q("Bill", "substringof('freight',Description)")).body), ["000123"]);
      assert.deepEqual(refs((await q("Bill", "startswith(VendorRef,'INV-')")).body), ["000123", "000124"]);
      assert.deepEqual(refs((await q("Bill", "ApprovedForPayment eq true")).body), ["000122"]);
      assert.deepEqual(refs((await q("Bill", "Amount ge 318.4 and Amount le 1250")).body), ["000121", "000123"]);
      const v = await q("Vendor", "MainContact/Email eq 'ar@contoso-freight.example'");
      assert.deepEqual(
        v.body.map((x: J) => x.VendorID.value),
        ["V000042"],
      );
      assert.deepEqual(refs((await q("Payment", "Status eq 'Voided'")).body), ["000312"]);

      const unknown = await q("Bill", "Foo eq 1");
      assert.equal(unknown.status, 400);
      assert.match(unknown.body.message, /'Foo'/);
      const mismatch = await q("Bill", "LastModifiedDateTime gt '2025-03-01'");
      assert.equal(mismatch.status, 400);
      assert.match(mismatch.body.message, /incompatible types.*Edm\.DateTimeOffset.*Edm\.String/);
      assert.equal((await q("Bill", "Details/Amount gt 1")).status, 400);
      assert.equal((await q("Bill", "Status eq 'Open")).status, 400);
      assert.equal((await q("Bill", "Status eq")).status, 400);

      for (const bad of ["$top=-1", "$top=abc", "$top=1.5", "$skip=x"]) {
        const r = await getB(sim, `${EP}/Bill?${bad}`, t);
        assert.equal(r.status, 400, bad);
        assert.equal(typeof (await rj(r)).message, "string");
      }
    });

    it("the '+' trap: an unencoded + in a datetimeoffset literal is decoded as a space → 400", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const raw = await getB(sim, `${EP}/Bill?$filter=LastModifiedDateTime%20gt%20datetimeoffset'2025-03-10T13:00:00.000+00:00'`, t);
      assert.equal(raw.status, 400);
      const j = await rj(raw);
      assert.match(j.message, /^Unrecognized 'Edm\.DateTimeOffset' literal 'datetimeoffset'2025-03-10T13:00:00\.000 00:00''/);
      assert.match(sim.requests[sim.requests.length - 1].query, /\.000\+00:00/);

      const enc = await getB(sim, `${EP}/Bill?$filter=LastModifiedDateTime%20gt%20datetimeoffset'2025-03-10T13:00:00.000%2B00:00'`, t);
      assert.equal(enc.status, 200);
      assert.deepEqual(refs(await rj(enc)), ["000122", "000123", "000124"]);
    });
  });

  describe("PUT (upsert)", () => {
    async function put(sim: AcumaticaSim, t: string, entity: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: J }> {
      const r = await fetch(`${sim.url}${EP}/${entity}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${t}`, "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
      return { status: r.status, body: r.status === 204 ? undefined : await rj(r) };
    }

    it("writes note, merges fields, ignores unknown fields and advances LastModifiedDateTime", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const before = sim.get("Bill", ["Bill", "000123"]);
      assert.ok(before);
      const r = await put(sim, t, "Bill", {
        Type: { value: "Bill" },
        ReferenceNbr: { value: "000123" },
        Description: { value: "Freight, PO 4471 (revised)" },
        note: { value: "SMS sent to approver" },
        NotAField: { value: 1 },
      });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.note, { value: "SMS sent to approver" });
      assert.deepEqual(r.body.Description, { value: "Freight, PO 4471 (revised)" });
      assert.deepEqual(r.body.Amount, { value: 1250 }); // untouched fields kept
      assert.equal("NotAField" in r.body, false);
      assert.equal(r.body.id, before.id);
      const lm1 = r.body.LastModifiedDateTime.value as string;
      assert.match(lm1, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$/);
      assert.ok(Date.parse(lm1) > Date.parse(before.LastModifiedDateTime as string));
      assert.equal(sim.get("Bill", ["Bill", "000123"])?.note, "SMS sent to approver");

      // second PUT by id: strictly later stamp (even within the same millisecond)
      const r2 = await put(sim, t, "Bill", { id: before.id, Hold: { value: true } });
      assert.equal(r2.status, 200);
      assert.ok(Date.parse(r2.body.LastModifiedDateTime.value) > Date.parse(lm1));
      assert.deepEqual(r2.body.note, { value: "SMS sent to approver" });

      // the change is visible to an incremental poll from the old watermark
      const wm = encodeURIComponent(before.LastModifiedDateTime as string);
      const polled = await rj(await getB(sim, `${EP}/Bill?$filter=LastModifiedDateTime gt datetimeoffset'${wm}'`, t));
      assert.deepEqual(refs(polled), ["000123", "000124"]);

      // fields must be value objects
      const unwrapped = await put(sim, t, "Bill", { Type: { value: "Bill" }, ReferenceNbr: { value: "000123" }, Description: "plain" });
      assert.equal(unwrapped.status, 400);
    });

    it("If-Match / If-None-Match → 412; missing keys and unknown selectors → 422 with field errors; auto-numbering", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      const missing = await put(sim, t, "Bill", { Type: { value: "Bill" }, ReferenceNbr: { value: "999999" }, Amount: { value: 5 } }, { "If-Match": "*" });
      assert.equal(missing.status, 412);
      assert.equal(typeof missing.body.message, "string");
      assert.equal(sim.get("Bill", ["Bill", "999999"]), undefined);

      const exists = await put(sim, t, "Bill", { Type: { value: "Bill" }, ReferenceNbr: { value: "000123" }, Amount: { value: 5 } }, { "If-None-Match": "*" });
      assert.equal(exists.status, 412);
      assert.equal(sim.get("Bill", ["Bill", "000123"])?.Amount, 1250);

      const updOnly = await put(sim, t, "Bill", { Type: { value: "Bill" }, ReferenceNbr: { value: "000123" }, Hold: { value: true } }, { "If-Match": "*" });
      assert.equal(updOnly.status, 200);

      const created = await put(sim, t, "Bill", { Type: { value: "Bill" }, Vendor: { value: "V000041" }, Amount: { value: 77.5 } }, { "If-None-Match": "*" });
      assert.equal(created.status, 200);
      assert.deepEqual(created.body.ReferenceNbr, { value: "000125" });
      assert.equal(created.body.rowNumber, 5);
      assert.match(created.body.id, GUID);

      const noKey = await put(sim, t, "Vendor", { VendorName: { value: "No Key Inc" } });
      assert.equal(noKey.status, 422);
      assert.deepEqual(noKey.body.VendorID, { error: "'Vendor ID' cannot be empty." });
      assert.match(noKey.body.error, /^Inserting\s+'Vendor' record raised at least one error/);
      assert.deepEqual(noKey.body.VendorName, { value: "No Key Inc" });

      const noType = await put(sim, t, "Bill", { ReferenceNbr: { value: "000500" }, Amount: { value: 1 } });
      assert.equal(noType.status, 422);
      assert.equal(noType.body.Type.error, "'Type' cannot be empty.");

      const badVendor = await put(sim, t, "Bill", { Type: { value: "Bill" }, ReferenceNbr: { value: "000123" }, Vendor: { value: "NOPE" } });
      assert.equal(badVendor.status, 422);
      assert.deepEqual(badVendor.body.Vendor, { value: "NOPE", error: "'Vendor' cannot be found in the system." });
      assert.match(badVendor.body.error, /^Updating/);
      assert.equal(sim.get("Bill", ["Bill", "000123"])?.Vendor, "V000042");
    });
  });

  describe("licence rate limits and injected faults", () => {
    it("injectFault answers the next N matching requests first (429 without Retry-After, 500), then normal service resumes", async () => {
      const sim = await startSim();
      const { access_token: t } = await bearer(sim);
      sim.injectFault({ status: 429 }, 2);
      for (let i = 0; i < 2; i++) {
        const r = await getB(sim, `${EP}/Bill`, t);
        assert.equal(r.status, 429);
        assert.equal(r.headers.get("retry-after"), null);
        assert.equal((await rj(r)).message, ACU_MSG_RATE_LIMIT);
      }
      assert.equal((await getB(sim, `${EP}/Bill`, t)).status, 200);

      sim.injectFault({ status: 500, body: { message: "boom", stackTrace: "at X" }, pathPrefix: `${EP}/Vendor` });
      assert.equal((await getB(sim, `${EP}/Bill`, t)).status, 200);
      const v = await getB(sim, `${EP}/Vendor`, t);
      assert.equal(v.status, 500);
      assert.deepEqual(await rj(v), { message: "boom", stackTrace: "at X" });
      assert.equal((await getB(sim, `${EP}/Vendor`, t)).status, 200);

      // a 401 fault even with a valid token (forces the client's re-auth path)
      sim.injectFault({ status: 401, pathPrefix: `${EP}/Bill` });
      const u = await getB(sim, `${EP}/Bill`, t);
      assert.equal(u.status, 401);
      assert.equal((await rj(u)).message, ACU_MSG_NOT_LOGGED_IN);
      assert.deepEqual(
        sim.requests.slice(-3).map((x) => x.status),
        [500, 200, 401],
      );
    });

    it("requestsPerMinute: the request over the licence limit gets 429 until the 60 s window slides", async () => {
      let clock = Date.parse("2025-06-02T08:00:00Z");
      const sim = await startSim({ now: () => clock, requestsPerMinute: 3 });
      const { access_token: t } = await bearer(sim);
      for (let i = 0; i < 3; i++) {
        assert.equal((await getB(sim, `${EP}/Bill`, t)).status, 200);
        clock += 1_000;
      }
      const over = await getB(sim, `${EP}/Bill`, t);
      assert.equal(over.status, 429);
      assert.equal(over.headers.get("retry-after"), null);
      assert.deepEqual(await rj(over), { message: ACU_MSG_RATE_LIMIT });

      // an injected fault takes precedence over the limit
      sim.injectFault({ status: 500 });
      assert.equal((await getB(sim, `${EP}/Bill`, t)).status, 500);

      clock += 57_001; // first request now older than 60 s
      assert.equal((await getB(sim, `${EP}/Bill`, t)).status, 200);
      assert.equal((await getB(sim, `${EP}/Bill`, t)).status, 429);
    });
  });

  describe("push notifications (Acumatica → receiver)", () => {
    interface Received {
      headers: http.IncomingHttpHeaders;
      raw: string;
    }
    async function receiver(statuses: number[]): Promise<{ url: string; got: Received[]; close: () => Promise<void> }> {
      const got: Received[] = [];
      const server = http.createServer((req, res) => {
        let raw = "";
        req.setEncoding("utf8");
        req.on("data", (c: string) => (raw += c));
        req.on("end", () => {
          got.push({ headers: req.headers, raw });
          res.statusCode = statuses.shift() ?? 200;
          res.end();
        });
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as AddressInfo).port;
      return {
        url: `http://127.0.0.1:${port}/mlc/acumatica/hook`,
        got,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      };
    }

    it("POSTs the documented body with the custom header and retries non-2xx answers", async () => {
      const sim = await startSim({}, false);
      const rx = await receiver([500, 503]);
      try {
        const inserted = [{ RefNbr: "000123", DocType: "INV", Status: "Open", VendorID: "V000042", Amount: 1250.0 }];
        const deleted = [{ RefNbr: "000123", DocType: "INV", Status: "Balanced", VendorID: "V000042", Amount: 1250.0 }];
        const statuses = await sim.pushNotification(
          { url: rx.url, headerName: "X-Notify-Secret", headerValue: "7c1de9f0" },
          { query: "AP-Bills-For-Notify", inserted, deleted, id: "2d8e5a9c-1f3b-4c6d-8e7f-0a1b2c3d4e5f" },
        );
        assert.deepEqual(statuses, [500, 503, 200]);
        assert.equal(rx.got.length, 3);
        for (const g of rx.got) {
          assert.equal(g.headers["x-notify-secret"], "7c1de9f0");
          assert.match(String(g.headers["content-type"]), /^application\/json/);
        }
        const body = JSON.parse(rx.got[0].raw);
        assert.deepEqual(Object.keys(body), ["Inserted", "Deleted", "Query", "CompanyId", "Id", "TimeStamp", "AdditionalInfo"]);
        assert.deepEqual(body.Inserted, inserted);
        assert.deepEqual(body.Deleted, deleted);
        assert.equal(body.Query, "AP-Bills-For-Notify");
        assert.equal(body.CompanyId, "AcmeProd");
        assert.equal(body.Id, "2d8e5a9c-1f3b-4c6d-8e7f-0a1b2c3d4e5f");
        assert.deepEqual(body.AdditionalInfo, {});
        // TimeStamp: an exact .NET-ticks integer (> 2^53, so compare the raw JSON text)
        const ts = /"TimeStamp":(\d+)/.exec(rx.got[0].raw)?.[1] ?? "";
        assert.match(ts, /^\d{18}$/);
        const ticksNow = (BigInt(Date.now()) + 62_135_596_800_000n) * 10_000n;
        assert.ok(ticksNow - BigInt(ts) >= 0n && ticksNow - BigInt(ts) < 600_000_000n); // within 60 s
        assert.ok(rx.got.every((g) => g.raw === rx.got[0].raw)); // retries resend the identical body
        assert.deepEqual(
          sim.pushDeliveries.map((d) => [d.attempt, d.status, d.id]),
          [
            [1, 500, body.Id],
            [2, 503, body.Id],
            [3, 200, body.Id],
          ],
        );
      } finally {
        await rx.close();
      }
    });

    it("gives up after 5 attempts; `times: 3` delivers the same Id three times; unreachable receivers record status 0", async () => {
      const sim = await startSim({}, false);
      const rx = await receiver([500, 500, 500, 500, 500, 500]);
      try {
        const failing = await sim.pushNotification({ url: rx.url }, { query: "Q1", inserted: [{ a: 1 }] });
        assert.deepEqual(failing, [500, 500, 500, 500, 500]);
        assert.equal(rx.got.length, 5);
        assert.deepEqual(
          sim.pushDeliveries.map((d) => d.attempt),
          [1, 2, 3, 4, 5],
        );
        assert.equal("x-notify-secret" in rx.got[0].headers, false);

        rx.got.length = 0;
        const dup = await sim.pushNotification({ url: rx.url, headerName: "X-Notify-Secret", headerValue: "s" }, { query: "Q2", inserted: [{ b: 2 }] }, { times: 3 });
        assert.deepEqual(dup, [500, 200, 200, 200]); // one 500 left in the queue: first delivery retried once
        assert.equal(rx.got.length, 4);
        const ids = rx.got.map((g) => JSON.parse(g.raw).Id as string);
        assert.match(ids[0], GUID);
        assert.deepEqual(ids, [ids[0], ids[0], ids[0], ids[0]]);
        const stamps = rx.got.map((g) => /"TimeStamp":(\d+)/.exec(g.raw)?.[1]);
        assert.deepEqual(stamps, [stamps[0], stamps[0], stamps[0], stamps[0]]);
        assert.deepEqual(
          sim.pushDeliveries.filter((d) => d.query === "Q2").map((d) => [d.delivery, d.attempt, d.status]),
          [
            [1, 1, 500],
            [1, 2, 200],
            [2, 1, 200],
            [3, 1, 200],
          ],
        );
      } finally {
        await rx.close();
      }
      // the receiver is closed now → connection refused → status 0, five attempts
      const dead = await sim.pushNotification({ url: rx.url }, { query: "Q3" });
      assert.deepEqual(dead, [0, 0, 0, 0, 0]);
    });
  });

  describe("data helpers", () => {
    it("upsert stamps id/rowNumber/LastModifiedDateTime; reset clears data, sessions and logs", async () => {
      let clock = Date.parse("2025-07-01T12:00:00.250Z");
      const sim = await startSim({ now: () => clock, utcOffsetMinutes: -300 }, false);
      const a = sim.upsert("Customer", { CustomerID: "C1", CustomerName: "One" });
      assert.match(a.id as string, GUID);
      assert.equal(a.rowNumber, 1);
      assert.equal(a.LastModifiedDateTime, "2025-07-01T07:00:00.250-05:00");
      const a2 = sim.upsert("Customer", { CustomerID: "c1", CustomerName: "One Ltd" }); // keys match case-insensitively
      assert.equal(a2.id, a.id);
      assert.equal(a2.LastModifiedDateTime, "2025-07-01T07:00:00.251-05:00"); // same clock ms → still strictly later
      clock += 1000;
      const b = sim.upsert("Customer", { CustomerID: "C2" });
      assert.equal(b.rowNumber, 2);
      assert.deepEqual(
        sim.all("Customer").map((c) => c.CustomerName ?? null),
        ["One Ltd", null],
      );
      assert.throws(() => sim.upsert("Customer", { CustomerName: "no key" }), /CustomerID/);
      assert.throws(() => sim.upsert("Widget", {}), /unknown entity/);
      assert.throws(() => sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "1", Amount: "12" }), /Amount must be System.Decimal/);

      const seeded = sim.seedDemoData();
      assert.deepEqual(
        [seeded.employees.length, seeded.vendors.length, seeded.bills.length, seeded.payments.length, seeded.customers.length],
        [3, 3, 4, 2, 1],
      );
      assert.deepEqual(
        seeded.bills.map((x) => x.Status),
        ["Pending Approval", "Open", "Open", "Balanced"],
      );
      assert.equal(seeded.payments[1].Description, "Card declined");
      await login(sim);
      assert.equal(sim.stats.activeSessions, 1);
      sim.reset();
      assert.deepEqual(sim.all("Bill"), []);
      assert.deepEqual(sim.stats, { logins: 0, logouts: 0, activeSessions: 0, tokensIssued: 0, refreshes: 0 });
      assert.equal(sim.requests.length, 0);
    });
  });
});
