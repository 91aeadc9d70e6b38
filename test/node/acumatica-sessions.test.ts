/**
 * The Acumatica node set in a real Node-RED runtime (node-red-node-test-helper via test/harness/red-testbed.ts)
 * against the Acumatica simulator, for issue 6: a refused sign-in shown on the nodes and not repeated per message, a
 * closed config node that never signs in again, the refresh token saved under the user directory, fetch filters with
 * quotes in templated values, and a poll whose rows change while it pages.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestFlowNode, TestNode } from "node-red-node-test-helper";
import { shown } from "../harness/catalog";
import { Testbed, settle, until, Msg } from "../harness/red-testbed";
import { AcumaticaClient } from "../../nodes/lib/acumatica/client";
import { TokenFile } from "../../nodes/lib/auth/token-file";
import { encodeParts } from "../../nodes/lib/ids";
import { AcumaticaSim } from "../sims/acumatica";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const acumaticaSet = require("../../nodes/acumatica") as (RED: unknown) => void;

const sim = new AcumaticaSim({ maxApiUsers: 3 });
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-node-sessions-"));
const CREDS = { clientId: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd", clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" };
const bed = new Testbed([acumaticaSet], { userDir, credentialSecret: "node-test-secret" }, { credentials: { cfg: CREDS } });

const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };
const cfgNode = (): TestFlowNode => ({ id: "cfg", type: "mlc-acumatica-config", instanceUrl: sim.url, tenant: "AcmeProd", endpointName: "Default", endpointVersion: "24.200.001", authMode: "oauth" });

function fetchFlow(props: Msg = {}): TestFlowNode[] {
  return [
    TAB,
    cfgNode(),
    { id: "f1", type: "mlc-acumatica-fetch", z: "t1", acumatica: "cfg", operation: "get", entity: "Vendor", entityType: "str", key: "payload", keyType: "msg", ...props, wires: [["out"]] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["f1"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

/** Status objects a node has set, oldest first, with the text the editor shows (catalog keys translated). */
function statuses(node: TestNode): { fill?: string; text?: string }[] {
  return node.status
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args[0] as { fill?: string; text?: string })
    .map((s) => (s.text === undefined ? s : { ...s, text: shown("acumatica", s.text) }));
}

const tokenPosts = (): number => sim.requests.filter((r) => r.path === "/identity/connect/token").length;

describe("acumatica sessions in Node-RED (issue 6)", function () {
  this.timeout(20000);
  bed.hooks({ sims: [sim], beforeEach: () => sim.seedDemoData() });
  after(() => fs.rmSync(userDir, { recursive: true, force: true }));

  it("wrong password, 5 messages → 1 sign-in; every message reaches Catch and the nodes show the pause", async () => {
    await bed.load(fetchFlow(), { cfg: { ...CREDS, password: "not-the-password" } });
    for (let i = 0; i < 5; i++) {
      bed.node("f1").receive({ payload: "V000042" });
      await until(() => bed.received.caught.length === i + 1, `error ${i + 1} at Catch`);
    }
    assert.equal(tokenPosts(), 1);
    assert.equal(sim.stats.logins, 0);
    const codes = bed.received.caught.map((m) => (m.errorDetails as { code: string }).code);
    assert.deepEqual(codes, ["auth_failed", "auth_failed", "auth_failed", "auth_failed", "auth_failed"]);
    assert.match(String((bed.received.caught[4].errorDetails as { message: string }).message), /not signing in again until/);
    assert.doesNotMatch(JSON.stringify(bed.received.caught), /not-the-password/);
    const shown = statuses(bed.node("f1")).map((s) => `${s.fill}:${s.text}`);
    assert.ok(shown.includes("red:sign-in paused"), `fetch status: ${shown.join(", ")}`);
    assert.ok(statuses(bed.node("cfg")).some((s) => s.text === "sign-in paused"));
  });

  it("a closed config node never signs in again; its clean close signs out and forgets the saved token", async () => {
    await bed.load(fetchFlow());
    bed.node("f1").receive({ payload: "V000042" });
    await until(() => bed.received.out.length === 1, "vendor read");
    const tokenFile = path.join(userDir, ".mlc-tokens", "acumatica-cfg.json");
    assert.ok(fs.existsSync(tokenFile), "refresh token saved under the user directory");
    assert.doesNotMatch(fs.readFileSync(tokenFile, "utf8"), /refresh|[0-9A-F]{64}/, "encrypted");
    const api = (bed.node("cfg") as unknown as { mlc: { client(): { list(e: string): Promise<unknown> } } }).mlc;
    await bed.unload();
    assert.deepEqual({ logins: sim.stats.logins, logouts: sim.stats.logouts, active: sim.stats.activeSessions }, { logins: 1, logouts: 1, active: 0 });
    assert.equal(fs.existsSync(tokenFile), false, "a confirmed sign-out forgets the token");
    // a late caller (a poll or message still in flight) must not build a new client and sign in
    assert.throws(() => api.client(), (e: unknown) => (e as { code?: string }).code === "client_closed");
    await settle(50);
    assert.equal(sim.stats.logins, 1);
  });

  it("fetch: a templated filter value with a quote is one literal (O'BRIEN found, an injection matches nothing)", async () => {
    sim.upsert("Vendor", { VendorID: "O'BRIEN", VendorName: "O'Brien Plumbing" });
    await bed.load(fetchFlow({ operation: "list", filter: "VendorID eq '{{payload.Vendor}}'", select: "VendorID,VendorName" }));
    bed.node("f1").receive({ payload: { Vendor: "O'BRIEN" } });
    bed.node("f1").receive({ payload: { Vendor: "X' or VendorID ne '" } });
    await until(() => bed.received.out.length + bed.received.caught.length >= 2, "two answers");
    assert.deepEqual(bed.received.caught, []);
    assert.deepEqual(
      bed.received.out.map((m) => (m.payload as { VendorID: string }[]).map((v) => v.VendorID)),
      [["O'BRIEN"], []],
    );
  });

  it("poll: a change committed behind the paging cursor is not overtaken by a later one (no row lost)", async () => {
    sim.reset();
    const t0 = Date.now();
    const iso = (ms: number): string => new Date(ms).toISOString();
    for (let i = 1; i <= 5; i++) sim.upsert("Bill", { Type: "Bill", ReferenceNbr: `00080${i}`, Vendor: "V000042", Amount: i, Status: "Open", LastModifiedDateTime: iso(t0 - 600_000 + i * 1000) });
    // While the first poll pages (page size 2), as in a poll lasting minutes: bill 000801 (already behind the
    // cursor) changes at t0+1 s, a new bill 000809 at t0+120 s.
    let fired = false;
    const zAt = t0 + 1000;
    sim.beforeList = (_e, skip) => {
      if (fired || skip === 0) return;
      fired = true;
      sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "000801", Amount: 99, LastModifiedDateTime: iso(zAt) });
      sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "000809", Vendor: "V000042", Amount: 9, Status: "Open", LastModifiedDateTime: iso(t0 + 120_000) });
    };
    try {
      await bed.load([
        TAB,
        cfgNode(),
        { id: "p1", type: "mlc-acumatica-trigger", z: "t1", acumatica: "cfg", mode: "poll", entity: "Bill", interval: 1, overlap: 60, startFrom: iso(t0 - 1_200_000), pageSize: 2, store: "", wires: [["events"]] },
        { id: "events", type: "helper", z: "t1" },
      ]);
      const seen = (): string[] => bed.received.events.map((m) => `${(m.erp as { id: string }).id}@${Date.parse((m.erp as { modifiedAt: string }).modifiedAt)}`);
      await until(() => seen().includes(`Bill/000801@${zAt}`), () => `the change of 000801 at t0+1 s; seen ${seen().join(", ")}`, 12000);
      assert.equal(new Set(seen()).size, seen().length, "nothing emitted twice");
      for (let i = 1; i <= 5; i++) assert.ok(seen().some((s) => s.startsWith(`Bill/00080${i}@`)), `000080${i} emitted`);
    } finally {
      sim.beforeList = undefined;
    }
  });

  // Last in this file: after a deploy that drops the config node the runtime keeps its credentials encrypted with
  // this file's credentialSecret, and later helper.load calls here would no longer see the plain test credentials.
  it("a config node deleted after a crash, before any use, signs out the grant its saved token holds", async () => {
    // what a crashed process left behind: a live grant and its saved (rotated) refresh token
    const tokens = new TokenFile({ dir: path.join(userDir, ".mlc-tokens"), name: "acumatica-cfg", secret: "node-test-secret", binding: encodeParts(["acumatica", sim.url, CREDS.clientId, CREDS.username]) });
    const crashed = new AcumaticaClient({ instanceUrl: sim.url, tenant: "AcmeProd", auth: { mode: "oauth", ...CREDS }, onTokens: ({ refreshToken }) => tokens.write(refreshToken) });
    await crashed.list("Vendor", { top: 1 });
    assert.equal(sim.stats.activeSessions, 1);
    await bed.load(fetchFlow());
    await bed.redeploy([TAB, { id: "out", type: "helper", z: "t1" }]); // the connection is deleted
    assert.deepEqual({ logins: sim.stats.logins, active: sim.stats.activeSessions }, { logins: 1, active: 0 });
    assert.equal(tokens.read(), undefined);
  });
});
