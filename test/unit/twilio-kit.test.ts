/**
 * The Twilio side of the kit without Node-RED: the one retry loop (lib/retry.ts withRetry), the per-account status
 * channel (lib/twilio/bus.ts), the call tracker (lib/twilio/call-tracker.ts), the status poller, the quiet-hours hold
 * queue and create-at-most-once (lib/twilio/ledger.ts sendOnce) over a MapBackend.
 */
import assert from "node:assert/strict";
import { MlcError, RateLimitedError, TimeoutError } from "../../nodes/lib/errors";
import { DEFAULT_RETRY_POLICY, withRetry } from "../../nodes/lib/retry";
import { MapBackend } from "../../nodes/lib/store";
import { AcceptedStatus, onStatus, publishStatus } from "../../nodes/lib/twilio/bus";
import { CallResult, CallTracker, TrackedCall } from "../../nodes/lib/twilio/call-tracker";
import type { TwilioCall } from "../../nodes/lib/twilio/calls";
import { HoldQueue, quietPlan } from "../../nodes/lib/twilio/hold-queue";
import { SendLedger, sendOnce } from "../../nodes/lib/twilio/ledger";
import { StatusPoller } from "../../nodes/lib/twilio/status-poller";

/** Resolve once `cond()` holds (checked every 5 ms), or fail after `ms`. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const A = "AC" + "a".repeat(32);
const B = "AC" + "b".repeat(32);

describe("withRetry (the package's one retry loop)", () => {
  const policy = { ...DEFAULT_RETRY_POLICY, maxAttempts: 3 };

  it("retries what decide allows, up to maxAttempts, with the server's Retry-After when given", async () => {
    const slept: number[] = [];
    let calls = 0;
    const err = new RateLimitedError("slow down", { retryAfterMs: 1234 });
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw err;
        },
        { policy, decide: (e) => (e instanceof RateLimitedError ? { retryAfterMs: e.retryAfterMs } : false), sleep: async (ms) => void slept.push(ms) },
      ),
      (e) => e === err,
    );
    assert.equal(calls, 3);
    assert.deepEqual(slept, [1234, 1234]);
  });

  it("throws at once when decide says false, or when the server asks for more than maxRetryAfterMs", async () => {
    let calls = 0;
    await assert.rejects(withRetry(async () => (calls++, Promise.reject(new Error("no"))), { policy, decide: () => false, sleep: async () => undefined }), /no/);
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(
      withRetry(async () => (calls++, Promise.reject(new Error("later"))), { policy, decide: () => ({ retryAfterMs: policy.maxRetryAfterMs + 1 }), sleep: async () => undefined }),
      /later/,
    );
    assert.equal(calls, 1);
  });

  it("returns the first success and passes the attempt number", async () => {
    const seen: number[] = [];
    const v = await withRetry(
      async (n) => {
        seen.push(n);
        if (n < 2) throw new MlcError("refused", { code: "connect_failed" });
        return "ok";
      },
      { policy, decide: () => ({}), sleep: async () => undefined },
    );
    assert.equal(v, "ok");
    assert.deepEqual(seen, [0, 1, 2]);
  });
});

describe("status channel per account (bus.ts)", () => {
  it("a status of one account reaches that account's subscribers only", () => {
    const a: AcceptedStatus[] = [];
    const b: AcceptedStatus[] = [];
    const offA = onStatus(A, (s) => a.push(s));
    const offB = onStatus(B, (s) => b.push(s));
    const s: AcceptedStatus = { kind: "call", sid: "CA1", status: "busy", jobId: "j", fields: {} };
    publishStatus(A, s);
    assert.deepEqual([a.length, b.length], [1, 0]);
    offA();
    publishStatus(A, s);
    assert.equal(a.length, 1, "unsubscribed");
    publishStatus(B, s);
    assert.equal(b.length, 1);
    offB();
  });

  it("a subscriber that throws does not stop the others", () => {
    const got: string[] = [];
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on("warning", onWarning);
    const off1 = onStatus(A, () => {
      throw new Error("boom");
    });
    const off2 = onStatus(A, (s) => got.push(s.sid));
    try {
      publishStatus(A, { kind: "message", sid: "SM1", status: "sent", jobId: "j", fields: {} });
      assert.deepEqual(got, ["SM1"]);
    } finally {
      off1();
      off2();
    }
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        process.off("warning", onWarning);
        assert.ok(warnings.some((w) => w.includes("boom")));
        resolve();
      }),
    );
  });
});

describe("CallTracker", () => {
  type Out = { sid: string; result: CallResult; digits?: string };
  function tracker(opts: { giveUpMs?: number; fetch?: (sid: string) => Promise<TwilioCall>; publish?: (s: AcceptedStatus) => void } = {}) {
    const outs: Out[] = [];
    const errors: unknown[] = [];
    const t = new CallTracker<null>({
      giveUpMs: opts.giveUpMs ?? 60000,
      pollIntervalMs: 10,
      ackDigit: "1",
      fetch: opts.fetch ?? (() => Promise.reject(new Error("no polling here"))),
      publish: opts.publish ?? (() => undefined),
      onOutcome: (c, result, digits) => outs.push({ sid: c.sid, result, ...(digits ? { digits } : {}) }),
      onPollError: (err) => errors.push(err),
    });
    return { t, outs, errors };
  }
  const call = (sid: string, extra: Partial<TrackedCall<null>> = {}): TrackedCall<null> => ({ corr: `c-${sid}`, sid, jobId: "j", status: "queued", ack: true, poll: false, data: null, ...extra });
  const st = (sid: string, status: string, fields: Record<string, string> = {}): AcceptedStatus => ({ kind: "call", sid, status, jobId: "j", fields: { CallSid: sid, CallStatus: status, ...fields } });

  it("a final status that beat the create's answer is applied when the call is tracked", () => {
    const { t, outs } = tracker();
    t.onStatus(st("CA1", "busy"));
    assert.equal(outs.length, 0);
    t.track(call("CA1"));
    assert.deepEqual(outs, [{ sid: "CA1", result: "busy" }]);
    t.close();
  });

  it("Gather: the right key acknowledges once; a wrong key gets one retry, then no-input; unknown correlation is unknown", () => {
    const { t, outs } = tracker();
    t.track(call("CA1"));
    t.track(call("CA2"));
    assert.equal(t.gather("c-CA1", "CA1", "1").kind, "thanks");
    assert.equal(t.gather("c-CA1", "CA1", "1").kind, "unknown", "resolved already");
    assert.equal(t.gather("c-CA2", "CA2", "7").kind, "retry");
    assert.equal(t.gather("c-CA2", "CA2", "8").kind, "goodbye");
    assert.equal(t.gather("c-CA2", "CAx", "1").kind, "unknown");
    assert.deepEqual(outs, [
      { sid: "CA1", result: "acknowledged", digits: "1" },
      { sid: "CA2", result: "no-input", digits: "8" },
    ]);
    t.onStatus(st("CA1", "completed"));
    assert.equal(outs.length, 2, "nothing after the outcome");
    t.close();
  });

  it("completed without acknowledgement is answered (ack off) or no-input (ack on); a machine ends it as machine", () => {
    const { t, outs } = tracker();
    t.track(call("CA1", { ack: false }));
    t.track(call("CA2"));
    t.track(call("CA3"));
    t.onStatus(st("CA1", "completed"));
    t.onStatus(st("CA2", "completed"));
    t.onStatus(st("CA3", "in-progress", { AnsweredBy: "machine_start" }));
    assert.deepEqual(
      outs.map((o) => o.result),
      ["answered", "no-input", "machine"],
    );
    t.close();
  });

  it("gives up after giveUpMs: no-answer; nothing is emitted after close", async () => {
    const { t, outs } = tracker({ giveUpMs: 20 });
    t.track(call("CA1"));
    await until(() => outs.length === 1, "give up");
    assert.equal(outs[0].result, "no-answer");
    t.track(call("CA2"));
    t.close();
    t.onStatus(st("CA2", "busy"));
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(outs.length, 1);
  });

  it("polling publishes each advance once and stops at the final status", async () => {
    const seq = ["ringing", "ringing", "in-progress", "completed"];
    let fetches = 0;
    const published: AcceptedStatus[] = [];
    const ref: { t?: CallTracker<null> } = {};
    const h = tracker({
      fetch: async (sid) => ({ sid, status: seq[Math.min(fetches++, seq.length - 1)], to: "+1", from: "+2", answeredBy: null, duration: null }),
      publish: (s) => (published.push(s), ref.t?.onStatus(s)),
    });
    const t = h.t;
    ref.t = t;
    t.track(call("CA1", { poll: true, ack: false }));
    await until(() => h.outs.length === 1, "outcome");
    assert.deepEqual(
      published.map((p) => p.status),
      ["ringing", "in-progress", "completed"],
    );
    assert.equal(h.outs[0].result, "answered");
    const after = fetches;
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(fetches, after, "no polling after the outcome");
    t.close();
  });
});

describe("StatusPoller", () => {
  it("reports each advance, stops at the final status or the deadline, reports fetch errors", async () => {
    const statuses: Record<string, string[]> = { SM1: ["sent", "sent", "delivered"], SM2: [] };
    const changes: string[] = [];
    const errors: string[] = [];
    let n = 0;
    const p = new StatusPoller<{ status: string }, string>({
      kind: "message",
      intervalMs: 5,
      fetch: async (sid) => {
        n++;
        const list = statuses[sid];
        if (!list.length) throw new Error(`no ${sid}`);
        return { status: list.length > 1 ? (list.shift() as string) : list[0] };
      },
      onChange: (w, f) => changes.push(`${w.data}:${f.status}`),
      onError: (err) => errors.push((err as Error).message),
    });
    p.add("SM1", "queued", "one");
    p.add("SM2", "queued", "two", Date.now() + 30);
    await until(() => p.size === 0, "both done");
    assert.deepEqual(changes, ["one:sent", "one:delivered"]);
    assert.ok(errors.length >= 1 && errors.every((e) => e === "no SM2"));
    const after = n;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(n, after, "timer stopped while nothing is watched");
    p.close();
  });
});

describe("HoldQueue", () => {
  it("hands each due item back once, keeps the others, and survives a new instance over the same backend", async () => {
    const backend = new MapBackend();
    type H = { due: number; id: string };
    const released: string[] = [];
    const q1 = new HoldQueue<H>(backend, { keyOf: (h) => h.id, release: async (h) => void released.push(h.id), onError: (e) => assert.fail(String(e)), checkMs: 3_600_000 });
    await q1.hold({ due: Date.now() - 1, id: "due" });
    await q1.hold({ due: Date.now() + 3_600_000, id: "later" });
    assert.equal(q1.count, 2);
    const q2 = new HoldQueue<H>(backend, { keyOf: (h) => h.id, release: async (h) => void released.push(h.id), onError: (e) => assert.fail(String(e)), onChecked: () => undefined, checkMs: 3_600_000 });
    q2.start();
    await until(() => released.length === 1, "released");
    q2.close();
    assert.deepEqual(released, ["due"]);
    assert.equal(q2.count, 1, "the later one still waits");
  });
});

describe("quietPlan", () => {
  const hours = { start: "08:00", end: "20:00", days: [1, 2, 3, 4, 5] };
  it("inside business hours: now; outside: SendAt through a Messaging Service, else (or in hold mode, or under 15 min) held", () => {
    const tue1000 = new Date("2025-04-08T10:00:00Z"); // Tuesday 10:00 in UTC
    const tue2300 = new Date("2025-04-08T23:00:00Z"); // opens 09 h later
    const tue0750 = new Date("2025-04-08T07:50:00Z"); // opens in 10 min
    assert.deepEqual(quietPlan(hours, "+442071234567", { tz: "UTC", viaService: true, now: tue1000 }), { kind: "now" });
    const at = new Date("2025-04-09T08:00:00Z");
    assert.deepEqual(quietPlan(hours, "+442071234567", { tz: "UTC", viaService: true, now: tue2300 }), { kind: "schedule", at });
    assert.deepEqual(quietPlan(hours, "+442071234567", { tz: "UTC", viaService: false, now: tue2300 }), { kind: "hold", at });
    assert.deepEqual(quietPlan(hours, "+442071234567", { tz: "UTC", viaService: true, mode: "hold", now: tue2300 }), { kind: "hold", at });
    assert.equal(quietPlan(hours, "+442071234567", { tz: "UTC", viaService: true, now: tue0750 }).kind, "hold");
  });
});

describe("sendOnce (create at most once per ledger key)", () => {
  type M = { sid: string; status: string };
  const base = { windowMs: 50, loadedAt: 0, aborted: () => false };

  it("a second call for a settled key is a duplicate: no create", async () => {
    const ledger = new SendLedger(new MapBackend());
    let creates = 0;
    const create = async (): Promise<M> => ({ sid: `CA${++creates}`, status: "queued" });
    const first = await sendOnce({ ...base, ledger, key: "k", create, lookup: async () => null });
    const again = await sendOnce({ ...base, ledger, key: "k", create, lookup: async () => null });
    assert.deepEqual([first.outcome, again.outcome, again.sid, creates], ["created", "duplicate", "CA1", 1]);
  });

  it("an unknown outcome is looked up: found → reconciled (no second create); absent → not_sent, the claim released", async () => {
    const ledger = new SendLedger(new MapBackend());
    let creates = 0;
    const r = await sendOnce<M>({
      ...base,
      ledger,
      key: "k1",
      create: async () => (creates++, Promise.reject(new TimeoutError("no answer", { outcomeUnknown: true }))),
      lookup: async () => ({ sid: "CA9", status: "queued" }),
    });
    assert.deepEqual([r.outcome, r.sid, creates], ["reconciled", "CA9", 1]);
    assert.equal((await ledger.get("k1"))?.state, "sent");
    await assert.rejects(
      sendOnce<M>({ ...base, ledger, key: "k2", create: () => Promise.reject(new TimeoutError("no answer", { outcomeUnknown: true })), lookup: async () => null }),
      (e) => e instanceof MlcError && e.code === "not_sent" && e.retryable,
    );
    assert.equal(await ledger.get("k2"), undefined, "released: a later attempt may create");
  });

  it("a claim left by a crash is reconciled before anything is created; a refused create releases its claim", async () => {
    const backend = new MapBackend();
    const before = new SendLedger(backend);
    await before.claim("k");
    const ledger = new SendLedger(backend); // after the restart
    await ledger.ready;
    let creates = 0;
    const r = await sendOnce<M>({ ...base, ledger, key: "k", create: async () => ({ sid: `CA${++creates}`, status: "queued" }), lookup: async () => ({ sid: "CA7", status: "ringing" }) });
    assert.deepEqual([r.outcome, r.sid, creates], ["reconciled", "CA7", 0]);
    await assert.rejects(sendOnce<M>({ ...base, ledger, key: "k4", create: () => Promise.reject(new MlcError("bad To", { code: "twilio_21211", status: 400 })), lookup: async () => null }), /bad To/);
    assert.equal(await ledger.get("k4"), undefined);
  });
});
