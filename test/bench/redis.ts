/**
 * `node dist/test/bench/redis.js`: what sharing the store on Redis costs and gains, in one run. The packed package
 * installed into fresh user dirs (as a user would), the push → dedupe → SMS → audit pipeline (pacing off, as in
 * test/bench/flow.ts), driven by a closed loop of pushes against the Acumatica and Twilio simulators:
 *
 * 1. one Node-RED on the package's local store (LMDB, the README's single-instance settings);
 * 2. one Node-RED on the store on Redis (the README's "Several Node-RED instances on one Redis" settings);
 * 3. two Node-REDs on that Redis behind a round-robin proxy (test/harness/proxy.ts).
 *
 * Printed: events/s (first push sent → last message created at the simulator), Node-RED CPU ms per event (summed over
 * the instances), SMS per event (must be 1). Figures only, nothing asserted. Needs Debian's redis-server.
 * MLC_BENCH_REDIS_EVENTS (default 1000) events per run; MLC_BENCH_CONCURRENCY (default 16) pushes in flight.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Agent, request } from "undici";
import { NodeRed, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";
import { RoundRobinProxy } from "../harness/proxy";
import { REDIS_APT_HINT, RedisServer, findRedisServer } from "../harness/redis";
import { AcumaticaSim } from "../sims/acumatica";
import { TwilioSim } from "../sims/twilio";

const FROM = "+15005550006";
const PUSH_SECRET = "bench-push-secret-0123456789";
/** The README's settings for instances sharing Redis. */
const REDIS_CONTEXT_STORAGE = `{
    default: { module: require("node-red-contrib-ml-connector/store"), config: { redis: { url: process.env.MLC_REDIS_URL } } },
    memory: { module: "memory" }
  }`;

function flows(twilio: TwilioSim, acumaticaUrl: string, publicUrl: string): unknown[] {
  const ac = twilio.defaultAccount;
  return [
    { id: "rb-tab", type: "tab", label: "redis bench" },
    { id: "rb-acu", type: "mlc-acumatica-config", name: "acumatica", instanceUrl: acumaticaUrl, tenant: "AcmeProd", endpointName: "Default", endpointVersion: "24.200.001", authMode: "oauth", scope: "api offline_access", timeout: "30",
      credentials: { clientId: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd", clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" } },
    { id: "rb-tw", type: "mlc-twilio-config", name: "twilio, pacing off", from: FROM, defaultRegion: "US", publicBaseUrl: publicUrl, region: "us1", apiHost: twilio.url, timeout: "15",
      rate: "0", concurrency: "64", rateLongCode: "0", rateTollFree: "0", rateShortCode: "0", rateMessagingService: "0", rateWhatsapp: "0",
      credentials: { accountSid: ac.accountSid, authToken: ac.authToken } },
    { id: "rb-trigger", z: "rb-tab", type: "mlc-acumatica-trigger", acumatica: "rb-acu", mode: "push", endpoint: "rb-bills", headerName: "X-Notify-Secret", keyFields: "Type,ReferenceNbr", entity: "Bill", modifiedField: "LastModifiedDateTime",
      credentials: { headerSecret: PUSH_SECRET }, wires: [["rb-dedupe"]] },
    { id: "rb-dedupe", z: "rb-tab", type: "mlc-dedupe", key: "erp.jobId", keyType: "msg", ttl: "30", ttlUnits: "d", maxEntries: "10000", store: "", wires: [["rb-sms"], []] },
    { id: "rb-sms", z: "rb-tab", type: "mlc-twilio-sms", twilio: "rb-tw", to: "payload.Phone", toType: "msg", body: "Approval needed: bill {{payload.ReferenceNbr}} from {{payload.VendorName}}.", callback: "status", wires: [["rb-audit"]] },
    { id: "rb-audit", z: "rb-tab", type: "mlc-audit", operation: "auto", trail: "default", store: "", maxRecords: "10000", ttl: "30", wires: [[]] },
  ];
}

function pushBody(i: number, run: string): string {
  return JSON.stringify({
    Inserted: [{ Type: "Bill", ReferenceNbr: `${run}${String(i).padStart(7, "0")}`, VendorID: "V000042", VendorName: "Northwind Traders", Amount: 1250, CurrencyID: "USD", Status: "Pending Approval", LastModifiedDateTime: new Date(Date.UTC(2026, 2, 2, 10, 0, 0) + i).toISOString(), Phone: `+1415${String(2000000 + i)}` }],
    Deleted: [],
    Query: "AP-Bills-Pending-Approval",
    CompanyId: "AcmeProd",
    Id: `${run}-${i}`,
    TimeStamp: 638765000000000000 + i,
    AdditionalInfo: {},
  });
}

function cpuMs(pid: number | undefined): number {
  if (!pid) return 0;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

interface Row {
  name: string;
  perSec: number;
  cpuPerEvent: number;
  smsPerEvent: number;
  failed: number;
}

async function drive(label: string, run: string, url: string, instances: NodeRed[], twilio: TwilioSim, n: number, concurrency: number): Promise<Row> {
  const agent = new Agent({ connections: concurrency });
  const before = twilio.messages.length;
  const cpu0 = instances.reduce((s, r) => s + cpuMs(r.pid), 0);
  const t0 = performance.timeOrigin + performance.now();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const r = await request(url, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json", "x-notify-secret": PUSH_SECRET }, body: pushBody(i, run) }).catch(() => undefined);
        await r?.body.dump();
        if (!r || r.statusCode < 200 || r.statusCode >= 300) failed++;
      }
    }),
  );
  await waitFor(() => twilio.messages.length - before >= n - failed, 600000, `${n} messages`);
  await new Promise((r) => setTimeout(r, 1000));
  const last = twilio.requests.filter((q) => q.messageSid).reduce((m, q) => Math.max(m, q.startedAt), 0);
  const cpu = instances.reduce((s, r) => s + cpuMs(r.pid), 0) - cpu0;
  await agent.close();
  return { name: label, perSec: (n / (last - t0)) * 1000, cpuPerEvent: cpu / n, smsPerEvent: (twilio.messages.length - before) / n, failed };
}

export async function redisBench(): Promise<Row[]> {
  const bin = findRedisServer();
  if (!bin) {
    process.stdout.write(`\nredis bench skipped: ${REDIS_APT_HINT}\n`);
    return [];
  }
  const n = Number(process.env.MLC_BENCH_REDIS_EVENTS) || 1000;
  const concurrency = Number(process.env.MLC_BENCH_CONCURRENCY) || 16;
  const root = tempDir("mlc-bench-redis-");
  const dataDir = path.join(root, "redis");
  fs.mkdirSync(dataDir);
  const redis = new RedisServer(bin, dataDir);
  const acumatica = new AcumaticaSim();
  const twilio = new TwilioSim();
  const started: NodeRed[] = [];
  const rows: Row[] = [];
  try {
    await redis.start();
    await acumatica.start();
    await twilio.start();
    const tarball = packRepo(path.join(root, "pack"));
    const instance = async (name: string, contextStorage?: string): Promise<NodeRed> => {
      const userDir = path.join(root, name);
      installInto(userDir, tarball);
      const r = new NodeRed({ userDir, env: { MLC_REDIS_URL: redis.url }, contextStorage });
      started.push(r);
      await r.start(120000);
      return r;
    };
    process.stdout.write(`\nredis: ${n} pushes (${concurrency} in flight) through push → dedupe → SMS → audit, pacing off (load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} CPUs; Redis with appendfsync always)\n`);
    process.stdout.write("setup".padEnd(34) + "events/s".padStart(10) + "CPU ms/event".padStart(14) + "SMS/event".padStart(11) + "\n");
    const print = (r: Row): void => {
      rows.push(r);
      process.stdout.write(r.name.padEnd(34) + r.perSec.toFixed(0).padStart(10) + r.cpuPerEvent.toFixed(2).padStart(14) + r.smsPerEvent.toFixed(3).padStart(11) + (r.failed ? `  (${r.failed} pushes failed)` : "") + "\n");
    };

    const local = await instance("local");
    await local.deploy(flows(twilio, acumatica.url, local.url));
    print(await drive("1 instance, local store (LMDB)", "L", `${local.url}/mlc/acumatica/rb-bills`, [local], twilio, n, concurrency));
    await local.stop();

    const a = await instance("a", REDIS_CONTEXT_STORAGE);
    const b = await instance("b", REDIS_CONTEXT_STORAGE);
    const proxy = new RoundRobinProxy([a.url, b.url]);
    await proxy.start();
    try {
      await a.deploy(flows(twilio, acumatica.url, proxy.url));
      print(await drive("1 instance, Redis", "A", `${a.url}/mlc/acumatica/rb-bills`, [a], twilio, n, concurrency));
      await b.deploy(flows(twilio, acumatica.url, proxy.url));
      print(await drive("2 instances, Redis, round robin", "B", `${proxy.url}/mlc/acumatica/rb-bills`, [a, b], twilio, n, concurrency));
    } finally {
      await proxy.stop();
    }
    if (rows[0]?.perSec) process.stdout.write(`(2 instances on Redis: ${(rows[2].perSec / rows[0].perSec).toFixed(2)} × one instance on the local store)\n`);
  } finally {
    for (const r of started) await r.stop();
    await twilio.stop();
    await acumatica.stop();
    await redis.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

if (require.main === module) {
  redisBench().catch((err: unknown) => {
    process.stderr.write(`redis bench failed: ${String(err)}\n`);
    process.exitCode = 1;
  });
}
