/**
 * The pacing scheduler (nodes/lib/twilio/pacing.ts) on a virtual clock: every start instant is recorded and the
 * busiest window is computed from them, so the checks are exact and independent of the machine's speed.
 * Timers fire late by a random 0–4 ms, as real ones do under load.
 */
import assert from "node:assert/strict";
import { RateLimitedError, TwilioError } from "../../nodes/lib/errors";
import { DEFAULT_SENDER_RATES, PacingOptions, RateBudget, SlidingWindow, senderRate, senderType } from "../../nodes/lib/twilio/pacing";
import { maxInWindow } from "../sims/twilio";
import { VirtualTime } from "../harness/virtual-time";

function budgetOn(vt: VirtualTime, opts: PacingOptions): RateBudget {
  return new RateBudget({ now: vt.clock, timers: vt.timerApi, ...opts });
}

describe("pacing: sender types and their default rates", () => {
  it("classifies senders", () => {
    assert.equal(senderType("MG" + "a".repeat(32)), "messagingService");
    assert.equal(senderType("whatsapp:+14155550132"), "whatsapp");
    assert.equal(senderType("12345"), "shortCode");
    assert.equal(senderType("+18005550100"), "tollFree");
    assert.equal(senderType("+14155550132"), "longCode");
    assert.equal(senderType("ACME"), "other");
    assert.equal(senderType(undefined), "other");
  });

  it("an unset rate takes Twilio's documented default for the type; 0 means no per-sender limit", () => {
    assert.equal(senderRate("+14155550132"), 1, "US/CA long code: 1 MPS");
    assert.equal(senderRate("+18005550100"), 3, "toll-free: 3 MPS");
    assert.equal(senderRate("12345"), 100, "short code: 100 MPS");
    assert.equal(senderRate("whatsapp:+14155550132"), 10, "WhatsApp text: 10 MPS");
    assert.equal(senderRate("MG" + "a".repeat(32)), 0, "a Messaging Service pool has no single-sender limit");
    assert.equal(senderRate("ACME"), 0);
    assert.equal(senderRate("+14155550132", { longCode: 10 }), 10);
    assert.equal(senderRate("+14155550132", { longCode: 0 }), 0, "0 switches the sender limit off");
    assert.equal(senderRate("+14155550132", { tollFree: 50 }), 1, "another type's setting does not apply");
    assert.deepEqual({ ...DEFAULT_SENDER_RATES }, { longCode: 1, tollFree: 3, shortCode: 100, messagingService: 0, whatsapp: 10, other: 0 });
    assert.equal(new RateBudget({ senderRates: { shortCode: 250 } }).rateFor("12345"), 250);
  });
});

describe("pacing: the sliding window", () => {
  it("never lets more than N arrivals into one window, whatever each request's transit time", () => {
    const w = new SlidingWindow(5, 1000, 10, 25);
    const arrivals: number[] = [];
    const pending: { settle: number; arrival: number }[] = [];
    let t = 0;
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 300; i++) {
      // settle what has come back by t; a request blocked by 5 in flight waits for the first settle
      for (;;) {
        pending.sort((a, b) => a.settle - b.settle);
        while (pending.length && pending[0].settle <= t) w.end(pending.shift()!.settle);
        const at = w.nextAt(t);
        if (at !== Infinity) {
          t = at;
          if (!(pending.length && pending[0].settle <= t)) break;
        } else t = pending[0].settle;
      }
      w.begin(t);
      // transit 0–150 ms (cold connections, stalls), then 0–5 ms until the answer is back
      const arrival = t + rnd() * (rnd() < 0.2 ? 150 : 2);
      arrivals.push(arrival);
      pending.push({ arrival, settle: arrival + rnd() * 5 });
      if (i % 9 === 0) t += 300; // idle gaps now and then
    }
    assert.ok(maxInWindow(arrivals, 1000) <= 5, `busiest window ${maxInWindow(arrivals, 1000)}`);
    assert.equal(maxInWindow(arrivals, 900), 5, "and the budget is used");
  });
});

describe("pacing: RateBudget on a virtual clock", () => {
  for (const rate of [10, 100, 250, 500, 1000]) {
    it(`at ${rate}/s: no window of 1000 ms holds more than ${rate} starts, and the achieved rate is within 2 % of it`, async () => {
      const vt = new VirtualTime();
      const budget = budgetOn(vt, { ratePerSec: rate, maxConcurrent: 1000, senderRates: { shortCode: 0 } });
      const n = rate * 5;
      const starts: number[] = [];
      let done = 0;
      for (let i = 0; i < n; i++) {
        void budget.create("12345", async () => {
          starts.push(vt.now);
          await vt.sleep(3);
        }).then(() => done++);
      }
      await vt.runUntil(() => done === n);
      assert.equal(starts.length, n);
      assert.ok(maxInWindow(starts, 1000) <= rate, `busiest second ${maxInWindow(starts, 1000)} > ${rate}`);
      // first start to the start that opens the last full second: (n - rate) starts in that time
      const achieved = ((n - rate) / (starts[n - rate] - starts[0])) * 1000;
      assert.ok(achieved >= rate * 0.98 && achieved <= rate, `achieved ${achieved.toFixed(1)}/s at a budget of ${rate}/s`);
      if (rate >= 500) assert.ok(vt.wakeUps < n / 2, `timer wake-ups ${vt.wakeUps} for ${n} starts: grants are batched`);
    });
  }

  it("counts a request until its answer is back, less the time Twilio says it spent (Twilio-Request-Duration)", async () => {
    for (const serverMs of [undefined, 450]) {
      const vt = new VirtualTime(() => 0);
      const budget = budgetOn(vt, { ratePerSec: 1, maxConcurrent: 5, quantumMs: 0 });
      const starts: number[] = [];
      let done = 0;
      for (let i = 0; i < 2; i++) {
        void budget.create(undefined, async () => {
          const attempt = budget.currentAttempt(); // what the transport does, synchronously
          starts.push(vt.now);
          await vt.sleep(500); // 500 ms until the answer is back
          budget.noteServerTime(attempt, serverMs ?? NaN);
        }).then(() => done++);
      }
      await vt.runUntil(() => done === 2);
      // window 1000 + margin 2; without the header the first request may have arrived as late as 500, with it as late as 52
      assert.equal(starts[1] - starts[0], serverMs === undefined ? 1502 : 1054, `serverMs ${serverMs}`);
    }
    assert.equal(new RateBudget().currentAttempt(), undefined, "no attempt outside a create");
  });

  it("takes the slot first, then spaces: slow requests never bunch the starts that follow them", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { ratePerSec: 10, maxConcurrent: 2 });
    const starts: number[] = [];
    let running = 0;
    let peak = 0;
    let done = 0;
    for (let i = 0; i < 60; i++) {
      void budget.create(undefined, async () => {
        starts.push(vt.now);
        peak = Math.max(peak, ++running);
        await vt.sleep(i % 10 === 0 ? 1500 : 20); // now and then a slow create holds a slot for 1.5 s
        running--;
      }).then(() => done++);
    }
    await vt.runUntil(() => done === 60);
    assert.equal(peak, 2, "never more than maxConcurrent in flight");
    assert.ok(maxInWindow(starts, 1000) <= 10, `busiest second ${maxInWindow(starts, 1000)}`);
  });

  it("keeps FIFO order within one sender and never runs more than maxConcurrent at once", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { ratePerSec: 0, maxConcurrent: 3 });
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    const all = Array.from({ length: 20 }, (_, i) =>
      budget.create(undefined, async () => {
        peak = Math.max(peak, ++running);
        order.push(i);
        await vt.sleep(5);
        running--;
      }),
    );
    let done = false;
    void Promise.all(all).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.equal(peak, 3);
    assert.deepEqual(order, [...order].sort((a, b) => a - b));
  });

  it("a slow sender (long code, 1/s) does not hold up another sender", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { ratePerSec: 100, maxConcurrent: 10 });
    const seen: { sender: string; at: number }[] = [];
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) {
      for (const sender of ["+14155550100", "12345"]) jobs.push(budget.create(sender, async () => void seen.push({ sender, at: vt.now })));
    }
    let done = false;
    void Promise.all(jobs).then(() => (done = true));
    await vt.runUntil(() => done);
    const long = seen.filter((s) => s.sender === "+14155550100").map((s) => s.at);
    const short = seen.filter((s) => s.sender === "12345").map((s) => s.at);
    assert.ok(Math.max(...short) < 200, `the short code's five went within 200 ms (last at ${Math.max(...short)})`);
    assert.equal(maxInWindow(long, 1000), 1, "the long code: one per second");
    assert.ok(long[4] - long[0] >= 4 * 1000, "four full seconds between the first and the fifth long-code start");
  });

  it("a sender's rate is spent in segments: 2-segment bodies on a 1/s long code leave every 2 s; the account rate counts requests", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { ratePerSec: 1, maxConcurrent: 5 });
    const long: number[] = [];
    const short: number[] = [];
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) jobs.push(budget.create("+14155550100", async () => void long.push(vt.now), 2));
    let done = false;
    void Promise.all(jobs).then(() => (done = true));
    await vt.runUntil(() => done);
    // Twilio delivers segment k of a message k seconds after it arrives (1 segment/s)
    const us = (ms: number): number => Math.round(ms * 1000); // integer µs: no float rounding at window edges
    const segments = long.flatMap((t) => [us(t), us(t) + 1e6]);
    assert.equal(maxInWindow(segments, 1e6), 1, `one segment per second at the sender (starts ${long.map(Math.round).join(", ")})`);
    assert.ok(long[4] - long[0] >= 8 * 1000, "eight seconds between the first and the fifth 2-segment message");
    // the account's own rate (1 request/s here) is not spent in segments: a 1-segment sender's requests go each second
    const jobs2: Promise<unknown>[] = [];
    for (let i = 0; i < 3; i++) jobs2.push(budget.create("12345", async () => void short.push(vt.now), 3));
    done = false;
    void Promise.all(jobs2).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.ok(short[2] - short[0] < 2 * 1000 + 100, `a short code (100 segments/s) is held only by the account's 1 request/s (${short.map(Math.round).join(", ")})`);
  });

  it("mixed 1–3 segment bodies at 10 segments/s: no second holds more than 10 segments, and about 10 segments/s go", async () => {
    const vt = new VirtualTime();
    const budget = budgetOn(vt, { ratePerSec: 1000, maxConcurrent: 10, senderRates: { longCode: 10 } });
    const segs: number[] = [];
    const jobs: Promise<unknown>[] = [];
    let total = 0;
    for (let i = 0; i < 120; i++) {
      const n = 1 + (i % 3);
      total += n;
      jobs.push(budget.create("+14155550100", async () => void segs.push(...Array.from({ length: n }, (_, k) => Math.round(vt.now * 1000) + k * 1e5)), n));
    }
    let done = false;
    void Promise.all(jobs).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.equal(segs.length, total);
    assert.ok(maxInWindow(segs, 1e6) <= 10, `busiest second: ${maxInWindow(segs, 1e6)} segments`);
    const rate = (total / (Math.max(...segs) - Math.min(...segs) + 1e5)) * 1e6;
    assert.ok(rate >= 9, `achieved ${rate.toFixed(2)} segments/s of 10`);
  });

  it("a 429 puts the create back in the queue, honours Retry-After, and counts the retry against the budget", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { ratePerSec: 2, maxConcurrent: 5 });
    const starts: { job: number; at: number }[] = [];
    let first = true;
    const results: string[] = [];
    const jobs = [0, 1, 2, 3].map((job) =>
      budget
        .create("ACME", async () => {
          starts.push({ job, at: vt.now });
          if (job === 0 && first) {
            first = false;
            throw new RateLimitedError("Twilio rate limit (429), not processed", { vendorCode: 20429, retryAfterMs: 1500 });
          }
          return `ok${job}`;
        })
        .then((r) => results.push(r)),
    );
    let done = false;
    void Promise.all(jobs).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.deepEqual(results.sort(), ["ok0", "ok1", "ok2", "ok3"], "nothing lost");
    assert.equal(starts.length, 5, "one retry");
    const retry = starts.filter((s) => s.job === 0);
    assert.equal(retry.length, 2);
    assert.ok(retry[1].at - retry[0].at >= 1500, `Retry-After honoured (${retry[1].at - retry[0].at} ms)`);
    // the retried create came back first in its sender's queue: job 0 goes before jobs 1–3
    assert.deepEqual(starts.map((s) => s.job), [0, 0, 1, 2, 3]);
    assert.ok(maxInWindow(starts.map((s) => s.at), 1000) <= 2, "the retry counted against the 2/s budget");
    assert.equal(budget.stats.requeued, 1);
    assert.equal(budget.stats.starts, 5);
  });

  it("without Retry-After a 429 backs off with jitter, then goes again", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { ratePerSec: 0, maxConcurrent: 1, random: () => 0.5 });
    const starts: number[] = [];
    let failures = 3;
    let out: unknown;
    void budget
      .create(undefined, async () => {
        starts.push(vt.now);
        if (failures-- > 0) throw new RateLimitedError("429", { vendorCode: 20429 });
        return "sent";
      })
      .then((v) => (out = v));
    await vt.runUntil(() => out !== undefined);
    assert.equal(out, "sent");
    // 0.5 × 250, 0.5 × 500, 0.5 × 1000 ms
    assert.deepEqual(starts.map((t, i) => (i ? t - starts[i - 1] : 0)), [0, 125, 250, 500]);
  });

  it("a non-retryable error reaches the caller at once (a message is dropped only then)", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { ratePerSec: 10 });
    let calls = 0;
    let caught: unknown;
    void budget
      .create("+14155550100", async () => {
        calls++;
        throw new TwilioError("The 'To' number is not a valid phone number", { status: 400, twilioCode: 21211 });
      })
      .catch((e) => (caught = e));
    await vt.runUntil(() => caught !== undefined);
    assert.ok(caught instanceof TwilioError);
    assert.equal(calls, 1);
    assert.equal(budget.stats.requeued, 0);
  });

  it("429s for longer than maxRequeueMs reach the caller as RateLimitedError", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { ratePerSec: 0, maxRequeueMs: 5000 });
    let calls = 0;
    let caught: unknown;
    void budget
      .create(undefined, async () => {
        calls++;
        throw new RateLimitedError("429", { vendorCode: 20429, retryAfterMs: 1000 });
      })
      .catch((e) => (caught = e));
    await vt.runUntil(() => caught !== undefined);
    assert.ok(caught instanceof RateLimitedError);
    assert.equal(calls, 6, "tried at 0, 1, 2, 3, 4 and 5 s");
  });

  it("reads wait only for a slot, and go before queued creates", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { ratePerSec: 1, maxConcurrent: 1 });
    const order: string[] = [];
    const all = [
      budget.create(undefined, async () => void order.push("create1")),
      budget.create(undefined, async () => void order.push("create2")),
      budget.other(async () => void order.push("read")),
    ];
    let done = false;
    void Promise.all(all).then(() => (done = true));
    await vt.runUntil(() => done);
    assert.deepEqual(order, ["create1", "read", "create2"]);
  });

  it("close() rejects the creates still queued with code 'closed'", async () => {
    const vt = new VirtualTime(() => 0);
    const budget = budgetOn(vt, { ratePerSec: 1 });
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i++) budget.create(undefined, async () => "sent").then((v) => outcomes.push(v), (e: { code?: string }) => outcomes.push(String(e.code)));
    await vt.settle();
    budget.close();
    await vt.settle();
    assert.deepEqual(outcomes, ["sent", "closed", "closed"]);
    await assert.rejects(budget.create(undefined, async () => "late"), (e: { code?: string }) => e.code === "closed");
  });
});
