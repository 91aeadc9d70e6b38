/**
 * The scan windows (payments by DocEntry, overdue invoices, low stock) on the kit's Poller against the simulator:
 * each alert once across repeated polls and a restart (state saved and loaded), and a crash between emit and state
 * save re-reads the same jobIds (which the trigger skeleton's journal drops) instead of new ones.
 */
import assert from "node:assert/strict";
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { Poller } from "../../nodes/lib/poll/poller";
import { PollState, WatermarkWindow } from "../../nodes/lib/poll/window";
import { PollRead } from "../../nodes/lib/poll/poller";
import { SapB1Client } from "../../nodes/lib/sapb1/client";
import { EventContext } from "../../nodes/lib/sapb1/events";
import { lowStockWindow, overdueWindow, paymentsWindow } from "../../nodes/lib/sapb1/scan";
import { SapB1Sim } from "../sims/sapb1";

const TZ = "America/Chicago";

describe("sapb1 scan windows on the kit's Poller", function () {
  this.timeout(30000);
  let sim: SapB1Sim;
  let client: SapB1Client;
  let now = Date.parse("2024-03-15T15:00:00Z");

  beforeEach(async () => {
    sim = new SapB1Sim({ tls: false });
    await sim.start();
    client = new SapB1Client({ url: sim.url, companyDb: sim.companyDb, username: sim.username, password: sim.password, pageSize: 0 });
  });
  afterEach(async () => {
    await client.close();
    await sim.stop();
  });

  function poller(spec: { window: WatermarkWindow; read: (r: PollRead) => AsyncIterable<ErpEventMsg> }, store: { state?: PollState }, got: ErpEventMsg[], crashAfterDeliver = false): Poller {
    return new Poller({
      window: spec.window,
      intervalMs: 60_000,
      startFrom: "2024-03-10T00:00:00Z",
      load: async () => (store.state ? (JSON.parse(JSON.stringify(store.state)) as PollState) : undefined),
      save: async (s) => {
        store.state = JSON.parse(JSON.stringify(s)) as PollState;
      },
      read: spec.read,
      deliver: (evs) => {
        got.push(...evs);
        if (crashAfterDeliver) throw new Error("killed before the state was saved");
      },
      onError: () => undefined,
      now: () => now,
    });
  }

  it("payments: the first poll reads from the start day, then only higher DocEntry, across a restart", async () => {
    const pay = (n: number, date: string) => sim.put("IncomingPayments", { DocEntry: n, DocNum: 4000 + n, CardCode: "C1", DocDate: date, TransferSum: 10 * n, Cancelled: "tNO" });
    pay(1, "2024-02-01"); // before the start: never alerted
    pay(2, "2024-03-12");
    const ctx: EventContext = { entity: "IncomingPayments", tenant: sim.companyDb, timeZone: TZ };
    const store: { state?: PollState } = {};
    const got: ErpEventMsg[] = [];
    await poller(paymentsWindow(client, ctx), store, got).tick();
    assert.deepEqual(got.map((e) => e.erp.id), ["IncomingPayments(2)"]);
    await poller(paymentsWindow(client, ctx), store, got).tick();
    pay(3, "2024-03-15");
    pay(4, "2024-03-15");
    await poller(paymentsWindow(client, ctx), store, got).tick();
    assert.deepEqual(got.map((e) => e.erp.id), ["IncomingPayments(2)", "IncomingPayments(3)", "IncomingPayments(4)"]);
    assert.ok(sim.requests.some((r) => /DocEntry%20gt%202/.test(r.query)), "later polls ask DocEntry gt <last>");
  });

  it("overdue: each invoice once while it stays overdue; paid, it is forgotten; a crash before the save re-reads the same jobId", async () => {
    const inv = (n: number, over: Record<string, unknown> = {}) =>
      sim.put("Invoices", { DocEntry: n, DocNum: 100 + n, CardCode: "C1", DocDueDate: "2024-03-01", DocTotal: 500, PaidToDate: 0, DocCurrency: "USD", DocumentStatus: "bost_Open", Cancelled: "tNO", ...over });
    inv(1);
    inv(2, { DocDueDate: "2024-03-14" });
    const ctx: EventContext = { entity: "Invoices", tenant: sim.companyDb, timeZone: TZ };
    const store: { state?: PollState } = {};
    const got: ErpEventMsg[] = [];
    await assert.rejects(poller(overdueWindow(client, ctx, 7), store, got, true).tick(), /killed/);
    await poller(overdueWindow(client, ctx, 7), store, got).tick();
    assert.deepEqual(got.map((e) => e.erp.id), ["Invoices(1)", "Invoices(1)"]);
    assert.equal(got[0].erp.jobId, got[1].erp.jobId, "the re-read after the crash has the same jobId (the journal drops it)");
    await poller(overdueWindow(client, ctx, 7), store, got).tick();
    assert.equal(got.length, 2, "no second alert while it stays overdue");
    now += 7 * 86_400_000; // invoice 2 is now 8 days overdue
    await poller(overdueWindow(client, ctx, 7), store, got).tick();
    assert.deepEqual(got.slice(2).map((e) => e.erp.id), ["Invoices(2)"]);
    assert.deepEqual((got[2].alert as { amountDue: number; dueDate: string }).dueDate, "2024-03-14");
    inv(1, { PaidToDate: 500, DocumentStatus: "bost_Close" });
    await poller(overdueWindow(client, ctx, 7), store, got).tick();
    assert.equal(got.length, 3);
    assert.deepEqual((store.state as { seenJobs?: string[] }).seenJobs, [got[2].erp.jobId], "the paid invoice is forgotten: the memory stays the size of what is overdue");
  });

  it("low stock: once per dip per warehouse across polls and a restart", async () => {
    const item = (inStock: number) =>
      sim.put("Items", { ItemCode: "A1", ItemName: "Helmet", InventoryItem: "tYES", QuantityOnStock: inStock, MinInventory: 0, ItemWarehouseInfoCollection: [{ WarehouseCode: "01", InStock: inStock, MinimalStock: 5 }] });
    item(2);
    const ctx: EventContext = { entity: "Items", tenant: sim.companyDb, timeZone: TZ };
    const store: { state?: PollState } = {};
    const got: ErpEventMsg[] = [];
    await poller(lowStockWindow(client, ctx), store, got).tick();
    await poller(lowStockWindow(client, ctx), store, got).tick();
    assert.equal(got.length, 1);
    item(10);
    await poller(lowStockWindow(client, ctx), store, got).tick();
    item(1);
    await poller(lowStockWindow(client, ctx), store, got).tick();
    assert.equal(got.length, 2);
    assert.notEqual(got[0].erp.jobId, got[1].erp.jobId);
    assert.deepEqual(got[1].alert, { kind: "lowStock", itemCode: "A1", warehouse: "01", inStock: 1, minimum: 5 });
  });
});
