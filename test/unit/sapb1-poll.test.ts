/**
 * SAP Business One poll pieces on the kit's Poller against the simulator: every change delivered once across
 * repeated polls and a restart (state saved and loaded), "created" alerts once per DocNum + DocDate, overdue scans
 * with amount and due date and a stable jobId, low-stock alerts once per dip per warehouse, new payments by DocEntry,
 * v2 dates (`…T00:00:00Z`) read like v1's, malformed rows reported instead of guessed.
 */
import assert from "node:assert/strict";
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { MlcError } from "../../nodes/lib/errors";
import { Poller } from "../../nodes/lib/poll/poller";
import { PollState } from "../../nodes/lib/poll/window";
import { SapB1Client } from "../../nodes/lib/sapb1/client";
import { EventContext, changedEvent, dateBefore, lowStockEvents, modifiedAtOf, overdueFilter, updateWindow } from "../../nodes/lib/sapb1/events";
import { readNewPayments, scanLowStock, scanOverdue, updateReader } from "../../nodes/lib/sapb1/poll";
import { SapB1Sim } from "../sims/sapb1";

const TZ = "Europe/Berlin";

function doc(n: number, time: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    DocEntry: n, DocNum: 500 + n, CardCode: "V10000", CardName: "Acme Supplies", DocDate: "2024-03-01", DocDueDate: "2024-03-10", DocTotal: 1000 + n,
    DocCurrency: "EUR", PaidToDate: 0, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: "2024-03-01", UpdateDate: "2024-03-01", UpdateTime: time, ...over,
  };
}

describe("sapb1 polling on the kit's Poller", function () {
  this.timeout(30000);
  let sim: SapB1Sim;
  let client: SapB1Client;

  beforeEach(async () => {
    sim = new SapB1Sim({ tls: false });
    await sim.start();
  });
  afterEach(async () => {
    await client?.close();
    await sim.stop();
  });

  function connect(version: "v1" | "v2" = "v2"): SapB1Client {
    client = new SapB1Client({ url: sim.url, version, companyDb: sim.companyDb, username: sim.username, password: sim.password, pageSize: 0 });
    return client;
  }

  function poller(ctx: EventContext, store: { state?: PollState }, nowIso: string, got: ErpEventMsg[], condition: "changed" | "created" = "changed"): Poller {
    return new Poller({
      window: updateWindow(TZ),
      intervalMs: 60_000,
      startFrom: "2024-03-01T07:00:00Z", // 08:00 in Berlin
      load: async () => store.state,
      save: async (s) => {
        store.state = JSON.parse(JSON.stringify(s)) as PollState;
      },
      read: updateReader(client, ctx, condition),
      deliver: (evs) => {
        got.push(...evs);
      },
      onError: () => undefined,
      now: () => Date.parse(nowIso),
    });
  }

  for (const version of ["v1", "v2"] as const) {
    it(`delivers each PurchaseInvoices change once across polls and a restart (${version}, 45 rows over 3 pages)`, async () => {
      for (let i = 1; i <= 45; i++) sim.put("PurchaseInvoices", doc(i, `08:${String(i).padStart(2, "0")}:30`));
      connect(version);
      const ctx: EventContext = { entity: "PurchaseInvoices", tenant: sim.companyDb, timeZone: TZ };
      const store: { state?: PollState } = {};
      const got: ErpEventMsg[] = [];
      await poller(ctx, store, "2024-03-01T08:00:00Z", got).tick(); // 09:00 Berlin
      assert.equal(got.length, 45);
      assert.equal(got[0].erp.modifiedAt, "2024-03-01T07:01:30.000Z", "server-local 08:01:30 Berlin");
      assert.equal(got[0].erp.id, "PurchaseInvoices(1)");
      assert.equal(got[0].erp.number, "501");
      await poller(ctx, store, "2024-03-01T08:01:00Z", got).tick();
      assert.equal(got.length, 45, "a repeated poll delivers nothing again");
      // restart: a new Poller on the saved state; one document changes, one is new
      sim.put("PurchaseInvoices", doc(3, "09:01:05", { PaidToDate: 10 }));
      sim.put("PurchaseInvoices", doc(46, "09:01:40"));
      await poller(ctx, store, "2024-03-01T08:03:00Z", got).tick();
      assert.deepEqual(got.slice(45).map((e) => e.erp.id), ["PurchaseInvoices(3)", "PurchaseInvoices(46)"]);
      await poller(ctx, store, "2024-03-01T08:05:00Z", got).tick();
      assert.equal(got.length, 47);
      assert.equal(new Set(got.map((e) => e.erp.jobId)).size, 47);
      assert.deepEqual(sim.secondsInTimeFilters, [], "time literals carry hour:minute only");
      assert.equal(sim.logins.length, 1, "one session for all polls");
    });
  }

  it("alerts 'created' once per DocNum + DocDate: a later update of the document has the same jobId", async () => {
    sim.put("PurchaseInvoices", doc(1, "08:10:00"));
    connect();
    const ctx: EventContext = { entity: "PurchaseInvoices", tenant: sim.companyDb, timeZone: TZ };
    const store: { state?: PollState } = {};
    const got: ErpEventMsg[] = [];
    await poller(ctx, store, "2024-03-01T08:00:00Z", got, "created").tick();
    sim.put("PurchaseInvoices", doc(1, "09:20:00", { Comments: "approved" }));
    await poller(ctx, store, "2024-03-01T08:30:00Z", got, "created").tick();
    assert.equal(got.length, 2, "the window sees a new version");
    assert.equal(got[0].erp.jobId, got[1].erp.jobId, "…but it is the same 'created' job: mlc-dedupe drops it");
    assert.equal(got[0].erp.action, "created");
  });

  it("finds invoices overdue by N days with amount due and due date; a rescan gives the same jobIds", async () => {
    sim.put("Invoices", doc(1, "08:00:00", { DocDueDate: "2024-03-01", DocTotal: 1250, PaidToDate: 250 }));
    sim.put("Invoices", doc(2, "08:00:00", { DocDueDate: "2024-03-09" })); // overdue by 6 days only
    sim.put("Invoices", doc(3, "08:00:00", { DocDueDate: "2024-03-01", DocumentStatus: "bost_Close", PaidToDate: 1003 }));
    sim.put("Invoices", doc(4, "08:00:00", { DocDueDate: "2024-02-01", DocTotal: 10, PaidToDate: 10 })); // open but nothing due
    connect("v2");
    const ctx: EventContext = { entity: "Invoices", tenant: sim.companyDb, timeZone: TZ };
    const now = Date.parse("2024-03-15T10:00:00Z");
    assert.equal(overdueFilter(now, 14, TZ), "DocumentStatus eq 'bost_Open' and DocDueDate le '2024-03-01'");
    // overdue at all means due before today (reference §7: DocDueDate lt today): an invoice due today is not overdue by 0 days
    assert.equal(overdueFilter(now, 0, TZ), "DocumentStatus eq 'bost_Open' and DocDueDate le '2024-03-14'");
    const first = await scanOverdue(client, ctx, now, 14);
    assert.deepEqual(first.map((e) => e.erp.id), ["Invoices(1)"]);
    assert.deepEqual(first[0].alert, { kind: "overdue", amountDue: 1000, currency: "EUR", dueDate: "2024-03-01", overdueDays: 14 });
    const again = await scanOverdue(client, ctx, now + 86_400_000, 14);
    assert.deepEqual(again.map((e) => e.erp.jobId), first.map((e) => e.erp.jobId));
  });

  it("alerts low stock once per dip per warehouse and again after it recovered and fell", async () => {
    const item = (a: number, b: number) => ({
      ItemCode: "A00001", ItemName: "Helmet", InventoryItem: "tYES", QuantityOnStock: a + b, MinInventory: 0, UpdateDate: "2024-03-01", UpdateTime: "08:00:00",
      ItemWarehouseInfoCollection: [
        { ItemCode: "A00001", WarehouseCode: "01", InStock: a, MinimalStock: 5 },
        { ItemCode: "A00001", WarehouseCode: "02", InStock: b, MinimalStock: 0 },
      ],
    });
    sim.put("Items", item(3, 50));
    sim.put("Items", { ItemCode: "S1", ItemName: "Service", InventoryItem: "tNO", QuantityOnStock: 0, MinInventory: 5 });
    connect("v1");
    const ctx: EventContext = { entity: "Items", tenant: sim.companyDb, timeZone: TZ };
    const a = await scanLowStock(client, ctx, {});
    assert.deepEqual(a.events.map((e) => e.alert), [{ kind: "lowStock", itemCode: "A00001", warehouse: "01", inStock: 3, minimum: 5 }]);
    const b = await scanLowStock(client, ctx, a.below);
    assert.equal(b.events.length, 0, "still low: no second alert");
    sim.put("Items", item(9, 50));
    const c = await scanLowStock(client, ctx, b.below);
    assert.equal(c.events.length, 0);
    sim.put("Items", item(2, 50));
    const d = await scanLowStock(client, ctx, c.below);
    assert.equal(d.events.length, 1, "a new dip alerts again");
    assert.notEqual(d.events[0].erp.jobId, a.events[0].erp.jobId);
    // item-level minimum when no warehouse has one
    const plain = lowStockEvents(ctx, { ItemCode: "B1", QuantityOnStock: 1, MinInventory: 4 }, {});
    assert.equal((plain.events[0].alert as { warehouse: string }).warehouse, "*");
  });

  it("reads new IncomingPayments by DocEntry (no UpdateDate there)", async () => {
    sim.put("IncomingPayments", { DocEntry: 301, DocNum: 4015, CardCode: "C20000", DocDate: "2024-03-28", TransferSum: 1250, Cancelled: "tNO" });
    connect();
    const ctx: EventContext = { entity: "IncomingPayments", tenant: sim.companyDb, timeZone: TZ };
    const a = await readNewPayments(client, ctx, 0);
    assert.deepEqual([a.events.map((e) => e.erp.id), a.last], [["IncomingPayments(301)"], 301]);
    sim.put("IncomingPayments", { DocEntry: 302, DocNum: 4016, CardCode: "C20000", DocDate: "2024-03-29", TransferSum: 5, Cancelled: "tNO" });
    const b = await readNewPayments(client, ctx, a.last);
    assert.deepEqual([b.events.map((e) => e.erp.id), b.last], [["IncomingPayments(302)"], 302]);
    const c = await readNewPayments(client, ctx, b.last);
    assert.deepEqual([c.events.length, c.last], [0, 302]);
  });

  it("reads v1 and v2 date forms alike and reports a row without UpdateTime instead of guessing", () => {
    assert.equal(modifiedAtOf({ UpdateDate: "2024-03-01T00:00:00Z", UpdateTime: "17:13:12" }, "UTC"), "2024-03-01T17:13:12.000Z");
    assert.equal(modifiedAtOf({ UpdateDate: "2024-03-01", UpdateTime: "17:13:12" }, "UTC"), "2024-03-01T17:13:12.000Z");
    assert.equal(dateBefore(Date.parse("2024-03-01T23:30:00Z"), 1, TZ), "2024-03-01", "server zone decides 'today'");
    assert.throws(
      () => changedEvent({ entity: "Invoices", tenant: "T", timeZone: "UTC" }, { DocEntry: 9, UpdateDate: "2024-03-01" }),
      (e: unknown) => e instanceof MlcError && e.code === "malformed_record" && e.recordId === "Invoices(9)",
    );
    assert.throws(() => updateWindow("UTC", undefined, 0), (e: unknown) => e instanceof MlcError && e.code === "bad_config");
  });
});
