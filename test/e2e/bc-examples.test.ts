/**
 * End to end, as a palette user gets it: the packed package installed into a fresh Node-RED, the Business Central
 * example deployed with the environment variables its comment names (BC_TENANT, BC_ENVIRONMENT, BC_COMPANY_ID,
 * BC_AUTHORITY_HOST, BC_API_HOST; credentials from BC_CLIENT_ID / BC_CLIENT_SECRET) against BcSim and the Twilio
 * simulator. The Entra simulator speaks TLS with a test certificate the Node-RED process trusts through
 * NODE_EXTRA_CA_CERTS (as a proxy's CA would be trusted); nothing else differs from a real tenant.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { FlowNode, Stack, startStack } from "../harness/stack";
import { tempDir, waitFor } from "../harness/nodered";
import { BcSim } from "../sims/bc";

const PACKAGE = "node-red-contrib-ml-connector";

describe("end to end: Business Central example in a real Node-RED (packed and installed)", function () {
  this.timeout(240000);
  const bc = new BcSim();
  let stack: Stack;
  let root: string;
  const day = (offset: number): string => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

  before(async function () {
    await bc.start();
    root = tempDir("mlc-e2e-bc-");
    stack = await startStack({
      userDir: path.join(root, "user"),
      install: "pack",
      families: ["bc"],
      extraEnv: bc.env(),
    });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await stack?.stop();
    await bc.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  it("loads the bc node set from the installed tarball with no load error", async function () {
    const sets = await stack.nodeRed.getJson<{ module: string; name: string; types: string[]; err?: string }[]>("/nodes");
    const set = sets.find((s) => s.module === PACKAGE && s.name === "bc");
    assert.ok(set, "bc node set listed");
    assert.equal(set.err ?? null, null);
    assert.deepEqual([...set.types].sort(), ["mlc-bc-config", "mlc-bc-fetch", "mlc-bc-trigger"]);
    const flows = await stack.nodeRed.getJson<FlowNode[]>("/flows");
    assert.deepEqual(flows.filter((n) => n.type === "tab").map((n) => n.label), ["BC overdue invoice SMS", "BC purchase invoice approval SMS"]);
  });

  it("texts each customer with an open invoice past due once a day; the filter uses BC's unquoted date literal", async function () {
    bc.upsert("salesInvoices", { number: "PS-INV1001", status: "Open", dueDate: day(-10), remainingAmount: 1250, currencyCode: "USD", customerName: "Lakeside Bikes Ltd.", phoneNumber: "+14155550101" });
    bc.upsert("salesInvoices", { number: "PS-INV1002", status: "Open", dueDate: day(-1), remainingAmount: 80.5, currencyCode: "USD", customerName: "Fabrikam Inc.", phoneNumber: "+14155550102" });
    bc.upsert("salesInvoices", { number: "PS-INV1003", status: "Open", dueDate: day(5), remainingAmount: 300, currencyCode: "USD", customerName: "Not yet due", phoneNumber: "+14155550103" });
    bc.upsert("salesInvoices", { number: "PS-INV1004", status: "Paid", dueDate: day(-20), remainingAmount: 0, currencyCode: "USD", customerName: "Paid", phoneNumber: "+14155550104" });
    bc.upsert("salesInvoices", { number: "PS-INV1005", status: "In_x0020_Review", dueDate: day(-3), remainingAmount: 40, currencyCode: "USD", customerName: "Draft", phoneNumber: "+14155550105" });
    await stack.nodeRed.inject("bc11000000000001");
    const sent = await waitFor(() => (stack.twilio.messages.length >= 2 ? stack.twilio.messages : undefined), 30000, "two reminders");
    assert.deepEqual(sent.map((m) => m.to).sort(), ["+14155550101", "+14155550102"]);
    assert.match(sent.find((m) => m.to === "+14155550101")?.body ?? "", /PS-INV1001 \(1250 USD\) was due on/);
    const list = bc.apiCalls((c) => c.path.endsWith("/salesInvoices"));
    assert.equal(list.length, 1);
    assert.match(list[0].query, new RegExp(`dueDate lt ${new Date().toISOString().slice(0, 10)}(&|$)`));
    await stack.nodeRed.inject("bc11000000000001");
    await waitFor(() => (bc.apiCalls((c) => c.path.endsWith("/salesInvoices")).length >= 2 ? true : undefined), 15000, "second listing");
    await new Promise((r) => setTimeout(r, 1500)); // let a duplicate show up if there were one
    assert.equal(stack.twilio.messages.length, 2, "the second run the same day sends nothing");
    assert.equal(bc.tokensIssued, 1, "one Entra token for both runs");
    assert.ok(!stack.nodeRed.log.join("\n").includes(bc.clientSecret), "no secret in the log");
  });

  it("a posted purchase invoice above the threshold texts the approver once, through the webhook the trigger subscribed", async function () {
    await waitFor(() => (bc.subs.size === 1 ? true : undefined), 30000, "the trigger's subscription (handshake passed)");
    const before = stack.twilio.messages.length;
    bc.upsert("purchaseInvoices", { number: "PI-2001", status: "Open", vendorName: "Contoso Freight", totalAmountIncludingTax: 5400, currencyCode: "USD", dueDate: day(30) });
    bc.upsert("purchaseInvoices", { number: "PI-2002", status: "Open", vendorName: "Small Supplies", totalAmountIncludingTax: 120, currencyCode: "USD", dueDate: day(30) });
    bc.upsert("purchaseInvoices", { number: "PI-2003", status: "Draft", vendorName: "Draft Vendor", totalAmountIncludingTax: 9000, currencyCode: "USD", dueDate: day(30) });
    const delivered = await bc.flush();
    assert.deepEqual(delivered.map((d) => d.status), [200]);
    const sent = await waitFor(() => (stack.twilio.messages.length > before ? stack.twilio.messages.slice(before) : undefined), 30000, "approval SMS");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(stack.twilio.messages.length - before, 1);
    assert.match(sent[0].body, /PI-2001 from Contoso Freight posted: 5400 USD/);
    assert.equal(bc.log.filter((l) => l.kind === "sub-deleted").length, 0);
  });
});
