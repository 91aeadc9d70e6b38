/**
 * Crash end to end, as a palette user runs it: the packed package installed into a fresh Node-RED user dir, the
 * shipped Acumatica examples deployed with the settings the harness (and README) give users, driven by the
 * Acumatica and Twilio simulators, and Node-RED killed with SIGKILL (`kill -9`) at three seeded points:
 *
 * 1. during intake (after the k1-th push was acknowledged, with pushes in flight);
 * 2. between claim and send (the Twilio simulator receives the k2-th create and kills Node-RED before it is
 *    processed: the ledger holds a claim, Twilio has nothing);
 * 3. between send and audit (the k3-th create is processed, Node-RED killed before the answer reaches it: Twilio
 *    has the message, the ledger and audit have no sid).
 *
 * Node-RED is restarted after each kill; the simulator keeps retrying every push not acknowledged. At the end every
 * acknowledged event must have exactly one SMS (0 lost, 0 double) and one audit record with the bill link and the
 * sid (an `outcome_unknown` on the way is settled by lookup). The figures are printed. Seed: MLC_CRASH_SEED.
 *
 * Second test: the same notification re-delivered after a kill -9 between send and audit sends 1 SMS, and the late
 * "delivered" callback lands on a record carrying the bill link, so the delivery example writes its note.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { AcuRecord } from "../sims/acumatica";
import { AUDIT_PROBE, AuditRecordView, BILLS_QUERY, Stack, auditOf, startStack } from "../harness/stack";
import { tempDir, waitFor, waitProgress } from "../harness/nodered";

const EVENTS = 300;
const APPROVERS = ["EP00000001", "EP00000002"]; // (415) 555-0132 and (212) 555-0187 in the simulator's seed data

/** mulberry32: a small seeded PRNG, so the kill points are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function row(i: number): AcuRecord {
  const ref = `C${String(i).padStart(5, "0")}`;
  return {
    Type: "Bill",
    ReferenceNbr: ref,
    VendorID: "V000042",
    VendorName: "Crash Test Supply",
    Amount: 1500 + i,
    CurrencyID: "USD",
    Description: `load ${i}`,
    Status: "Pending Approval",
    ApproverID: APPROVERS[i % APPROVERS.length],
    LastModifiedDateTime: new Date(Date.UTC(2025, 2, 1, 9, 0, 0) + i * 1000).toISOString(),
  };
}

/** The bill number an SMS is about (the example's body: "Approval needed: bill <ReferenceNbr> from …"). */
function billOf(body: string): string | undefined {
  return /bill (C\d{5}) from/.exec(body)?.[1];
}

function jobIdOf(statusCallback: string | null): string {
  return new URL(String(statusCallback)).searchParams.get("j") ?? "";
}

describe("end to end: kill -9 at three points, 300 events, nothing lost, nothing sent twice", function () {
  this.timeout(300000);
  let stack: Stack;
  let root: string;

  before(async function () {
    root = tempDir("mlc-crash-");
    // MLC_E2E_LOG=<file>: Node-RED's log lines are appended there as they come (for a failed run).
    const logFile = process.env.MLC_E2E_LOG;
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", extraFlows: AUDIT_PROBE, onLog: logFile ? (l) => fs.appendFileSync(logFile, l + "\n") : undefined });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-40).join("\n") + "\n");
  });

  after(async function () {
    stack.twilio.onFault = undefined;
    await stack?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  /** Kill -9 now (synchronously) and restart in the background; resolves when Node-RED runs again. */
  const crash = (why: string, log: string[]): Promise<void> => {
    const t0 = Date.now();
    const killed = stack.nodeRed.kill();
    return killed
      .then(() => stack.nodeRed.start(120000))
      .then(() => {
        log.push(`${why}: restarted in ${Date.now() - t0} ms`);
        if (process.env.MLC_E2E_LOG) fs.appendFileSync(process.env.MLC_E2E_LOG, `#### ${log[log.length - 1]}; ${stack.twilio.messages.length} SMS so far\n`);
      });
  };

  it("every acknowledged event ends with exactly one SMS and one settled audit record", async function () {
    const seed = Number(process.env.MLC_CRASH_SEED ?? 6);
    const rand = prng(seed);
    const k1 = 30 + Math.floor(rand() * 60); // acknowledged pushes before kill 1
    const k2 = 110 + Math.floor(rand() * 60); // creates before kill 2 (claim, no send)
    const k3 = 210 + Math.floor(rand() * 60); // creates before kill 3 (send, no answer)
    const started = Date.now();
    const restarts: string[] = [];
    const url = `${stack.nodeRed.url}/mlc/acumatica/bills`;
    const target = { url, headerName: "X-Notify-Secret", headerValue: stack.pushSecret };
    const acked = new Set<string>();
    const acks = (): number => acked.size;

    // Kill 1: during intake.
    let crashes: Promise<void> = Promise.resolve();
    let kill1 = false;
    let seen = 0;
    const ackWatch = setInterval(() => {
      const all = stack.acumatica.pushDeliveries;
      for (; seen < all.length; seen++) if (all[seen].status >= 200 && all[seen].status < 300) acked.add(all[seen].id);
      if (!kill1 && acks() >= k1) {
        kill1 = true;
        crashes = crashes.then(() => crash(`kill 1 (intake, after ${acks()} acknowledged)`, restarts));
      }
    }, 5);

    // Kills 2 and 3: armed on the Twilio simulator when the k-th create arrives.
    const armAt = async (count: number, fault: { discard?: boolean; dropConnection?: boolean }, why: string): Promise<void> => {
      if (!(await waitProgress(() => stack.twilio.messages.length, count, 60000))) {
        restarts.push(`${why}: not reached (SMS stopped at ${stack.twilio.messages.length})`);
        return;
      }
      await crashes; // one crash at a time
      await new Promise<void>((resolve) => {
        stack.twilio.onFault = () => {
          stack.twilio.onFault = undefined;
          crashes = crashes.then(() => crash(why, restarts));
          resolve();
        };
        stack.twilio.injectFault(fault);
      });
      await crashes;
    };
    const kills = (async () => {
      await armAt(k2, { discard: true }, `kill 2 (create ${k2 + 1} received, not processed: claimed, not sent)`);
      await armAt(k3, { dropConnection: true }, `kill 3 (create ${k3 + 1} processed, answer lost: sent, not recorded)`);
    })();

    // 300 distinct notifications, 8 at a time; each is retried (1 s apart, up to 90 times) until acknowledged.
    const ids: string[] = [];
    let next = 0;
    const pusher = async (): Promise<void> => {
      while (next < EVENTS) {
        const i = next++;
        const id = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
        ids[i] = id;
        await stack.acumatica.pushNotification(target, { query: BILLS_QUERY, inserted: [row(i)], id }, { maxAttempts: 90, retryDelayMs: 1000 });
      }
    };
    await Promise.all(Array.from({ length: 8 }, pusher));
    await kills;
    await crashes;
    clearInterval(ackWatch);
    for (const d of stack.acumatica.pushDeliveries) if (d.status >= 200 && d.status < 300) acked.add(d.id);
    assert.equal(acked.size, EVENTS, "every notification was acknowledged in the end");

    // Wait until every bill has its SMS (unknown outcomes are reconciled after their window), then a little longer.
    const perBill = (): Map<string, number> => {
      const m = new Map<string, number>();
      for (const msg of stack.twilio.messages) {
        const b = billOf(msg.body);
        if (b) m.set(b, (m.get(b) ?? 0) + 1);
      }
      return m;
    };
    await waitProgress(() => perBill().size, EVENTS, 60000); // unknown outcomes settle after their 30 s window
    await new Promise((r) => setTimeout(r, 3000)); // give any double a chance to show up
    const counts = perBill();
    const lost = Array.from({ length: EVENTS }, (_, i) => row(i).ReferenceNbr as string).filter((b) => !counts.has(b));
    const doubles = [...counts].filter(([, n]) => n > 1).map(([b]) => b);

    // Every SMS has one audit record with its sid and the bill link, settled (never left outcome_unknown).
    const records: AuditRecordView[] = [];
    let unknownSeen = 0;
    const auditProblems: string[] = [];
    await waitFor(async () => {
      records.length = 0;
      unknownSeen = 0;
      auditProblems.length = 0;
      for (const m of stack.twilio.messages) {
        const recs = await auditOf(stack.nodeRed.url, jobIdOf(m.statusCallback));
        const bill = billOf(m.body);
        const withSid = recs.filter((r) => r.sid === m.sid);
        if (recs.length !== 1 || withSid.length !== 1 || withSid[0].erp?.id !== `Bill/${bill}` || withSid[0].status === "outcome_unknown") {
          auditProblems.push(`${bill}: ${JSON.stringify(recs.map((r) => ({ sid: r.sid, status: r.status, erp: r.erp?.id })))}`);
        }
        if (withSid[0]?.history.some((h) => h.status === "outcome_unknown")) unknownSeen++;
        records.push(...recs);
      }
      return auditProblems.length === 0;
    }, 60000, "every SMS audited").catch(() => undefined);

    const sessions = stack.acumatica.stats.activeSessions;
    const replayLines = stack.nodeRed.log.filter((l) => /replaying \d+ acknowledged events/.test(l));
    process.stdout.write(
      [
        `      seed ${seed}: kill points ${k1} acknowledged / create ${k2 + 1} / create ${k3 + 1}`,
        ...restarts.map((r) => `      ${r}`),
        `      pushes acknowledged ${acked.size}/${EVENTS}, push attempts ${stack.acumatica.pushDeliveries.length}`,
        `      SMS ${stack.twilio.messages.length}, bills texted ${counts.size}, lost ${lost.length}, double ${doubles.length}`,
        `      audit records ${records.length}, settled after outcome_unknown ${unknownSeen}, audit problems ${auditProblems.length}`,
        `      replays: ${replayLines.map((l) => l.replace(/^.*replaying/, "replaying")).join("; ") || "none"}`,
        `      Acumatica API users still signed in: ${sessions}`,
        `      took ${Math.round((Date.now() - started) / 1000)} s`,
      ].join("\n") + "\n",
    );
    assert.equal(restarts.filter((r) => /restarted/.test(r)).length, 3, "three kills, three restarts");
    assert.deepEqual(lost, [], "lost events");
    assert.deepEqual(doubles, [], "events texted twice");
    assert.deepEqual(auditProblems.slice(0, 5), [], "audit records");
    assert.ok(sessions <= 1, `Acumatica sessions left open by the kills: ${sessions} API users signed in (1 expected)`);
  });

  it("the same notification re-delivered after a kill -9 sends 1 SMS; the late 'delivered' lands on a record with the bill link", async function () {
    const bill = stack.acumatica.get("Bill", ["Bill", "000122"]) as Record<string, unknown>;
    const before = stack.twilio.messages.length;
    const id = "11111111-2222-4333-8444-555555555555";
    const r0: AcuRecord = { Type: "Bill", ReferenceNbr: "000122", VendorID: bill.Vendor, VendorName: "Fabrikam Maintenance", Amount: bill.Amount, CurrencyID: bill.CurrencyID, Description: bill.Description, Status: "Pending Approval", ApproverID: "EP00000002", LastModifiedDateTime: bill.LastModifiedDateTime };
    // Kill between send and audit: Twilio creates the message, Node-RED dies before it reads the answer.
    let killed: Promise<void> | undefined;
    let kills = 0;
    stack.twilio.onFault = () => {
      stack.twilio.onFault = undefined;
      kills++;
      killed = stack.nodeRed.kill();
    };
    stack.twilio.injectFault({ dropConnection: true });
    const target = { url: `${stack.nodeRed.url}/mlc/acumatica/bills`, headerName: "X-Notify-Secret", headerValue: stack.pushSecret };
    assert.deepEqual(await stack.acumatica.pushNotification(target, { query: BILLS_QUERY, inserted: [r0], id }), [200]);
    await waitFor(() => kills === 1, 30000, "the kill");
    await killed;
    assert.equal(stack.twilio.messages.length, before + 1, "the message exists at Twilio");
    const sid = stack.twilio.messages[before].sid;
    await stack.nodeRed.start(120000);
    // Acumatica delivers the same notification again.
    assert.deepEqual(await stack.acumatica.pushNotification(target, { query: BILLS_QUERY, inserted: [r0], id }), [200]);
    const jobId = jobIdOf(stack.twilio.messages[before].statusCallback);
    const rec = await waitFor(async () => (await auditOf(stack.nodeRed.url, jobId)).find((r) => r.sid === sid), 90000, "audit record with the sid");
    assert.equal(rec.erp?.id, "Bill/000122");
    // The late delivery callbacks.
    const results = await stack.twilio.deliver(sid, "delivered");
    assert.deepEqual(results.map((x) => x.status), [200, 200]);
    const note = await waitFor(() => {
      const b = stack.acumatica.get("Bill", ["Bill", "000122"]) as Record<string, unknown>;
      return typeof b.note === "string" && b.note.includes(sid) ? b.note : undefined;
    }, 20000, "note on bill 000122");
    assert.match(note, /SMS delivered/);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(stack.twilio.messages.length, before + 1, "1 SMS");
    const recs = await auditOf(stack.nodeRed.url, jobId);
    assert.equal(recs.length, 1);
    assert.equal(recs[0].status, "delivered");
    process.stdout.write(`      re-delivered after kill -9: SMS ${stack.twilio.messages.length - before}, audit ${recs[0].status} with ${recs[0].erp?.id}\n`);
  });
});
