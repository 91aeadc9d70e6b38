/**
 * mlc-exact-trigger in a real Node-RED runtime (node-red-node-test-helper via test/harness/red-testbed.ts) against
 * ExactSim, which creates subscriptions the way Exact does (probing the callback while the POST runs, then an empty
 * validation POST) and signs its notifications with HashCode.
 *
 * First the shared family trigger suite (trigger-suite.ts), the Exact way: a notification names one record (key only,
 * the trigger fetches it: `onePerPush`, `pushFetchesRecord`) and carries its signature inside the body (`signedBody`:
 * HMAC-SHA256 of the raw Content, upper-case hex). Then Exact's own cases: emitted once per change across
 * redeliveries, webhook + poll, restarts; forgeries refused; subscriptions made on deploy and removed when the node is
 * deleted.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import helper, { TestFlowNode } from "node-red-node-test-helper";
import { jobSettled } from "../../nodes/lib/journal";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";
import { EXACT_ENTITIES, ExactSim, exactDate } from "../sims/exact";
import { SUITE_SETTINGS, triggerSuite } from "./trigger-suite";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const exactSet = require("../../nodes/exact") as (RED: unknown) => void;

const sim = new ExactSim();
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-node-exact-trigger-"));
const bed = new Testbed([exactSet], { ...SUITE_SETTINGS, userDir, credentialSecret: "node-test-secret" });
const PUBLIC = "https://nodered.example.com";
const CALLBACK = `${PUBLIC}/mlc/exact/invoices`;

/** Tab, Exact connection "cfg" and the trigger "trg" with `props` (what the suite adds its helper and Catch nodes to). */
function nodes(props: Msg): TestFlowNode[] {
  return [
    { id: "t1", type: "tab", label: "main" },
    { id: "cfg", type: "mlc-exact-config", region: "nl", baseUrl: sim.url, division: String(sim.division), redirectUri: sim.redirectUri },
    { id: "trg", type: "mlc-exact-trigger", z: "t1", exact: "cfg", store: "", ...props, wires: [["events"]] },
  ];
}

function flow(props: Msg): TestFlowNode[] {
  return [
    ...nodes(props),
    { id: "events", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["trg"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

const HOOK = { mode: "webhook", entity: "SalesInvoices", endpoint: "invoices", publicUrl: PUBLIC };
let rt = "";
const creds = (secret = sim.webhookSecret) => ({ cfg: { clientId: sim.clientId, clientSecret: sim.clientSecret, refreshToken: rt }, trg: secret ? { webhookSecret: secret } : ({} as Record<string, string>) });
const invoice = (n: number, modifiedMs = Date.now() - 60_000) => sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: n, AmountDC: 100, InvoiceTo: "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f", Modified: exactDate(modifiedMs) }).InvoiceID as string;
const numbers = (): string[] => bed.received.events.map((m) => String(m.erp.number));
/** GETs of one record (the webhook's fetch). */
const fetches = (id: string): number => sim.apiCalls().filter((e) => e.kind === "api" && e.method === "GET" && decodeURIComponent(e.path).includes(id)).length;
/** Listings of `entityPath` (polls). */
const lists = (entityPath: string): number => sim.apiCalls(entityPath).filter((e) => e.kind === "api" && !decodeURIComponent(e.path).includes("guid")).length;
const ours = () => [...sim.subscriptions.values()].filter((s) => s.CallbackURL === CALLBACK);

/** The suite's record references ("A1") and the invoices standing for them. */
const ids = new Map<string, string>();
/** EventCreatedOn of each suite delivery, so a redelivery is the same notification. */
const created = new Map<string, string>();
const SALES_INVOICES = Object.keys(EXACT_ENTITIES).find((k) => EXACT_ENTITIES[k].topic === "SalesInvoices") as string;

/** A notification of `ref` as Exact sends it: compact Content, `HashCode` over its raw text with `secret` ("" = none). */
function notification(deliveryId: string, ref: string, secret: string): Buffer {
  const key = ids.get(ref) as string;
  if (!created.has(deliveryId)) created.set(deliveryId, new Date(Date.now() + created.size).toISOString().slice(0, 23));
  const content = JSON.stringify({ Topic: "SalesInvoices", ClientId: sim.clientId, Division: sim.division, Action: "Update", Key: key, ExactOnlineEndpoint: `${sim.url}/api/v1/${sim.division}/${SALES_INVOICES}(guid'${key}')`, EventCreatedOn: created.get(deliveryId) });
  const hash = secret ? createHmac("sha256", secret).update(content, "utf8").digest("hex").toUpperCase() : "";
  return Buffer.from(secret ? `{"Content":${content},"HashCode":"${hash}"}` : `{"Content":${content}}`);
}

triggerSuite({
  title: "mlc-exact-trigger",
  bed,
  sims: [{ start: () => sim.start(), stop: () => sim.stop(), reset: () => undefined }],
  beforeEach: () => {
    sim.log.splice(0);
    sim.data.clear();
    sim.subscriptions.clear();
    sim.callbackTarget = bed.url;
    sim.validationDelayMs = 50;
    sim.minuteLimit = 600; // polls every second for a whole file; the 60/min budget is covered by exact-connection.test.ts
    rt = sim.grant();
    ids.clear();
  },
  flow: nodes,
  credentials: (secret) => creds(secret),
  pushProps: { mode: "webhook", entity: "SalesInvoices", endpoint: "suite" }, // no Public URL: served, nothing subscribed
  pushPath: "/mlc/exact/suite",
  pollProps: (startFrom) => ({ mode: "poll", entity: "SalesInvoices", interval: 1, startFrom }),
  onePerPush: true,
  pushFetchesRecord: true,
  signedBody: true,
  pushBody: (deliveryId, rows, secret) => notification(deliveryId, rows[0].ref, secret),
  addRecord: (ref, atMs) => {
    const id = ids.get(ref);
    const n = id ? [...ids.keys()].indexOf(ref) : ids.size;
    const row = sim.put(SALES_INVOICES, { ...(id ? { InvoiceID: id } : {}), InvoiceNumber: 26000000 + n, AmountDC: 100, InvoiceTo: "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f", Modified: exactDate(atMs) });
    ids.set(ref, row.InvoiceID as string);
  },
  ref: (msg) => [...ids].find(([, id]) => id === msg.erp.id)?.[0] ?? `?${String(msg.erp.id)}`,
  extraCases: () => exactCases(),
});

/** Exact's own cases, in the suite's runtime (the suite's hooks start and reset the simulator). */
function exactCases(): void {
  after(() => fs.rmSync(userDir, { recursive: true, force: true }));

  it("subscribes on deploy (validation answered), emits a new invoice once with the fetched record, and a redelivery emits nothing", async () => {
    await bed.load(flow(HOOK), creds());
    await until(() => ours().length === 1 && sim.log.filter((l) => l.kind === "probe").length >= 2, "subscribed and probed twice");
    assert.ok(sim.log.filter((l) => l.kind === "probe").every((l) => (l as { status: number }).status === 200), "validation calls answered 200");
    const id = invoice(25000101);
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", id), [200]);
    await until(() => bed.received.events.length === 1, "one event");
    const ev = bed.received.events[0];
    assert.equal(ev.topic, "exact/SalesInvoices/created");
    assert.equal(ev.erp.id, id);
    assert.equal(ev.erp.number, "25000101");
    assert.equal((ev.payload as { AmountDC: number }).AmountDC, 100, "the record was fetched");
    assert.equal((ev.payload as Record<string, unknown>).exactNotice, undefined);
    // Exact redelivers (or sends an Update for an unchanged record): same change, same jobId, nothing emitted
    assert.deepEqual(await sim.notify("SalesInvoices", "Update", id), [200]);
    await until(() => fetches(id) === 2, "second fetch");
    await settle();
    assert.equal(bed.received.events.length, 1);
    assert.equal(bed.received.caught.length, 0);
  });

  it("a later change of the same invoice is a new event", async () => {
    await bed.load(flow(HOOK), creds());
    await until(() => ours().length === 1, "subscribed");
    const id = invoice(25000102, Date.now() - 120_000);
    await sim.notify("SalesInvoices", "Create", id);
    await until(() => bed.received.events.length === 1, "first");
    sim.put("salesinvoice/SalesInvoices", { ...sim.data.get("salesinvoice/SalesInvoices")?.get(id), AmountDC: 150, Modified: exactDate(Date.now() - 1000) });
    await sim.notify("SalesInvoices", "Update", id);
    await until(() => bed.received.events.length === 2, "second");
    assert.notEqual(bed.received.events[0].erp.jobId, bed.received.events[1].erp.jobId);
  });

  it("a delete is emitted without a fetch; a record gone before its fetch emits nothing and is not replayed", async () => {
    await bed.load(flow(HOOK), creds());
    await until(() => ours().length === 1, "subscribed");
    const id = invoice(25000107);
    await sim.notify("SalesInvoices", "Delete", id);
    await until(() => bed.received.events.length === 1, "the delete");
    assert.equal(bed.received.events[0].topic, "exact/SalesInvoices/deleted");
    assert.deepEqual(bed.received.events[0].payload, { InvoiceID: id });
    assert.equal(fetches(id), 0);
    const gone = "7b1c9f2e-3d4a-4e5b-8c6d-9e0f1a2b3c4d";
    await sim.notify("SalesInvoices", "Create", gone);
    await until(() => fetches(gone) === 1, "the fetch of the vanished record");
    await settle();
    jobSettled(bed.received.events[0].erp.jobId as string);
    await settle();
    await bed.redeploy(flow(HOOK), creds());
    await settle(500);
    assert.equal(bed.received.events.length, 1, "nothing for the vanished record, before or after a restart");
    assert.equal(fetches(gone), 1, "its notice was settled, not replayed");
    assert.equal(bed.received.caught.length, 0);
  });

  it("refuses forged notifications (lower-case hash, wrong secret, hash over re-encoded JSON) with 401 and emits nothing", async () => {
    await bed.load(flow(HOOK), creds());
    await until(() => ours().length === 1, "subscribed");
    const id = invoice(25000103);
    for (const forge of ["lowercase", "secret", "reencoded"] as const) assert.deepEqual(await sim.notify("SalesInvoices", "Create", id, forge), [401]);
    const unsigned = await fetch(`${bed.url}/mlc/exact/invoices`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"Content":{"Topic":"SalesInvoices"}}' });
    assert.deepEqual({ status: unsigned.status, text: await unsigned.text() }, { status: 401, text: "Unauthorized" });
    await settle();
    assert.equal(bed.received.events.length, 0);
    assert.equal(fetches(id), 0, "no fetch for a forgery");
  });

  it("with no webhook secret the endpoint answers 404 to signed bodies (the validation call still gets 200)", async () => {
    await bed.load(flow(HOOK), creds(""));
    const empty = await fetch(`${bed.url}/mlc/exact/invoices`, { method: "POST" }); // Content-Length: 0, no media type
    assert.equal(empty.status, 200);
    // an empty body says nothing by its media type (a .NET sender labels empty content text/plain): still 2xx (§8.2)
    for (const type of ["text/plain; charset=utf-8", "application/x-www-form-urlencoded"]) {
      const labelled = await fetch(`${bed.url}/mlc/exact/invoices`, { method: "POST", headers: { "Content-Type": type }, body: "" });
      assert.equal(labelled.status, 200, type);
    }
    const body = '{"Content":{"Topic":"SalesInvoices"},"HashCode":"00"}';
    const r = await fetch(`${bed.url}/mlc/exact/invoices`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    assert.equal(r.status, 404);
    await until(() => bed.received.caught.some((m) => (m.errorDetails as { code: string }).code === "no_secret"), "no_secret reported");
  });

  it("webhook + catch-up poll: the change read by both is emitted once (one jobId)", async () => {
    const id = invoice(25000104, Date.now() - 30_000);
    await bed.load(flow({ ...HOOK, catchUp: true, interval: 1, startFrom: new Date(Date.now() - 600_000).toISOString() }), creds());
    await until(() => bed.received.events.length === 1, "polled");
    const polls = () => lists("salesinvoice/SalesInvoices");
    const before = polls();
    await until(() => ours().length === 1, "subscribed");
    await sim.notify("SalesInvoices", "Create", id);
    await until(() => fetches(id) === 1, "the webhook's fetch");
    await until(() => polls() >= before + 2, "two more polls");
    assert.deepEqual(numbers(), ["25000104"]);
    assert.equal(bed.received.caught.length, 0);
  });

  it("after a restart what was emitted but not settled is replayed once; the settled one is not", async () => {
    await bed.load(flow(HOOK), creds());
    await until(() => ours().length === 1, "subscribed");
    const a = invoice(25000105);
    const b = invoice(25000106);
    await sim.notify("SalesInvoices", "Create", a);
    await sim.notify("SalesInvoices", "Create", b);
    await until(() => bed.received.events.length === 2, "two events");
    jobSettled(bed.received.events[0].erp.jobId as string);
    await settle();
    await bed.redeploy(flow(HOOK), creds());
    await until(() => bed.received.events.length === 3, "the replay");
    assert.equal(bed.received.events[2].erp.number, "25000106");
    assert.equal(bed.received.events[2].erp.replay, true);
    await settle();
    assert.equal(bed.received.events.length, 3);
    assert.equal(ours().length, 1, "a redeploy keeps the subscription (listed first, never posted twice)");
  });

  it("without a Public URL (an unset variable) the endpoint is served but nothing is subscribed, and the status says so (not an error)", async () => {
    await bed.load(flow({ ...HOOK, publicUrl: "${EXACT_PUBLIC_URL_UNSET}" }), creds()); // an unset variable, as Node-RED leaves it
    const status = () => bed.node("trg").status.getCalls().map((c) => (c.args[0] as { text?: string }).text);
    await until(() => status().includes("mlc-exact-trigger.status.unsubscribed"), "the status");
    assert.equal(sim.subscriptions.size, 0);
    const empty = await fetch(`${bed.url}/mlc/exact/invoices`, { method: "POST" });
    assert.equal(empty.status, 200, "served");
    assert.equal(bed.received.caught.length, 0);
  });

  it("deleting the node removes its subscription", async () => {
    await bed.load(flow(HOOK), creds());
    await until(() => ours().length === 1, "subscribed");
    // a "modified nodes" deploy, as the editor does when a node is deleted (a full deploy stops it with removed = false)
    await helper.setFlows(flow(HOOK).filter((n) => n.id !== "trg"), "nodes", creds());
    await until(() => ours().length === 0, "unsubscribed");
  });

  it("poll mode (Receivables, no webhook): each change once across polls and a restart", async () => {
    const put = (n: number, ms: number) => sim.put("cashflow/Receivables", { Account: "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f", AmountDC: 80, InvoiceNumber: n, Status: 20, Modified: exactDate(ms) });
    put(1, Date.now() - 300_000);
    const props = { mode: "poll", entity: "Receivables", interval: 1, startFrom: new Date(Date.now() - 600_000).toISOString() };
    await bed.load(flow(props), creds());
    await until(() => bed.received.events.length === 1, "first");
    jobSettled(bed.received.events[0].erp.jobId as string);
    put(2, Date.now() - 1000);
    await until(() => bed.received.events.length === 2, "second");
    jobSettled(bed.received.events[1].erp.jobId as string);
    await settle();
    await bed.redeploy(flow(props), creds());
    put(3, Date.now() - 500);
    await until(() => bed.received.events.length === 3, () => `third, got ${numbers().join(",")}`);
    const reads = () => lists("cashflow/Receivables");
    const before = reads();
    await until(() => reads() >= before + 2, "two more polls");
    assert.deepEqual(numbers(), ["1", "2", "3"]);
    assert.equal(bed.received.caught.length, 0);
  });
}
