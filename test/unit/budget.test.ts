/**
 * The family kit's rate budget (nodes/lib/budget/) on a virtual clock: windows per minute and per day, keyed
 * sub-budgets, the concurrency cap, the header feed (a counter with nothing remaining holds every start until its
 * reset) and the Retry-After pause. Every start instant is recorded, so the checks are exact and independent of the
 * machine's speed. Twilio's layer on it is covered by pacing.test.ts.
 */
import assert from "node:assert/strict";
import { RateLimitedError } from "../../nodes/lib/errors";
import { Budget, BudgetOptions, EXACT_ONLINE_RATE_HEADERS, HeaderBag, readRateHeaders } from "../../nodes/lib/budget";
import { maxInWindow } from "../sims/twilio";
import { VirtualTime } from "../harness/virtual-time";

const MINUTE = 60000;
const DAY = 86400000;
/** Epoch of virtual time 0 (a whole minute, so fixed windows start at 0). */
const EPOCH0 = Date.UTC(2026, 11, 7, 9, 0, 0);

function budgetOn(vt: VirtualTime, opts: BudgetOptions): Budget {
  return new Budget({ now: vt.clock, epochNow: () => EPOCH0 + vt.now, timers: vt.timerApi, ...opts });
}

/** Queue `n` requests under `key` that each take `ms`; resolves the start instants when all are done. */
async function burst(vt: VirtualTime, budget: Budget, n: number, ms = 10, key?: string): Promise<number[]> {
  const starts: number[] = [];
  let done = 0;
  for (let i = 0; i < n; i++) {
    void budget.run(key, async () => {
      starts.push(vt.now);
      await vt.sleep(ms);
    }).then(() => done++);
  }
  await vt.runUntil(() => done === n);
  return starts;
}

describe("budget: windows per minute and per day", () => {
  it("per minute: the whole allowance may go at once, then nothing until the first request has left the window", async () => {
    const vt = new VirtualTime();
    const starts = await burst(vt, budgetOn(vt, { limits: { perMinute: 5 }, maxConcurrent: 10 }), 12);
    assert.ok(maxInWindow(starts, MINUTE) <= 5, `busiest minute ${maxInWindow(starts, MINUTE)}`);
    assert.ok(starts[4] < 100, `the first five went at once (fifth at ${starts[4]} ms)`);
    assert.ok(starts[5] >= MINUTE + 10, `the sixth waited for the first to leave the window (at ${starts[5]} ms)`);
    assert.ok(starts[10] >= 2 * MINUTE, "the eleventh waited for the second minute");
  });

  it("per day on top of per second: at most 2 in any second and 3 in any day", async () => {
    const vt = new VirtualTime();
    const starts = await burst(vt, budgetOn(vt, { limits: { perSecond: 2, perDay: 3 }, maxConcurrent: 10 }), 5);
    assert.ok(maxInWindow(starts, 1000) <= 2, `busiest second ${maxInWindow(starts, 1000)}`);
    assert.ok(maxInWindow(starts, DAY) <= 3, `busiest day ${maxInWindow(starts, DAY)}`);
    assert.ok(starts[2] < 2000, "the day's three went within the per-second spacing");
    assert.ok(starts[3] >= DAY, `the fourth waited a day (at ${starts[3]} ms)`);
  });

  it("a fractional rate: 0.5 per minute is one start per two minutes", async () => {
    const vt = new VirtualTime();
    const starts = await burst(vt, budgetOn(vt, { limits: { perMinute: 0.5 } }), 3);
    assert.ok(starts[1] - starts[0] >= 2 * MINUTE && starts[2] - starts[1] >= 2 * MINUTE, `starts ${starts.join(", ")}`);
  });

  it("keyed sub-budgets: a key limited per minute holds up only itself", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { limits: { perSecond: 100 }, maxConcurrent: 10, keyLimits: (k) => (k === "slow" ? { perMinute: 2 } : undefined) });
    const seen: { key: string; at: number }[] = [];
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 4; i++) for (const key of ["slow", "fast", "fast"]) jobs.push(budget.run(key, async () => void seen.push({ key, at: vt.now })));
    let done = false;
    void Promise.all(jobs).then(() => (done = true));
    await vt.runUntil(() => done);
    const slow = seen.filter((s) => s.key === "slow").map((s) => s.at);
    const fast = seen.filter((s) => s.key === "fast").map((s) => s.at);
    assert.ok(Math.max(...fast) < 500, `the fast key's eight went within 500 ms (last at ${Math.max(...fast)})`);
    assert.ok(maxInWindow(slow, MINUTE) <= 2, "the slow key: two per minute");
    assert.ok(slow[2] >= MINUTE, `the slow key's third waited a minute (at ${slow[2]} ms)`);
  });
});

describe("budget: concurrency cap", () => {
  it("never more than maxConcurrent in flight across keys, and the cap is used", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { maxConcurrent: 3, keyLimits: () => ({ perSecond: 50 }) });
    let running = 0;
    let peak = 0;
    const jobs = Array.from({ length: 30 }, (_, i) =>
      budget.run(`k${i % 3}`, async () => {
        peak = Math.max(peak, ++running);
        await vt.sleep(7 + (i % 5) * 11);
        running--;
      }),
    );
    const reads = Array.from({ length: 5 }, () =>
      budget.other(async () => {
        peak = Math.max(peak, ++running);
        await vt.sleep(5);
        running--;
      }),
    );
    let done = false;
    void Promise.all([...jobs, ...reads]).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.equal(peak, 3);
    assert.equal(budget.stats.starts, 30, "reads are not counted as starts");
  });

  it("a 429 halves the requests allowed in flight; successes raise them back to the cap", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { maxConcurrent: 8 });
    let first = true;
    await burst(vt, budget, 1);
    void budget.run(undefined, async () => {
      if (first) {
        first = false;
        throw new RateLimitedError("429", { retryAfterMs: 0 });
      }
    });
    await vt.settle();
    assert.equal(budget.stats.allowed, 4);
    await burst(vt, budget, 60);
    assert.equal(budget.stats.allowed, 8);
  });
});

/**
 * A server on the virtual clock that counts arrivals in fixed windows of `windowMs` (limit `limit`) and answers with
 * Exact Online's minutely headers; over the limit it refuses (429, only the minutely headers).
 */
function fixedWindowServer(limit: number, windowMs: number): { answer(epoch: number): { status: number; headers: HeaderBag }; refused: number; served: number[] } {
  let index = -1;
  let used = 0;
  const s = {
    refused: 0,
    served: [] as number[],
    answer(epoch: number) {
      const i = Math.floor(epoch / windowMs);
      if (i !== index) [index, used] = [i, 0];
      const ok = used < limit;
      if (ok) used++;
      if (ok) s.served.push(epoch - EPOCH0);
      else s.refused++;
      const headers: HeaderBag = {
        "x-ratelimit-minutely-limit": String(limit),
        "x-ratelimit-minutely-remaining": String(limit - used),
        "x-ratelimit-minutely-reset": String((index + 1) * windowMs),
      };
      return { status: ok ? 200 : 429, headers };
    },
  };
  return s;
}

describe("budget: fed by response headers", () => {
  it("reads Exact Online's X-RateLimit headers (resets in epoch ms) and leaves out what is absent or malformed", () => {
    const real = {
      "x-ratelimit-minutely-limit": "60",
      "x-ratelimit-minutely-remaining": "58",
      "x-ratelimit-minutely-reset": "1683879540000",
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": "4766",
      "x-ratelimit-reset": "1683936000000",
    };
    assert.deepEqual(readRateHeaders(real, EXACT_ONLINE_RATE_HEADERS), [
      { name: "minutely", remaining: 58, resetAt: 1683879540000, limit: 60 },
      { name: "daily", remaining: 4766, resetAt: 1683936000000, limit: 5000 },
    ]);
    const onlyMinutely = { "x-ratelimit-minutely-remaining": ["0"], "x-ratelimit-minutely-reset": "1683879540000", "x-ratelimit-remaining": "-1", "x-ratelimit-reset": "soon" };
    assert.deepEqual(readRateHeaders(onlyMinutely, EXACT_ONLINE_RATE_HEADERS), [{ name: "minutely", remaining: 0, resetAt: 1683879540000 }]);
    assert.deepEqual(readRateHeaders({}, EXACT_ONLINE_RATE_HEADERS), []);
    const rules = [
      { name: "s", remaining: "a", reset: "b", resetUnit: "epochS" as const },
      { name: "d", remaining: "a", reset: "c", resetUnit: "deltaS" as const },
    ];
    assert.deepEqual(readRateHeaders({ a: "3", b: "1700000000", c: "30" }, rules, 1000), [
      { name: "s", remaining: 3, resetAt: 1700000000000 },
      { name: "d", remaining: 3, resetAt: 31000 },
    ]);
  });

  it("remaining 0 → every start waits until the reset (plus resetMarginMs); a burst never meets a 429", async () => {
    const vt = new VirtualTime(() => 0);
    const server = fixedWindowServer(4, 1000);
    const budget = budgetOn(vt, { rateHeaders: EXACT_ONLINE_RATE_HEADERS, maxConcurrent: 2, quantumMs: 0 });
    const starts: number[] = [];
    const n = 20;
    let done = 0;
    for (let i = 0; i < n; i++) {
      void budget.run(undefined, async () => {
        const attempt = budget.currentAttempt();
        starts.push(vt.now);
        await vt.sleep(5);
        const res = server.answer(EPOCH0 + vt.now);
        budget.noteResponse(attempt, res.headers);
        if (res.status === 429) throw new RateLimitedError("429", {});
      }).then(() => done++);
    }
    await vt.runUntil(() => done === n);
    assert.equal(server.refused, 0, "no 429");
    assert.equal(server.served.length, n);
    assert.deepEqual(starts.slice(0, 4), [0, 0, 5, 5], "the first window's four went as fast as the cap allows");
    assert.equal(starts[4], 1100, "the fifth waited for the reset at 1000 ms plus the 100 ms margin");
    assert.deepEqual(budget.remaining(), { minutely: 0 }, "the last reading: nothing left in this window");
  });

  it("a daily counter at 0 holds every start until the daily reset, whatever the minutely counter allows; stale readings are ignored", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { rateHeaders: EXACT_ONLINE_RATE_HEADERS, quantumMs: 0 });
    const answer = (daily: number, dailyReset: number): HeaderBag => ({
      "x-ratelimit-minutely-remaining": "50",
      "x-ratelimit-minutely-reset": String(EPOCH0 + MINUTE),
      "x-ratelimit-remaining": String(daily),
      "x-ratelimit-reset": String(EPOCH0 + dailyReset),
    });
    const starts: number[] = [];
    const replies = [answer(0, 5000), answer(7, 1000), answer(100, DAY)];
    let done = 0;
    for (let i = 0; i < 3; i++) {
      void budget.run(undefined, async () => {
        const attempt = budget.currentAttempt();
        starts.push(vt.now);
        budget.noteResponse(attempt, replies[i]);
        if (i === 0) budget.noteResponse(attempt, answer(7, 1000)); // an older window (earlier reset): ignored
      }).then(() => done++);
    }
    await vt.runUntil(() => done === 1);
    assert.deepEqual(budget.remaining(), { minutely: 50, daily: 0 });
    await vt.runUntil(() => done === 3);
    assert.equal(starts[1], 5100, "the second waited for the daily reset");
    assert.deepEqual(budget.remaining(), { minutely: 48, daily: 100 }, "the stale reading (earlier reset) did not replace the newer one");
  });
});

describe("budget: Retry-After", () => {
  it("a refusal with Retry-After pauses the whole budget (scope 'budget'), the request goes back at the head, nothing is dropped", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { maxConcurrent: 1 });
    const starts: { job: string; at: number }[] = [];
    let refused = false;
    const jobs = ["a0", "b0", "a1"].map((job) =>
      budget.run(job[0], async () => {
        starts.push({ job, at: vt.now });
        if (job === "a0" && !refused) {
          refused = true;
          throw new RateLimitedError("503", { status: 503, retryAfterMs: 2000 });
        }
        return job;
      }),
    );
    let results: string[] = [];
    void Promise.all(jobs).then((r) => (results = r));
    await vt.runUntil(() => results.length === 3);
    assert.deepEqual(results, ["a0", "b0", "a1"], "nothing lost");
    assert.deepEqual(starts.map((s) => s.job), ["a0", "a0", "b0", "a1"], "the refused request went first again");
    assert.equal(starts[1].at, 2000, "paused for Retry-After");
    assert.ok(starts[2].at >= 2000, "another key waited too: the pause is the budget's");
    assert.equal(budget.stats.requeued, 1);
  });

  it("with scope 'key' the pause holds only the refused request's key", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { maxConcurrent: 1, scope: "key" });
    const starts: { job: string; at: number }[] = [];
    let refused = false;
    const jobs = ["a0", "b0"].map((job) =>
      budget.run(job[0], async () => {
        starts.push({ job, at: vt.now });
        if (job === "a0" && !refused) {
          refused = true;
          throw new RateLimitedError("429", { retryAfterMs: 2000 });
        }
      }),
    );
    let done = false;
    void Promise.all(jobs).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.deepEqual(starts, [{ job: "a0", at: 0 }, { job: "b0", at: 0 }, { job: "a0", at: 2000 }]);
  });
});
