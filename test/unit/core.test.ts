/**
 * Unit tests for nodes/lib: retry arithmetic, the HTTP client's safe-retry rules (against a local node:http
 * server), phone normalisation, job ids, the bounded store, templates, Twilio signature validation and
 * Twilio status ordering.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { createHash } from "node:crypto";
import type { AddressInfo, Socket } from "node:net";
import { DEFAULT_RETRY_POLICY, RetryPolicy, backoffDelay, parseRetryAfter } from "../../nodes/lib/retry";
import { HttpClient } from "../../nodes/lib/http";
import { TimeoutError, ValidationError } from "../../nodes/lib/errors";
import { maskPhone, toE164 } from "../../nodes/lib/phone";
import { deriveJobId, hashedKey } from "../../nodes/lib/ids";
import { BoundedStore, MapBackend } from "../../nodes/lib/store";
import { renderTemplate } from "../../nodes/lib/template";
import { parseForm, validateTwilioWebhook } from "../../nodes/lib/twilio/signature";
import { isFinalStatus, isStatusAdvance, statusRank } from "../../nodes/lib/twilio/status";

// ---------------------------------------------------------------------------------------------------------------------
// retry.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/retry", () => {
  const policy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 30000 };

  it("full jitter stays within [0, min(max, base × 2^n)]", () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
      assert.equal(backoffDelay(attempt, policy, undefined, () => 0), 0);
      const top = backoffDelay(attempt, policy, undefined, () => 0.999999);
      assert.ok(top < ceiling && top >= ceiling - 1, `attempt ${attempt}: ${top} vs ceiling ${ceiling}`);
      assert.equal(backoffDelay(attempt, policy, undefined, () => 0.5), Math.floor(ceiling / 2));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, policy);
        assert.ok(Number.isInteger(d) && d >= 0 && d < ceiling, `attempt ${attempt}: ${d}`);
      }
    }
    // capped: attempt 10 would be 102400 ms uncapped
    assert.equal(backoffDelay(10, policy, undefined, () => 0.5), 500);
  });

  it("a server's Retry-After wins over the computed delay, capped at maxRetryAfterMs", () => {
    assert.equal(backoffDelay(0, policy, 7000, () => 0.9), 7000);
    assert.equal(backoffDelay(3, policy, 0, () => 0.9), 0);
    assert.equal(backoffDelay(0, policy, 120000), 30000);
    // NaN / negative are ignored (jitter again)
    assert.equal(backoffDelay(0, policy, Number.NaN, () => 0.5), 50);
    assert.equal(backoffDelay(0, policy, -5, () => 0.5), 50);
  });

  it("parses Retry-After delay-seconds", () => {
    assert.equal(parseRetryAfter("120"), 120000);
    assert.equal(parseRetryAfter(" 3 "), 3000);
    assert.equal(parseRetryAfter("0"), 0);
    assert.equal(parseRetryAfter("1.5"), 1500);
    assert.equal(parseRetryAfter(["2", "9"]), 2000);
  });

  it("parses Retry-After HTTP-dates relative to now", () => {
    const now = Date.parse("Wed, 21 Oct 2015 07:28:00 GMT");
    assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000);
    assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), 0, "a date in the past means now");
  });

  it("returns undefined for absent or garbage Retry-After", () => {
    assert.equal(parseRetryAfter(undefined), undefined);
    assert.equal(parseRetryAfter(""), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
    assert.equal(parseRetryAfter("-3"), undefined);
    assert.equal(parseRetryAfter("7 days"), undefined);
  });

  it("default policy keeps delays short (a few seconds at most before Retry-After)", () => {
    const p = DEFAULT_RETRY_POLICY;
    let worst = 0;
    for (let a = 0; a < p.maxAttempts - 1; a++) worst += Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** a);
    assert.ok(worst <= 5000, `worst case total backoff ${worst} ms`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// http.ts
// ---------------------------------------------------------------------------------------------------------------------

interface Seen {
  method: string;
  url: string;
  body: string;
}

type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, n: number, body: string) => void;

async function localServer(behaviour: Behaviour): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      seen.push({ method: req.method ?? "", url: req.url ?? "", body });
      behaviour(req, res, seen.length, body);
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function answer(res: http.ServerResponse, status: number, body = "", headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "text/plain", ...headers });
  res.end(body);
}

describe("lib/http HttpClient", () => {
  const fast = { maxAttempts: 4, baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 5000 };
  let client: HttpClient;
  let close: (() => Promise<void>) | undefined;

  beforeEach(() => {
    client = new HttpClient({ timeoutMs: 5000, retry: fast });
  });
  afterEach(async () => {
    await client.close();
    await close?.();
    close = undefined;
  });

  it("retries a POST answered 429 (not processed), then returns the 200", async () => {
    const srv = await localServer((_q, res, n) => (n === 1 ? answer(res, 429, '{"code":20429}', { "Retry-After": "0" }) : answer(res, 200, "created")));
    close = srv.close;
    const retries: string[] = [];
    const c = new HttpClient({ retry: fast, onRetry: (i) => retries.push(i.reason) });
    try {
      const res = await c.request({ method: "POST", url: srv.url + "/send", body: "To=%2B1", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
      assert.equal(res.status, 200);
      assert.equal(res.body, "created");
      assert.equal(res.attempts, 2);
      assert.equal(srv.seen.length, 2);
      assert.deepEqual(srv.seen.map((s) => s.body), ["To=%2B1", "To=%2B1"]);
      assert.deepEqual(retries, ["HTTP 429"]);
    } finally {
      await c.close();
    }
  });

  it("gives up on a 429 whose Retry-After is beyond the policy's limit and returns it", async () => {
    const srv = await localServer((_q, res) => answer(res, 429, "", { "Retry-After": "3600" }));
    close = srv.close;
    const res = await client.request({ method: "POST", url: srv.url + "/send", body: "x=1" });
    assert.equal(res.status, 429);
    assert.equal(srv.seen.length, 1);
  });

  it("returns the last 429 after maxAttempts", async () => {
    const srv = await localServer((_q, res) => answer(res, 429));
    close = srv.close;
    const res = await client.request({ method: "POST", url: srv.url + "/send", body: "x=1" });
    assert.equal(res.status, 429);
    assert.equal(res.attempts, fast.maxAttempts);
    assert.equal(srv.seen.length, fast.maxAttempts);
  });

  it("retries 503 for a GET", async () => {
    const srv = await localServer((_q, res, n) => (n < 3 ? answer(res, 503) : answer(res, 200, "ok")));
    close = srv.close;
    const res = await client.request({ method: "GET", url: srv.url + "/thing" });
    assert.equal(res.status, 200);
    assert.equal(res.attempts, 3);
    assert.equal(srv.seen.length, 3);
  });

  it("does NOT retry 503 for a POST (outcome unknown): the 503 is returned after one request", async () => {
    const srv = await localServer((_q, res) => answer(res, 503, "busy"));
    close = srv.close;
    const res = await client.request({ method: "POST", url: srv.url + "/send", body: "x=1" });
    assert.equal(res.status, 503);
    assert.equal(res.attempts, 1);
    assert.equal(srv.seen.length, 1);
  });

  it("retries 503 for a POST explicitly marked idempotent", async () => {
    const srv = await localServer((_q, res, n) => (n === 1 ? answer(res, 503) : answer(res, 200)));
    close = srv.close;
    const res = await client.request({ method: "POST", url: srv.url + "/search", body: "q=1", idempotent: true });
    assert.equal(res.status, 200);
    assert.equal(srv.seen.length, 2);
  });

  it("a POST whose connection is destroyed after the request was read throws TimeoutError(outcomeUnknown) without resending", async () => {
    const srv = await localServer((req) => req.socket.destroy());
    close = srv.close;
    await assert.rejects(
      client.request({ method: "POST", url: srv.url + "/send", body: "To=%2B14155550132&Body=hi" }),
      (err: unknown) => {
        assert.ok(err instanceof TimeoutError, String(err));
        assert.equal(err.outcomeUnknown, true);
        assert.equal(err.code, "timeout");
        assert.equal(err.retryable, false);
        assert.ok(!err.message.includes("To=") && !err.message.includes("?"), err.message);
        return true;
      },
    );
    assert.equal(srv.seen.length, 1, "exactly one request reached the server");
  });

  it("a GET whose connection is destroyed is retried (idempotent)", async () => {
    const srv = await localServer((req, res, n) => (n === 1 ? req.socket.destroy() : answer(res, 200, "second")));
    close = srv.close;
    const res = await client.request({ method: "GET", url: srv.url + "/thing" });
    assert.equal(res.body, "second");
    assert.equal(srv.seen.length, 2);
  });

  it("a POST that gets no answer within the timeout throws TimeoutError(outcomeUnknown) after one request", async () => {
    const srv = await localServer(() => {
      /* never answers */
    });
    close = srv.close;
    const c = new HttpClient({ timeoutMs: 200, retry: fast });
    try {
      await assert.rejects(c.request({ method: "POST", url: srv.url + "/send", body: "x=1" }), (err: unknown) => {
        assert.ok(err instanceof TimeoutError);
        assert.equal(err.outcomeUnknown, true);
        return true;
      });
      assert.equal(srv.seen.length, 1);
    } finally {
      await c.close();
    }
  });

  it("the timeout covers the body too: an answer whose body stalls throws TimeoutError(outcomeUnknown) after one request", async () => {
    const srv = await localServer((_q, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"sid":'); // and nothing more
    });
    close = srv.close;
    const c = new HttpClient({ timeoutMs: 200, retry: fast });
    try {
      await assert.rejects(c.request({ method: "POST", url: srv.url + "/send", body: "x=1" }), (err: unknown) => {
        assert.ok(err instanceof TimeoutError, String(err));
        assert.equal(err.outcomeUnknown, true);
        return true;
      });
      assert.equal(srv.seen.length, 1);
    } finally {
      await c.close();
    }
  });

  it("a caller's abort ends a request before the timeout, and is not reported as a timeout", async () => {
    const srv = await localServer(() => {
      /* never answers */
    });
    close = srv.close;
    const c = new HttpClient({ timeoutMs: 60000, retry: fast });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(new Error("caller gave up")), 100);
    try {
      await assert.rejects(c.request({ method: "POST", url: srv.url + "/send", body: "x=1", signal: ctl.signal }), (err: unknown) => {
        assert.ok(!(err instanceof TimeoutError), String(err));
        return true;
      });
    } finally {
      await c.close();
    }
  });

  it("connection refused is retried (nothing was sent), then throws connect_failed", async () => {
    const srv = await localServer((_q, res) => answer(res, 200));
    const url = srv.url;
    await srv.close();
    const retries: string[] = [];
    const c = new HttpClient({ retry: fast, onRetry: (i) => retries.push(i.reason) });
    try {
      await assert.rejects(c.request({ method: "POST", url: url + "/send", body: "x=1" }), (err: unknown) => {
        assert.ok(err instanceof TimeoutError, String(err));
        assert.equal(err.code, "connect_failed");
        assert.equal(err.outcomeUnknown, false);
        assert.equal(err.retryable, true);
        return true;
      });
      assert.equal(retries.length, fast.maxAttempts - 1);
      assert.ok(retries.every((r) => r === "ECONNREFUSED"), retries.join(","));
    } finally {
      await c.close();
    }
  });

  it("returns other statuses (400, 401) to the caller without retry", async () => {
    const srv = await localServer((_q, res, n) => answer(res, n === 1 ? 400 : 401, "no"));
    close = srv.close;
    assert.equal((await client.request({ method: "GET", url: srv.url + "/a" })).status, 400);
    assert.equal((await client.request({ method: "GET", url: srv.url + "/b" })).status, 401);
    assert.equal(srv.seen.length, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// phone.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/phone", () => {
  it("normalises national numbers with the default region", () => {
    assert.equal(toE164("(415) 555-0132", "US"), "+14155550132");
    assert.equal(toE164("415.555.0132", "us"), "+14155550132");
    assert.equal(toE164("07911 123456", "GB"), "+447911123456");
  });

  it("keeps international numbers whatever the default region", () => {
    assert.equal(toE164("+44 7911 123456", "US"), "+447911123456");
    assert.equal(toE164("+1 (415) 555-0132"), "+14155550132");
    assert.equal(toE164(14155550132 as unknown as string, "US"), "+14155550132");
  });

  it("keeps a whatsapp: prefix (lower-cased) and normalises what follows", () => {
    assert.equal(toE164("whatsapp:+14155550132"), "whatsapp:+14155550132");
    assert.equal(toE164("WhatsApp:(415) 555-0132", "US"), "whatsapp:+14155550132");
  });

  it("rejects invalid numbers with ValidationError invalid_phone", () => {
    for (const [raw, region] of [["12345", "US"], ["(415) 555-0132", undefined], ["", "US"], ["whatsapp:", "US"], ["not a number", "US"], [undefined, "US"], [null, "US"]] as [unknown, string | undefined][]) {
      assert.throws(
        () => toE164(raw, region),
        (err: unknown) => err instanceof ValidationError && err.code === "invalid_phone" && err.retryable === false,
        `input ${JSON.stringify(raw)}`,
      );
    }
  });

  it("does not echo the full number in the error", () => {
    try {
      toE164("(415) 555-01", "US");
      assert.fail("should throw");
    } catch (err) {
      assert.ok(!(err as Error).message.includes("555-01"), (err as Error).message);
    }
  });

  it("masks numbers keeping the country prefix and the last two digits", () => {
    // Structure only: the exact bullet count is not pinned here (see phone.ts docstring example).
    const check = (value: string, prefix: string, tail: string): void => {
      const m = maskPhone(value);
      assert.ok(m.startsWith(prefix) && m.endsWith(tail), m);
      const middle = m.slice(prefix.length, m.length - tail.length);
      assert.match(middle, /^•{6,}$/, m);
    };
    check("+14155550132", "+1", "32");
    check("whatsapp:+447911123456", "whatsapp:+4", "56");
    check("(415) 555-0132", "", "32");
    assert.equal(maskPhone("123"), "•••");
    for (const v of ["+14155550132", "whatsapp:+14155550132"]) assert.ok(!maskPhone(v).includes("4155550"), maskPhone(v));
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// ids.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/ids", () => {
  const base = { system: "acumatica", tenant: "Company", entity: "Bill", id: "Bill/000123", version: "2026-03-02T10:15:00Z", action: "updated" };

  it("jobId is stable and URL/context safe", () => {
    const a = deriveJobId(base);
    assert.match(a, /^j[0-9a-f]{32}$/);
    assert.equal(deriveJobId({ ...base }), a);
  });

  it("the same instant written with different offsets or precision gives the same jobId", () => {
    const a = deriveJobId(base);
    assert.equal(deriveJobId({ ...base, version: "2026-03-02T11:15:00+01:00" }), a);
    assert.equal(deriveJobId({ ...base, version: "2026-03-02T05:15:00-05:00" }), a);
    assert.equal(deriveJobId({ ...base, version: "2026-03-02T10:15:00.000Z" }), a);
  });

  it("a different version, record, tenant or a delete gives a different jobId", () => {
    const a = deriveJobId(base);
    const others = [
      deriveJobId({ ...base, version: "2026-03-02T10:15:01Z" }),
      deriveJobId({ ...base, action: "deleted" }),
      deriveJobId({ ...base, id: "Bill/000124" }),
      deriveJobId({ ...base, tenant: "Other" }),
      deriveJobId({ ...base, entity: "Invoice" }),
      deriveJobId({ ...base, version: "tx-77" }),
    ];
    assert.equal(new Set([a, ...others]).size, others.length + 1);
  });

  it("created vs updated (a guess when polling) does not change the jobId", () => {
    const a = deriveJobId(base);
    assert.equal(deriveJobId({ ...base, action: "created" }), a);
    assert.equal(deriveJobId({ ...base, action: undefined }), a);
  });

  it("field boundaries cannot be shifted to collide", () => {
    assert.notEqual(deriveJobId({ ...base, entity: "Bill|x", id: "y" }), deriveJobId({ ...base, entity: "Bill", id: "x|y" }));
  });

  it("hashedKey never contains path characters", () => {
    for (const raw of ["INV.001", "SO[5000000]", "a..b", "__proto__", "#:(file)::x"]) assert.match(hashedKey("dd", raw), /^dd_[0-9a-f]{40}$/);
  });

  it("hashedKey is the first 40 hex digits of SHA-256 over the UTF-8 text (keys stored by earlier versions are found again)", () => {
    // FIPS 180-2 test vector: SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
    assert.equal(hashedKey("dd", "abc"), "dd_ba7816bf8f01cfea414140de5dae2223b00361a3");
    assert.equal(hashedKey("audit", "Ж€"), `audit_${createHash("sha256").update(Buffer.from("Ж€", "utf8")).digest("hex").slice(0, 40)}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// store.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/store BoundedStore", () => {
  it("claim is atomic: 20 concurrent claims of one id → exactly one true", async () => {
    const store = new BoundedStore<number>(new MapBackend(), { prefix: "dd", ttlMs: 0, maxEntries: 100 });
    const results = await Promise.all(Array.from({ length: 20 }, (_x, i) => store.claim("INV-001", i)));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal(await store.get("INV-001"), results.indexOf(true));
    assert.equal(store.size, 1);
  });

  it("claim is atomic for a fresh store still loading its backend", async () => {
    const backend = new MapBackend();
    const slow: typeof backend.keys = async () => {
      await new Promise((r) => setTimeout(r, 20));
      return [...backend.map.keys()];
    };
    backend.keys = slow;
    const store = new BoundedStore<string>(backend, { prefix: "dd", ttlMs: 0, maxEntries: 10 });
    const results = await Promise.all(Array.from({ length: 20 }, () => store.claim("k", "v")));
    assert.equal(results.filter(Boolean).length, 1);
  });

  it("stores hashed keys only", async () => {
    const backend = new MapBackend();
    const store = new BoundedStore<number>(backend, { prefix: "dd", ttlMs: 0, maxEntries: 10 });
    await store.claim("SO[5000000]", 1);
    const keys = [...backend.map.keys()];
    assert.equal(keys.length, 1);
    assert.match(keys[0], /^dd_[0-9a-f]{40}$/);
    assert.ok(!JSON.stringify([...backend.map.values()]).includes("SO["), "original id not kept without keepIds");
  });

  it("entries expire after ttlMs (injected clock)", async () => {
    let now = 1_000_000;
    const backend = new MapBackend();
    const store = new BoundedStore<string>(backend, { prefix: "dd", ttlMs: 1000, maxEntries: 10, now: () => now });
    assert.equal(await store.claim("a", "x"), true);
    now += 999;
    assert.equal(await store.has("a"), true);
    assert.equal(await store.claim("a", "y"), false);
    now += 1;
    assert.equal(await store.has("a"), false);
    assert.equal(await store.claim("a", "z"), true, "claimable again after expiry");
    assert.equal(await store.get("a"), "z");
    await store.claim("b", "b");
    now += 5000;
    assert.equal(await store.sweep(), 2);
    assert.equal(backend.map.size, 0);
  });

  it("evicts the oldest entries first beyond maxEntries", async () => {
    let now = 0;
    const backend = new MapBackend();
    const store = new BoundedStore<string>(backend, { prefix: "dd", ttlMs: 0, maxEntries: 3, now: () => ++now });
    for (const id of ["a", "b", "c", "d", "e"]) await store.claim(id, id);
    assert.equal(store.size, 3);
    assert.equal(backend.map.size, 3);
    assert.equal(await store.has("a"), false);
    assert.equal(await store.has("b"), false);
    assert.deepEqual((await store.entries()).map((e) => e.v), ["c", "d", "e"]);
    // a renewed entry becomes the newest
    await store.set("c", "c2", true);
    await store.claim("f", "f");
    assert.deepEqual((await store.entries()).map((e) => e.v), ["e", "c2", "f"]);
  });

  it("reloads from the backend (values, order, expiry)", async () => {
    let now = 10_000;
    const backend = new MapBackend();
    const first = new BoundedStore<{ n: number }>(backend, { prefix: "dd", ttlMs: 1000, maxEntries: 3, now: () => now });
    await first.claim("old", { n: 1 });
    now += 600;
    await first.claim("mid", { n: 2 });
    await first.claim("new", { n: 3 });
    await backend.set("other_prefix", { v: 1, t: 0, e: 0 });

    now += 500; // "old" is now expired, the others are not
    const second = new BoundedStore<{ n: number }>(backend, { prefix: "dd", ttlMs: 1000, maxEntries: 3, now: () => now });
    await second.ready;
    assert.equal(second.size, 2);
    assert.equal(await second.has("old"), false);
    assert.deepEqual(await second.get("mid"), { n: 2 });
    assert.deepEqual(await second.get("new"), { n: 3 });
    assert.equal(await second.claim("mid", { n: 9 }), false, "a reloaded entry still blocks a second claim");
    assert.equal(backend.map.has("other_prefix"), true, "foreign keys untouched");
    assert.equal([...backend.map.keys()].filter((k) => k.startsWith("dd_")).length, 2, "expired entry deleted from the backend");
  });

  it("writes a new object on every change (context stores persist only set())", async () => {
    const backend = new MapBackend();
    const store = new BoundedStore<{ s: string }>(backend, { prefix: "st", ttlMs: 0, maxEntries: 10 });
    await store.set("sid", { s: "sent" });
    const before = [...backend.map.values()][0];
    await store.set("sid", { s: "delivered" });
    const after = [...backend.map.values()][0];
    assert.notEqual(before, after);
    assert.deepEqual((before as { v: unknown }).v, { s: "sent" });
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// template.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/template", () => {
  it("renders Mustache over msg without HTML escaping", () => {
    const msg = { payload: { vendor: "Smith & Sons <Ltd>", ref: "INV-1042", amount: 12.5, note: `"quoted" 'x'` } };
    assert.equal(renderTemplate("{{payload.vendor}}: {{payload.ref}} ({{payload.amount}}) {{payload.note}}", msg), `Smith & Sons <Ltd>: INV-1042 (12.5) "quoted" 'x'`);
    assert.equal(renderTemplate("{{{payload.vendor}}}", msg), "Smith & Sons <Ltd>");
    assert.equal(renderTemplate("{{&payload.vendor}}", msg), "Smith & Sons <Ltd>");
  });

  it("renders missing values as empty and supports sections", () => {
    assert.equal(renderTemplate("a{{missing.x}}b{{#payload.list}}[{{.}}]{{/payload.list}}", { payload: { list: [1, 2] } }), "ab[1][2]");
  });

  it("a malformed template is a ValidationError bad_template", () => {
    assert.throws(() => renderTemplate("{{#open}} never closed", {}), (err: unknown) => err instanceof ValidationError && err.code === "bad_template");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// twilio/signature.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/twilio/signature validateTwilioWebhook", () => {
  const FORM = "application/x-www-form-urlencoded";
  const url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  const params = { CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212" };
  const rawBody = Buffer.from(new URLSearchParams(params).toString());
  const ok = { authToken: "12345", signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, contentType: FORM, rawBody, params };

  it("accepts Twilio's worked example (form body)", () => {
    assert.equal(validateTwilioWebhook(ok), true);
    assert.equal(validateTwilioWebhook({ ...ok, contentType: FORM + "; charset=utf-8" }), true);
  });

  it("accepts the SDK test-suite vector", () => {
    const p2 = { ...params, Caller: "+14158675309", From: "+14158675309" };
    assert.equal(validateTwilioWebhook({ ...ok, params: p2, signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=" }), true);
    assert.equal(validateTwilioWebhook({ ...ok, params: p2 }), false, "vectors are not interchangeable");
  });

  it("works from parsed raw bodies (parseForm)", () => {
    assert.equal(validateTwilioWebhook({ ...ok, params: parseForm(rawBody) }), true);
    assert.deepEqual(parseForm("a=1&b=2&a=3&c=%2B1+2"), { a: ["1", "3"], b: "2", c: "+1 2" });
  });

  it("rejects a changed token, URL, parameter name or value, and a missing signature", () => {
    assert.equal(validateTwilioWebhook({ ...ok, authToken: "12346" }), false);
    assert.equal(validateTwilioWebhook({ ...ok, url: url.replace("foo=1", "foo=2") }), false);
    assert.equal(validateTwilioWebhook({ ...ok, url: url.replace("mycompany", "mycompanx") }), false);
    assert.equal(validateTwilioWebhook({ ...ok, params: { ...params, Digits: "1235" } }), false);
    const { Digits, ...rest } = params;
    assert.equal(validateTwilioWebhook({ ...ok, params: { ...rest, Digitz: Digits } }), false);
    assert.equal(validateTwilioWebhook({ ...ok, params: { ...params, Extra: "1" } }), false);
    assert.equal(validateTwilioWebhook({ ...ok, signature: "" }), false);
    assert.equal(validateTwilioWebhook({ ...ok, authToken: "" }), false);
    assert.equal(validateTwilioWebhook({ ...ok, signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ" }), false);
  });

  describe("JSON bodies (bodySHA256)", () => {
    const body = '{"property": "value", "boolean": true}';
    const hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const jsonOk = {
      authToken: "12345",
      signature: "a9nBmqA0ju/hNViExpshrM61xv4=",
      url: `${url}&bodySHA256=${hash}`,
      contentType: "application/json",
      rawBody: Buffer.from(body),
    };

    it("accepts the reference vector", () => {
      assert.equal(validateTwilioWebhook(jsonOk), true);
      assert.equal(validateTwilioWebhook({ ...jsonOk, contentType: "application/json; charset=utf-8" }), true);
    });

    it("rejects a body tampered after signing", () => {
      assert.equal(validateTwilioWebhook({ ...jsonOk, rawBody: Buffer.from(body.replace("value", "valuf")) }), false);
      assert.equal(validateTwilioWebhook({ ...jsonOk, rawBody: Buffer.from(body + " ") }), false);
    });

    it("rejects a missing bodySHA256, a changed hash, or a changed signature", () => {
      assert.equal(validateTwilioWebhook({ ...jsonOk, url }), false);
      assert.equal(validateTwilioWebhook({ ...jsonOk, url: `${url}&bodySHA256=${hash.replace(/^0/, "1")}` }), false);
      assert.equal(validateTwilioWebhook({ ...jsonOk, signature: "a9nBmqA0ju/hNViExpshrM61xv5=" }), false);
      assert.equal(validateTwilioWebhook({ ...jsonOk, authToken: "54321" }), false);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// twilio/status.ts
// ---------------------------------------------------------------------------------------------------------------------

describe("lib/twilio/status ordering", () => {
  it("the first status is always accepted", () => {
    for (const s of ["queued", "sent", "delivered", "failed"]) assert.equal(isStatusAdvance(undefined, s), true);
  });

  it("follows the lifecycle forward", () => {
    const path = ["accepted", "queued", "sending", "sent", "delivered", "read"];
    for (let i = 1; i < path.length; i++) assert.equal(isStatusAdvance(path[i - 1], path[i]), true, `${path[i - 1]} → ${path[i]}`);
    assert.equal(isStatusAdvance("queued", "delivered"), true, "skipping steps is fine");
  });

  it("never lets a late or repeated status replace a more advanced or final one", () => {
    assert.equal(isStatusAdvance("delivered", "sent"), false);
    assert.equal(isStatusAdvance("sent", "sent"), false, "duplicate");
    assert.equal(isStatusAdvance("sent", "queued"), false);
    assert.equal(isStatusAdvance("undelivered", "sent"), false);
    assert.equal(isStatusAdvance("failed", "delivered"), false, "final failures are final");
    assert.equal(isStatusAdvance("delivered", "undelivered"), false);
    assert.equal(isStatusAdvance("delivered", "failed"), false);
    assert.equal(isStatusAdvance("read", "delivered"), false);
  });

  it("ignores unknown statuses after a known one", () => {
    assert.equal(statusRank("weird"), -1);
    assert.equal(isStatusAdvance("sent", "weird"), false);
  });

  it("orders call statuses", () => {
    assert.equal(isStatusAdvance("ringing", "in-progress", "call"), true);
    assert.equal(isStatusAdvance("in-progress", "completed", "call"), true);
    assert.equal(isStatusAdvance("completed", "ringing", "call"), false);
    assert.equal(isStatusAdvance("busy", "completed", "call"), false);
  });

  it("knows final statuses", () => {
    for (const s of ["delivered", "undelivered", "failed", "canceled", "read", "completed"]) assert.equal(isFinalStatus(s), true, s);
    for (const s of ["queued", "sending", "sent", "accepted"]) assert.equal(isFinalStatus(s), false, s);
  });
});
