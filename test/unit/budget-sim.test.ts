/**
 * The rate budget against a real HTTP API: {@link RateHeaderSim} counts requests in fixed windows and answers with
 * Exact Online's `X-RateLimit-*` headers (exact-online.md §5), refusing with 429 over the limit. Requests go through
 * the package's HttpClient and {@link pacedRequest}, as a family client's would.
 *
 * The simulator's "minute" lasts 1000 ms here so a test covers several windows in a few seconds; the answers keep
 * Exact's shape (resets in epoch ms at the window's end, only the minutely headers when the minute is spent).
 */
import assert from "node:assert/strict";
import { Budget, EXACT_ONLINE_RATE_HEADERS, pacedRequest } from "../../nodes/lib/budget";
import { HttpClient } from "../../nodes/lib/http";
import { RateHeaderSim } from "../sims/rate-headers";
import { useSim } from "../harness/sim-http";

describe("budget against an API answering with X-RateLimit headers", function () {
  this.timeout(60000);
  const perWindow = 8;
  const sim = useSim(new RateHeaderSim({ perMinute: perWindow, minuteMs: 1000 }));
  let http: HttpClient;
  beforeEach(() => (http = new HttpClient({ timeoutMs: 10000 })));
  afterEach(() => http.close());

  /** `n` GETs at once through `budget`; resolves their statuses (a rejection is reported as its code). */
  async function burst(budget: Budget, n: number): Promise<(number | string)[]> {
    const url = `${sim.url}/api/v1/123456/items`;
    const outcomes = await Promise.allSettled(Array.from({ length: n }, () => pacedRequest(budget, http, { method: "GET", url })));
    return outcomes.map((o) => (o.status === "fulfilled" ? o.value.status : String((o.reason as { code?: string }).code)));
  }

  it("control: without the header feed a burst of 30 meets 429s (re-queued, so still nothing lost)", async () => {
    const budget = new Budget({ maxConcurrent: 2 });
    const statuses = await burst(budget, 30);
    assert.ok(sim.rejected429 > 0, "the simulator did refuse some requests");
    assert.deepEqual(statuses, Array(30).fill(200), "every refused request went again and was served");
    assert.equal(budget.stats.requeued, sim.rejected429);
  });

  it("fed by the headers, a burst of 40 is never driven into a 429: remaining 0 waits for the reset", async () => {
    const budget = new Budget({ maxConcurrent: 2, rateHeaders: EXACT_ONLINE_RATE_HEADERS });
    const statuses = await burst(budget, 40);
    assert.deepEqual(statuses, Array(40).fill(200), "every request served");
    assert.equal(sim.rejected429, 0, "no 429");
    assert.equal(sim.requests.length, 40, "each request sent once");
  });

  it("a 503 with Retry-After re-queues the request at the head and pauses the budget: nothing dropped, nothing twice", async () => {
    const budget = new Budget({ maxConcurrent: 1, rateHeaders: EXACT_ONLINE_RATE_HEADERS });
    sim.injectUnavailable(1, 1);
    const statuses = await burst(budget, 5);
    assert.deepEqual(statuses, Array(5).fill(200));
    assert.deepEqual(sim.requests.map((r) => r.status), [503, 200, 200, 200, 200, 200], "the refused request went again, once");
    assert.equal(budget.stats.requeued, 1);
  });

  it("a request given as a builder is built when it gets its turn, again when re-queued (fresh auth headers)", async () => {
    const budget = new Budget({ maxConcurrent: 1, rateHeaders: EXACT_ONLINE_RATE_HEADERS });
    sim.injectUnavailable(1, 1);
    const url = `${sim.url}/api/v1/123456/items`;
    const built: string[] = [];
    const request = (name: string) => () => {
      built.push(`${name}@${sim.requests.length}`); // how many requests the API had seen when this one was built
      return { method: "GET" as const, url, headers: { Authorization: `Bearer token-${sim.requests.length}` } };
    };
    const statuses = await Promise.all([pacedRequest(budget, http, request("A")), pacedRequest(budget, http, request("B"))]);
    assert.deepEqual(statuses.map((r) => r.status), [200, 200]);
    assert.deepEqual(built, ["A@0", "A@1", "B@2"], "B waited unbuilt for its turn; A was rebuilt when it went again");
  });
});
