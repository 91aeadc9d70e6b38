/**
 * AcumaticaClient against the simulator's licence limits (reference acumatica.md §2.3 and §8.4): "Max concurrent API
 * requests" and "Max API requests per minute" answer 429 without `Retry-After`. A burst of entity calls must be paced
 * and re-queued (capped exponential backoff with full jitter, concurrency capped per connection), not fail after a
 * few quick retries: a failed read in a push flow leaves its event unsent until the next start.
 */
import assert from "node:assert/strict";
import { AcumaticaClient } from "../../nodes/lib/acumatica/client";
import { AcumaticaSim, AcumaticaSimOptions } from "../sims/acumatica";

const CLIENT_ID = "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd";
const EP = "/entity/Default/24.200.001";

describe("acumatica client under the licence limits (simulator)", function () {
  this.timeout(60_000);
  let sim: AcumaticaSim | undefined;
  let client: AcumaticaClient | undefined;

  async function start(opts: AcumaticaSimOptions): Promise<AcumaticaClient> {
    sim = new AcumaticaSim(opts);
    const base = await sim.start();
    sim.seedDemoData();
    client = new AcumaticaClient({
      instanceUrl: base,
      tenant: "AcmeProd",
      auth: { mode: "oauth", clientId: CLIENT_ID, clientSecret: "s3cr3t", username: "api.user", password: "P@ss-w0rd" },
    });
    return client;
  }

  afterEach(async () => {
    await client?.close();
    await sim?.stop();
    client = undefined;
    sim = undefined;
  });

  it("30 reads at once against 'Max concurrent API requests' = 2 all succeed", async () => {
    const c = await start({ maxConcurrentRequests: 2, latencyMs: 150 });
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => c.get("Vendor", "V000042", { select: "VendorID" })));
    const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason?.message));
    assert.deepEqual(failed, [], "every read succeeds");
    const vendorReads = (sim as AcumaticaSim).requests.filter((r) => r.path === `${EP}/Vendor/V000042`);
    assert.equal(vendorReads.filter((r) => r.status === 200).length, 30);
    console.log(`      30 reads, licence concurrency 2: ${vendorReads.filter((r) => r.status === 429).length} x 429 on the way`);
  });

  it("reads over 'Max API requests per minute' wait for the window instead of failing (no Retry-After)", async () => {
    let clock = Date.parse("2025-06-02T08:00:00Z");
    const c = await start({ now: () => clock, requestsPerMinute: 5 });
    const reads = Array.from({ length: 8 }, () => c.get("Vendor", "V000042", { select: "VendorID" }));
    const settled = Promise.allSettled(reads);
    // the five the window allows are answered; the other three meet 429 and must still be waiting 3 s later,
    // longer than any quick-retry budget (the HttpClient's 4 attempts took ≤ 1.75 s)
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok((sim as AcumaticaSim).requests.some((r) => r.status === 429), "the licence limit was hit");
    clock += 61_000; // the per-minute window slides past the first five
    const results = await settled;
    const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason?.message));
    assert.deepEqual(failed, [], "every read succeeds once the window allows it");
  });
});
