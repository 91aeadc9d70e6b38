/**
 * The delivery-guarantee core without Node-RED: the push journal (lib/journal.ts), the send ledger and the
 * reconciliation of unknown outcomes (lib/twilio/ledger.ts), and the audit trail's records written before the
 * send (lib/audit.ts), each over a MapBackend that a new instance re-reads, as a restart does.
 */
import assert from "node:assert/strict";
import { AuditTrail } from "../../nodes/lib/audit";
import type { ErpEventMsg } from "../../nodes/lib/envelope";
import { PushJournal, jobSettled, onJobSettled } from "../../nodes/lib/journal";
import { MapBackend } from "../../nodes/lib/store";
import { SendLedger, ledgerKey, reconcileSend } from "../../nodes/lib/twilio/ledger";

function ev(jobId: string, id = "Bill/000123"): ErpEventMsg {
  return { topic: "acumatica/Bill/updated", payload: { ReferenceNbr: id.split("/")[1] }, erp: { system: "acumatica", tenant: "T", entity: "Bill", id, action: "updated", jobId } };
}

/** A fake clock whose sleep advances it. */
function clock(start = 1_000_000): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = start;
  const slept: number[] = [];
  return { now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)), slept };
}

describe("push journal", () => {
  it("commits a notification's events before acceptance and refuses the same key again", async () => {
    const backend = new MapBackend();
    const j = new PushJournal(backend);
    assert.equal(await j.accept("Q|1", [ev("ja"), ev("jb", "Bill/000124")]), true);
    assert.equal(backend.map.size, 1, "committed in the backend");
    assert.equal(await j.accept("Q|1", [ev("ja")]), false);
    assert.equal(j.pendingCount, 2);
  });

  it("a write that fails is not acknowledged, and the sender's retry is journaled rather than dropped as a redelivery", async () => {
    const backend = new MapBackend();
    const j = new PushJournal(backend);
    await j.ready;
    const set = backend.set.bind(backend);
    let failNext = true;
    backend.set = async (k, v, ttl) => {
      if (failNext && v !== undefined) {
        failNext = false;
        throw new Error("disk full");
      }
      return set(k, v, ttl);
    };
    await assert.rejects(j.accept("Q|1", [ev("ja")]), /disk full/);
    assert.equal(await j.accept("Q|1", [ev("ja")]), true);
    assert.equal((await new PushJournal(backend).replay()).events.length, 1);
  });

  it("journals each event as its JSON form: plain data copied as is, Dates, undefined and toJSON as JSON has them", async () => {
    const backend = new MapBackend();
    const j = new PushJournal(backend);
    const plainEv = { ...ev("ja"), _msgid: "m1", payload: { ReferenceNbr: "000123", Lines: [{ Qty: 2, Note: null }, { Qty: 0.5 }], Skip: undefined } } as ErpEventMsg;
    const odd = { ...ev("jb", "Bill/000124"), payload: { At: new Date(Date.UTC(2026, 0, 2)), List: [1, undefined], Big: Infinity, Own: { toJSON: () => "own" }, Fn: () => 1 } } as unknown as ErpEventMsg;
    await j.accept("Q|1", [plainEv, odd]);
    (plainEv.payload as { Lines: { Qty: number }[] }).Lines[0].Qty = 99; // a later change of the emitted message
    const { events } = await new PushJournal(backend).replay();
    assert.deepEqual(events[0].payload, { ReferenceNbr: "000123", Lines: [{ Qty: 2, Note: null }, { Qty: 0.5 }] });
    assert.equal("_msgid" in events[0], false);
    assert.deepEqual(events[1].payload, { At: "2026-01-02T00:00:00.000Z", List: [1, null], Big: null, Own: "own" });
  });

  it("a notification whose events are all settled keeps only its key and acceptance time; its redelivery is still refused", async () => {
    const backend = new MapBackend();
    const c = clock();
    const j = new PushJournal(backend, { now: c.now });
    await j.accept("Q|1", [ev("ja"), ev("jb", "Bill/000124")]);
    await j.settle("ja");
    const [row] = [...backend.map.values()] as { v: unknown }[];
    assert.equal(typeof row.v, "object", "one event still pending: the entry keeps it");
    await j.settle("jb");
    assert.deepEqual([...backend.map.values()].map((r) => (r as { v: unknown }).v), [c.now()], "the row is the acceptance time only");
    assert.equal(await j.accept("Q|1", [ev("ja")]), false);
    const restarted = new PushJournal(backend, { now: c.now });
    assert.equal(await restarted.accept("Q|1", [ev("ja")]), false, "refused after a restart too");
    assert.deepEqual((await restarted.replay()).events, []);
  });

  it("replays after a restart only the events not settled, marked erp.replay, and counts replays", async () => {
    const backend = new MapBackend();
    const j = new PushJournal(backend);
    await j.accept("Q|1", [ev("ja"), ev("jb", "Bill/000124")]);
    await j.accept("Q|2", [ev("jc", "Bill/000125")]);
    await j.settle("ja");
    await j.settle("jc");
    const restarted = new PushJournal(backend);
    const { events, givenUp } = await restarted.replay();
    assert.deepEqual(events.map((e) => e.erp.jobId), ["jb"]);
    assert.equal(events[0].erp.replay, true);
    assert.equal(givenUp, 0);
    // a settled notification still refuses its redelivery
    assert.equal(await restarted.accept("Q|2", [ev("jc", "Bill/000125")]), false);
  });

  it("finishes an event that is never settled after maxReplays restarts", async () => {
    const backend = new MapBackend();
    await new PushJournal(backend, { maxReplays: 2 }).accept("Q|1", [ev("ja")]);
    assert.equal((await new PushJournal(backend, { maxReplays: 2 }).replay()).events.length, 1);
    assert.equal((await new PushJournal(backend, { maxReplays: 2 }).replay()).events.length, 1);
    const third = await new PushJournal(backend, { maxReplays: 2 }).replay();
    assert.deepEqual([third.events.length, third.givenUp], [0, 1]);
    assert.equal((await new PushJournal(backend, { maxReplays: 2 }).replay()).givenUp, 0);
  });

  it("is bounded by maxEntries and ttl", async () => {
    const c = clock();
    const backend = new MapBackend();
    const j = new PushJournal(backend, { maxEntries: 3, ttlMs: 1000, now: c.now });
    for (let i = 0; i < 5; i++) await j.accept(`Q|${i}`, [ev(`j${i}`)]);
    assert.equal(backend.map.size, 3);
    await c.sleep(1001);
    assert.equal((await new PushJournal(backend, { now: c.now }).replay()).events.length, 0);
  });

  it("jobSettled reaches every subscriber", () => {
    const seen: string[] = [];
    const off = onJobSettled((id) => seen.push(id));
    jobSettled("jx");
    off();
    jobSettled("jy");
    assert.deepEqual(seen, ["jx"]);
  });
});

describe("send ledger", () => {
  it("one claim wins a key; a settled key is 'sent', an unsettled one 'unknown' after a restart", async () => {
    const backend = new MapBackend();
    const l = new SendLedger(backend);
    const k1 = ledgerKey("j1", "+14155550132", "sms");
    const k2 = ledgerKey("j2", "+14155550132", "sms");
    const [a, b] = await Promise.all([l.claim(k1), l.claim(k1)]);
    assert.deepEqual([a.outcome, b.outcome].sort(), ["claimed", "unknown"]);
    await l.settle(k1, "SM1", "queued");
    await l.claim(k2);
    const after = new SendLedger(backend);
    const s1 = await after.claim(k1);
    assert.equal(s1.outcome, "sent");
    assert.equal(s1.entry.sid, "SM1");
    assert.equal((await after.claim(k2)).outcome, "unknown");
    await after.release(k2);
    assert.equal((await after.claim(k2)).outcome, "claimed");
    assert.ok(![...backend.map.keys()].some((k) => k.includes("4155550132")), "no phone number in a key");
  });
});

describe("reconcileSend", () => {
  it("keeps looking up with back-off until the window is over, and finds a message that appears late", async () => {
    const c = clock();
    let calls = 0;
    const r = await reconcileSend(async () => (++calls === 4 ? { sid: "SM1", status: "queued" } : null), { since: c.now(), windowMs: 30000, now: c.now, sleep: c.sleep });
    assert.equal(r.outcome, "found");
    assert.equal(r.lookups, 4);
    assert.deepEqual(c.slept, [500, 1000, 2000]);
  });

  it("proves absence only with a lookup made after the window", async () => {
    const c = clock();
    const start = c.now();
    let lastAt = 0;
    const r = await reconcileSend(async () => ((lastAt = c.now()), null), { since: start, windowMs: 30000, now: c.now, sleep: c.sleep });
    assert.equal(r.outcome, "absent");
    assert.ok(lastAt >= start + 30000, `last lookup at +${lastAt - start} ms`);
  });

  it("a failing lookup is not proof: retried, and the final one's error is thrown", async () => {
    const c = clock();
    await assert.rejects(
      reconcileSend(async () => {
        throw new Error("lookup down");
      }, { since: c.now(), windowMs: 2000, now: c.now, sleep: c.sleep }),
      /lookup down/,
    );
  });
});

describe("audit records written before the send", () => {
  const ERP = { system: "acumatica", tenant: "T", entity: "Bill", id: "Bill/000123", number: "000123", jobId: "j1" };

  it("pending → outcome_unknown → the sid and Twilio status, on one record with the bill link", async () => {
    const trail = new AuditTrail(new MapBackend());
    const p = await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", status: "pending" });
    const u = await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", status: "outcome_unknown" });
    assert.equal(u.recordId, p.recordId);
    assert.equal(u.status, "outcome_unknown");
    const s = await trail.recordSend({ jobId: "j1", channel: "sms", to: "+14155550132", sid: "SM1", status: "queued" });
    assert.equal(s.recordId, p.recordId);
    assert.equal(s.sid, "SM1");
    assert.deepEqual(s.history.map((h) => h.status), ["pending", "outcome_unknown", "queued"]);
    assert.equal((await trail.findBySid("SM1"))?.erp?.id, "Bill/000123");
    // a late outcome_unknown never replaces a Twilio status
    const late = await trail.recordSend({ jobId: "j1", channel: "sms", to: "+14155550132", sid: "SM1", status: "outcome_unknown" });
    assert.equal(late.status, "queued");
  });

  it("a status callback reaching a record without sid yet (after a restart) lands on it", async () => {
    const backend = new MapBackend();
    await new AuditTrail(backend).recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", status: "pending" });
    const trail = new AuditTrail(backend);
    const r = await trail.recordSend({ jobId: "j1", channel: "sms", to: "+14155550132", sid: "SM9", status: "delivered" });
    assert.equal(r.erp?.id, "Bill/000123");
    assert.equal(trail.size, 1);
  });

  it("the same failure recorded by the sender and by a Catch → mlc-audit is one record; another recipient is another", async () => {
    const trail = new AuditTrail(new MapBackend());
    await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", status: "pending" });
    await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", status: "failed", error: { code: "twilio_21211", message: "bad To" } });
    await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", status: "failed", error: { code: "twilio_21211", message: "bad To" } });
    await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550133", status: "failed", error: { code: "twilio_21211", message: "bad To" } });
    assert.equal(trail.size, 2);
  });
});

/** A MapBackend whose writes are committed only when the test says so (a disk commit in flight). */
class GatedBackend extends MapBackend {
  readonly waiting: { key: string; commit: () => void; fail: (err: Error) => void }[] = [];
  gate = false;
  override set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    if (!this.gate) return super.set(key, value, ttlMs);
    const applied = super.set(key, value, ttlMs);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ key, commit: () => void applied.then(resolve, reject), fail: reject });
    });
  }
}

/** Let queued promise callbacks run. */
const turns = async (n = 20): Promise<void> => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe("writes of concurrent events share commits (no process-wide queue behind each commit)", () => {
  it("audit trail: a second send is decided and its write issued while the first is still committing; each resolves after its own commit", async () => {
    const backend = new GatedBackend();
    const trail = new AuditTrail(backend);
    await trail.ready;
    backend.gate = true;
    let doneA = false;
    let doneB = false;
    const a = trail.recordSend({ jobId: "ja", channel: "sms", to: "+14155550132", status: "pending" }).then(() => (doneA = true));
    const b = trail.recordSend({ jobId: "jb", channel: "sms", to: "+14155550133", status: "pending" }).then(() => (doneB = true));
    await turns();
    assert.equal(backend.waiting.length, 2, "both writes issued before either commit finished (was 1: the trail waited for each commit)");
    assert.equal(doneA || doneB, false, "neither send is acknowledged before its commit");
    backend.waiting[1].commit();
    await b;
    assert.equal(doneA, false, "A still waits for its own commit");
    backend.waiting[0].commit();
    await a;
    assert.equal((await trail.findByJobId("jb")).length, 1);
  });

  it("send ledger: claimIssued decides at once; nothing may go before `committed`, which carries the write's failure", async () => {
    const backend = new GatedBackend();
    const l = new SendLedger(backend);
    await l.ready;
    backend.gate = true;
    const k = ledgerKey("j1", "+14155550132", "sms");
    const { result, committed } = await l.claimIssued(k);
    assert.equal(result.outcome, "claimed");
    assert.equal((await l.claimIssued(k)).result.outcome, "unknown", "a second attempt sees the claim before its commit");
    let settled = false;
    void committed.then(() => (settled = true));
    await turns();
    assert.equal(settled, false);
    backend.waiting[0].fail(new Error("disk full"));
    await assert.rejects(committed, /disk full/);
  });

  it("push journal: acceptIssued decides at once; a failed commit forgets the key and its events, so the retry is journaled", async () => {
    const backend = new GatedBackend();
    const j = new PushJournal(backend);
    await j.ready;
    backend.gate = true;
    const r = await j.acceptIssued("Q|1", [ev("ja")]);
    assert.equal(r.first, true);
    assert.equal(j.has("ja"), true, "its event may be emitted (and settled) before the commit");
    assert.equal((await j.acceptIssued("Q|1", [ev("ja")])).first, false, "a redelivery meanwhile is recognised");
    backend.gate = false; // the disk recovers for what follows (the journal's delete of the failed key)
    backend.waiting[0].fail(new Error("disk full"));
    await assert.rejects(r.committed, /disk full/);
    assert.equal(j.has("ja"), false);
    assert.equal(await j.accept("Q|1", [ev("ja")]), true, "the sender's retry is journaled");
  });

  it("push journal: settles of many events are issued at once (not one commit after another)", async () => {
    const backend = new MapBackend();
    const j = new PushJournal(backend);
    await j.accept("Q|1", [ev("ja"), ev("jb", "Bill/000124"), ev("jc", "Bill/000125")]);
    const gated = new GatedBackend();
    // the same rows, behind a gate: settle must issue all three writes before any commit finishes
    for (const [k, v] of backend.map) gated.map.set(k, v);
    const g = new PushJournal(gated);
    await g.ready;
    gated.gate = true;
    const all = Promise.all(["ja", "jb", "jc"].map((id) => g.settle(id)));
    await turns();
    assert.equal(gated.waiting.length, 3, "three writes in flight together (was 1: each settle waited for the previous commit)");
    for (const w of gated.waiting) w.commit();
    await all;
    assert.equal((await new PushJournal(gated).replay()).events.length, 0, "all three settled");
  });
});

describe("send ledger memory", () => {
  it("the set of known sids follows the entries: evicted entries' sids are forgotten", async () => {
    const l = new SendLedger(new MapBackend(), { maxEntries: 100 });
    for (let i = 0; i < 1000; i++) {
      const k = ledgerKey(`j${i}`, "+14155550132", "sms");
      await l.claim(k);
      await l.settle(k, `SM${i}`, "queued");
    }
    await new Promise((r) => setImmediate(r)); // the last prune (in-memory) finishes
    assert.equal(l.size, 100);
    assert.equal(l.knows("SM999"), true);
    assert.equal(l.knows("SM0"), false, "an evicted entry's sid is forgotten (was: kept for ever)");
    let known = 0;
    for (let i = 0; i < 1000; i++) if (l.knows(`SM${i}`)) known++;
    assert.ok(known <= 100 + 64 + 1, `at most the live entries and the slack are known, got ${known}`);
  });

  it("each eviction forgets its sid at once: the set never outgrows the entries, so no periodic rescan of them", async () => {
    const l = new SendLedger(new MapBackend(), { maxEntries: 3 });
    let most = 0;
    for (let i = 0; i < 200; i++) {
      const k = ledgerKey(`j${i}`, "+14155550132", "sms");
      await l.claim(k);
      await l.settle(k, `SM${i}`, "queued");
      let known = 0;
      for (let s = 0; s <= i; s++) if (l.knows(`SM${s}`)) known++;
      most = Math.max(most, known);
    }
    assert.equal(most, 3, "known sids = live entries after every send (was: up to the entries + 64, then a scan of them all)");
    assert.deepEqual([197, 198, 199, 196].map((i) => l.knows(`SM${i}`)), [true, true, true, false]);
  });
});
