/**
 * Two Node-RED instances, one Redis, end to end: the packed package installed into two fresh user dirs, both with the
 * settings.js lines the README gives ("Several Node-RED instances on one Redis"), the shipped Acumatica examples
 * deployed on both, a round-robin proxy in front (one for the ERP's pushes, one for Twilio's callbacks: the
 * instances' public base URL), a real redis-server with its append-only file (as the README recommends).
 *
 * 1. Each push delivered three times, alternately to both instances: exactly one SMS per bill; every status callback,
 *    whichever instance it reaches, lands on the one audit record with the bill link.
 * 2. A call placed by one instance, its keypress ("1") answered by the other: acknowledged, no escalation.
 * 3. One instance kill -9'd mid-burst of 300 pushes (restarted at once, as a service manager does): 0 lost, 0 double.
 * 4. 300 SMS pushed through both instances at the examples' 10/s account budget, against a Twilio enforcing 10/s per
 *    sender and account: one budget across the instances, no 429, no second over 10 (the achieved rate is printed).
 * 5. Redis stopped for 10 s and restarted: no instance crashes, pushes meanwhile are refused with 503 and a short
 *    fixed body (the ERP retries them), the nodes report the store unreachable, no acknowledged event is lost or sent
 *    twice, work resumes.
 * One pair of instances serves the five cases; Twilio enforces 10/s in all of them (two Node-RED processes are heavy on a shared machine).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { AcuRecord } from "../sims/acumatica";
import { AUDIT_PROBE, BILLS_QUERY, type FlowNode, type Stack, auditOf, loadExamples, startStack, withCredentialRefs } from "../harness/stack";
import { NodeRed, freePort, installInto, tempDir, waitFor, waitProgress } from "../harness/nodered";
import { RoundRobinProxy } from "../harness/proxy";
import { RedisServer, startRedis } from "../harness/redis";
import { maxInWindow } from "../sims/twilio";

/** settings.js `contextStorage`, exactly as the README section gives it. */
export const REDIS_CONTEXT_STORAGE = `{
    default: { module: require("node-red-contrib-ml-connector/store"), config: { redis: { url: process.env.MLC_REDIS_URL } } },
    memory: { module: "memory" }
  }`;

const APPROVERS = ["EP00000001", "EP00000002"];

function row(tag: string, i: number): AcuRecord {
  const ref = `${tag}${String(i).padStart(5, "0")}`;
  return {
    Type: "Bill",
    ReferenceNbr: ref,
    VendorID: "V000042",
    VendorName: "Shared Store Supply",
    Amount: 1500 + i,
    CurrencyID: "USD",
    Description: `two instances ${i}`,
    Status: "Pending Approval",
    ApproverID: APPROVERS[i % APPROVERS.length],
    LastModifiedDateTime: new Date(Date.UTC(2025, 3, 1, 9, 0, 0) + i * 1000).toISOString(),
  };
}

/** The bill number an SMS is about (the example's body: "Approval needed: bill <ReferenceNbr> from …"). */
function billOf(body: string): string | undefined {
  return /bill ([A-Z]\d{5}) from/.exec(body)?.[1];
}

function jobIdOf(statusCallback: string | null): string {
  return new URL(String(statusCallback)).searchParams.get("j") ?? "";
}

describe("end to end: two Node-RED instances on one Redis", function () {
  this.timeout(600000);
  let root: string;
  let redis: RedisServer;
  let stack: Stack;
  let b: NodeRed;
  let pushProxy: RoundRobinProxy;
  let callbackProxy: RoundRobinProxy;

  before(async function () {
    root = tempDir("mlc-redis-e2e-");
    const data = path.join(root, "redis");
    fs.mkdirSync(data);
    redis = await startRedis(this, data);
    const callbackPort = await freePort();
    const publicUrl = `http://127.0.0.1:${callbackPort}`;
    const extraEnv = { MLC_REDIS_URL: redis.url, PUBLIC_BASE_URL: publicUrl };
    // Twilio enforcing the examples' account budget (10 creates/s) per account and per sender, strictly (429 for the 11th)
    const twilio = { ratePerSecond: 10, senderRatePerSecond: 10 };
    stack = await startStack({ userDir: path.join(root, "a", "user"), install: "pack", extraFlows: AUDIT_PROBE, contextStorage: REDIS_CONTEXT_STORAGE, extraEnv, twilio });
    const packDir = path.join(root, "a", "pack");
    const tarball = path.join(packDir, fs.readdirSync(packDir).find((f) => f.endsWith(".tgz")) as string);
    installInto(path.join(root, "b", "user"), tarball);
    b = new NodeRed({ userDir: path.join(root, "b", "user"), env: { ...stack.env, ...extraEnv }, contextStorage: REDIS_CONTEXT_STORAGE });
    await b.start(120000);
    const flows: FlowNode[] = [...withCredentialRefs(loadExamples("acumatica")), ...AUDIT_PROBE];
    await b.deploy(flows);
    pushProxy = new RoundRobinProxy([stack.nodeRed.url, b.url]);
    await pushProxy.start();
    callbackProxy = new RoundRobinProxy([stack.nodeRed.url, b.url]);
    await callbackProxy.start(callbackPort);
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      process.stderr.write("---- instance A\n" + stack.nodeRed.log.slice(-30).join("\n") + "\n---- instance B\n" + b.log.slice(-30).join("\n") + "\n");
    }
  });

  after(async () => {
    await pushProxy?.stop();
    await callbackProxy?.stop();
    await b?.stop();
    await stack?.stop();
    await redis?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const target = (): { url: string; headerName: string; headerValue: string } => ({ url: `${pushProxy.url}/mlc/acumatica/bills`, headerName: "X-Notify-Secret", headerValue: stack.pushSecret });
  const perBill = (tag: string): Map<string, number> => {
    const m = new Map<string, number>();
    for (const msg of stack.twilio.messages) {
      const bill = billOf(msg.body);
      if (bill?.startsWith(tag)) m.set(bill, (m.get(bill) ?? 0) + 1);
    }
    return m;
  };

  it("pushes delivered three times each, alternately to both instances: one SMS per bill, callbacks at either instance reach its audit record", async () => {
    const N = 20;
    const served0 = [...pushProxy.served];
    for (let i = 0; i < N; i++) {
      const statuses = await stack.acumatica.pushNotification(target(), { query: BILLS_QUERY, inserted: [row("T", i)], id: `10000000-0000-4000-8000-${String(i).padStart(12, "0")}` }, { times: 3 });
      assert.deepEqual(statuses, [200, 200, 200]);
    }
    const served = pushProxy.served.map((n, i) => n - served0[i]);
    assert.deepEqual(served, [N * 3 / 2, N * 3 / 2], "the deliveries alternated between the instances");
    assert.ok(await waitProgress(() => perBill("T").size, N, 30000), `bills texted: ${perBill("T").size}/${N}`);
    await new Promise((r) => setTimeout(r, 2000)); // give a double the chance to show up
    const counts = perBill("T");
    assert.equal(counts.size, N);
    assert.deepEqual([...counts].filter(([, n]) => n !== 1), [], "bills texted more than once");

    // Twilio's callbacks alternate between the instances too; each lands on the one record written before the send.
    const msgs = stack.twilio.messages.filter((m) => billOf(m.body)?.startsWith("T"));
    const cb0 = [...callbackProxy.served];
    for (const m of msgs) assert.deepEqual((await stack.twilio.deliver(m.sid, "delivered")).map((r) => r.status), [200, 200]);
    assert.ok(callbackProxy.served.every((n, i) => n > cb0[i]), "callbacks reached both instances");
    for (const m of msgs) {
      const recs = await waitFor(async () => {
        const r = await auditOf(pushProxy.url, jobIdOf(m.statusCallback));
        return r.length === 1 && r[0].status === "delivered" ? r : undefined;
      }, 20000, `audit of ${m.sid} delivered`);
      assert.equal(recs[0].sid, m.sid);
      assert.equal(recs[0].erp?.id, `Bill/${billOf(m.body)}`);
    }
    process.stdout.write(`      ${N} bills × 3 deliveries (A ${served[0]}, B ${served[1]}): SMS ${msgs.length}; ${msgs.length * 2} callbacks over both instances, ${msgs.length} audit records delivered\n`);
  });

  it("a keypress answered by the instance that did not place the call stops the escalation", async () => {
    const flows: FlowNode[] = [...withCredentialRefs(loadExamples("acumatica", "twilio")), ...AUDIT_PROBE];
    await stack.nodeRed.deploy(flows);
    await b.deploy(flows);
    const calls0 = stack.twilio.calls.length;
    const mails0 = stack.sendgrid.mails.length;
    callbackProxy.route = (_m, url) => (url.includes("/gather") ? 1 : undefined); // the keypress goes to B
    try {
      await stack.nodeRed.inject("c1c1000000000001"); // A places the call
      const call = await waitFor(() => stack.twilio.calls[calls0], 20000, "the call");
      const served1 = callbackProxy.served[1];
      const answered = await stack.twilio.answerCall(call.sid, { digits: "1" });
      assert.equal(answered.status, 200);
      assert.ok(callbackProxy.served[1] > served1, "the keypress reached B");
      assert.match(JSON.stringify(answered), /confirmation has been recorded/, "B answered it as acknowledged");
      await stack.twilio.progressCall(call.sid, "completed");
      await new Promise((r) => setTimeout(r, 3000)); // an escalation would place the backup call within this
      assert.equal(stack.twilio.calls.length, calls0 + 1, "acknowledged: no escalation call");
      assert.equal(stack.sendgrid.mails.length, mails0, "no escalation e-mail");
      process.stdout.write(`      call placed by A, keypress answered by B: acknowledged, ${stack.twilio.calls.length - calls0} call, ${stack.sendgrid.mails.length - mails0} e-mails\n`);
    } finally {
      callbackProxy.route = undefined;
    }
  });

  it("one instance kill -9'd mid-burst of 300 pushes and restarted: 0 lost, 0 double", async () => {
    const EVENTS = 300;
    const started = Date.now();
    let killAt = 0;
    let restart: Promise<void> | undefined;
    const acked = new Set<string>();
    let seen = 0;
    const watch = setInterval(() => {
      const all = stack.acumatica.pushDeliveries;
      for (; seen < all.length; seen++) if (all[seen].status >= 200 && all[seen].status < 300 && all[seen].id.startsWith("20000000")) acked.add(all[seen].id);
      if (!restart && acked.size >= 100) {
        killAt = acked.size;
        restart = stack.nodeRed.kill().then(() => stack.nodeRed.start(120000));
      }
    }, 5);
    let next = 0;
    const pusher = async (): Promise<void> => {
      while (next < EVENTS) {
        const i = next++;
        await stack.acumatica.pushNotification(target(), { query: BILLS_QUERY, inserted: [row("K", i)], id: `20000000-0000-4000-8000-${String(i).padStart(12, "0")}` }, { maxAttempts: 90, retryDelayMs: 1000 });
      }
    };
    try {
      await Promise.all(Array.from({ length: 8 }, pusher));
      await restart;
    } finally {
      clearInterval(watch);
    }
    assert.ok(restart, "the kill happened");
    for (const d of stack.acumatica.pushDeliveries) if (d.status >= 200 && d.status < 300 && d.id.startsWith("20000000")) acked.add(d.id);
    assert.equal(acked.size, EVENTS, "every push acknowledged in the end");
    await waitProgress(() => perBill("K").size, EVENTS, 60000); // an unknown outcome is looked up after its 30 s window
    await new Promise((r) => setTimeout(r, 3000));
    const counts = perBill("K");
    const lost = Array.from({ length: EVENTS }, (_, i) => row("K", i).ReferenceNbr as string).filter((bill) => !counts.has(bill));
    const doubles = [...counts].filter(([, n]) => n > 1).map(([bill]) => bill);
    const sessions = stack.acumatica.stats.activeSessions;
    process.stdout.write(`      300 pushes over 2 instances, A kill -9'd after ${killAt} acknowledged: SMS ${[...counts.values()].reduce((s, n) => s + n, 0)}, lost ${lost.length}, double ${doubles.length}, proxy 502s ${pushProxy.failed}, Acumatica API users signed in ${sessions}, took ${Math.round((Date.now() - started) / 1000)} s\n`);
    assert.deepEqual(lost, [], "lost events");
    assert.deepEqual(doubles, [], "events texted twice");
    assert.ok(sessions <= 2, `Acumatica API users in use: ${sessions} (one per instance expected; the restart refreshes A's saved grant)`);
  });

  it("300 SMS through both instances at a 10/s account budget: one budget, no 429, no second over 10", async () => {
    const EVENTS = 300;
    const reqs0 = stack.twilio.requests.length;
    const served0 = [...pushProxy.served];
    let next = 0;
    const pusher = async (): Promise<void> => {
      while (next < EVENTS) {
        const i = next++;
        await stack.acumatica.pushNotification(target(), { query: BILLS_QUERY, inserted: [row("P", i)], id: `40000000-0000-4000-8000-${String(i).padStart(12, "0")}` }, { maxAttempts: 30, retryDelayMs: 1000 });
      }
    };
    await Promise.all(Array.from({ length: 8 }, pusher));
    assert.ok(await waitProgress(() => perBill("P").size, EVENTS, 30000), `bills texted: ${perBill("P").size}/${EVENTS}`);
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual([...perBill("P")].filter(([, n]) => n !== 1), [], "texted more than once");
    const creates = stack.twilio.requests.slice(reqs0).filter((q) => q.method === "POST" && /\/Messages\.json$/.test(q.path));
    const starts = creates.filter((q) => q.status !== 429).map((q) => q.startedAt).sort((x, y) => x - y);
    const rejected = creates.filter((q) => q.status === 429).length;
    const served = pushProxy.served.map((n, i) => n - served0[i]);
    const achieved = ((starts.length - 1) / (starts[starts.length - 1] - starts[0])) * 1000;
    process.stdout.write(`      ${EVENTS} SMS over both instances (pushes A ${served[0]}, B ${served[1]}): 429s ${rejected}, busiest second ${maxInWindow(starts)}, achieved ${achieved.toFixed(2)}/s (${(((achieved - 10) / 10) * 100).toFixed(2)} % vs 10/s)\n`);
    assert.ok(served[0] > 0 && served[1] > 0, "both instances took pushes");
    assert.equal(rejected, 0, "429s");
    assert.ok(maxInWindow(starts) <= 10, `busiest second ${maxInWindow(starts)}`);
  });

  it("Redis stopped for 10 s and restarted: no crash, 503 meanwhile, nothing lost or doubled, work resumes", async () => {
    const N = 10;
    const beforeOutage = new Map([...perBill("T"), ...perBill("K")]);
    await redis.stop();
    const stoppedAt = Date.now();
    // a push now is refused with a fixed short body, whichever instance gets it
    for (let k = 0; k < 2; k++) {
      const r = await fetch(`${pushProxy.url}/mlc/acumatica/bills`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Notify-Secret": stack.pushSecret },
        body: JSON.stringify({ Inserted: [row("X", 999)], Deleted: [], Query: BILLS_QUERY, CompanyId: "AcmeProd", Id: "30000000-0000-4000-8000-999999999999", TimeStamp: 1 }),
      });
      assert.equal(r.status, 503);
      assert.equal(await r.text(), "Service unavailable");
    }
    // the ERP keeps retrying these until acknowledged
    const pushes = Array.from({ length: N }, (_, i) =>
      stack.acumatica.pushNotification(target(), { query: BILLS_QUERY, inserted: [row("R", i)], id: `30000000-0000-4000-8000-${String(i).padStart(12, "0")}` }, { maxAttempts: 120, retryDelayMs: 1000 }),
    );
    await waitFor(() => stack.acumatica.pushDeliveries.filter((d) => d.id.startsWith("30000000") && d.status === 503).length >= N, 30000, "the pushes refused with 503");
    await new Promise((r) => setTimeout(r, Math.max(0, 10000 - (Date.now() - stoppedAt)))); // the outage lasts 10 s
    assert.ok(stack.nodeRed.pid && b.pid, "both instances still run");
    const said = [...stack.nodeRed.log, ...b.log].filter((l) => /store unreachable/i.test(l));
    assert.ok(said.length > 0, "the nodes report the store unreachable");
    await redis.start();
    const statuses = await Promise.all(pushes);
    for (const s of statuses) assert.equal(s.at(-1), 200);
    assert.ok(await waitProgress(() => perBill("R").size, N, 30000), `bills texted after the outage: ${perBill("R").size}/${N}`);
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual([...perBill("R")].filter(([, n]) => n !== 1), [], "texted more than once");
    const after = new Map([...perBill("T"), ...perBill("K")]);
    assert.deepEqual(after, beforeOutage, "nothing from before the outage sent again");
    const refused = stack.acumatica.pushDeliveries.filter((d) => d.id.startsWith("30000000") && d.status === 503).length;
    process.stdout.write(`      Redis down ${Math.round((Date.now() - stoppedAt) / 1000)} s: ${refused} pushes answered 503 and retried, ${N}/${N} texted once after, log lines naming the outage ${said.length}\n`);
  });
});
