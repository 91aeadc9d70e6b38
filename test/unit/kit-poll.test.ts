/**
 * nodes/lib/poll: per-ERP time conditions and modified-time normalisers, page iterators, and the generic Poller
 * driving the test-only kit family (test/kit/family.ts) against the kit simulator: overlap, tie-breaking, the upper
 * bound at the poll's start, persisted state across restarts, catch-up in time slices.
 */
import assert from "node:assert/strict";
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { exactTime, intacctTime, odataV4Time, parseIntacctTime, sapB1SplitTime } from "../../nodes/lib/poll/conditions";
import { companyTime, msDate, splitDateTime, zonedIso } from "../../nodes/lib/poll/modified-time";
import { odataPage, readMorePages } from "../../nodes/lib/poll/pages";
import { Poller, PollSliceResult } from "../../nodes/lib/poll/poller";
import { PollState, WatermarkWindow } from "../../nodes/lib/poll/window";
import { KitClient, kitPollTrigger } from "../kit/family";
import { KitSim } from "../sims/kit-odata";

const T = Date.parse("2025-03-10T14:22:31.117Z");

describe("kit: poll pieces (nodes/lib/poll)", () => {
  it("time conditions in each ERP's literal syntax, rounded so nothing is left out", () => {
    assert.equal(odataV4Time("lastModifiedDateTime", "gt", T), "lastModifiedDateTime gt 2025-03-10T14:22:31.117Z");
    assert.equal(exactTime("Modified", "gt", T), "Modified ge datetime'2025-03-10T14:22:31'");
    assert.equal(exactTime("Modified", "gt", T - 117), "Modified gt datetime'2025-03-10T14:22:31'");
    assert.equal(exactTime("Modified", "le", T), "Modified lt datetime'2025-03-10T14:22:31'");
    const sap = sapB1SplitTime("Europe/Amsterdam");
    assert.equal(sap("ignored", "gt", T), "(UpdateDate gt '2025-03-10' or (UpdateDate eq '2025-03-10' and UpdateTime ge '15:22'))");
    assert.equal(sap("ignored", "le", T), "(UpdateDate lt '2025-03-10' or (UpdateDate eq '2025-03-10' and UpdateTime lt '15:22'))");
    // summer time in Amsterdam is UTC+2
    assert.equal(sap("x", "ge", Date.parse("2025-07-01T22:30:00Z")), "(UpdateDate gt '2025-07-02' or (UpdateDate eq '2025-07-02' and UpdateTime ge '00:30'))");
    const ia = intacctTime("America/Los_Angeles");
    assert.equal(ia("WHENMODIFIED", "gt", T), "WHENMODIFIED >= '03/10/2025 07:22:31'");
    assert.equal(ia("WHENMODIFIED", "le", T - 117), "WHENMODIFIED <= '03/10/2025 07:22:31'");
    assert.equal(parseIntacctTime("03/10/2025 07:22:31", "America/Los_Angeles"), T - 117);
  });

  it("modified-time normalisers: zoned ISO, /Date(ms)/, split date + time, company time without offset", () => {
    assert.equal(zonedIso("2025-03-10T16:22:31.117+02:00"), "2025-03-10T14:22:31.117Z");
    assert.equal(zonedIso("2025-03-10T16:22:31"), undefined, "no offset: ambiguous, refused");
    assert.equal(msDate("/Date(1741946813590)/"), "2025-03-14T10:06:53.590Z");
    assert.equal(msDate("/Date(1741946813590+0100)/"), "2025-03-14T10:06:53.590Z");
    assert.equal(msDate("2025-03-14"), undefined);
    assert.equal(splitDateTime("2024-03-01", "09:14:22", "Europe/Amsterdam"), "2024-03-01T08:14:22.000Z");
    assert.equal(splitDateTime("2024-07-01T00:00:00Z", "0914", "Europe/Amsterdam"), "2024-07-01T07:14:00.000Z");
    assert.equal(splitDateTime("2024-07-01", "25:00", "UTC"), undefined);
    // integers lose their leading zero: 091422 arrives as 91422 (HHMMSS), 0914 as 914 (HHMM)
    assert.equal(splitDateTime("2024-07-01", 91422, "UTC"), "2024-07-01T09:14:22.000Z");
    assert.equal(splitDateTime("2024-07-01", 914, "UTC"), "2024-07-01T09:14:00.000Z");
    assert.equal(splitDateTime("2024-07-01", 171312, "UTC"), "2024-07-01T17:13:12.000Z");
    assert.equal(companyTime("03/01/2025 14:22:31", "America/New_York"), "2025-03-01T19:22:31.000Z");
    assert.equal(companyTime("2025-03-30T02:30:00", "Europe/Amsterdam"), "2025-03-30T01:30:00.000Z", "a time in the spring-forward gap is read with the offset before it");
    assert.equal(companyTime("13/01/2025", "UTC"), undefined);
  });

  it("page shapes: OData v4, v3 and v2; Intacct readMore until numremaining is 0", async () => {
    assert.deepEqual(odataPage({ value: [1], "@odata.nextLink": "Items?$skip=1" }), { rows: [1], next: "Items?$skip=1" });
    assert.deepEqual(odataPage({ value: [1], "odata.nextLink": "x" }), { rows: [1], next: "x" });
    assert.deepEqual(odataPage({ d: { results: [2], __next: "https://e/x?$skiptoken=1" } }), { rows: [2], next: "https://e/x?$skiptoken=1" });
    assert.throws(() => odataPage({ rows: [] }), /neither value/);
    const asked: string[] = [];
    const rows: number[] = [];
    const pages = [
      { rows: [1, 2], resultId: "r1", numRemaining: 3 },
      { rows: [3, 4], resultId: "r1", numRemaining: 1 },
      { rows: [5], resultId: "", numRemaining: 0 },
    ];
    for await (const r of readMorePages(
      async () => pages[0],
      async (id) => {
        asked.push(id);
        return pages[asked.length];
      },
    ))
      rows.push(r);
    assert.deepEqual(rows, [1, 2, 3, 4, 5]);
    assert.deepEqual(asked, ["r1", "r1"]);
  });

  it("the generic window builds its filter with the injected syntax and bounds it above", () => {
    const w = new WatermarkWindow({ overlapMs: 1000, modifiedField: "WHENMODIFIED", timeCondition: intacctTime("UTC"), and: "AND", userFilter: "STATE = 'Posted'" });
    const s = WatermarkWindow.initial("2025-03-10T14:22:31.000Z");
    assert.equal(w.filterFor(s, undefined, T), "(WHENMODIFIED > '03/10/2025 14:22:30' AND WHENMODIFIED < '03/10/2025 14:22:31') AND (STATE = 'Posted')");
    assert.throws(() => new WatermarkWindow({ overlapMs: 0 }), /modifiedField is required/);
  });
});

describe("kit: the generic poller stopping (Node-RED close)", () => {
  it("stop() does not wait for a read in flight: it is abandoned, nothing of it delivered or saved, the read sees the abort", async () => {
    let saves = 0;
    let delivered = 0;
    let signalSeen: AbortSignal | undefined;
    let readStarted!: () => void;
    const started = new Promise<void>((resolve) => (readStarted = resolve));
    let finishRead!: () => void;
    const slowPage = new Promise<void>((resolve) => (finishRead = resolve)); // an ERP page that has not answered yet
    const p = new Poller({
      window: new WatermarkWindow({ overlapMs: 0, modifiedField: "Modified" }),
      intervalMs: 1000,
      startFrom: "2025-03-10T00:00:00Z",
      load: () => Promise.resolve(undefined),
      save: () => {
        saves++;
        return Promise.resolve();
      },
      read: async function* (r) {
        signalSeen = r.signal;
        readStarted();
        await slowPage;
        yield { topic: "x", payload: {}, erp: { jobId: "j1", modifiedAt: "2025-03-10T01:00:00.000Z", id: "1" } } as unknown as ErpEventMsg;
      },
      deliver: (events) => {
        delivered += events.length;
      },
      onError: () => undefined,
    });
    const tick = p.tick();
    await started;
    const savesBefore = saves; // the initial state, saved before the read
    // Node-RED's close waits for stop(); it must resolve while the page is still outstanding
    let spins = 0;
    const outcome = await Promise.race([
      p.stop().then(() => "stopped"),
      (async () => {
        while (spins++ < 200) await new Promise((r) => setImmediate(r));
        return "still waiting for the read";
      })(),
    ]);
    assert.equal(outcome, "stopped");
    assert.equal(signalSeen?.aborted, true, "the reader was handed the abort signal");
    await tick;
    finishRead();
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(delivered, 0, "an abandoned read delivers nothing");
    assert.equal(saves, savesBefore, "and moves no watermark");
  });
});

describe("kit: the generic poller on a fake OData list", function () {
  this.timeout(20000);
  let sim: KitSim;
  let client: KitClient;
  beforeEach(async () => {
    sim = new KitSim();
    await sim.start();
    client = new KitClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret });
  });
  afterEach(async () => {
    await client.close();
    await sim.stop();
  });

  const at = (iso: string): number => Date.parse(iso);
  function trigger(state: Map<string, PollState>, now: () => number, extra: { sliceMs?: number; onSlice?: (r: PollSliceResult) => void } = {}) {
    const got: ErpEventMsg[] = [];
    const errors: unknown[] = [];
    const p = kitPollTrigger({ client, intervalMs: 60_000, overlapMs: 60_000, startFrom: "2025-03-10T00:00:00Z", state, emit: (e) => got.push(e), onError: (e) => errors.push(e), now, ...extra });
    return { p, got, errors };
  }
  const ids = (evs: ErpEventMsg[]): string[] => evs.map((e) => `${e.erp.id}@${(e.erp.modifiedAt ?? "").slice(11, 19)}`);

  it("overlap re-reads without repeats, ties are broken by id, late commits inside the overlap arrive, the upper bound holds", async () => {
    const state = new Map<string, PollState>();
    let now = at("2025-03-10T10:00:00Z");
    sim.items.push({ id: "A", name: "a", modifiedAt: "2025-03-10T09:00:00.000Z" }, { id: "B", name: "b", modifiedAt: "2025-03-10T09:30:00.000Z" });
    sim.items.push({ id: "F", name: "future", modifiedAt: "2025-03-10T10:00:05.000Z" }); // after the poll's start
    const t1 = trigger(state, () => now);
    await t1.p.tick();
    assert.deepEqual(ids(t1.got), ["A@09:00:00", "B@09:30:00"]);
    assert.equal(state.get("poll")?.watermark, "2025-03-10T09:30:00.000Z");
    assert.ok(sim.log.some((l) => l.kind === "api" && l.filter.includes("modifiedAt le 2025-03-10T10:00:00.000Z")));
    // a second record with B's instant (committed late), one late commit inside the overlap, a new change of A
    sim.items.push({ id: "C", name: "c", modifiedAt: "2025-03-10T09:30:00.000Z" }, { id: "L", name: "late", modifiedAt: "2025-03-10T09:29:30.000Z" });
    sim.items[0].modifiedAt = "2025-03-10T10:00:01.000Z";
    now = at("2025-03-10T10:01:00Z");
    // a restart: a new trigger on the same persisted state
    const t2 = trigger(state, () => now);
    await t2.p.tick();
    assert.deepEqual(ids(t2.got), ["L@09:29:30", "C@09:30:00", "A@10:00:01", "F@10:00:05"]);
    now = at("2025-03-10T10:02:00Z");
    await t2.p.tick();
    assert.equal(t2.got.length, 4, "nothing repeats on the next poll");
    assert.equal(t1.errors.length + t2.errors.length, 0);
    // pages of 2 rows: 1 request for the first poll, 3 (next links) for the 5 rows of the second, 1 for the third
    assert.equal(sim.log.filter((l) => l.kind === "api").length, 5);
  });

  it("catches up a long gap in time slices, saving after each, each event once and in order", async () => {
    const state = new Map<string, PollState>();
    for (let h = 1; h <= 5; h++) sim.items.push({ id: `H${h}`, name: `h${h}`, modifiedAt: `2025-03-10T0${h}:30:00.000Z` });
    const slices: PollSliceResult[] = [];
    const { p, got, errors } = trigger(state, () => at("2025-03-10T05:45:00Z"), { sliceMs: 3_600_000, onSlice: (r) => slices.push(r) });
    await p.tick();
    assert.deepEqual(ids(got), ["H1@01:30:00", "H2@02:30:00", "H3@03:30:00", "H4@04:30:00", "H5@05:30:00"]);
    assert.deepEqual(
      slices.map((s) => [new Date(s.untilMs).toISOString().slice(11, 16), s.fresh, s.last]),
      [
        ["01:00", 0, false],
        ["02:00", 1, false],
        ["03:00", 1, false],
        ["04:00", 1, false],
        ["05:00", 1, false],
        ["05:45", 1, true],
      ],
    );
    assert.equal(state.get("poll")?.scannedUntil, "2025-03-10T05:45:00.000Z");
    assert.equal(errors.length, 0);
  });

  it("runs on its timer, reports a failing poll through onError, and stops cleanly", async () => {
    const state = new Map<string, PollState>();
    sim.items.push({ id: "A", name: "a", modifiedAt: "2025-03-10T09:00:00.000Z" });
    const errors: unknown[] = [];
    let polls = 0;
    const got: ErpEventMsg[] = [];
    await new Promise<void>((resolve) => {
      const p = kitPollTrigger({
        client,
        intervalMs: 5,
        overlapMs: 0,
        startFrom: "2025-03-10T00:00:00Z",
        state,
        emit: (e) => got.push(e),
        onError: (e) => errors.push(e),
        onSlice: () => {
          if (++polls === 2) void p.stop().then(resolve);
        },
      });
      sim.failNextList = 400; // the first tick fails; the next one succeeds
      p.start();
    });
    assert.equal(errors.length, 1);
    assert.equal(got.length, 1);
  });
});
