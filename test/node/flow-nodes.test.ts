/**
 * mlc-dedupe and mlc-audit in a real Node-RED runtime (node-red-node-test-helper via
 * test/harness/red-testbed.ts), loading the COMPILED node set (dist/nodes/flow.js): outputs, Catch on errors, refused store names, status, TTL expiry,
 * audit record/status/get/failed and a trail shared by two audit nodes on different tabs.
 *
 * The helper does not open context plugins (it never calls the runtime's context load), so every
 * store operation lands in the in-memory default; the stores declared in settings still decide
 * whether a name is accepted and whether it counts as memory-only.
 */
import assert from "node:assert/strict";
import type { TestFlowNode, TestNode } from "node-red-node-test-helper";
import { shown } from "../harness/catalog";
import { Testbed, settle, until } from "../harness/red-testbed";
import { maskRecipient } from "../../nodes/lib/phone";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const flowSet = require("../../nodes/flow") as (RED: unknown) => void;

type Msg = Record<string, unknown>;

const bed = new Testbed([flowSet], {
  contextStorage: {
    default: { module: "memory" },
    file: { module: "localfilesystem" },
    // This package's store: the helper never opens it, but it decides that the name counts as durable.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    durable: { module: require("../../nodes/store") },
  },
});

const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };
const TAB2: TestFlowNode = { id: "t2", type: "tab", label: "callbacks" };

function erp(jobId: string, extra: Msg = {}): Msg {
  return { system: "acumatica", tenant: "Company", entity: "Bill", id: "Bill/000123", number: "000123", action: "updated", jobId, ...extra };
}

/**
 * Wait until `count` messages arrived in total at helper nodes `ids` after this call (or fail after `ms`),
 * then let any unexpected extra message arrive; resolves the messages each node received meanwhile.
 */
async function collect(ids: string[], count: number, ms = 2000): Promise<Record<string, Msg[]>> {
  const from = Object.fromEntries(ids.map((id) => [id, bed.received[id].length]));
  const got = (): Record<string, Msg[]> => Object.fromEntries(ids.map((id) => [id, bed.received[id].slice(from[id])]));
  const total = (): number => Object.values(got()).reduce((n, list) => n + list.length, 0);
  const counts = (): string => `${total()}/${count} messages ${JSON.stringify(Object.fromEntries(Object.entries(got()).map(([id, list]) => [id, list.length])))}`;
  await until(() => total() >= count, counts, ms);
  await settle(30);
  return got();
}

/** Send one message and wait for the next message on helper node `out`. */
async function roundTrip(input: string, out: string, msg: Msg): Promise<Msg> {
  const p = collect([out], 1);
  bed.node(input).receive(msg);
  return (await p)[out][0];
}

/** Raw status objects a node has set, oldest first (the helper spies on Node.prototype.status). */
function rawStatuses(node: TestNode): { fill?: string; shape?: string; text?: string }[] {
  return node.status
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args[0] as { fill?: string; shape?: string; text?: string });
}

/** Status objects a node has set, oldest first, with the text the editor shows (catalog keys translated). */
function statuses(node: TestNode): { fill?: string; shape?: string; text?: string }[] {
  return rawStatuses(node).map((s) => (s.text === undefined ? s : { ...s, text: shown("flow", s.text) }));
}

function errorsOf(node: TestNode): unknown[] {
  return node.error
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args[0]);
}

describe("flow node set (mlc-dedupe, mlc-audit) in Node-RED", function () {
  this.timeout(10000);

  bed.hooks();

  describe("mlc-dedupe", () => {
    function dedupeFlow(props: Msg = {}): TestFlowNode[] {
      return [
        TAB,
        { id: "d1", type: "mlc-dedupe", z: "t1", name: "dedupe", key: "erp.jobId", keyType: "msg", ttl: 7, ttlUnits: "d", maxEntries: 100, store: "", ...props, wires: [["first"], ["dup"]] },
        { id: "first", type: "helper", z: "t1" },
        { id: "dup", type: "helper", z: "t1" },
        { id: "c1", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "t1" },
      ];
    }

    it("sends the first message of a jobId to output 1 and repeats to output 2", async () => {
      await bed.load(dedupeFlow());
      const done = collect(["first", "dup"], 3);
      const d1 = bed.node("d1");
      for (let i = 0; i < 3; i++) d1.receive({ payload: i, erp: erp("jA") });
      const got = await done;
      assert.equal(got.first.length, 1);
      assert.equal(got.dup.length, 2);
      const first = got.first[0].dedupe as { keyHash: string; duplicate: boolean; firstSeen: string };
      assert.equal(first.duplicate, false);
      assert.match(first.keyHash, /^dd_[0-9a-f]{40}$/);
      assert.ok(!JSON.stringify(first).includes("jA"));
      for (const m of got.dup) {
        const d = m.dedupe as { keyHash: string; duplicate: boolean; firstSeen: string };
        assert.equal(d.duplicate, true);
        assert.equal(d.keyHash, first.keyHash);
        assert.equal(d.firstSeen, first.firstSeen);
      }
      // A different jobId is new again.
      const next = await roundTrip("d1", "first", { erp: erp("jB") });
      assert.equal((next.dedupe as { duplicate: boolean }).duplicate, false);
    });

    it("lets a journal replay (msg.erp.replay) of a seen key through, marked as a replay; a plain repeat stays a duplicate", async () => {
      await bed.load(dedupeFlow());
      const done = collect(["first", "dup"], 3);
      const d1 = bed.node("d1");
      d1.receive({ payload: 1, erp: erp("jR") });
      d1.receive({ payload: 2, erp: { ...erp("jR"), replay: true } });
      d1.receive({ payload: 3, erp: erp("jR") });
      const got = await done;
      assert.deepEqual(got.first.map((m) => m.payload), [1, 2]);
      assert.deepEqual(got.dup.map((m) => m.payload), [3]);
      assert.equal((got.first[1].dedupe as { replay?: boolean }).replay, true);
    });

    it("stores only hashed keys in node context", async () => {
      await bed.load(dedupeFlow({ key: "erp.number" }));
      await roundTrip("d1", "first", { erp: erp("jA", { number: "INV.001" }) });
      const ctx = bed.node("d1").context() as { keys(store: undefined, cb: (err: Error | null, keys: string[]) => void): void };
      const keys = await new Promise<string[]>((resolve, reject) => ctx.keys(undefined, (err, k) => (err ? reject(err) : resolve(k))));
      assert.equal(keys.length, 1);
      assert.match(keys[0], /^dd_[0-9a-f]{40}$/);
    });

    it("reports a missing key to the Catch node with code missing_key, naming the property", async () => {
      await bed.load(dedupeFlow());
      const caught = await roundTrip("d1", "caught", { payload: "no envelope" });
      const error = caught.error as { message: string; code?: string; source: { id: string } };
      assert.equal(error.code, "missing_key");
      assert.match(error.message, /msg\.erp\.jobId/);
      assert.equal(error.source.id, "d1");
      assert.equal((caught.errorDetails as { code: string }).code, "missing_key");
      const last = statuses(bed.node("d1")).at(-1);
      assert.equal(last?.fill, "red");
    });

    it("treats an empty string key as missing", async () => {
      await bed.load(dedupeFlow());
      const caught = await roundTrip("d1", "caught", { erp: erp("") });
      assert.equal((caught.error as { code: string }).code, "missing_key");
    });

    it("refuses to start with an unknown store name and fails every message", async () => {
      await bed.load(dedupeFlow({ store: "fiel" }));
      const d1 = bed.node("d1");
      const st = statuses(d1);
      assert.equal(st.at(-1)?.fill, "red");
      const errs = errorsOf(d1);
      assert.equal(errs.length, 1);
      assert.equal((errs[0] as { code: string }).code, "unknown_store");
      assert.match(String((errs[0] as Error).message), /fiel/);
      const caught = await roundTrip("d1", "caught", { erp: erp("jA") });
      assert.equal((caught.error as { code: string }).code, "unknown_store");
    });

    it("warns with a yellow ring when the store is memory-only", async () => {
      await bed.load(dedupeFlow());
      const d1 = bed.node("d1");
      assert.deepEqual(statuses(d1).at(-1), { fill: "yellow", shape: "ring", text: "memory only" });
      // The runtime sends the catalog key; the editor translates it.
      assert.equal(rawStatuses(d1).at(-1)?.text, "mlc-store.status.memory");
      await roundTrip("d1", "first", { erp: erp("jA") });
      const st = statuses(d1).at(-1);
      assert.equal(st?.fill, "yellow");
      assert.equal(st?.shape, "ring");
      assert.match(String(st?.text), /1 new \/ 0 dup/);
    });

    it("warns with a yellow ring when the store acknowledges from a cache (localfilesystem's default)", async () => {
      await bed.load(dedupeFlow({ store: "file" }));
      assert.deepEqual(statuses(bed.node("d1")).at(-1), { fill: "yellow", shape: "ring", text: "not durable (cache)" });
    });

    it("shows green counts without the warning on a store that commits each write", async () => {
      await bed.load(dedupeFlow({ store: "durable" }));
      const d1 = bed.node("d1");
      assert.notEqual(statuses(d1).at(-1)?.fill, "yellow");
      const done = collect(["first", "dup"], 2);
      d1.receive({ erp: erp("jA") });
      d1.receive({ erp: erp("jA") });
      await done;
      assert.deepEqual(statuses(d1).at(-1), { fill: "green", shape: "dot", text: "1 new / 1 dup" });
    });

    it("forgets a key after the TTL", async () => {
      await bed.load(dedupeFlow({ ttl: 0.2, ttlUnits: "s" }));
      await roundTrip("d1", "first", { erp: erp("jT") });
      const dup = await roundTrip("d1", "dup", { erp: erp("jT") });
      assert.equal((dup.dedupe as { duplicate: boolean }).duplicate, true);
      await settle(300);
      const again = await roundTrip("d1", "first", { erp: erp("jT") });
      assert.equal((again.dedupe as { duplicate: boolean }).duplicate, false);
    });

    it("forgets the oldest keys beyond maxEntries", async () => {
      await bed.load(dedupeFlow({ maxEntries: 2 }));
      for (const j of ["j1", "j2", "j3"]) await roundTrip("d1", "first", { erp: erp(j) });
      const again = await roundTrip("d1", "first", { erp: erp("j1") });
      assert.equal((again.dedupe as { duplicate: boolean }).duplicate, false);
    });
  });

  describe("mlc-audit", () => {
    const SID = "SM0123456789abcdef0123456789abcdef";

    function auditFlow(props: Msg = {}): TestFlowNode[] {
      return [
        TAB,
        { id: "a1", type: "mlc-audit", z: "t1", name: "", operation: "auto", trail: "default", store: "", maxRecords: 100, ttl: 30, ...props, wires: [["out"]] },
        { id: "out", type: "helper", z: "t1" },
        { id: "c1", type: "catch", z: "t1", scope: ["a1"], uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "t1" },
      ];
    }

    function sent(jobId: string, status = "queued", sid = SID): Msg {
      return { erp: erp(jobId), twilio: { sid, status, to: "+14155550132", channel: "sms", jobId } };
    }

    function callback(status: string, sid = SID, jobId = "j1", errorCode?: number): Msg {
      return { payload: { MessageStatus: status }, twilio: { sid, status, to: "+14155550132", channel: "sms", jobId, ...(errorCode ? { errorCode } : {}) } };
    }

    it("records a send, then applies status callbacks by sid; duplicates and late ones change nothing", async () => {
      await bed.load(auditFlow());
      const rec = await roundTrip("a1", "out", sent("j1"));
      const record = rec.audit as { recordId: string; to: string; status: string; erp: Msg; jobId: string; history: unknown[] };
      assert.equal(record.recordId, SID);
      assert.equal(record.to, maskRecipient("+14155550132"));
      assert.equal(record.status, "queued");
      assert.equal(record.jobId, "j1");
      assert.equal(record.erp.id, "Bill/000123");
      assert.equal(record.erp.jobId, undefined);

      const s1 = await roundTrip("a1", "out", callback("sent"));
      assert.equal((s1.audit as { status: string }).status, "sent");
      assert.equal(s1.auditChanged, true);
      const s2 = await roundTrip("a1", "out", callback("delivered"));
      assert.equal((s2.audit as { status: string }).status, "delivered");
      const dup = await roundTrip("a1", "out", callback("delivered"));
      assert.equal(dup.auditChanged, false);
      const late = await roundTrip("a1", "out", callback("sent"));
      assert.equal(late.auditChanged, false);
      assert.equal((late.audit as { status: string }).status, "delivered");
      assert.deepEqual((late.audit as { history: { status: string }[] }).history.map((h) => h.status), ["queued", "sent", "delivered"]);
      assert.deepEqual(statuses(bed.node("a1")).at(-1), { fill: "green", shape: "dot", text: "delivered SM…cdef" });
    });

    it("answers get by sid, jobId, {recordId} and lists failed sends", async () => {
      await bed.load(auditFlow());
      await roundTrip("a1", "out", sent("j1"));
      await roundTrip("a1", "out", sent("j2", "queued", "SM2"));
      await roundTrip("a1", "out", callback("undelivered", "SM2", "j2", 30003));

      const bySid = await roundTrip("a1", "out", { operation: "get", payload: SID });
      assert.deepEqual((bySid.payload as { recordId: string }[]).map((r) => r.recordId), [SID]);
      const byJob = await roundTrip("a1", "out", { operation: "get", payload: { jobId: "j2" } });
      assert.deepEqual((byJob.payload as { sid: string }[]).map((r) => r.sid), ["SM2"]);
      const byId = await roundTrip("a1", "out", { operation: "get", payload: { recordId: SID } });
      assert.equal((byId.payload as unknown[]).length, 1);
      const none = await roundTrip("a1", "out", { operation: "get", payload: "nothing" });
      assert.deepEqual(none.payload, []);

      const failed = await roundTrip("a1", "out", { operation: "failed" });
      const list = failed.payload as { jobId: string; status: string; erp: { id: string }; error: { code: string } }[];
      assert.equal(list.length, 1);
      assert.equal(list[0].jobId, "j2");
      assert.equal(list[0].status, "undelivered");
      assert.equal(list[0].erp.id, "Bill/000123");
      assert.equal(list[0].error.code, "twilio_30003");
    });

    it("uses the configured operation and reports bad operations and queries to Catch", async () => {
      await bed.load(auditFlow({ operation: "failed" }));
      const res = await roundTrip("a1", "out", { payload: "anything" });
      assert.deepEqual(res.payload, []);
      const bad = await roundTrip("a1", "caught", { operation: "drop" });
      assert.equal((bad.error as { code: string }).code, "invalid_operation");
      const badGet = await roundTrip("a1", "caught", { operation: "get", payload: { foo: 1 } });
      assert.equal((badGet.error as { code: string }).code, "invalid_query");
      const noTwilio = await roundTrip("a1", "caught", { operation: "record", payload: "x" });
      assert.equal((noTwilio.error as { code: string }).code, "missing_twilio");
    });

    it("records a failed send coming from a Catch node", async () => {
      // A dedupe keyed on a missing property fails; its Catch feeds the audit node.
      await bed.load([
        TAB,
        { id: "d1", type: "mlc-dedupe", z: "t1", key: "erp.deliveryId", keyType: "msg", ttl: 1, ttlUnits: "d", maxEntries: 10, store: "", wires: [[], []] },
        { id: "c1", type: "catch", z: "t1", scope: ["d1"], uncaught: false, wires: [["a1"]] },
        { id: "a1", type: "mlc-audit", z: "t1", operation: "auto", trail: "default", store: "", maxRecords: 100, ttl: 30, wires: [["out"]] },
        { id: "out", type: "helper", z: "t1" },
      ]);
      const res = await roundTrip("d1", "out", { erp: erp("jF"), twilio: { sid: "", status: "failed", to: "+14155550132", channel: "sms", jobId: "jF" } });
      const record = res.audit as { recordId: string; status: string; error: { code: string; message: string }; to: string };
      assert.equal(record.recordId, "jF/1");
      assert.equal(record.status, "failed");
      assert.equal(record.error.code, "missing_key");
      assert.equal(record.to, maskRecipient("+14155550132"));
      const failed = await roundTrip("a1", "out", { operation: "failed" });
      assert.deepEqual((failed.payload as { jobId: string }[]).map((r) => r.jobId), ["jF"]);
    });

    it("shares one trail between audit nodes on different tabs", async () => {
      await bed.load([
        TAB,
        TAB2,
        { id: "a1", type: "mlc-audit", z: "t1", operation: "auto", trail: "default", store: "", maxRecords: 100, ttl: 30, wires: [["out1"]] },
        { id: "out1", type: "helper", z: "t1" },
        { id: "a2", type: "mlc-audit", z: "t2", operation: "auto", trail: "default", store: "", maxRecords: 100, ttl: 30, wires: [["out2"]] },
        { id: "out2", type: "helper", z: "t2" },
        { id: "a3", type: "mlc-audit", z: "t2", operation: "get", trail: "other", store: "", maxRecords: 100, ttl: 30, wires: [["out3"]] },
        { id: "out3", type: "helper", z: "t2" },
      ]);
      await roundTrip("a1", "out1", sent("j1"));
      const upd = await roundTrip("a2", "out2", callback("delivered"));
      assert.equal(upd.auditChanged, true);
      assert.equal((upd.audit as { jobId: string; erp: { id: string } }).erp.id, "Bill/000123");
      const got = await roundTrip("a1", "out1", { operation: "get", payload: "j1" });
      assert.equal((got.payload as { status: string }[])[0].status, "delivered");
      // Another trail name is another trail.
      const other = await roundTrip("a3", "out3", { payload: "j1" });
      assert.deepEqual(other.payload, []);
    });

    it("refuses an unknown store and a bad trail name", async () => {
      await bed.load([
        ...auditFlow({ store: "nope" }),
        { id: "a2", type: "mlc-audit", z: "t1", operation: "auto", trail: "bad-name", store: "", wires: [["out"]] },
      ]);
      const a1 = bed.node("a1");
      const a2 = bed.node("a2");
      assert.equal(statuses(a1).at(-1)?.fill, "red");
      assert.equal((errorsOf(a1)[0] as { code: string }).code, "unknown_store");
      assert.equal((errorsOf(a2)[0] as { code: string }).code, "invalid_trail");
      const caught = await roundTrip("a1", "caught", sent("j1"));
      assert.equal((caught.error as { code: string }).code, "unknown_store");
    });

    it("shows the memory-only warning when idle", async () => {
      await bed.load(auditFlow());
      assert.deepEqual(statuses(bed.node("a1")).at(-1), { fill: "yellow", shape: "ring", text: "memory only" });
    });
  });
});
