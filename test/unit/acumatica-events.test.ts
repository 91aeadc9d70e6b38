/**
 * Acumatica push notifications → events, polled records → events, and PollWindow (watermark/overlap/dedupe),
 * driven with real deliveries and reads from the Acumatica simulator.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { AddressInfo } from "node:net";
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { ValidationError } from "../../nodes/lib/errors";
import { deriveJobId } from "../../nodes/lib/ids";
import { AcumaticaClient } from "../../nodes/lib/acumatica/client";
import { PollState, PollWindow, pushToEvents, recordToEvent } from "../../nodes/lib/acumatica/events";
import { AcumaticaSim, AcuRecord } from "../sims/acumatica";

const CLIENT_ID = "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd";

describe("acumatica events", function () {
  let sim: AcumaticaSim;
  let base: string;
  let receiver: http.Server;
  let hookUrl: string;
  let received: unknown[] = [];

  before(async () => {
    sim = new AcumaticaSim();
    base = await sim.start();
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        res.statusCode = 200;
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/mlc/acumatica/hook`;
  });
  after(async () => {
    await sim.stop();
    await new Promise<void>((r) => receiver.close(() => r()));
  });
  beforeEach(() => {
    sim.reset();
    sim.seedDemoData();
    received = [];
  });

  describe("pushToEvents", () => {
    const lm = "APInvoice_lastModifiedDateTime";
    const row = (ref: string, status: string, mod: string): AcuRecord => ({ RefNbr: ref, DocType: "INV", Status: status, VendorID: "V000042", Amount: 1250, [lm]: mod });

    it("turns a delivered notification into updated / created / deleted events and reports malformed rows", async () => {
      const statuses = await sim.pushNotification(
        { url: hookUrl, headerName: "X-Notify-Secret", headerValue: "7c1de9" },
        {
          query: "AP-Bills-For-Notify",
          id: "2d8e5a9c-1f3b-4c6d-8e7f-0a1b2c3d4e5f",
          inserted: [row("000123", "Open", "2025-03-10T14:22:31.117"), 42 as unknown as AcuRecord, row("000125", "Balanced", "2025-03-10T15:00:00.5")],
          deleted: [row("000123", "Balanced", "2025-03-10T14:20:02.5"), row("000099", "Open", "2025-03-01T09:00:00")],
        },
      );
      assert.deepEqual(statuses, [200]);
      assert.equal(received.length, 1);
      const out = pushToEvents(received[0], { tenant: "fallback" });
      assert.equal(out.notificationKey, "AP-Bills-For-Notify|2d8e5a9c-1f3b-4c6d-8e7f-0a1b2c3d4e5f");
      assert.deepEqual(out.problems, [{ index: 1, list: "Inserted", message: "Inserted[1] is not an object (number)" }]);
      assert.deepEqual(
        out.events.map((e) => [e.topic, e.erp.id, e.erp.number, e.erp.action, e.erp.modifiedAt, e.payload.Status]),
        [
          ["acumatica/AP-Bills-For-Notify/updated", "INV/000123", "000123", "updated", "2025-03-10T14:22:31.117", "Open"],
          ["acumatica/AP-Bills-For-Notify/created", "INV/000125", "000125", "created", "2025-03-10T15:00:00.5", "Balanced"],
          ["acumatica/AP-Bills-For-Notify/deleted", "INV/000099", "000099", "deleted", "2025-03-01T09:00:00", "Open"],
        ],
      );
      const upd = out.events[0];
      assert.equal((upd.previous as Record<string, unknown>).Status, "Balanced");
      assert.equal(upd.erp.tenant, "AcmeProd"); // CompanyId wins over opts.tenant
      assert.equal(upd.erp.system, "acumatica");
      assert.equal(upd.erp.deliveryId, "2d8e5a9c-1f3b-4c6d-8e7f-0a1b2c3d4e5f");
      assert.equal(
        upd.erp.jobId,
        deriveJobId({ system: "acumatica", tenant: "AcmeProd", entity: "AP-Bills-For-Notify", id: "INV/000123", version: "AP-Bills-For-Notify:2d8e5a9c-1f3b-4c6d-8e7f-0a1b2c3d4e5f", action: "updated" }),
      );
      assert.equal(new Set(out.events.map((e) => e.erp.jobId)).size, 3);
      // a configured modified column that the GI rows lack falls back to the detected *lastModified* column
      assert.equal(pushToEvents(received[0], { tenant: "x", modifiedField: "LastModifiedDateTime" }).events[0].erp.modifiedAt, "2025-03-10T14:22:31.117");
    });

    it("a push row with a zoned modification time and a catch-up poll of the same change share one jobId", () => {
      const pushRow = { Type: "Bill", ReferenceNbr: "000123", Status: "Open", LastModifiedDateTime: "2025-03-10T16:22:31.117+02:00" };
      const pushed = pushToEvents({ Query: "AP-Bills-Pending-Approval", Id: "tx-9", CompanyId: "AcmeProd", Inserted: [pushRow], Deleted: [] }, { tenant: "AcmeProd", entity: "Bill", keyFields: ["Type", "ReferenceNbr"] });
      const polled = recordToEvent("Bill", { Type: "Bill", ReferenceNbr: "000123", Status: "Open", LastModifiedDateTime: "2025-03-10T14:22:31.117+00:00" }, { tenant: "AcmeProd" });
      assert.equal(pushed.events[0].erp.jobId, polled.erp.jobId);
      // a later transaction on the same record at a new time is a new job
      const later = pushToEvents({ Query: "AP-Bills-Pending-Approval", Id: "tx-10", CompanyId: "AcmeProd", Inserted: [{ ...pushRow, LastModifiedDateTime: "2025-03-10T16:30:00.000+02:00" }] }, { tenant: "AcmeProd", entity: "Bill", keyFields: ["Type", "ReferenceNbr"] });
      assert.notEqual(later.events[0].erp.jobId, pushed.events[0].erp.jobId);
    });

    it("a repeated delivery yields the same jobIds; a new transaction yields new ones", async () => {
      const n = { query: "AP-Bills-For-Notify", id: "tx-1", inserted: [row("000123", "Open", "2025-03-10T14:22:31.117")] };
      await sim.pushNotification({ url: hookUrl }, n, { times: 2 });
      await sim.pushNotification({ url: hookUrl }, { ...n, id: "tx-2" });
      assert.equal(received.length, 3);
      const [a, b, c] = received.map((body) => pushToEvents(body, { tenant: "AcmeProd" }));
      assert.equal(a.events[0].erp.jobId, b.events[0].erp.jobId);
      assert.equal(a.notificationKey, b.notificationKey);
      assert.notEqual(a.events[0].erp.jobId, c.events[0].erp.jobId);
      assert.equal(c.notificationKey, "AP-Bills-For-Notify|tx-2");
    });

    it("uses keyFields / entity options, falls back to opts.tenant, reports rows missing a key column", () => {
      const body = {
        Query: "VendorsGI",
        Id: 77,
        Inserted: [{ Vendor_acctCD: "V000042", Phone: "(312) 555-0144" }, { Phone: "x" }, null],
        Deleted: [{ Vendor_acctCD: "V000042", Phone: "(312) 555-0000" }],
      };
      const out = pushToEvents(body, { tenant: "AcmeProd", keyFields: ["Vendor_acctCD"], entity: "Vendor" });
      assert.equal(out.events.length, 1);
      const e = out.events[0];
      assert.deepEqual([e.topic, e.erp.id, e.erp.action, e.erp.tenant, e.erp.deliveryId, e.erp.number, e.erp.modifiedAt], ["acumatica/Vendor/updated", "V000042", "updated", "AcmeProd", "77", undefined, undefined]);
      assert.deepEqual(out.problems, [
        { index: 1, list: "Inserted", message: "Inserted[1]: row has no value for key column(s) Vendor_acctCD" },
        { index: 2, list: "Inserted", message: "Inserted[2] is not an object (null)" },
      ]);
      assert.equal(out.notificationKey, "VendorsGI|77");
    });

    it("without key columns hashes the whole row (stable ids)", () => {
      const body = { Query: "Q", Id: "1", Inserted: [{ A: 1, B: "x" }], Deleted: [] };
      const e1 = pushToEvents(body, { tenant: "T" }).events[0];
      const e2 = pushToEvents({ ...body, Inserted: [{ B: "x", A: 1 }] }, { tenant: "T" }).events[0];
      assert.match(e1.erp.id, /^row_[0-9a-f]{40}$/);
      assert.equal(e1.erp.id, e2.erp.id);
      assert.equal(e1.erp.action, "created");
    });

    it("rejects malformed bodies with a clear ValidationError", () => {
      const cases: [unknown, RegExp][] = [
        ["nope", /must be a JSON object/],
        [[1, 2], /must be a JSON object/],
        [{ Id: "1", Inserted: [] }, /has no Query/],
        [{ Query: "Q", Inserted: [] }, /has no Id/],
        [{ Query: "Q", Id: "1", Inserted: "rows" }, /Inserted must be an array/],
        [{ Query: "Q", Id: "1", Inserted: [], Deleted: {} }, /Deleted must be an array/],
        [{ Query: "Q", Id: "1" }, /neither Inserted nor Deleted/],
      ];
      for (const [body, re] of cases) {
        assert.throws(() => pushToEvents(body, { tenant: "T" }), (e: unknown) => e instanceof ValidationError && re.test(e.message), JSON.stringify(body));
      }
    });
  });

  describe("recordToEvent (polling)", () => {
    let client: AcumaticaClient;
    beforeEach(() => {
      client = new AcumaticaClient({ instanceUrl: base, tenant: "AcmeProd", auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" } });
    });
    afterEach(() => client.close());

    it("builds id, number, modifiedAt and a version-based jobId from real records", async () => {
      const bill = await client.get("Bill", "Bill/000123");
      assert.ok(bill);
      const ev = recordToEvent("Bill", bill, { tenant: "AcmeProd" });
      assert.equal(ev.topic, "acumatica/Bill/updated");
      assert.deepEqual(
        { id: ev.erp.id, number: ev.erp.number, action: ev.erp.action, modifiedAt: ev.erp.modifiedAt, entity: ev.erp.entity },
        { id: "Bill/000123", number: "000123", action: "updated", modifiedAt: "2025-03-10T14:22:31.117+00:00", entity: "Bill" },
      );
      assert.equal(ev.erp.jobId, deriveJobId({ system: "acumatica", tenant: "AcmeProd", entity: "Bill", id: "Bill/000123", version: "2025-03-10T14:22:31.117+00:00", action: "updated" }));
      assert.equal(ev.payload.Amount, 1250);
      // the same instant written with another offset is the same change
      const shifted = recordToEvent("Bill", { ...bill, LastModifiedDateTime: "2025-03-10T16:22:31.117+02:00" }, { tenant: "AcmeProd" });
      assert.equal(shifted.erp.jobId, ev.erp.jobId);

      const vendor = await client.get("Vendor", "V000042");
      assert.ok(vendor);
      assert.equal(recordToEvent("Vendor", vendor, { tenant: "AcmeProd" }).erp.id, "V000042");
    });

    it("reports created when CreatedDateTime equals LastModifiedDateTime to the second", async () => {
      sim.upsert("Vendor", { VendorID: "V000050", VendorName: "New One", CreatedDateTime: "2025-03-12T10:00:00.100+00:00", LastModifiedDateTime: "2025-03-12T10:00:00.900+00:00" });
      const v = await client.get("Vendor", "V000050");
      assert.ok(v);
      assert.equal(recordToEvent("Vendor", v, { tenant: "AcmeProd" }).erp.action, "created");
      assert.equal(recordToEvent("Vendor", { ...v, LastModifiedDateTime: "2025-03-12T10:00:01.000+00:00" }, { tenant: "AcmeProd" }).erp.action, "updated");
      assert.equal(recordToEvent("Vendor", v, { tenant: "AcmeProd", action: "updated" }).erp.action, "updated");
    });

    it("throws ValidationError with recordId when the key or the modified field is missing", async () => {
      const rows = await client.list("Bill", { select: ["Type", "ReferenceNbr"], top: 1 });
      assert.throws(
        () => recordToEvent("Bill", rows[0], { tenant: "AcmeProd" }),
        (e: unknown) => e instanceof ValidationError && e.recordId === "Bill/000121" && /no valid LastModifiedDateTime/.test(e.message),
      );
      const noKey = await client.list("Bill", { select: ["ReferenceNbr", "LastModifiedDateTime"], top: 1 });
      assert.throws(
        () => recordToEvent("Bill", noKey[0], { tenant: "AcmeProd" }),
        (e: unknown) => e instanceof ValidationError && e.recordId === "000121" && /key field\(s\) Type/.test(e.message),
      );
      const custom = recordToEvent("Payment", { Type: "Payment", ReferenceNbr: "000311", Mod: "2025-03-09T16:40:18.233+00:00" }, { tenant: "T", modifiedField: "Mod", keyFields: ["ReferenceNbr"] });
      assert.equal(custom.erp.id, "000311");
      assert.equal(custom.erp.modifiedAt, "2025-03-09T16:40:18.233+00:00");
    });
  });

  describe("PollWindow", () => {
    let client: AcumaticaClient;
    beforeEach(() => {
      client = new AcumaticaClient({
        instanceUrl: base,
        tenant: "AcmeProd",
        auth: { mode: "cookie", username: "api.user", password: "P@ss-w0rd" },
      });
    });
    afterEach(() => client.close());

    /** One poll: filter from the state, read every page (page size 2 to force paging), accept once. */
    async function poll(win: PollWindow, state: PollState): Promise<{ fresh: string[]; next: PollState; duplicates: number; events: ErpEventMsg[] }> {
      const events: ErpEventMsg[] = [];
      for await (const r of client.listAll("Bill", { filter: win.filterFor(state), select: ["Type", "ReferenceNbr", "Status", "LastModifiedDateTime"] }, 2)) {
        events.push(recordToEvent("Bill", r, { tenant: "AcmeProd" }));
      }
      const res = win.accept(state, events);
      return { fresh: res.fresh.map((e) => e.erp.id), next: res.next, duplicates: res.duplicates, events: res.fresh };
    }
    /** Persist and reload, as a Node-RED restart with a persistent context store would. */
    const restart = (s: PollState): PollState => JSON.parse(JSON.stringify(s)) as PollState;

    it("builds the $filter from watermark − overlap and the user filter", () => {
      const w = new PollWindow({ overlapMs: 60_000, userFilter: "Status eq 'Open'" });
      assert.equal(w.filterFor(PollWindow.initial()), "Status eq 'Open'");
      const s = PollWindow.initial("2025-03-10T16:22:31.117+02:00");
      assert.equal(s.watermark, "2025-03-10T14:22:31.117Z");
      assert.equal(w.filterFor(s), "(LastModifiedDateTime gt datetimeoffset'2025-03-10T14:21:31.117+00:00') and (Status eq 'Open')");
      assert.equal(new PollWindow({ overlapMs: 0 }).filterFor(s), "LastModifiedDateTime ge datetimeoffset'2025-03-10T14:22:31.117+00:00'");
      assert.equal(new PollWindow({ modifiedField: "LastModified" }).filterFor(s, 1000), "LastModified gt datetimeoffset'2025-03-10T14:22:30.117+00:00'");
      assert.throws(() => new PollWindow({ overlapMs: -1 }), ValidationError);
    });

    it("neither misses nor repeats across restarts, with late commits and equal timestamps", async () => {
      const win = new PollWindow({ overlapMs: 60_000 });

      // poll 1 from the beginning: everything, oldest first
      let p = await poll(win, PollWindow.initial());
      assert.deepEqual(p.fresh, ["Bill/000121", "Bill/000122", "Bill/000123", "Bill/000124"]);
      assert.equal(p.next.watermark, "2025-03-11T09:05:00.000Z");
      assert.deepEqual(p.next.seenAtWatermark, ["Bill/000124"]);
      let state = restart(p.next);

      // poll 2 after a restart: the overlap re-reads 000124, which is not repeated
      p = await poll(new PollWindow({ overlapMs: 60_000 }), state);
      assert.deepEqual(p.fresh, []);
      assert.equal(p.duplicates, 1);
      state = restart(p.next);

      // a record committed late with exactly the watermark's timestamp (tie) → delivered once
      sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "000130", Vendor: "V000041", Amount: 10, Status: "Open", LastModifiedDateTime: "2025-03-11T09:05:00.000+00:00" });
      // and one committed late 30 s below the watermark (inside the overlap), written with another offset
      sim.upsert("Bill", { Type: "Bill", ReferenceNbr: "000131", Vendor: "V000041", Amount: 11, Status: "Open", LastModifiedDateTime: "2025-03-11T11:04:30.000+02:00" });
      p = await poll(win, state);
      assert.deepEqual(p.fresh, ["Bill/000131", "Bill/000130"]);
      assert.equal(p.duplicates, 1);
      assert.equal(p.next.watermark, "2025-03-11T09:05:00.000Z");
      assert.deepEqual(p.next.seenAtWatermark, ["Bill/000124", "Bill/000130"]);
      state = restart(p.next);

      // restart: nothing again
      p = await poll(new PollWindow({ overlapMs: 60_000 }), state);
      assert.deepEqual(p.fresh, []);
      assert.equal(p.duplicates, 3);
      state = restart(p.next);

      // a real change through the API: new LastModifiedDateTime → fresh, new jobId
      const firstJob = recordToEvent("Bill", { Type: "Bill", ReferenceNbr: "000122", LastModifiedDateTime: "2025-03-10T13:47:05.660+00:00" }, { tenant: "AcmeProd" }).erp.jobId;
      await client.put("Bill", { Type: "Bill", ReferenceNbr: "000122", Description: "HVAC quarterly maintenance (revised)" }, { mode: "update" });
      p = await poll(win, state);
      assert.deepEqual(p.fresh, ["Bill/000122"]);
      assert.notEqual(p.events[0].erp.jobId, firstJob);
      assert.equal(p.next.watermark, new Date(Date.parse(String(p.events[0].erp.modifiedAt))).toISOString());
      assert.deepEqual(p.next.recent.map((r) => r.id), ["Bill/000122"]); // older entries left the overlap window
      state = restart(p.next);

      p = await poll(new PollWindow({ overlapMs: 60_000 }), state);
      assert.deepEqual(p.fresh, []);
      assert.equal(p.duplicates, 1);
    });

    it("equal timestamps across polls without overlap: the tie is broken by seenAtWatermark", () => {
      const w = new PollWindow({ overlapMs: 0 });
      const ev = (id: string, at: string): ErpEventMsg => recordToEvent("Bill", { Type: "Bill", ReferenceNbr: id, LastModifiedDateTime: at }, { tenant: "T" });
      const T = "2025-03-10T14:22:31.117+00:00";
      let r = w.accept(PollWindow.initial(), [ev("A", T)]);
      assert.deepEqual(r.fresh.map((e) => e.erp.id), ["Bill/A"]);
      assert.deepEqual(r.next.recent, []); // zero-width window keeps nothing but the tie list
      r = w.accept(r.next, [ev("A", T), ev("B", "2025-03-10T15:22:31.117+01:00")]); // B: same instant, other offset
      assert.deepEqual(r.fresh.map((e) => e.erp.id), ["Bill/B"]);
      assert.deepEqual(r.next.seenAtWatermark, ["Bill/A", "Bill/B"]);
      r = w.accept(JSON.parse(JSON.stringify(r.next)) as PollState, [ev("B", T), ev("A", T), ev("A", T)]);
      assert.deepEqual(r.fresh, []);
      assert.equal(r.duplicates, 3);
      r = w.accept(r.next, [ev("A", "2025-03-10T14:22:31.118Z")]);
      assert.deepEqual(r.fresh.map((e) => e.erp.modifiedAt), ["2025-03-10T14:22:31.118Z"]);
      assert.deepEqual(r.next.seenAtWatermark, ["Bill/A"]);
    });

    it("bounds the recent set and rejects events without modifiedAt", () => {
      const w = new PollWindow({ overlapMs: 3_600_000, maxRecent: 3 });
      const events = Array.from({ length: 5 }, (_, i) => recordToEvent("Bill", { Type: "Bill", ReferenceNbr: `R${i}`, LastModifiedDateTime: `2025-03-10T14:0${i}:00.000Z` }, { tenant: "T" }));
      const r = w.accept(PollWindow.initial(), events);
      assert.equal(r.fresh.length, 5);
      assert.deepEqual(r.next.recent.map((x) => x.id), ["Bill/R2", "Bill/R3", "Bill/R4"]);
      const bad = { ...events[0], erp: { ...events[0].erp, modifiedAt: undefined } };
      assert.throws(() => w.accept(r.next, [bad]), (e: unknown) => e instanceof ValidationError && e.recordId === "Bill/R0");
    });
  });
});
