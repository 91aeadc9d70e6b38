/**
 * `npm run bench` (flow part): the package's pipeline against a core-nodes flow doing the equivalent Twilio call, side
 * by side in one real Node-RED (the packed tarball installed into a fresh user dir, as a user would) and one run,
 * against the same Twilio simulator. Figures only, nothing asserted.
 *
 * - pipeline: Acumatica push (`mlc-acumatica-trigger`, push mode) → `mlc-dedupe` → `mlc-twilio-sms` → `mlc-audit`,
 *   pacing off (rate 0, per-sender rates 0, 64 requests in flight);
 * - core: `http in` → `function` (builds the Messages create) → `http request` → `http response`.
 *
 * Printed: events/s of each (first push sent → last message created at the simulator) and their ratio; Node-RED CPU
 * ms per event (utime + stime of the Node-RED process from /proc/<pid>/stat) and this process's (driver and simulators: the
 * rest of the machine's work per event, which bounds how far a lower Node-RED cost can raise events/s); push-to-Twilio latency p50/p99/max at
 * 100 events/s (push sent → create arrived at the simulator); Node-RED RSS (and its anonymous part) over a long
 * pipeline run, and over 30 s of idle after it (what the nodes retain once V8 has shrunk its heap).
 *
 * Environment:
 * - MLC_BENCH_EVENTS (default 2000): events per throughput run, and in the long run unless MLC_BENCH_LONG_EVENTS
 *   is set. 100,000 events in the long run: `MLC_BENCH_LONG_EVENTS=100000 npm run bench` (at ~300 events/s about
 *   6 minutes more); `MLC_BENCH_EVENTS=100000` makes the throughput runs that long too.
 * - MLC_BENCH_LATENCY_SECONDS (default 10): length of the 100 events/s latency run.
 * - MLC_BENCH_CONCURRENCY (default 16): requests the driver keeps in flight in the throughput runs.
 * - MLC_BENCH_ROUNDS (default 4): the throughput runs alternate pipeline and core in this many rounds of
 *   MLC_BENCH_EVENTS / rounds events each (events/s = all events of a flow / the time of its rounds), so a change of
 *   the machine's load during the run does not favour the flow that happened to run in the quieter part.
 * - MLC_BENCH_CONTEXT_STORAGE: see {@link BENCH_CONTEXT_STORAGE}.
 * - MLC_BENCH_ONLY (`pipeline` or `core`): one throughput run of that flow only (after its warm-up), nothing else: a
 *   CPU profile of the Node-RED process (MLC_NODE_BIN below) then shows that flow's costs alone.
 * - MLC_BENCH_PIPELINE (default `full`): which steps the pipeline flow has, to see what each costs against the same
 *   core flow: `full` (push → dedupe → sms → audit), `no-audit` (push → dedupe → sms; the SMS node then writes no audit
 *   trail), `push-sms` (push → sms: only the push journal and the send ledger are written).
 * - MLC_BENCH_WAIT_MS (default 600000): how long a throughput run waits for the simulator's messages; on a failure
 *   the last lines of Node-RED's log are printed.
 * - MLC_NODE_BIN (test/harness/nodered.ts): the node binary or a script that runs Node-RED, e.g. one that execs
 *   `node --cpu-prof --cpu-prof-dir=<dir> "$@"` (summarise with `node dist/test/bench/profile.js`) or
 *   `node --max-old-space-size=200 "$@"` (a heap that cannot grow: a leak would end the long run with an OOM).
 *
 * Figures of the last session of 2026-12-07 (same machine; the same pipeline-only run went from 516 to 1206 events/s
 * between runs, so only figures of one run are compared): full runs of 4000 events, durable store: ratio pipeline / core
 * 1.06×, 1.12×, 1.25×, 1.26× events/s, 0.81-0.93× Node-RED CPU per event; the same with Node-RED's memory store (no
 * durability at all): 1.29× and 1.49× events/s, 0.72-0.76× CPU. The durable store is thus about 0.1× of the core flow's
 * CPU per event; even without it the pipeline's own steps (journal, dedupe, send ledger, pending audit record) keep the
 * ratio under 1.5× here. Per step (MLC_BENCH_PIPELINE, two full runs of 3000 events each, durable store; CPU per event
 * against the core flow of the same run): push → sms 0.69× and 0.71× (1.49× and 1.39× events/s), with dedupe 0.85× and
 * 0.73× (1.14×, 1.34×), with dedupe and audit 0.89× and 0.87× (1.19×, 1.15×). lmdb `commitDelay` 2 or 5 ms (fewer,
 * larger commits) changed neither CPU nor events/s in six alternating runs. Pipeline p99 at 100 events/s 8.5-21.6 ms in calm runs (35-41 ms in two runs whose core p99 was
 * 26-71 ms); per-second maxima showed no periodic stall.
 * Later figures of 2026-12-07 (same machine, its speed varying up to 2× between runs): ratio pipeline / core 1.06-1.28×
 * events/s over four full runs (2000-4000 events), 1.14× with 64 requests in flight; pipeline p99 at 100 events/s
 * 8.8-13.0 ms (core 8.7-64.9 ms); RSS over 100,000 pipeline events 218 → 752 MB (anonymous 160 → 547 MB) at full load,
 * and in a 20,000-event long run anonymous 364 MB at its end, 113 MB after 30 s idle (V8 shrinks the heap once the load
 * stops; the live heap after the last mark-compact of a 40,000-event run was 88 MB, 98 MB before shared hidden classes).
 * Figures of 2026-12-07 (2 cores, no other work; durable store): ratio pipeline / core 1.01× (2000 events) and 1.03×
 * (8000 events) events/s; Node-RED main-thread CPU per event 0.52-0.56 ms against the core flow's 0.66-0.72 ms, but the
 * pipeline's main thread is only 63-71 % busy (core 81-88 %): each push waits for its journal commit, and the store's
 * writes (7 rows per event on random pages) and their disk flush cost the libuv pool about 0.12 ms of CPU per event,
 * measured with MLC_BENCH_ONLY; without the flush (lmdb `noSync`, not adopted: it gives up durability against an OS
 * crash or power cut) about half of that. With Node-RED's memory store the same pipeline ran at 1.3-1.7× the core flow.
 * Earlier figures (2 shared cores, load average 2-6 from other test runs; durable store; 2000 events in 4 rounds; four runs
 * alternating with the same bench on the code before the changes of branch s4-speed): ratio pipeline / core
 * 0.97-1.13× events/s and 0.87-1.08× Node-RED CPU per event (before: 0.78-0.92× and 1.25-1.33×); pipeline p99 at
 * 100 events/s 11.9-28.2 ms over 5-10 s latency runs (before: 8.0-23.9 ms in the same runs). Two more pairs with
 * 4000 events: 0.88× and 1.00× events/s, 1.02× and 0.96× CPU (before: 0.67× and 0.77×, 1.45× and 1.31×).
 */
import fs from "node:fs";
import path from "node:path";
import { Agent, request } from "undici";
import { NodeRed, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";
import { AcumaticaSim } from "../sims/acumatica";
import { TwilioSim } from "../sims/twilio";

/**
 * settings.js `contextStorage` of the benchmark's Node-RED, as JavaScript source: the one place to change it.
 * Default (undefined): what the README tells users to configure, the package's durable store
 * (test/harness/nodered.ts writeSettings). To compare another store, set MLC_BENCH_CONTEXT_STORAGE to an
 * object literal, e.g. `{ default: { module: "localfilesystem" } }` for Node-RED's file store with its default flush.
 */
export const BENCH_CONTEXT_STORAGE: string | undefined = process.env.MLC_BENCH_CONTEXT_STORAGE || undefined;

const FROM = "+15005550006";
/** Idle time after the long run, sampled 6 times, ms. */
const IDLE_MS = 30000;
const PUSH_HEADER = "X-Notify-Secret";
const PUSH_SECRET = "bench-push-secret-0123456789";

/** Pipeline steps of MLC_BENCH_PIPELINE (see the module comment). */
export type PipelineSteps = "full" | "no-audit" | "push-sms";

const STEP_LABEL: Record<PipelineSteps, string> = { full: "push → dedupe → sms → audit", "no-audit": "push → dedupe → sms, no audit", "push-sms": "push → sms" };

/** MLC_BENCH_PIPELINE, checked. @throws Error for a value that is not a {@link PipelineSteps} */
export function pipelineSteps(value = process.env.MLC_BENCH_PIPELINE): PipelineSteps {
  if (!value) return "full";
  if (Object.hasOwn(STEP_LABEL, value)) return value as PipelineSteps;
  const names = Object.keys(STEP_LABEL);
  throw new Error(`MLC_BENCH_PIPELINE must be ${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}, not "${value}"`);
}

/** The bench flows with the pipeline cut down to `steps`: dropped nodes are removed and the wires closed around them. */
export function withSteps(nodes: Record<string, unknown>[], steps: PipelineSteps): Record<string, unknown>[] {
  const drop = new Set(steps === "full" ? [] : steps === "no-audit" ? ["bench-audit"] : ["bench-audit", "bench-dedupe"]);
  return nodes
    .filter((n) => !drop.has(n.id as string))
    .map((n) => {
      if (n.id === "bench-sms" && drop.has("bench-audit")) return { ...n, wires: [[]] };
      if (n.id === "bench-trigger" && drop.has("bench-dedupe")) return { ...n, wires: [["bench-sms"]] };
      return n;
    });
}

function flows(twilioUrl: string, acumaticaUrl: string, nodeRedUrl: string, sim: TwilioSim): Record<string, unknown>[] {
  const ac = sim.defaultAccount;
  return [
    { id: "bench-tab", type: "tab", label: "bench" },
    { id: "bench-acu", type: "mlc-acumatica-config", name: "acumatica", instanceUrl: acumaticaUrl, tenant: "AcmeProd", endpointName: "Default", endpointVersion: "24.200.001", authMode: "oauth", scope: "api offline_access", timeout: "30",
      credentials: { clientId: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd", clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" } },
    { id: "bench-tw", type: "mlc-twilio-config", name: "twilio, pacing off", from: FROM, defaultRegion: "US", publicBaseUrl: nodeRedUrl, region: "us1", apiHost: twilioUrl, timeout: "15",
      rate: "0", concurrency: "64", rateLongCode: "0", rateTollFree: "0", rateShortCode: "0", rateMessagingService: "0", rateWhatsapp: "0",
      credentials: { accountSid: ac.accountSid, authToken: ac.authToken } },
    // the package's pipeline
    { id: "bench-trigger", z: "bench-tab", type: "mlc-acumatica-trigger", acumatica: "bench-acu", mode: "push", endpoint: "bench-bills", headerName: PUSH_HEADER, keyFields: "Type,ReferenceNbr", entity: "Bill", modifiedField: "LastModifiedDateTime",
      credentials: { headerSecret: PUSH_SECRET }, wires: [["bench-dedupe"]] },
    { id: "bench-dedupe", z: "bench-tab", type: "mlc-dedupe", key: "erp.jobId", keyType: "msg", ttl: "30", ttlUnits: "d", maxEntries: "10000", store: "", wires: [["bench-sms"], []] },
    { id: "bench-sms", z: "bench-tab", type: "mlc-twilio-sms", twilio: "bench-tw", to: "payload.Phone", toType: "msg", body: "Approval needed: bill {{payload.ReferenceNbr}} from {{payload.VendorName}} for {{payload.Amount}} {{payload.CurrencyID}}.", callback: "status", wires: [["bench-audit"]] },
    { id: "bench-audit", z: "bench-tab", type: "mlc-audit", operation: "auto", trail: "default", store: "", maxRecords: "10000", ttl: "30", wires: [[]] },
    // the core-nodes flow doing the equivalent call
    { id: "core-in", z: "bench-tab", type: "http in", url: "/bench/core", method: "post", upload: false, wires: [["core-fn"]] },
    { id: "core-fn", z: "bench-tab", type: "function", name: "build Messages create", outputs: 1,
      func: `const row = msg.payload.Inserted[0];
msg.url = env.get("BENCH_TWILIO_URL") + "/2010-04-01/Accounts/" + env.get("BENCH_TWILIO_SID") + "/Messages.json";
msg.method = "POST";
msg.headers = { "Content-Type": "application/x-www-form-urlencoded", Authorization: "Basic " + Buffer.from(env.get("BENCH_TWILIO_SID") + ":" + env.get("BENCH_TWILIO_TOKEN")).toString("base64") };
const form = { To: row.Phone, From: "${FROM}", Body: "Approval needed: bill " + row.ReferenceNbr + " from " + row.VendorName + " for " + row.Amount + " " + row.CurrencyID + "." };
msg.payload = Object.keys(form).map((k) => k + "=" + encodeURIComponent(form[k])).join("&");
return msg;`,
      wires: [["core-req"]] },
    { id: "core-req", z: "bench-tab", type: "http request", method: "use", ret: "obj", paytoqs: "ignore", url: "", persist: true, wires: [["core-res"]] },
    { id: "core-res", z: "bench-tab", type: "http response", wires: [] },
  ];
}

/** utime and stime in a /proc `stat` file (fields 14 and 15, in clock ticks of 10 ms), ms. */
function statCpu(file: string): [number, number] {
  const stat = fs.readFileSync(file, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return [Number(fields[11]) * 10, Number(fields[12]) * 10];
}

/** utime + stime of `pid`, all threads, ms. */
function cpuMs(pid: number): number {
  const [u, s] = statCpu(`/proc/${pid}/stat`);
  return u + s;
}

/** utime + stime of the main thread of `pid` (its event loop: JavaScript, not GC helpers or the store's write thread), ms. */
function mainThreadCpuMs(pid: number): number {
  const [u, s] = statCpu(`/proc/${pid}/task/${pid}/stat`);
  return u + s;
}

/** utime and stime of each thread of `pid`, ms, by thread id (threads that ended meanwhile are left out). */
function threadCpu(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(tid, statCpu(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/** Resident set size of `pid`, MB (/proc/<pid>/status VmRSS, or another of its kB fields). */
function rssMb(pid: number, field = "VmRSS"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** RSS and its anonymous part (heap, buffers: what the process holds; the rest is file pages such as the store's memory map, which the OS may drop), MB. */
function memSample(pid: number): [number, number] {
  return [rssMb(pid), rssMb(pid, "RssAnon")];
}

const wallNow = (): number => performance.timeOrigin + performance.now();

interface Driver {
  /** Send event `i` (a distinct bill); resolves with the HTTP status. */
  send(i: number): Promise<number>;
}

function pushBody(i: number, run: string): string {
  const ref = `${run}${String(i).padStart(7, "0")}`;
  return JSON.stringify({
    Inserted: [{ Type: "Bill", ReferenceNbr: ref, VendorID: "V000042", VendorName: "Northwind Traders", Amount: 1250 + (i % 100), CurrencyID: "USD", Description: "Office supplies", Status: "Pending Approval", ApproverID: "EP00000001", LastModifiedDateTime: new Date(Date.UTC(2026, 2, 2, 10, 0, 0) + i).toISOString(), Phone: `+1415${String(2000000 + (i % 7000000))}` }],
    Deleted: [],
    Query: "AP-Bills-Pending-Approval",
    CompanyId: "AcmeProd",
    Id: `${run}-${i}`,
    TimeStamp: 638765000000000000 + i,
    AdditionalInfo: {},
  });
}

function driver(agent: Agent, url: string, headers: Record<string, string>, run: string): Driver {
  return {
    async send(i: number): Promise<number> {
      const r = await request(url, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json", ...headers }, body: pushBody(i, run) });
      await r.body.dump();
      return r.statusCode;
    },
  };
}

/** What throughput runs measured, summed: events, ms (first push sent → last create), Node-RED CPU ms, this process's CPU ms. */
interface Tally {
  n: number;
  ms: number;
  cpu: number;
  own: number;
  /** Node-RED main-thread CPU ms. */
  main: number;
  failed: number;
}

const addTally = (a: Tally, b: Tally): Tally => ({ n: a.n + b.n, ms: a.ms + b.ms, cpu: a.cpu + b.cpu, own: a.own + b.own, main: a.main + b.main, failed: a.failed + b.failed });
const perSec = (t: Tally): number => (t.n / t.ms) * 1000;

/** Closed loop: `concurrency` requests in flight until `n` are sent; resolves when the simulator holds `n` more messages. */
async function throughput(d: Driver, sim: TwilioSim, n: number, concurrency: number, pid: number): Promise<Tally> {
  const before = sim.messages.length;
  const cpu0 = cpuMs(pid);
  const main0 = mainThreadCpuMs(pid);
  const own0 = process.cpuUsage();
  const t0 = wallNow();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const status = await d.send(i).catch(() => 0);
        if (status < 200 || status >= 300) failed++;
      }
    }),
  );
  await waitFor(() => sim.messages.length - before >= n - failed, Number(process.env.MLC_BENCH_WAIT_MS) || 600000, `${n} messages`);
  const last = sim.requests.filter((q) => q.messageSid).reduce((m, q) => Math.max(m, q.startedAt), 0);
  const cpu = cpuMs(pid) - cpu0;
  const main = mainThreadCpuMs(pid) - main0;
  const own = process.cpuUsage(own0);
  return { n, ms: last - t0, cpu, own: (own.user + own.system) / 1000, main, failed };
}

/** Open loop at `rate` events/s for `seconds`: latency from push sent to create arrived at the simulator. */
async function latency(d: Driver, sim: TwilioSim, rate: number, seconds: number, run: string): Promise<{ p50: number; p99: number; max: number; n: number }> {
  const n = Math.round(rate * seconds);
  const sentAt = new Map<string, number>();
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sentAt.set(`${run}${String(i).padStart(7, "0")}`, wallNow());
    pending.push(d.send(i).catch(() => 0));
  }
  await Promise.all(pending);
  const arrived = (): number => sim.requests.filter((q) => q.messageSid && /bill (\S+) from/.exec(String(q.form?.Body ?? ""))?.[1]?.startsWith(run)).length;
  await waitFor(() => arrived() >= n, 120000, `${n} latency-run messages`);
  const lat: number[] = [];
  for (const q of sim.requests) {
    const ref = /bill (\S+) from/.exec(String(q.form?.Body ?? ""))?.[1];
    const sent = ref ? sentAt.get(ref) : undefined;
    if (q.messageSid && sent !== undefined) lat.push(q.startedAt - sent);
  }
  lat.sort((a, b) => a - b);
  return { p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)], max: lat[lat.length - 1], n: lat.length };
}

/** Runs the side-by-side benchmark and prints its figures. */
export async function flowBench(): Promise<void> {
  const events = Number(process.env.MLC_BENCH_EVENTS) || 2000;
  const longEvents = Number(process.env.MLC_BENCH_LONG_EVENTS) || events;
  const latencySeconds = Number(process.env.MLC_BENCH_LATENCY_SECONDS) || 10;
  const concurrency = Number(process.env.MLC_BENCH_CONCURRENCY) || 16;
  const steps = pipelineSteps();
  const twilio = new TwilioSim({ senders: [FROM] });
  const acumatica = new AcumaticaSim();
  await twilio.start();
  await acumatica.start();
  const root = tempDir("mlc-bench-");
  const userDir = path.join(root, "user");
  installInto(userDir, packRepo(path.join(root, "pack")));
  const env = { BENCH_TWILIO_URL: twilio.url, BENCH_TWILIO_SID: twilio.defaultAccount.accountSid, BENCH_TWILIO_TOKEN: twilio.defaultAccount.authToken };
  const nodeRed = new NodeRed({ userDir, env, contextStorage: BENCH_CONTEXT_STORAGE });
  const agent = new Agent({ connections: concurrency + 4, keepAliveTimeout: 30000 });
  try {
    await nodeRed.start();
    await nodeRed.deploy(withSteps(flows(twilio.url, acumatica.url, nodeRed.url, twilio), steps));
    const pid = nodeRed.pid as number;
    const pipeline = (run: string): Driver => driver(agent, `${nodeRed.url}/mlc/acumatica/bench-bills`, { [PUSH_HEADER]: PUSH_SECRET }, run);
    const core = (run: string): Driver => driver(agent, `${nodeRed.url}/bench/core`, {}, run);
    process.stdout.write(`\nflow: packed install in Node-RED (pid ${pid}), contextStorage ${(BENCH_CONTEXT_STORAGE ?? "the README's (package durable store)").replace(/\s+/g, " ")}\n`);

    const only = process.env.MLC_BENCH_ONLY;
    if (only === "pipeline" || only === "core") {
      const drive = only === "pipeline" ? pipeline : core;
      await throughput(drive("W"), twilio, 200, concurrency, pid);
      twilio.reset();
      const t0 = threadCpu(pid);
      const r = await throughput(drive("P"), twilio, events, concurrency, pid);
      const t1 = threadCpu(pid);
      const per = [...t1]
        .map(([tid, [u, sy]]) => [tid, u - (t0.get(tid)?.[0] ?? 0), sy - (t0.get(tid)?.[1] ?? 0)] as const)
        .filter(([, u, sy]) => u + sy > 0)
        .sort((a, b) => b[1] + b[2] - (a[1] + a[2]));
      process.stdout.write(`threads of Node-RED (user / system ms per 1000 events): ${per.map(([tid, u, sy]) => `${tid === String(pid) ? "main" : tid} ${((u / r.n) * 1000).toFixed(0)}/${((sy / r.n) * 1000).toFixed(0)}`).join(", ")}\n`);
      process.stdout.write(`${only === "pipeline" ? `pipeline (${STEP_LABEL[steps]})` : only} only, ${events} events, ${concurrency} in flight: ${perSec(r).toFixed(0)} events/s, ${(r.cpu / r.n).toFixed(3)} ms Node-RED CPU per event, ${(r.main / r.n).toFixed(3)} ms of it on the main thread, ${((r.main / r.ms) * 100).toFixed(0)} % busy (this process: ${(r.own / r.n).toFixed(3)} ms)${r.failed ? `, ${r.failed} refused` : ""}\n`);
      return;
    }
    // warm-up both paths (JIT, connections), then the throughput runs in alternating rounds (pipeline first in even
    // rounds, core first in odd ones), so a machine whose load changes during the run weighs on both alike
    await throughput(pipeline("W"), twilio, 200, concurrency, pid);
    await throughput(core("w"), twilio, 200, concurrency, pid);
    twilio.reset();
    const rounds = Math.max(1, Math.floor(Number(process.env.MLC_BENCH_ROUNDS) || 4));
    let p: Tally = { n: 0, ms: 0, cpu: 0, own: 0, main: 0, failed: 0 };
    let c: Tally = { ...p };
    for (let r = 0; r < rounds; r++) {
      const n = Math.ceil(events / rounds);
      for (const which of r % 2 === 0 ? ["p", "c"] : ["c", "p"]) {
        if (which === "p") p = addTally(p, await throughput(pipeline(`P${r}`), twilio, n, concurrency, pid));
        else c = addTally(c, await throughput(core(`C${r}`), twilio, n, concurrency, pid));
        twilio.reset();
      }
    }
    process.stdout.write(`throughput, ${p.n} events each in ${rounds} alternating rounds, ${concurrency} in flight (first push sent → last create at the simulator)\n`);
    process.stdout.write(`  pipeline (${STEP_LABEL[steps]}): ${perSec(p).toFixed(0)} events/s, ${(p.cpu / p.n).toFixed(3)} ms Node-RED CPU per event (${(p.main / p.n).toFixed(3)} ms on its main thread, ${((p.main / p.ms) * 100).toFixed(0)} % busy)${p.failed ? `, ${p.failed} refused` : ""}\n`);
    process.stdout.write(`  core (http in → function → http request → http response): ${perSec(c).toFixed(0)} events/s, ${(c.cpu / c.n).toFixed(3)} ms Node-RED CPU per event (${(c.main / c.n).toFixed(3)} ms on its main thread, ${((c.main / c.ms) * 100).toFixed(0)} % busy)${c.failed ? `, ${c.failed} refused` : ""}\n`);
    process.stdout.write(`  ratio pipeline / core: ${(perSec(p) / perSec(c)).toFixed(2)}× events/s, ${(p.cpu / p.n / (c.cpu / c.n)).toFixed(2)}× CPU per event\n`);
    process.stdout.write(`  this process (driver and simulators, sharing the machine with Node-RED): ${(p.own / p.n).toFixed(3)} ms CPU per pipeline event, ${(c.own / c.n).toFixed(3)} ms per core event\n`);

    const lp = await latency(pipeline("L"), twilio, 100, latencySeconds, "L");
    twilio.reset();
    const lc = await latency(core("K"), twilio, 100, latencySeconds, "K");
    twilio.reset();
    process.stdout.write(`push-to-Twilio latency at 100 events/s for ${latencySeconds} s (push sent → create arrived at the simulator)\n`);
    process.stdout.write(`  pipeline: p50 ${lp.p50.toFixed(1)} ms, p99 ${lp.p99.toFixed(1)} ms, max ${lp.max.toFixed(1)} ms (${lp.n} events)\n`);
    process.stdout.write(`  core:     p50 ${lc.p50.toFixed(1)} ms, p99 ${lc.p99.toFixed(1)} ms, max ${lc.max.toFixed(1)} ms (${lc.n} events)\n`);

    // long run: RSS of Node-RED while the pipeline takes `longEvents` more events; the simulator's ledger is cleared as it goes
    const d = pipeline("R");
    const samples: [number, number][] = [memSample(pid)];
    const every = Math.max(1, Math.floor(longEvents / 10));
    let created = 0;
    let next = 0;
    const sampler = setInterval(() => {
      if (twilio.messages.length > 5000) {
        created += twilio.messages.length;
        twilio.reset();
      }
    }, 200);
    try {
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < longEvents) {
            const i = next++;
            await d.send(i).catch(() => 0);
            if ((i + 1) % every === 0) samples.push(memSample(pid));
          }
        }),
      );
      await waitFor(() => created + twilio.messages.length >= longEvents, 600000, "long-run messages");
    } finally {
      clearInterval(sampler);
    }
    samples.push(memSample(pid));
    // what stays once the load stops: V8 shrinks its heap to the live data after a few idle seconds (its memory
    // reducer), so this is what the nodes retain (their bounded entries), the samples above include garbage not yet
    // collected at full load
    const idle: [number, number][] = [];
    for (let t = 0; t < IDLE_MS; t += IDLE_MS / 6) {
      await new Promise((r) => setTimeout(r, IDLE_MS / 6));
      idle.push(memSample(pid));
    }
    const rss = samples.map((m) => m[0]);
    const anon = samples.map((m) => m[1]);
    process.stdout.write(`Node-RED RSS over ${longEvents} pipeline events (MB, every ${every}): ${rss.map((m) => m.toFixed(0)).join(" ")}; max ${Math.max(...rss).toFixed(0)}\n`);
    process.stdout.write(`  of which anonymous (heap and buffers, not file pages): ${anon.map((m) => m.toFixed(0)).join(" ")}; max ${Math.max(...anon).toFixed(0)}\n`);
    process.stdout.write(`  then idle, every ${IDLE_MS / 6000} s for ${IDLE_MS / 1000} s: RSS ${idle.map((m) => m[0].toFixed(0)).join(" ")}, anonymous ${idle.map((m) => m[1].toFixed(0)).join(" ")} MB\n`);
  } catch (err) {
    process.stderr.write(`Node-RED log (last 40 lines):\n${nodeRed.log.slice(-40).join("\n")}\n`);
    throw err;
  } finally {
    await agent.close();
    await nodeRed.stop();
    await twilio.stop();
    await acumatica.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  flowBench().catch((err: unknown) => {
    process.stderr.write(`flow bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
