/**
 * AuditTrail (nodes/lib/audit.ts) over a MapBackend: send → statuses, duplicates and late statuses,
 * failed listing for replay, masking, bounds (maxRecords, ttl, history), and reload from the backend.
 */
import assert from "node:assert/strict";
import { AuditTrail, MAX_HISTORY, isFailedRecord, shortSid, trailPrefix } from "../../nodes/lib/audit";
import { MapBackend } from "../../nodes/lib/store";
import { ValidationError } from "../../nodes/lib/errors";
import { maskRecipient } from "../../nodes/lib/phone";

const ERP = { system: "acumatica", tenant: "Company", entity: "Bill", id: "Bill/000123", number: "000123", action: "updated", jobId: "j1", modifiedAt: "2025-01-01T00:00:00Z" };
const SID = "SM0123456789abcdef0123456789abcdef";

function clock(start = Date.parse("2025-03-01T10:00:00Z")): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe("AuditTrail", () => {
  it("records a send with a masked recipient and the ERP reference only", async () => {
    const backend = new MapBackend();
    const trail = new AuditTrail(backend);
    const r = await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", sid: SID, status: "queued" });
    assert.equal(r.recordId, SID);
    assert.equal(r.to, maskRecipient("+14155550132"));
    assert.match(r.to, /^\+1•+32$/);
    assert.deepEqual(r.erp, { system: "acumatica", tenant: "Company", entity: "Bill", id: "Bill/000123", number: "000123" });
    assert.equal(r.status, "queued");
    assert.equal(r.history.length, 1);
    assert.match(r.createdAt, /^\d{4}-\d{2}-\d{2}T/);
    // The raw number is nowhere in the backend.
    assert.ok(!JSON.stringify([...backend.map.values()]).includes("5550132"));
    // Keys are hashed with the trail prefix.
    for (const k of backend.map.keys()) assert.match(k, new RegExp(`^${trailPrefix("default")}_[0-9a-f]{40}$`));
  });

  it("keeps an already masked recipient as it is", async () => {
    const trail = new AuditTrail(new MapBackend());
    const r = await trail.recordSend({ jobId: "j1", to: "+1•••••••32", status: "failed" });
    assert.equal(r.to, "+1•••••••32");
    const e = await trail.recordSend({ jobId: "j2", to: "ap@northwind.example", channel: "email", status: "queued" });
    assert.equal(e.to, "a•@northwind.example");
  });

  it("applies statuses by sid, ignores duplicates and a late sent after delivered", async () => {
    const trail = new AuditTrail(new MapBackend());
    await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", sid: SID, status: "queued" });
    const sent = await trail.applyStatus({ sid: SID, status: "sent" });
    assert.equal(sent.changed, true);
    assert.equal(sent.record?.status, "sent");
    const delivered = await trail.applyStatus({ sid: SID, status: "delivered", at: "2025-03-01T10:00:05+01:00" });
    assert.equal(delivered.changed, true);
    assert.equal(delivered.record?.history.at(-1)?.at, "2025-03-01T09:00:05.000Z");
    const dup = await trail.applyStatus({ sid: SID, status: "delivered" });
    assert.equal(dup.changed, false);
    const late = await trail.applyStatus({ sid: SID, status: "sent" });
    assert.equal(late.changed, false);
    assert.equal(late.record?.status, "delivered");
    const stored = await trail.findBySid(SID);
    assert.deepEqual(stored?.history.map((h) => h.status), ["queued", "sent", "delivered"]);
    const read = await trail.applyStatus({ sid: SID, status: "read" });
    assert.equal(read.changed, true);
  });

  it("orders call statuses as calls (initiated → ringing → in-progress → completed), ignoring a late ringing", async () => {
    const trail = new AuditTrail(new MapBackend());
    const CA = "CA" + "b".repeat(32);
    await trail.recordSend({ jobId: "jc", channel: "voice", to: "+14155550132", sid: CA, status: "queued" });
    for (const st of ["initiated", "ringing", "in-progress", "completed", "ringing"]) await trail.applyStatus({ sid: CA, status: st });
    const r = await trail.findBySid(CA);
    assert.equal(r?.status, "completed");
    assert.deepEqual(r?.history.map((h) => h.status), ["queued", "initiated", "ringing", "in-progress", "completed"]);
  });

  it("returns {record: undefined, changed: false} for an unknown sid or jobId", async () => {
    const trail = new AuditTrail(new MapBackend());
    assert.deepEqual(await trail.applyStatus({ sid: "SMnope", status: "sent" }), { record: undefined, changed: false });
    assert.deepEqual(await trail.applyStatus({ jobId: "nope", status: "sent" }), { record: undefined, changed: false });
    await assert.rejects(trail.applyStatus({ status: "sent" }), ValidationError);
    await assert.rejects(trail.recordSend({ status: "queued" }), ValidationError);
  });

  it("applies a status by jobId to the most recent record of the job", async () => {
    const trail = new AuditTrail(new MapBackend());
    const a = await trail.recordSend({ jobId: "j1", status: "failed", error: { code: "timeout", message: "no answer" } });
    const b = await trail.recordSend({ jobId: "j1", status: "queued" });
    assert.equal(a.recordId, "j1/1");
    assert.equal(b.recordId, "j1/2");
    const res = await trail.applyStatus({ jobId: "j1", status: "sent" });
    assert.equal(res.record?.recordId, "j1/2");
    const all = await trail.findByJobId("j1");
    assert.deepEqual(all.map((r) => r.recordId), ["j1/1", "j1/2"]);
  });

  it("records a failure code from a status callback and lists failed sends with jobId and erp", async () => {
    const trail = new AuditTrail(new MapBackend());
    await trail.recordSend({ jobId: "j1", erp: ERP, channel: "sms", to: "+14155550132", sid: SID, status: "queued" });
    await trail.recordSend({ jobId: "j2", erp: { ...ERP, id: "Bill/000124" }, channel: "sms", to: "+14155550133", sid: "SM2", status: "queued" });
    await trail.recordSend({ jobId: "j3", erp: ERP, channel: "sms", to: "bad", status: "failed", error: { code: "invalid_phone", message: "not a number" } });
    const und = await trail.applyStatus({ sid: SID, status: "undelivered", errorCode: 30003 });
    assert.deepEqual(und.record?.error, { code: "twilio_30003", message: "Twilio error 30003" });
    assert.equal(und.record?.history.at(-1)?.errorCode, 30003);
    await trail.applyStatus({ sid: "SM2", status: "delivered" });
    const failed = await trail.listFailed();
    assert.deepEqual(failed.map((r) => r.jobId).sort(), ["j1", "j3"]);
    for (const r of failed) {
      assert.ok(isFailedRecord(r));
      assert.equal(r.erp?.system, "acumatica");
    }
  });

  it("completes a record created from a callback when the send is recorded later", async () => {
    const trail = new AuditTrail(new MapBackend());
    await trail.recordSend({ sid: SID, status: "sent", to: "+14155550132", channel: "sms" });
    const r = await trail.recordSend({ sid: SID, jobId: "j1", erp: ERP, status: "queued", channel: "sms", to: "+14155550132" });
    assert.equal(r.status, "sent");
    assert.equal(r.jobId, "j1");
    assert.equal(r.erp?.id, "Bill/000123");
    assert.equal((await trail.findByJobId("j1")).length, 1);
  });

  it("hands out copies: editing a returned record does not edit the trail", async () => {
    const trail = new AuditTrail(new MapBackend());
    const r = await trail.recordSend({ jobId: "j1", sid: SID, status: "queued", erp: { system: "acumatica", id: "Bill/000123" } });
    r.status = "delivered";
    r.history[0].status = "edited";
    r.history.push({ status: "x", at: "" });
    if (r.erp) r.erp.id = "edited";
    const again = await trail.get(SID);
    assert.equal(again?.status, "queued");
    assert.equal(again?.history.length, 1);
    assert.equal(again?.history[0].status, "queued", "history entries are copied too");
    assert.equal(again?.erp?.id, "Bill/000123", "the erp reference is copied too");
    if (again?.erp) again.erp.id = "edited again";
    assert.equal((await trail.findBySid(SID))?.erp?.id, "Bill/000123");
  });

  it("record (no copy handed out) writes what recordSend writes; hasSid says whether a sid has a record", async () => {
    const trail = new AuditTrail(new MapBackend());
    assert.equal(await trail.hasSid(SID), false);
    assert.equal(await trail.record({ jobId: "j1", to: "+14155550132", channel: "sms", status: "pending" }), undefined);
    await trail.record({ jobId: "j1", to: "+14155550132", channel: "sms", sid: SID, status: "queued" });
    assert.equal(await trail.hasSid(SID), true);
    const all = await trail.findByJobId("j1");
    assert.equal(all.length, 1, "the second record completed the pending one");
    assert.deepEqual(all[0].history.map((h) => h.status), ["pending", "queued"]);
    assert.equal(all[0].sid, SID);
    await assert.rejects(trail.record({ jobId: "j1", status: "" }), /needs a status/);
  });

  it("bounds history to the last MAX_HISTORY entries", async () => {
    // Message statuses only advance a few times, so seed a stored record whose history is already full.
    const backend = new MapBackend();
    const t1 = new AuditTrail(backend);
    await t1.recordSend({ jobId: "j", sid: "SMx", status: "queued" });
    const key = [...backend.map.keys()][0];
    const entry = backend.map.get(key) as { v: { history: { status: string; at: string }[] } };
    entry.v.history = Array.from({ length: MAX_HISTORY }, (_, i) => ({ status: "queued", at: `2025-01-01T00:00:${String(i).padStart(2, "0")}Z` }));
    const t2 = new AuditTrail(backend);
    const res = await t2.applyStatus({ sid: "SMx", status: "sent" });
    assert.equal(res.record?.history.length, MAX_HISTORY);
    assert.equal(res.record?.history.at(-1)?.status, "sent");
    assert.equal(res.record?.history[0].at, "2025-01-01T00:00:01Z");
  });

  it("evicts the oldest records beyond maxRecords and drops their index entries", async () => {
    const trail = new AuditTrail(new MapBackend(), { maxRecords: 3 });
    for (let i = 1; i <= 5; i++) await trail.recordSend({ jobId: `j${i}`, sid: `SM${i}`, status: "queued" });
    assert.equal(trail.size, 3);
    assert.equal(await trail.findBySid("SM1"), undefined);
    assert.deepEqual(await trail.findByJobId("j2"), []);
    assert.equal((await trail.findBySid("SM5"))?.jobId, "j5");
    assert.deepEqual(await trail.applyStatus({ sid: "SM1", status: "sent" }), { record: undefined, changed: false });
  });

  it("keeps its sid and jobId indexes at the size of the trail while it evicts (no growth, no rescan)", async () => {
    const trail = new AuditTrail(new MapBackend(), { maxRecords: 3 });
    const idx = trail as unknown as { bySid: Map<string, string>; byJob: Map<string, string[]> };
    for (let i = 1; i <= 200; i++) {
      await trail.recordSend({ jobId: `j${i % 50}`, sid: `SM${i}`, status: "queued" });
      assert.ok(idx.bySid.size <= 3 && idx.byJob.size <= 3, `after ${i} sends: ${idx.bySid.size} sids, ${idx.byJob.size} jobs indexed`);
    }
    assert.deepEqual([...idx.bySid.keys()].sort(), ["SM198", "SM199", "SM200"]);
    assert.deepEqual((await trail.findByJobId("j0")).map((r) => r.sid), ["SM200"], "j0's earlier records (SM50, SM100, SM150) were evicted");
  });

  it("expires records after ttlMs", async () => {
    const c = clock();
    const trail = new AuditTrail(new MapBackend(), { ttlMs: 1000, now: c.now });
    await trail.recordSend({ jobId: "j1", sid: SID, status: "queued" });
    c.advance(999);
    assert.ok(await trail.findBySid(SID));
    c.advance(2);
    assert.equal(await trail.findBySid(SID), undefined);
    assert.deepEqual(await trail.listFailed(), []);
  });

  it("rebuilds its sid and jobId indexes from the backend at load", async () => {
    const backend = new MapBackend();
    const first = new AuditTrail(backend);
    await first.recordSend({ jobId: "j1", erp: ERP, sid: SID, status: "queued", to: "+14155550132" });
    await first.recordSend({ jobId: "j1", status: "failed", error: { code: "timeout", message: "x" } });
    await first.applyStatus({ sid: SID, status: "sent" });

    const reloaded = new AuditTrail(backend);
    await reloaded.ready;
    assert.equal(reloaded.size, 2);
    assert.equal((await reloaded.findBySid(SID))?.status, "sent");
    // recordId of a send without sid = jobId + "/" + its attempt number within the job.
    assert.deepEqual((await reloaded.findByJobId("j1")).map((r) => r.recordId), [SID, "j1/2"]);
    const res = await reloaded.applyStatus({ sid: SID, status: "delivered" });
    assert.equal(res.changed, true);
    // A new record of the same job does not reuse an existing recordId.
    const next = await reloaded.recordSend({ jobId: "j1", status: "failed" });
    assert.equal(next.recordId, "j1/3");
  });

  it("separates trails by name in one backend", async () => {
    const backend = new MapBackend();
    const a = new AuditTrail(backend, { name: "a" });
    const b = new AuditTrail(backend, { name: "a_b" });
    await a.recordSend({ jobId: "j1", sid: SID, status: "queued" });
    await b.ready;
    assert.equal(await b.findBySid(SID), undefined);
    const a2 = new AuditTrail(backend, { name: "a" });
    assert.ok(await a2.findBySid(SID));
    assert.throws(() => new AuditTrail(backend, { name: "bad.name" }), ValidationError);
  });

  it("serialises concurrent status updates for one sid", async () => {
    const trail = new AuditTrail(new MapBackend());
    await trail.recordSend({ jobId: "j1", sid: SID, status: "queued" });
    const results = await Promise.all(["sent", "sending", "delivered", "sent", "delivered"].map((status) => trail.applyStatus({ sid: SID, status })));
    assert.equal(results.filter((r) => r.changed).length, 2); // sent, delivered (sending after sent is late)
    const r = await trail.findBySid(SID);
    assert.deepEqual(r?.history.map((h) => h.status), ["queued", "sent", "delivered"]);
  });

  it("shortens sids for display", () => {
    assert.equal(shortSid(SID), "SM…cdef");
    assert.equal(shortSid("SM12"), "SM12");
  });
});
