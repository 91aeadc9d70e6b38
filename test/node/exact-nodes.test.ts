/**
 * The Exact node set (config + fetch) in a real Node-RED runtime (node-red-node-test-helper via
 * test/harness/red-testbed.ts) against ExactSim: enrichment routes an invoice to the right contact and channel with
 * accounts cached (a burst for one customer costs two account/contact calls), no contact → `no-contact-found`, the
 * token chain saved encrypted under the user directory and continued after a redeploy without a token request,
 * the daily allowance in the status, a missing record reaching Catch, and `forget` dropping a cached account.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestFlowNode, TestNode } from "node-red-node-test-helper";
import { Testbed, until } from "../harness/red-testbed";
import { ExactSim } from "../sims/exact";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const exactSet = require("../../nodes/exact") as (RED: unknown) => void;

const sim = new ExactSim();
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-node-exact-"));
const bed = new Testbed([exactSet], { userDir, credentialSecret: "node-test-secret" });

const ACME = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const NOBODY = "1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAIN = "2a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };

function flow(): TestFlowNode[] {
  return [
    TAB,
    { id: "cfg", type: "mlc-exact-config", region: "nl", baseUrl: sim.url, division: String(sim.division), redirectUri: sim.redirectUri },
    { id: "fget", type: "mlc-exact-fetch", z: "t1", exact: "cfg", operation: "get", entity: "salesinvoice/SalesInvoices", record: "erp.id", recordType: "msg", select: "InvoiceID,InvoiceNumber,AmountDC,DueDate,InvoiceTo", property: "payload", wires: [["fenrich"]] },
    { id: "fenrich", type: "mlc-exact-fetch", z: "t1", exact: "cfg", operation: "enrich", wires: [["out"]] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["fget", "fenrich"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

function statuses(node: TestNode): string[] {
  return node.status
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => String((c.args[0] as { text?: string }).text));
}

describe("exact nodes in Node-RED (config + fetch)", function () {
  this.timeout(30000);
  let rt = "";
  before(() => sim.start());
  bed.hooks({});
  after(async () => {
    await sim.stop();
    fs.rmSync(userDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    sim.log.splice(0);
    sim.put("crm/Accounts", { ID: ACME, Code: "            000042", Name: "Acme BV", Email: "ap@acme.example", MainContact: MAIN });
    sim.put("crm/Contacts", { ID: MAIN, Account: ACME, FullName: "Anna de Vries", Mobile: "+31612345678", Email: "anna@acme.example" });
    sim.put("crm/Contacts", { ID: "3a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f", Account: ACME, FullName: "Bert Jansen", Email: "bert@acme.example" });
    sim.put("crm/Accounts", { ID: NOBODY, Code: "000043", Name: "Nobody BV" });
  });

  const creds = () => ({ cfg: { clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: rt } });
  const invoice = (i: number, account = ACME) => sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: 25000100 + i, AmountDC: 100 + i, InvoiceTo: account, DueDate: "/Date(1743465600000)/" }).InvoiceID as string;

  it("a refresh token Exact refuses: Catch gets reauthorize, the config node and its user show the catalog key re-authorise", async () => {
    rt = "Gcp7!not-a-grant-Exact-issued";
    await bed.load(flow(), creds());
    bed.node("fget").receive({ erp: { id: invoice(1) } });
    await until(() => bed.received.caught.length === 1, "the refusal at Catch");
    assert.equal(bed.received.caught[0].errorDetails?.code, "reauthorize");
    for (const id of ["cfg", "fget"]) assert.ok(statuses(bed.node(id)).includes("mlc-exact-config.status.reauthorize"), `${id}: ${statuses(bed.node(id)).join(", ")}`);
    assert.ok(!bed.emitted().includes(rt), "the refresh token in no message");
  });

  it("routes 20 invoices of one customer to the main contact by SMS with 2 account/contact calls in all", async () => {
    rt = sim.grant();
    await bed.load(flow(), creds());
    const ids = Array.from({ length: 20 }, (_, i) => invoice(i));
    for (const id of ids) bed.node("fget").receive({ erp: { id } });
    await until(() => bed.received.out.length === 20, "20 enriched");
    for (const m of bed.received.out) {
      assert.deepEqual(m.recipient, { channel: "sms", to: "+31612345678", name: "Anna de Vries", contactId: MAIN, accountId: ACME });
      assert.match(String((m.payload as { DueDate: string }).DueDate), /^2025-04-01T00:00:00.000Z$/);
    }
    const party = sim.apiCalls("crm/").length;
    const docs = sim.apiCalls("SalesInvoices").length;
    assert.equal(party, 2, "account and contacts read once");
    assert.equal(docs, 20);
    assert.ok((docs + party) / 20 <= 1.1, `calls per alert ${(docs + party) / 20}`);
    assert.ok(statuses(bed.node("fenrich")).some((s) => /enrich ✓ 20 · \d+\/day/.test(s)), statuses(bed.node("fenrich")).join(", "));
    assert.equal(bed.received.caught.length, 0);
  });

  it("no reachable contact: recipient null and skipReason no-contact-found; a missing invoice reaches Catch", async () => {
    rt = sim.grant();
    await bed.load(flow(), creds());
    bed.node("fget").receive({ erp: { id: invoice(1, NOBODY) } });
    await until(() => bed.received.out.length === 1, "enriched");
    assert.equal(bed.received.out[0].recipient, null);
    assert.equal(bed.received.out[0].skipReason, "no-contact-found");
    bed.node("fget").receive({ erp: { id: "00000000-0000-0000-0000-0000000000ff" } });
    await until(() => bed.received.caught.length === 1, "caught");
    assert.equal((bed.received.caught[0].errorDetails as { code: string }).code, "not_found");
  });

  it("forget (wired to an Accounts/Contacts trigger) drops the cached account: the next invoice is routed to the changed contact", async () => {
    rt = sim.grant();
    const nodes = [...flow(), { id: "fforget", type: "mlc-exact-fetch", z: "t1", exact: "cfg", operation: "forget", wires: [["forgot"]] }, { id: "forgot", type: "helper", z: "t1" }];
    await bed.load(nodes, creds());
    bed.node("fget").receive({ erp: { id: invoice(4) } });
    await until(() => bed.received.out.length === 1, "first enrich");
    sim.put("crm/Contacts", { ID: MAIN, Account: ACME, FullName: "Anna de Vries", Mobile: "+31655555555" });
    bed.node("fget").receive({ erp: { id: invoice(5) } });
    await until(() => bed.received.out.length === 2, "second enrich");
    assert.equal((bed.received.out[1].recipient as { to: string }).to, "+31612345678", "cached inside the 30-minute check");
    bed.node("fforget").receive({ erp: { entity: "Contacts", id: MAIN }, payload: { ID: MAIN, Account: ACME } });
    await until(() => bed.received.forgot.length === 1, "forgotten");
    assert.equal(bed.received.forgot[0].forgotten, ACME);
    bed.node("fget").receive({ erp: { id: invoice(6) } });
    await until(() => bed.received.out.length === 3, "third enrich");
    assert.equal((bed.received.out[2].recipient as { to: string }).to, "+31655555555");
    assert.equal(sim.apiCalls("crm/").length, 4, "loaded twice, nothing else");
  });

  it("saves the token chain encrypted and continues it after a redeploy without asking Exact for a token", async () => {
    rt = sim.grant();
    await bed.load(flow(), creds());
    bed.node("fget").receive({ erp: { id: invoice(2) } });
    await until(() => bed.received.out.length === 1, "first read");
    const file = path.join(userDir, ".mlc-tokens", "exact-cfg.json");
    assert.ok(fs.existsSync(file));
    const tokens = sim.log.filter((l) => l.kind === "token" && l.status === 200) as { accessToken: string; refreshToken: string }[];
    assert.equal(tokens.length, 1);
    const text = fs.readFileSync(file, "utf8");
    assert.ok(!text.includes(tokens[0].refreshToken) && !text.includes(tokens[0].accessToken), "encrypted");
    await bed.unload();
    await bed.load(flow(), creds());
    bed.node("fget").receive({ erp: { id: invoice(3) } });
    await until(() => bed.received.out.length === 1, "read after redeploy");
    assert.equal(sim.log.filter((l) => l.kind === "token").length, 1, "the saved access token was used; no token request inside 570 s");
  });
});
