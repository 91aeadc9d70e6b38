/**
 * The trigger test cases every family's trigger passes (issue 7: "a tiny test-only family … passes the same trigger
 * tests as Acumatica"), in a real Node-RED runtime (node-red-node-test-helper via test/harness/red-testbed.ts) against
 * the family's simulator. A family file gives a {@link TriggerFamily} and calls {@link triggerSuite}.
 *
 * Push: a verified push is journaled, answered 200 and emitted once (a redelivery emits nothing); a forged one gets
 * 401; no secret configured → 404 and the status says why once; broken JSON → 400, logged at most once a minute;
 * wrong media type 415, wrong method 405; what was acknowledged but not settled by a send is replayed after a restart.
 * Poll: each change emitted once across polls and restarts; a restart that lost the watermark (a crash after the
 * events were journaled, before the watermark was saved) replays what was not settled and emits nothing twice.
 * Families whose push names one record (Exact Online: key only, the trigger fetches it) set `onePerPush` and
 * `pushFetchesRecord`; those that sign inside the body (Exact's `HashCode`) set `signedBody`: a body that does not
 * parse cannot be signed, so it meets the signature check (401, logged at most once a minute) instead of a 400.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { jobSettled } from "../../nodes/lib/journal";
import { Credentials, Msg, SimServer, Testbed, settle, until } from "../harness/red-testbed";

/** What a family gives the suite. The trigger node has id "trg" and z "t1". */
export interface TriggerFamily {
  title: string;
  bed: Testbed;
  sims: SimServer[];
  /** Tab, config nodes and the trigger "trg" with `props`, its output wired to the helper "events". */
  flow(props: Msg): TestFlowNode[];
  /** Credentials of the flow, the push secret or signing key being `secret` ("" = none configured). */
  credentials(secret: string): Credentials;
  /** Trigger properties of push mode, served at `pushPath` (below the helper's URL). Absent: a poll-only family
   * (Sage Intacct's XML API has no push), whose push cases are not run. */
  pushProps?: Msg;
  pushPath?: string;
  /** Trigger properties of poll mode, starting at `startFrom` (ISO), polling every second. */
  pollProps(startFrom: string): Msg;
  /**
   * A push body delivering `rows` (record reference, modified at, ms); with `signedBody`, signed inside with `secret`
   * ("" = unsigned).
   */
  pushBody?(deliveryId: string, rows: { ref: string; atMs: number }[], secret: string): Buffer;
  /** Headers proving a push with `secret` (shared-secret header, or the HMAC of `body`); none with `signedBody`. */
  authHeaders?(body: Buffer, secret: string): Record<string, string>;
  /** A push names one record: the suite posts one push per row (delivery `<id>/<ref>`). */
  onePerPush?: boolean;
  /** A push carries no record data: the suite puts each row's record into the simulator (`addRecord`) first. */
  pushFetchesRecord?: boolean;
  /** The signature is inside the body (`pushBody` signs it), not in a header. */
  signedBody?: boolean;
  /** Run before each test, after the simulators are reset. */
  beforeEach?: () => void;
  /** Create or change a record in the simulator, modified at `atMs`. */
  addRecord(ref: string, atMs: number): void;
  /** The record reference of an emitted message. */
  ref(msg: Msg): string;
  /** The family's own cases, run inside the suite's describe (same runtime and simulators). */
  extraCases?: () => void;
}

const SECRET = "suite-Secret-7f3a";

/**
 * Settings a family's Testbed must be given: a configured context store, as in every production settings.js. With
 * none, Node-RED deletes a node's context whenever the node stops, so no restart could be shown.
 */
export const SUITE_SETTINGS = { contextStorage: { default: { module: "memory" } } };
/** The suite also has the family's Testbed load those stores at every start (red-testbed.ts `loadContextStores`). */

const iso = (ms: number): string => new Date(ms).toISOString();

export function triggerSuite(f: TriggerFamily): void {
  const { bed } = f;
  bed.loadContextStores = true;
  const pushProps = f.pushProps ?? {};
  type Row = { ref: string; atMs: number };
  /** The bodies of one delivery of `rows` (one per row for `onePerPush`), signed inside with `secret` for `signedBody`. */
  const pushBodies = (id: string, rows: Row[], secret = SECRET): Buffer[] =>
    (f.onePerPush ? rows.map((r) => ({ id: `${id}/${r.ref}`, rows: [r] })) : [{ id, rows }]).map((d) => f.pushBody?.(d.id, d.rows, secret) ?? Buffer.alloc(0));
  const pushBody = (id: string, rows: Row[], secret = SECRET): Buffer => pushBodies(id, rows, secret)[0];
  /** The statuses of a delivery of `rows` answered 200 (one per push). */
  const oks = (rows: Row[]): number[] => (f.onePerPush ? rows : rows.slice(0, 1)).map(() => 200);
  /** A push case, run only for a family with push. */
  const pushIt = (title: string, fn: () => Promise<void>): void => {
    if (f.pushProps) it(title, fn);
  };
  const flow = (props: Msg): TestFlowNode[] => [
    ...f.flow(props),
    { id: "events", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: ["trg"], uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
  const post = async (body: Buffer | string, headers: Record<string, string>, method = "POST"): Promise<{ status: number; text: string }> => {
    const res = await fetch(`${bed.url}${f.pushPath ?? ""}`, { method, headers, body: method === "GET" ? undefined : body });
    return { status: res.status, text: await res.text() };
  };
  const signed = (body: Buffer, secret = SECRET): Record<string, string> => ({ "Content-Type": "application/json", ...(f.signedBody ? {} : f.authHeaders?.(body, secret)) });
  /** Deliver `rows` (records put into the simulator first when the push only names them); the answers' statuses. */
  const deliver = async (id: string, rows: Row[], secret = SECRET): Promise<number[]> => {
    if (f.pushFetchesRecord) for (const r of rows) f.addRecord(r.ref, r.atMs);
    const out: number[] = [];
    for (const body of pushBodies(id, rows, secret)) out.push((await post(body, signed(body, secret))).status);
    return out;
  };
  const refs = (): string[] => bed.received.events.map((m) => f.ref(m));
  const statuses = (): { fill?: string; text?: string }[] =>
    bed
      .node("trg")
      .status.getCalls()
      .map((c) => c.args[0] as { fill?: string; text?: string });
  const polls = (): number => statuses().filter((s) => s.fill === "green" && /polled/.test(s.text ?? "")).length;
  /** Journal entries of the trigger still holding `jobId` as pending (memory context, read synchronously). */
  const pending = (jobId: string): boolean => {
    const ctx = bed.node("trg").context() as unknown as { keys(): string[]; get(k: string): unknown };
    return ctx.keys().some((k) => k.startsWith("pn_") && JSON.stringify(ctx.get(k)).includes(`"jobId":"${jobId}"`));
  };

  describe(`${f.title}: the family trigger suite`, function () {
    this.timeout(30000);
    bed.hooks({ sims: f.sims, beforeEach: f.beforeEach });

    pushIt("push: a verified push is answered 200 and emitted once; its redelivery is answered 200 and emits nothing", async () => {
      await bed.load(flow(pushProps), f.credentials(SECRET));
      const t0 = Date.now() - 60_000;
      const rows = [{ ref: "A1", atMs: t0 }, { ref: "A2", atMs: t0 + 1 }];
      assert.deepEqual(await deliver("d-1", rows), oks(rows));
      await until(() => bed.received.events.length === 2, "2 events");
      assert.deepEqual(refs().sort(), ["A1", "A2"]);
      assert.deepEqual(await deliver("d-1", rows), oks(rows));
      await settle();
      assert.equal(bed.received.events.length, 2, "the redelivery emitted nothing");
      assert.equal(bed.received.caught.length, 0);
      assert.equal(statuses().filter((s) => s.fill === "green").at(-1)?.text, "2 events", "the status counts the events pushed");
    });

    pushIt("push: a missing or wrong secret/signature gets 401 and emits nothing", async () => {
      await bed.load(flow(pushProps), f.credentials(SECRET));
      const rows = [{ ref: "B1", atMs: Date.now() }];
      if (f.pushFetchesRecord) f.addRecord("B1", rows[0].atMs);
      const unsigned = pushBody("d-2", rows, "");
      assert.equal((await post(unsigned, { "Content-Type": "application/json" })).status, 401);
      const body = pushBody("d-2", rows, "not-the-secret");
      const forged = await post(body, signed(body, "not-the-secret"));
      assert.deepEqual(forged, { status: 401, text: "Unauthorized" });
      await settle();
      assert.equal(bed.received.events.length, 0);
      assert.ok(!forged.text.includes(SECRET));
    });

    pushIt("push: with no secret configured the endpoint answers 404 and the status says why once", async () => {
      await bed.load(flow(pushProps), f.credentials(""));
      const rows = [{ ref: "C1", atMs: Date.now() }];
      if (f.pushFetchesRecord) f.addRecord("C1", rows[0].atMs);
      const body = pushBody("d-3", rows);
      for (let i = 0; i < 3; i++) assert.deepEqual(await post(body, signed(body)), { status: 404, text: "Not found" });
      await until(() => bed.received.caught.length === 1, "one report to Catch");
      await settle();
      assert.equal(bed.received.caught.length, 1, "reported once, not per request");
      assert.equal((bed.received.caught[0].errorDetails as { code: string }).code, "no_secret");
      assert.equal(statuses().filter((s) => s.fill === "yellow" && /notServed|not configured/.test(s.text ?? "")).length, 1, "said once in the status");
      assert.equal(bed.received.events.length, 0);
    });

    pushIt("push: a secret typed as ${VAR} whose variable is unset is no secret: 404, its literal text refused, the variable named", async () => {
      const literal = "${MLC_SUITE_SECRET_NOT_SET}"; // Node-RED leaves the text of an unset variable, and examples print it
      assert.equal(process.env.MLC_SUITE_SECRET_NOT_SET, undefined);
      await bed.load(flow(pushProps), f.credentials(literal));
      const rows = [{ ref: "V1", atMs: Date.now() }];
      if (f.pushFetchesRecord) f.addRecord("V1", rows[0].atMs);
      const body = pushBody("d-v", rows, literal);
      assert.deepEqual(await post(body, signed(body, literal)), { status: 404, text: "Not found" });
      await until(() => bed.received.caught.length === 1, "one report to Catch");
      assert.match(String((bed.received.caught[0].errorDetails as { message: string }).message), /MLC_SUITE_SECRET_NOT_SET/);
      await settle();
      assert.equal(bed.received.events.length, 0, "nothing emitted for a sender that only knew the example's text");
    });

    const brokenJson = f.signedBody ? "gets 401 (a body that does not parse cannot carry its signature)" : "with the right secret gets 400";
    pushIt(`push: broken JSON ${brokenJson}, never 500, logged once a minute, nothing emitted`, async () => {
      await bed.load(flow(pushProps), f.credentials(SECRET));
      for (const text of ["{not json", "[1,", "\u0000"]) {
        const body = Buffer.from(text);
        assert.deepEqual(await post(body, signed(body)), f.signedBody ? { status: 401, text: "Unauthorized" } : { status: 400, text: "Bad request" });
      }
      await settle();
      const lines = bed.logCalls().filter((c) => JSON.stringify(c.args).includes(f.signedBody ? "without the right secret" : "not JSON"));
      assert.equal(lines.length, 1, "one log line for three refusals");
      assert.equal(bed.received.events.length, 0);
      assert.equal(bed.received.caught.length, 0, "a stranger's body does not flood Catch");
    });

    pushIt("push: another media type gets 415 and another method 405", async () => {
      await bed.load(flow(pushProps), f.credentials(SECRET));
      const rows = [{ ref: "D1", atMs: Date.now() }];
      if (f.pushFetchesRecord) f.addRecord("D1", rows[0].atMs);
      const body = pushBody("d-4", rows);
      assert.equal((await post(body, { ...signed(body), "Content-Type": "text/plain" })).status, 415);
      assert.equal((await post(body, signed(body), "GET")).status, 405);
      await settle();
      assert.equal(bed.received.events.length, 0);
    });

    pushIt("push: after a restart, what was acknowledged but not settled by a send is replayed once (msg.erp.replay)", async () => {
      await bed.load(flow(pushProps), f.credentials(SECRET));
      const t0 = Date.now() - 60_000;
      const rows = [{ ref: "E1", atMs: t0 }, { ref: "E2", atMs: t0 + 1 }];
      const ok = oks(rows);
      assert.deepEqual(await deliver("d-5", rows), ok);
      await until(() => bed.received.events.length === 2, "2 events");
      const e1 = bed.received.events.find((m) => f.ref(m) === "E1") as Msg;
      jobSettled(e1.erp.jobId as string); // a send node finished E1
      await until(() => !pending(e1.erp.jobId as string), "E1 settled in the journal");
      await bed.redeploy(flow(pushProps), f.credentials(SECRET));
      await until(() => bed.received.events.length === 3, "the replay");
      const replayed = bed.received.events[2];
      assert.equal(f.ref(replayed), "E2");
      assert.equal(replayed.erp.replay, true);
      assert.deepEqual(await deliver("d-5", rows), ok, "a redelivery after the restart is still recognised");
      await settle();
      assert.equal(bed.received.events.length, 3);
    });

    it("poll: each change is emitted once across polls; a later change of the same record is emitted again", async () => {
      const t0 = Date.now() - 600_000;
      f.addRecord("P1", t0 + 1000);
      f.addRecord("P2", t0 + 2000);
      await bed.load(flow(f.pollProps(iso(t0))), f.credentials(SECRET));
      await until(() => bed.received.events.length === 2, () => `2 events, got ${refs().join(",")}`);
      f.addRecord("P3", Date.now() - 5000);
      f.addRecord("P1", Date.now() - 4000);
      await until(() => bed.received.events.length === 4, () => `4 events, got ${refs().join(",")}`);
      const before = polls();
      await until(() => polls() >= before + 2, "two more polls");
      assert.deepEqual(refs(), ["P1", "P2", "P3", "P1"]);
      assert.equal(new Set(bed.received.events.map((m) => m.erp.jobId)).size, 4, "four distinct jobIds");
      assert.equal(bed.received.caught.length, 0);
    });

    it("poll: a restart neither repeats settled events nor misses new ones", async () => {
      const t0 = Date.now() - 600_000;
      f.addRecord("Q1", t0 + 1000);
      await bed.load(flow(f.pollProps(iso(t0))), f.credentials(SECRET));
      await until(() => bed.received.events.length === 1, "Q1");
      const q1 = bed.received.events[0].erp.jobId as string;
      jobSettled(q1);
      await until(() => !pending(q1), "Q1 settled");
      await bed.redeploy(flow(f.pollProps(iso(t0))), f.credentials(SECRET));
      f.addRecord("Q2", Date.now() - 1000);
      await until(() => bed.received.events.length === 2, () => `Q2, got ${refs().join(",")}`);
      const before = polls();
      await until(() => polls() >= before + 2, "two more polls");
      assert.deepEqual(refs(), ["Q1", "Q2"]);
    });

    it("poll: a crash after the events were journaled but before the watermark was saved loses nothing and emits nothing twice", async () => {
      const t0 = Date.now() - 600_000;
      f.addRecord("R1", t0 + 1000);
      f.addRecord("R2", t0 + 2000);
      const props = { ...f.pollProps(iso(t0)), interval: 3600 }; // one poll at the start, the next in an hour
      await bed.load(flow(props), f.credentials(SECRET));
      await until(() => polls() === 1 && bed.received.events.length === 2, "R1, R2 polled");
      const r1 = bed.received.events.find((m) => f.ref(m) === "R1") as Msg;
      jobSettled(r1.erp.jobId as string); // R1 reached a send; R2 was still on its way when the process died
      await until(() => !pending(r1.erp.jobId as string), "R1 settled");
      // what a crash between the journal commit and the watermark save leaves behind: the journal, no watermark
      const ctx = bed.node("trg").context() as unknown as { keys(): string[]; set(k: string, v: unknown): void };
      const stateKeys = ctx.keys().filter((k) => !k.startsWith("pn_"));
      assert.equal(stateKeys.length, 1, `one poll state key besides the journal: ${stateKeys.join(",")}`);
      ctx.set(stateKeys[0], undefined);
      await bed.redeploy(flow(props), f.credentials(SECRET));
      await until(() => polls() === 1, "the first poll after the restart (re-reading R1 and R2)");
      await settle();
      assert.deepEqual(refs(), ["R1", "R2", "R2"]);
      assert.equal(bed.received.events[2].erp.replay, true, "R2 came back as a replay, not from the re-read");
      assert.equal(bed.received.caught.length, 0);
    });

    f.extraCases?.();
  });
}
