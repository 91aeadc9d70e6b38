/**
 * mlc-sapb1-trigger in a real Node-RED runtime (node-red-node-test-helper, with a configured memory context store
 * loaded as Node-RED loads it) against the HTTPS Service Layer simulator, polling every second: each alert (purchase
 * invoice created, invoice overdue by N days, stock below minimum, new payment) is emitted once across repeated polls
 * and a redeploy; an expired session is renewed with one Login and the poll completes.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { jobSettled } from "../../nodes/lib/journal";
import { Testbed, settle, until } from "../harness/red-testbed";
import { SapB1Sim } from "../sims/sapb1";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const sapb1Set = require("../../nodes/sapb1") as (RED: unknown) => void;

const sim = new SapB1Sim();
const CREDS = { cfg: { username: sim.username, password: sim.password } };
const bed = new Testbed([sapb1Set], { contextStorage: { default: { module: "memory" } } }, { credentials: CREDS, loadContextStores: true });

const pad = (n: number): string => String(n).padStart(2, "0");
/** UpdateDate/UpdateTime of `ms` in UTC (the connection's server time zone here). */
function stamp(ms: number): { UpdateDate: string; UpdateTime: string } {
  const d = new Date(ms);
  return { UpdateDate: d.toISOString().slice(0, 10), UpdateTime: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` };
}
const today = (): string => new Date().toISOString().slice(0, 10);
const daysAgo = (n: number): string => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);

function flow(props: Record<string, unknown>): TestFlowNode[] {
  return [
    { id: "t1", type: "tab", label: "main" },
    { id: "cfg", type: "mlc-sapb1-config", url: sim.url, version: "v2", companyDb: sim.companyDb, timeZone: "UTC", ca: sim.cert },
    { id: "trg", type: "mlc-sapb1-trigger", z: "t1", sapb1: "cfg", interval: 1, store: "", ...props, wires: [["events"]] },
    { id: "events", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["trg"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

function invoice(n: number, modifiedMs: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { DocEntry: n, DocNum: 9000 + n, CardCode: "V10000", CardName: "Acme Supplies", DocDate: today(), DocDueDate: today(), DocTotal: 1200 + n, DocCurrency: "USD", PaidToDate: 0, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: today(), ...stamp(modifiedMs), ...over };
}

describe("mlc-sapb1-trigger in Node-RED", function () {
  this.timeout(60000);
  bed.hooks({ sims: [sim] });

  /** Whether the trigger's journal still holds `jobId` unsettled. */
  const pending = (jobId: string): boolean => {
    const ctx = bed.node("trg").context() as unknown as { keys(): string[]; get(k: string): unknown };
    return ctx.keys().some((k) => k.startsWith("pn_") && JSON.stringify(ctx.get(k)).includes(`"jobId":"${jobId}"`));
  };
  const startFrom = (): string => new Date(Date.now() - 10 * 60_000).toISOString();

  it("created: one event per purchase invoice across polls, a later update and a redeploy", async () => {
    const t0 = Date.now() - 3 * 60_000;
    sim.put("PurchaseInvoices", invoice(1, t0));
    const props = { watch: "created", entity: "PurchaseInvoices", startFrom: startFrom() };
    await bed.load(flow(props));
    await until(() => bed.received.events.length === 1, "first alert");
    const first = bed.received.events[0];
    assert.equal(first.topic, "sapb1/PurchaseInvoices/created");
    assert.equal(first.erp.id, "PurchaseInvoices(1)");
    assert.equal(first.erp.number, "9001");
    sim.put("PurchaseInvoices", invoice(1, t0 + 60_000, { Comments: "approved" })); // updated later: same created-job
    sim.put("PurchaseInvoices", invoice(2, t0 + 60_000));
    await until(() => bed.received.events.length === 2, "second invoice");
    await settle(2500); // more polls
    assert.deepEqual(bed.received.events.map((m) => m.erp.id), ["PurchaseInvoices(1)", "PurchaseInvoices(2)"]);
    // a send node settles what it sent; only then is an event finished (else a restart replays it, msg.erp.replay)
    jobSettled(bed.received.events[0].erp.jobId);
    await until(() => !pending(bed.received.events[0].erp.jobId), "first settled");
    await bed.redeploy(flow(props));
    await until(() => bed.received.events.length === 3, "the unsettled second alert replayed");
    assert.equal(bed.received.events[2].erp.id, "PurchaseInvoices(2)");
    assert.equal(bed.received.events[2].erp.replay, true);
    await settle(2500);
    assert.equal(bed.received.events.length, 3, "nothing else again after a redeploy");
    assert.equal(bed.received.caught?.length ?? 0, 0);
  });

  it("created: an invoice created before the trigger started and only updated (paid) now is not reported as new", async () => {
    const t0 = Date.now() - 3 * 60_000;
    sim.put("PurchaseInvoices", invoice(3, t0, { CreationDate: daysAgo(40), DocDate: daysAgo(40), PaidToDate: 1203, DocumentStatus: "bost_Close" }));
    sim.put("PurchaseInvoices", invoice(4, t0));
    await bed.load(flow({ watch: "created", entity: "PurchaseInvoices", startFrom: startFrom() }));
    await until(() => bed.received.events.some((m) => m.erp.id === "PurchaseInvoices(4)"), "the new invoice");
    await settle(2500); // more polls
    assert.deepEqual(bed.received.events.map((m) => m.erp.id), ["PurchaseInvoices(4)"]);
    assert.equal(bed.received.caught?.length ?? 0, 0);
  });

  it("overdue: the invoice overdue by N days once, with amount due and due date; an expired session is renewed once", async () => {
    sim.put("Invoices", invoice(7, Date.now() - 86_400_000, { DocDueDate: daysAgo(10), DocTotal: 1250, PaidToDate: 250 }));
    sim.put("Invoices", invoice(8, Date.now() - 86_400_000, { DocDueDate: daysAgo(2) }));
    await bed.load(flow({ watch: "overdue", overdueDays: 7 }));
    await until(() => bed.received.events.length === 1, "overdue alert");
    assert.deepEqual(bed.received.events[0].alert, { kind: "overdue", amountDue: 1000, currency: "USD", dueDate: daysAgo(10), overdueDays: 7 });
    const logins = sim.logins.length;
    sim.expireSessions();
    await until(() => sim.logins.length === logins + 1, "re-login after the session expired");
    await settle(2500);
    assert.equal(sim.logins.length, logins + 1, "one Login, not one per poll");
    assert.equal(bed.received.events.length, 1);
    assert.equal(bed.received.caught?.length ?? 0, 0, "the poll completed after the re-login");
  });

  it("low stock: once per dip per warehouse; payments: each new DocEntry once", async () => {
    sim.put("Items", { ItemCode: "A00001", ItemName: "Helmet", InventoryItem: "tYES", QuantityOnStock: 3, MinInventory: 0, ItemWarehouseInfoCollection: [{ WarehouseCode: "01", InStock: 3, MinimalStock: 5 }] });
    await bed.load(flow({ watch: "lowStock" }));
    await until(() => bed.received.events.length === 1, "low-stock alert");
    await settle(2500);
    assert.equal(bed.received.events.length, 1);
    assert.deepEqual(bed.received.events[0].alert, { kind: "lowStock", itemCode: "A00001", warehouse: "01", inStock: 3, minimum: 5 });
    await bed.unload();
    sim.put("IncomingPayments", { DocEntry: 301, DocNum: 4015, CardCode: "C20000", DocDate: daysAgo(30), TransferSum: 5, Cancelled: "tNO" });
    await bed.load(flow({ watch: "payments", startFrom: startFrom() }));
    await settle(2000);
    sim.put("IncomingPayments", { DocEntry: 302, DocNum: 4016, CardCode: "C20000", DocDate: today(), TransferSum: 1250, Cancelled: "tNO" });
    await until(() => bed.received.events.length === 1, "payment alert");
    await settle(2000);
    assert.deepEqual(bed.received.events.map((m) => m.erp.id), ["IncomingPayments(302)"], "the payment before the start is never alerted");
  });
});
