/**
 * `npm run bench`: throughput and memory of the hot paths, printed as figures (never asserted).
 * Each case runs a fixed number of operations and reports ops/s and heap growth.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { toE164 } from "../../nodes/lib/phone";
import { BoundedStore, MapBackend } from "../../nodes/lib/store";
import { deriveJobId } from "../../nodes/lib/ids";
import { validateTwilioWebhook } from "../../nodes/lib/twilio/signature";
import { unwrapValues } from "../../nodes/lib/acumatica/values";
import { signTwilioRequest } from "../sims/twilio";
import { Status, statusTemplate, t } from "../../nodes/shared/node";
import type { RedAPI } from "../../nodes/shared/types";

interface Result {
  name: string;
  ops: number;
  ms: number;
  heapMb: number;
}

async function bench(name: string, ops: number, fn: (i: number) => unknown | Promise<unknown>): Promise<Result> {
  for (let i = 0; i < Math.min(200, ops); i++) await fn(i); // warm-up
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) await fn(i);
  const ms = performance.now() - t0;
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 1048576;
  return { name, ops, ms, heapMb };
}

async function main(): Promise<void> {
  const results: Result[] = [];
  const national = ["(415) 555-0132", "212-555-0187", "+44 7911 123456", "415.555.0199", "+1 (206) 555-0100"];
  results.push(await bench("E.164 normalisation (libphonenumber-js/max)", 20000, (i) => toE164(national[i % national.length], "US")));
  results.push(await bench("jobId derivation (SHA-256)", 100000, (i) => deriveJobId({ system: "acumatica", tenant: "AcmeProd", entity: "Bill", id: `Bill/${i}`, version: "2025-03-10T14:22:31.117+00:00" })));
  const store = new BoundedStore<number>(new MapBackend(), { prefix: "dd", ttlMs: 7 * 86400000, maxEntries: 50000 });
  results.push(await bench("dedupe claim, 100k keys into a 50k-entry store", 100000, (i) => store.claim(`j${i}`, i)));
  const url = "https://nodered.example.com/mlc/twilio/status?j=j0123456789abcdef0123456789abcdef";
  const params = { MessageSid: "SM" + "a".repeat(32), MessageStatus: "delivered", AccountSid: "AC" + "1".repeat(32), From: "+15005550006", To: "+14155550132", ApiVersion: "2010-04-01", SmsSid: "SM" + "a".repeat(32), SmsStatus: "delivered" };
  const sig = signTwilioRequest("token-123", url, params);
  const raw = Buffer.from(new URLSearchParams(params).toString());
  results.push(await bench("X-Twilio-Signature validation", 20000, () => validateTwilioWebhook({ authToken: "token-123", signature: sig, url, contentType: "application/x-www-form-urlencoded", rawBody: raw, params })));
  const wrapped = { id: "6f1e2d3c-4b5a-4978-8a1b-2c3d4e5f6a7b", rowNumber: 1, note: { value: "" }, Amount: { value: 1250 }, Balance: { value: 1250 }, Status: { value: "Open" }, Type: { value: "Bill" }, ReferenceNbr: { value: "000123" }, Vendor: { value: "V000042" }, LastModifiedDateTime: { value: "2025-03-10T14:22:31.117+00:00" }, MainContact: { Phone1: { value: "+1 555 0100" }, Email: { value: "ap@northwind.example" } }, custom: {}, _links: { self: "/entity/Default/24.200.001/Bill/x" } };
  results.push(await bench("Acumatica value-object unwrap (1 record)", 50000, () => unwrapValues(wrapped)));

  // Status text per message: translated on the server (t(), as before issue 7) vs a catalog key or a template
  // translated once (what the nodes send now; the editor translates keys). Node-RED's own i18n and the built catalog.
  const i18n = (createRequire(__filename)("@node-red/util") as { i18n: { init(s: object): Promise<void>; registerMessageCatalog(ns: string, dir: string, file: string): Promise<void>; _(k: string, s?: object): string } }).i18n;
  await i18n.init({});
  await i18n.registerMessageCatalog("mlc/flow", path.resolve(__dirname, "..", "..", "nodes", "locales"), "flow.json");
  const RED = { _: (k: string, subs?: object) => i18n._(`mlc/flow:${k}`, subs) } as unknown as RedAPI;
  results.push(await bench("status text: t() per message (server-side i18n)", 100000, (i) => Status.ok(t(RED, "mlc-dedupe.status.counts", { fresh: i, dup: 1 }, `${i} new / 1 dup`))));
  const counts = statusTemplate(RED, "mlc-dedupe.status.counts", "__fresh__ new / __dup__ dup");
  results.push(await bench("status text: statusTemplate, translated once", 100000, (i) => Status.ok(counts({ fresh: i, dup: 1 }))));
  results.push(await bench("status text: catalog key (editor translates)", 100000, () => Status.warn("mlc-dedupe.status.memoryOnly")));

  process.stdout.write(`node ${process.version}, ${new Date().toISOString()}\n`);
  process.stdout.write("case".padEnd(52) + "ops".padStart(8) + "ms".padStart(10) + "ops/s".padStart(12) + "heap Δ MB".padStart(12) + "\n");
  for (const r of results) {
    process.stdout.write(r.name.padEnd(52) + String(r.ops).padStart(8) + r.ms.toFixed(1).padStart(10) + Math.round((r.ops / r.ms) * 1000).toString().padStart(12) + r.heapMb.toFixed(1).padStart(12) + "\n");
  }
  process.stdout.write(`dedupe store size after 100k claims: ${store.size} (bounded at 50000)\n`);
}

void main();
