/**
 * End to end for the exact node set, as a palette user gets it (`npm pack` → install into a fresh user dir → Node-RED
 * as its own process) against ExactSim with its default (strict) settings: the set loads; an invoice GUID posted to a
 * flow (http in → exact fetch get → exact fetch enrich → http response) comes back with the recipient chosen by
 * contact preference; Test connection uses the deployed connection; after `kill -9` the saved tokens are used (no
 * token request inside Exact's 570 s); the editor's Authorise flow (admin endpoint → Exact's authorize page →
 * redirect to the admin server's callback) exchanges the code once; ten requests racing for the first token cost one token
 * request (the rotating grant is never presented twice); the enrich node's status shows the calls left today; down for
 * 11 minutes and restarted, the connection refreshes with the rotated refresh token it saved, never the pasted one.
 */
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { FlowNode, Stack, startStack } from "../harness/stack";
import { tempDir } from "../harness/nodered";
import { ExactSim } from "../sims/exact";

const ACME = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAIN = "2a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";

function flows(refreshToken: string): FlowNode[] {
  const z = "e2exTab";
  return [
    { id: z, type: "tab", label: "exact e2e" },
    {
      id: "e2exCfg",
      type: "mlc-exact-config",
      name: "Exact (env)",
      region: "nl",
      baseUrl: "${EXACT_BASE_URL}",
      division: "${EXACT_DIVISION}",
      redirectUri: "https://nodered.example.com/mlc/mlc-exact-config/oauth",
      credentials: { clientId: "${EXACT_CLIENT_ID}", clientSecret: "${EXACT_CLIENT_SECRET}", refreshToken },
    },
    { id: "e2exIn", type: "http in", z, url: "/e2e-exact", method: "post", wires: [["e2exGet"]] },
    { id: "e2exGet", type: "mlc-exact-fetch", z, exact: "e2exCfg", operation: "get", entity: "salesinvoice/SalesInvoices", record: "payload.id", recordType: "msg", select: "InvoiceID,InvoiceNumber,AmountDC,DueDate,InvoiceTo", property: "payload", wires: [["e2exEnrich"]] },
    { id: "e2exEnrich", type: "mlc-exact-fetch", z, exact: "e2exCfg", operation: "enrich", wires: [["e2exShape"]] },
    { id: "e2exShape", type: "function", z, func: "msg.payload = { number: msg.payload.InvoiceNumber, due: msg.payload.DueDate, recipient: msg.recipient, skipReason: msg.skipReason || null };\nreturn msg;", outputs: 1, wires: [["e2exOut"]] },
    { id: "e2exOut", type: "http response", z, statusCode: "", headers: {}, wires: [] },
    { id: "e2exCatch", type: "catch", z, scope: ["e2exGet", "e2exEnrich"], uncaught: false, wires: [["e2exErr"]] },
    { id: "e2exErr", type: "change", z, rules: [{ t: "set", p: "statusCode", pt: "msg", to: "502", tot: "num" }, { t: "set", p: "payload", pt: "msg", to: "errorDetails.code", tot: "msg" }], wires: [["e2exOut"]] },
    // the enrich node's status as the editor shows it, readable over HTTP
    { id: "e2exStatus", type: "status", z, scope: ["e2exEnrich"], wires: [["e2exKeep"]] },
    { id: "e2exKeep", type: "change", z, rules: [{ t: "set", p: "exactStatus", pt: "global", to: "status", tot: "msg" }], wires: [[]] },
    { id: "e2exStIn", type: "http in", z, url: "/e2e-exact-status", method: "get", wires: [["e2exStRead"]] },
    { id: "e2exStRead", type: "change", z, rules: [{ t: "set", p: "payload", pt: "msg", to: "exactStatus", tot: "global" }], wires: [["e2exOut"]] },
  ];
}

/**
 * Age the token state a stopped Node-RED saved (aes-256-ctr, key SHA-256 of the credential secret, as
 * nodes/lib/auth/token-file.ts writes it): issue and expiry times move by `deltaMs`, nothing else changes.
 */
function shiftSavedTokens(file: string, deltaMs: number): void {
  const key = createHash("sha256").update(process.env.MLC_CREDENTIAL_SECRET || "ml-connector-local-secret").digest();
  const sealed = (JSON.parse(fs.readFileSync(file, "utf8")) as { $: string }).$;
  const decipher = createDecipheriv("aes-256-ctr", key, Buffer.from(sealed.slice(0, 32), "hex"));
  const stored = JSON.parse(decipher.update(sealed.slice(32), "base64", "utf8") + decipher.final("utf8")) as { refreshToken: string };
  const tokens = JSON.parse(stored.refreshToken) as { issuedAt?: number; expiresAt?: number };
  assert.ok(tokens.issuedAt && tokens.expiresAt, "the saved state has the access token's issue and expiry times");
  stored.refreshToken = JSON.stringify({ ...tokens, issuedAt: tokens.issuedAt + deltaMs, expiresAt: tokens.expiresAt + deltaMs });
  const iv = randomBytes(16);
  const cipher = createCipheriv("aes-256-ctr", key, iv);
  fs.writeFileSync(file, JSON.stringify({ $: iv.toString("hex") + cipher.update(JSON.stringify(stored), "utf8", "base64") + cipher.final("base64") }));
}

describe("end to end: Exact Online connection and fetch in a real Node-RED (packed and installed)", function () {
  this.timeout(240000);
  const sim = new ExactSim();
  let stack: Stack;
  let root: string;

  before(async function () {
    await sim.start();
    sim.put("crm/Accounts", { ID: ACME, Code: "            000042", Name: "Acme BV", Email: "ap@acme.example", MainContact: MAIN });
    sim.put("crm/Contacts", { ID: MAIN, Account: ACME, FullName: "Anna de Vries", Mobile: "+31612345678", Email: "anna@acme.example" });
    root = tempDir("mlc-e2e-exact-");
    stack = await startStack({
      userDir: path.join(root, "user"),
      install: "pack",
      families: [],
      extraEnv: { EXACT_BASE_URL: sim.url, EXACT_DIVISION: String(sim.division), EXACT_CLIENT_ID: sim.clientId, EXACT_CLIENT_SECRET: sim.clientSecret },
      extraFlows: flows(sim.grant()),
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await stack?.stop();
    await sim.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const remind = async (id: string): Promise<{ status: number; body: Record<string, unknown> }> => {
    const r = await fetch(`${stack.nodeRed.url}/e2e-exact`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id }) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  const invoice = (n: number): string => String(sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: n, AmountDC: 1512.5, InvoiceTo: ACME, DueDate: "/Date(1743465600000)/" }).InvoiceID);
  const tokenRequests = () => sim.log.filter((l) => l.kind === "token");

  it("ten requests racing for the first token through two fetch nodes: one token request, every answer 200, the grant kept", async function () {
    const ids = Array.from({ length: 10 }, (_, i) => invoice(25000100 + i));
    const answers = await Promise.all(ids.map((id) => remind(id)));
    assert.deepEqual(answers.map((a) => a.status), ids.map(() => 200), JSON.stringify(answers.find((a) => a.status !== 200)?.body));
    assert.ok(answers.every((a) => (a.body.recipient as { to?: string } | null)?.to === "+31612345678"));
    const tokens = tokenRequests();
    assert.equal(tokens.length, 1, "one refresh for all of them: a second one would present a used refresh token");
    assert.deepEqual(tokens.map((l) => l.kind === "token" && [l.grant, l.status]), [["refresh_token", 200]]);
    assert.ok(sim.apiCalls().every((c) => c.kind === "api" && c.status === 200), "no 401 or refused call");
  });

  it("the calls left today are in the enrich node's status, as Exact's X-RateLimit-Remaining says", async function () {
    const r = await remind(invoice(25000120));
    assert.equal(r.status, 200);
    const status = (await (await fetch(`${stack.nodeRed.url}/e2e-exact-status`)).json()) as { text?: string; fill?: string };
    const left = sim.dayLimit - sim.apiCalls().filter((c) => c.kind === "api" && c.status !== 429).length;
    assert.equal(status.fill, "green");
    assert.match(String(status.text), new RegExp(`^enrich ✓ \\d+ · ${left}/day$`), `status ${JSON.stringify(status)}, ${left} calls left`);
  });

  it("loads the exact set from the tarball and routes a new invoice to the main contact by SMS", async function () {
    const sets = await stack.nodeRed.getJson<{ module: string; name: string; types: string[]; err?: string }[]>("/nodes");
    const exact = sets.find((s) => s.name === "exact");
    assert.deepEqual(exact?.types.sort(), ["mlc-exact-config", "mlc-exact-fetch", "mlc-exact-trigger"]);
    assert.equal(exact?.err ?? null, null);
    const r = await remind(invoice(25000142));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { number: 25000142, due: "2025-04-01T00:00:00.000Z", recipient: { channel: "sms", to: "+31612345678", name: "Anna de Vries", contactId: MAIN, accountId: ACME }, skipReason: null });
    assert.ok(sim.apiCalls().every((c) => c.kind === "api" && c.status === 200), "no error answer from Exact");
  });

  it("Test connection reads /current/Me through the deployed connection and shows the calls left today", async function () {
    const r = await fetch(`${stack.nodeRed.url}/mlc/mlc-exact-config/test`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "e2exCfg", config: {}, credentials: {} }) });
    const body = (await r.json()) as { ok: boolean; message: string };
    assert.equal(body.ok, true, body.message);
    assert.match(body.message, /Signed in as sim\.user; division 123456; \d+ calls left today/);
    assert.doesNotMatch(body.message, new RegExp(sim.clientSecret));
  });

  it("after kill -9 the saved tokens are used: no token request inside Exact's 570 s", async function () {
    assert.equal(tokenRequests().length, 1);
    const file = path.join(root, "user", ".mlc-tokens", "exact-e2exCfg.json");
    assert.ok(fs.existsSync(file), "token chain saved under the user directory");
    await stack.nodeRed.kill();
    await stack.nodeRed.start();
    const r = await remind(invoice(25000143));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(tokenRequests().length, 1, "the saved access token was used");
  });

  it("down for 11 minutes (kill -9), then restarted: the persisted, rotated refresh token continues the chain; the pasted one is never presented again", async function () {
    const grants = () => tokenRequests().filter((l) => l.kind === "token" && l.status === 200) as { refreshToken: string; usedRefreshToken?: string }[];
    const pasted = grants()[0].usedRefreshToken;
    const rotated = grants()[grants().length - 1].refreshToken;
    assert.ok(pasted && rotated && pasted !== rotated);
    await stack.nodeRed.kill();
    // 11 minutes pass for both sides: Exact's clock moves on, and the saved token state ages by as much (the client
    // judges the access token by the issue time it saved); the file stays encrypted with Node-RED's credential secret.
    const offset = 11 * 60_000;
    sim.now = () => Date.now() + offset;
    shiftSavedTokens(path.join(root, "user", ".mlc-tokens", "exact-e2exCfg.json"), -offset);
    await stack.nodeRed.start();
    const before = tokenRequests().length;
    const r = await remind(invoice(25000145));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const fresh = tokenRequests().slice(before);
    assert.deepEqual(fresh.map((l) => l.kind === "token" && [l.grant, l.status, l.usedRefreshToken]), [["refresh_token", 200, rotated]], "one refresh, with the rotated token from the file");
    assert.ok(!tokenRequests().slice(1).some((l) => l.kind === "token" && l.usedRefreshToken === pasted), "the pasted (used) refresh token is never presented again");
  });

  it("Authorise from the editor: admin endpoint → Exact's authorize page → the admin callback exchanges the code once", async function () {
    const start = await fetch(`${stack.nodeRed.url}/mlc/mlc-exact-config/authorize`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "e2exCfg" }) });
    const { ok, url } = (await start.json()) as { ok: boolean; url: string };
    assert.equal(ok, true);
    assert.ok(url.startsWith(`${sim.url}/api/oauth2/auth?`));
    const page = await fetch(url, { redirect: "manual" });
    assert.equal(page.status, 302);
    const back = new URL(String(page.headers.get("location")));
    assert.equal(`${back.origin}${back.pathname}`, "https://nodered.example.com/mlc/mlc-exact-config/oauth");
    const callback = `${stack.nodeRed.url}/mlc/mlc-exact-config/oauth${back.search}`;
    const done = await fetch(callback);
    assert.equal(done.status, 200, await done.text());
    assert.equal((await fetch(callback)).status, 400, "the state is single use");
    assert.deepEqual(tokenRequests().map((l) => l.kind === "token" && [l.grant, l.status]).slice(-1), [["authorization_code", 200]]);
    const r = await remind(invoice(25000144));
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
});
