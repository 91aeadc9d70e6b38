/**
 * One poller across two Node-RED instances on one Redis, end to end (issue 13: "the survivor takes over the poll within
 * the lease time and continues from the shared watermark"). The packed package installed into two fresh user dirs, both
 * with the settings.js lines the README gives ("Several Node-RED instances on one Redis"), the shipped
 * examples/acumatica/failed-payment-alert.json deployed unchanged on both (plus a probe of the trigger's status), with
 * the env vars of the other e2e tests (POLL_INTERVAL 2 s: lease 15 s, lib/poll/lease.ts leaseTtlFor). Each instance
 * reaches the Acumatica simulator through its own pass-through proxy, whose log says which instance sent each request.
 *
 * - Exactly one instance polls: the other's trigger status says standby and no Payment list comes from it.
 * - The holder is kill -9'd (not restarted); the survivor takes over (the takeover time is printed: lease 15 s + one
 *   poll interval is the documented bound) and continues from the shared watermark: voided payments changed before the
 *   kill, between the kill and the takeover, and after the takeover are each texted exactly once, none lost.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { type FlowNode, type Stack, startStack, withCredentialRefs } from "../harness/stack";
import { NodeRed, REPO_ROOT, freePort, installInto, tempDir, waitFor } from "../harness/nodered";
import { RoundRobinProxy } from "../harness/proxy";
import { type RedisServer, startRedis } from "../harness/redis";

/** settings.js `contextStorage`, exactly as the README section gives it (as in redis-instances.test.ts). */
const REDIS_CONTEXT_STORAGE = `{
    default: { module: require("node-red-contrib-ml-connector/store"), config: { redis: { url: process.env.MLC_REDIS_URL } } },
    memory: { module: "memory" }
  }`;

const TAB = "b222000000000000";
const TRIGGER = "b222000000000001";
const LEASE_MS = 15000; // leaseTtlFor(2000)
const INTERVAL_MS = 2000; // POLL_INTERVAL of the e2e env

/** The trigger's status texts, kept in the instance's memory store and read at GET /e2e/trigger-status. */
const STATUS_PROBE: FlowNode[] = [
  { id: "e2e00000000p0001", type: "status", z: TAB, name: "probe: trigger status", scope: [TRIGGER], x: 160, y: 400, wires: [["e2e00000000p0002"]] },
  {
    id: "e2e00000000p0002",
    type: "function",
    z: TAB,
    name: "probe: keep",
    func: 'const h = global.get("trgStatus", "memory") || [];\nh.push(String(msg.status.text || ""));\nglobal.set("trgStatus", h.slice(-200), "memory");\nreturn null;',
    outputs: 1,
    x: 360,
    y: 400,
    wires: [[]],
  },
  { id: "e2e00000000p0000", type: "tab", label: "e2e status probe" },
  { id: "e2e00000000p0003", type: "http in", z: "e2e00000000p0000", url: "/e2e/trigger-status", method: "get", upload: false, swaggerDoc: "", x: 100, y: 40, wires: [["e2e00000000p0004"]] },
  { id: "e2e00000000p0004", type: "function", z: "e2e00000000p0000", name: "read", func: 'msg.payload = global.get("trgStatus", "memory") || [];\nreturn msg;', outputs: 1, x: 300, y: 40, wires: [["e2e00000000p0005"]] },
  { id: "e2e00000000p0005", type: "http response", z: "e2e00000000p0000", statusCode: "", headers: {}, x: 500, y: 40, wires: [] },
];

interface Seen {
  at: number;
  url: string;
}

describe("end to end: one poller across two Node-RED instances on one Redis, kill -9 of the holder", function () {
  this.timeout(600000);
  let root: string;
  let redis: RedisServer;
  let stack: Stack;
  let b: NodeRed;
  const proxies: RoundRobinProxy[] = [];
  const seen: Seen[][] = [[], []];

  before(async function () {
    root = tempDir("mlc-redis-poll-");
    const data = path.join(root, "redis");
    fs.mkdirSync(data);
    redis = await startRedis(this, data);
    const ports = [await freePort(), await freePort()];
    const acuUrl = (i: number): string => `http://127.0.0.1:${ports[i]}`;
    const extraEnv = { MLC_REDIS_URL: redis.url };
    stack = await startStack({ userDir: path.join(root, "a", "user"), install: "pack", families: [], contextStorage: REDIS_CONTEXT_STORAGE, extraEnv: { ...extraEnv, ACUMATICA_URL: acuUrl(0) } });
    for (const i of [0, 1]) {
      const p = new RoundRobinProxy([stack.acumatica.url]);
      p.route = (_method, url) => {
        seen[i].push({ at: Date.now(), url }); // one call per request (its first try)
        return undefined;
      };
      await p.start(ports[i]);
      proxies.push(p);
    }
    const packDir = path.join(root, "a", "pack");
    installInto(path.join(root, "b", "user"), path.join(packDir, fs.readdirSync(packDir).find((f) => f.endsWith(".tgz")) as string));
    b = new NodeRed({ userDir: path.join(root, "b", "user"), env: { ...stack.env, ...extraEnv, ACUMATICA_URL: acuUrl(1) }, contextStorage: REDIS_CONTEXT_STORAGE });
    await b.start(120000);
    const example = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "examples", "acumatica", "failed-payment-alert.json"), "utf8")) as FlowNode[];
    const flows = [...withCredentialRefs(example), ...STATUS_PROBE];
    await Promise.all([stack.nodeRed.deploy(flows), b.deploy(flows)]);
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed") {
      process.stderr.write("---- instance A\n" + stack.nodeRed.log.slice(-30).join("\n") + "\n---- instance B\n" + b.log.slice(-30).join("\n") + "\n");
    }
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    await b?.stop();
    await stack?.stop();
    await redis?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const polls = (i: number, from = 0): Seen[] => seen[i].filter((s) => s.at >= from && /\/Payment(\?|$)/.test(s.url));
  const statusOf = async (n: NodeRed): Promise<string[]> => n.getJson<string[]>("/e2e/trigger-status");
  const texted = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const msg of stack.twilio.messages) {
      const ref = /^Payment (\d{6}) from customer/.exec(msg.body)?.[1];
      if (ref) m.set(ref, (m.get(ref) ?? 0) + 1);
    }
    return m;
  };
  const voidPayments = (refs: string[]): void => {
    for (const ref of refs) {
      stack.acumatica.upsert("Payment", {
        Type: "Payment", ReferenceNbr: ref, CustomerID: "C000017", PaymentAmount: 100, Status: "Voided",
        PaymentMethod: "VISA", CurrencyID: "USD", Description: `Card declined ${ref}`, ApplicationDate: "2025-03-12T00:00:00+00:00",
      });
    }
  };
  const allTexted = (refs: string[]): (() => boolean) => (): boolean => refs.every((r) => texted().has(r));

  it("one instance polls, the other stands by; kill -9 of the holder: the survivor takes over, each payment texted once", async () => {
    const BEFORE = ["000951", "000952", "000953"];
    const DURING = ["000961", "000962", "000963"];
    const AFTER = ["000971", "000972", "000973"];
    await waitFor(() => polls(0).length + polls(1).length >= 3, 60000, "the payment poll running");
    const h = polls(0).length > 0 ? 0 : 1;
    const s = 1 - h;
    const instances = [stack.nodeRed, b];
    await waitFor(() => polls(h).length >= 5, 60000, "more polls by the holder");
    assert.equal(polls(s).length, 0, "the other instance never polled while the holder lived");
    const standby = await waitFor(async () => {
      const st = await statusOf(instances[s]);
      return (st.at(-1) ?? "").includes("standby") ? st : undefined;
    }, 30000, "the other instance's status: standby");
    assert.ok(!standby.some((t) => /polling|polled/.test(t)), `the standby instance's statuses: ${standby.join(", ")}`);
    assert.ok((await statusOf(instances[h])).some((t) => /polling|polled/.test(t)), "the holder's status says it polls");

    voidPayments(BEFORE);
    await waitFor(allTexted(BEFORE), 60000, "the payments voided before the kill texted");

    const killAt = Date.now();
    await instances[h].kill();
    const lastHolderPoll = polls(h).at(-1)?.at ?? 0;
    voidPayments(DURING);
    const duringAt = Date.now();
    const first = await waitFor(() => polls(s)[0], LEASE_MS * 4, "the survivor's first poll");
    assert.ok(duringAt < first.at, "the 'during' payments were voided before the takeover");
    await waitFor(allTexted(DURING), 60000, "the payments voided between the kill and the takeover texted");
    voidPayments(AFTER);
    await waitFor(allTexted(AFTER), 60000, "the payments voided after the takeover texted");
    const pollsAfter0 = polls(s).length;
    await waitFor(() => polls(s).length >= pollsAfter0 + 3, 60000, "more polls (their overlap re-reads every payment)");

    const counts = texted();
    const all = [...BEFORE, ...DURING, ...AFTER];
    const lost = all.filter((r) => !counts.has(r));
    const doubles = all.filter((r) => (counts.get(r) ?? 0) > 1);
    const simPolls = stack.acumatica.requests.filter((r) => /\/Payment$/.test(r.path)).length;
    const takeoverMs = first.at - killAt;
    const statusS = await statusOf(instances[s]);
    process.stdout.write(
      `      holder ${"AB"[h]}: ${polls(h).length} polls, ${"AB"[s]} 0 until the kill; takeover ${(takeoverMs / 1000).toFixed(1)} s after the kill ` +
        `(${((first.at - lastHolderPoll) / 1000).toFixed(1)} s after the holder's last poll; bound: lease ${LEASE_MS / 1000} s + interval ${INTERVAL_MS / 1000} s), ` +
        `then ${polls(s).length} polls by ${"AB"[s]}; payments ${all.length}: SMS ${[...counts].filter(([r]) => all.includes(r)).reduce((n, [, c]) => n + c, 0)}, lost ${lost.length}, double ${doubles.length}\n`,
    );
    assert.deepEqual(lost, [], "payments never texted");
    assert.deepEqual(doubles, [], "payments texted twice");
    assert.equal(simPolls, polls(0).length + polls(1).length, "every Payment list the simulator served came through the instances' proxies");
    assert.ok(polls(h).every((p) => p.at <= killAt), "no poll by the killed holder after the kill");
    assert.ok(statusS.slice(statusS.indexOf(standby.at(-1) as string)).some((t) => /polling|polled/.test(t)), `the survivor's status went from standby to polling: ${statusS.slice(-5).join(", ")}`);
  });
});
