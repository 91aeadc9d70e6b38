/**
 * The webhook edge under hostile input, end to end (issue 14): every shipped example (Acumatica, Twilio, Sage
 * Intacct, Exact Online, Business Central, SAP Business One, against their simulators) packed, installed and deployed
 * in a real Node-RED process started the way users start it (NODE_ENV unset, so
 * Express would print stack traces if anything reached its default error handler), then a seeded, reproducible
 * stream of hostile requests over raw sockets, with bounded concurrency, against every /mlc endpoint the
 * examples serve and unserved /mlc paths: random methods and media types, bad percent escapes, /MLC and //
 * paths, absolute-form targets, framing errors, invalid JSON and forms, 10k-deep JSON, 10k parameters,
 * `__proto__` keys, invalid UTF-8, charset=bogus, Content-Encoding br/gzip, bodies around 256 KB and of 5 MB,
 * slow and stalled bodies, forged and mis-signed Twilio callbacks and SendGrid events (also validly signed
 * but an hour old), wrong push secrets, Exact webhooks with a wrong or lower-case HashCode, Business Central
 * notifications with a guessed clientState, validation handshakes.
 *
 * Checked: 0 × 5xx, 0 stack traces in bodies or in Node-RED's log, 0 requests unanswered, 0 state changes
 * (no SMS, call, e-mail or Verify; no Acumatica write; no audit record; no Exact or BC record read for a delivery, no
 * subscription lost), Node-RED's memory printed (and its growth bounded), and afterwards a valid push still texts its
 * approver, a signed status callback still reaches the audit trail, a signed Exact webhook and a BC notification are
 * still taken.
 *
 * MLC_FUZZ_SEED (default 14) and MLC_FUZZ_REQUESTS (default 10000) reproduce or widen a run. The HTTP-in
 * routes of the examples (/examples/…) are Node-RED core nodes, not the package's edge, and are left out.
 */
import assert from "node:assert/strict";
import crypto, { createHash, createHmac } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { signTwilioRequest } from "../sims/twilio";
import { SendGridSim } from "../sims/sendgrid";
import { SUPPORTED } from "../sims/bc";
import { AUDIT_PROBE, auditOf, billRow, Stack, startStack } from "../harness/stack";
import { tempDir, waitFor } from "../harness/nodered";
import { head, looksLikeStackTrace, rawRequest, RawOptions, RawResponse } from "../harness/raw-http";

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Endpoints the shipped examples serve below /mlc at least; the fuzz aims at every endpoint the deployed examples serve
 * (read from the flows in the first test), so a new example's webhook is fuzzed as soon as it ships.
 */
const KNOWN = [
  "/acumatica/bills",
  "/twilio/status",
  "/twilio/status/inbound",
  "/twilio/status/sendgrid",
  "/twilio/events",
  "/twilio/events/inbound",
  "/twilio/events/sendgrid",
  "/twilio/overdue-1/gather",
  "/twilio/overdue-2/gather",
  "/twilio/intacct-approval/gather",
  "/twilio/sapb1-overdue/gather",
  "/exact/invoices",
  "/bc/purchase-invoices",
];
const SERVED: string[] = [];
const UNSERVED = ["", "/", "/nowhere", "/twilio", "/acumatica", "/twilio/events/x", "/acumatica/bills/extra", "/twilio/status/inbound/", "/twilio/nowhere/gather", "/.env", "/../../etc/passwd", "/exact", "/bc", "/exact/invoices/x", "/bc/nowhere", "/sapb1", "/intacct"];

interface FuzzRequest {
  kind: string;
  head: string;
  body: Buffer;
  opts: RawOptions;
}

interface Ledger {
  sms: number;
  calls: number;
  verifications: number;
  mails: number;
  acumaticaWrites: number;
  failedAudit: number;
  /** Exact records read (a genuine webhook makes the trigger fetch its record) and subscriptions. */
  exactReads: number;
  exactSubscriptions: number;
  /** BC records read (a genuine notification makes the trigger read each changed record) and subscriptions. */
  bcReads: number;
  bcSubscriptions: number;
}

/** Every example family, against its simulator (test/harness/erp-sims.ts for Intacct, Exact and BC). */
const FAMILIES = ["acumatica", "twilio", "intacct", "exact", "bc", "sapb1"];

describe("end to end: hostile requests against every /mlc endpoint of the shipped examples", function () {
  this.timeout(600000);
  let stack: Stack;
  let root: string;
  const seed = Number(process.env.MLC_FUZZ_SEED ?? 14);
  const total = Number(process.env.MLC_FUZZ_REQUESTS ?? 10000);

  before(async function () {
    root = tempDir("mlc-e2e-fuzz-");
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", families: FAMILIES, erps: ["intacct", "exact", "bc"], extraFlows: AUDIT_PROBE, extraEnv: { NODE_ENV: "development" } });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-25).join("\n") + "\n");
  });

  after(async function () {
    await stack?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  const exact = () => stack.erps.exact!;
  const bc = () => stack.erps.bc!;

  async function ledger(): Promise<Ledger> {
    return {
      sms: stack.twilio.messages.length,
      calls: stack.twilio.calls.length,
      verifications: stack.twilio.verifications.length,
      mails: stack.sendgrid.mails.length,
      acumaticaWrites: stack.acumatica.requests.filter((r) => r.method === "PUT" || r.method === "DELETE" || (r.method === "POST" && /\/entity\/(?!auth\/)/i.test(r.path))).length,
      failedAudit: (await auditOf(stack.nodeRed.url)).length,
      exactReads: exact().apiCalls("SalesInvoices").length,
      exactSubscriptions: exact().subscriptions.size,
      bcReads: bc().apiCalls((c) => c.path.includes("/purchaseInvoices(")).length,
      bcSubscriptions: bc().subs.size,
    };
  }

  it("the examples serve every endpoint the fuzz knows, and their webhook subscriptions are live", async function () {
    const flows = await stack.nodeRed.getJson<Record<string, unknown>[]>("/flows");
    const served = SERVED;
    let exactSubs = 0;
    let bcSubs = 0;
    for (const n of flows) {
      if (n.type === "mlc-acumatica-trigger" && n.mode !== "poll") served.push(`/acumatica/${n.endpoint}`);
      if (n.type === "mlc-twilio-status") served.push(`/twilio/${n.endpoint}`, `/twilio/${n.endpoint}/inbound`, `/twilio/${n.endpoint}/sendgrid`);
      if (n.type === "mlc-twilio-call" && n.ack) served.push(`/twilio/${n.endpoint}/gather`);
      if ((n.type === "mlc-exact-trigger" || n.type === "mlc-bc-trigger") && n.mode === "webhook") served.push(`/${String(n.type).slice(4, -8)}/${n.endpoint}`);
      if (n.type === "mlc-exact-trigger" && n.mode === "webhook") exactSubs++;
      if (n.type === "mlc-bc-trigger" && n.mode === "webhook") bcSubs += String(n.entities).split(",").filter((e) => SUPPORTED.includes(e.trim())).length;
    }
    assert.deepEqual(KNOWN.filter((k) => !served.includes(k)), [], "every known endpoint served");
    assert.equal(new Set(served).size, served.length, "no endpoint served twice");
    process.stdout.write(`      ${served.length} endpoints: ${served.join(" ")}\n`);
    // the webhook families are live (Exact validated each subscription's callback, BC's handshakes passed) before the
    // ledger is read: a subscription made during the fuzz would look like a state change
    await waitFor(() => exact().subscriptions.size === exactSubs && bc().subs.size === bcSubs, 60000, `${exactSubs} Exact and ${bcSubs} BC subscriptions`);
  });

  it(`${total} seeded hostile requests: 0 × 5xx, 0 stack traces, 0 unanswered, 0 state changes, memory printed`, async function () {
    assert.ok(SERVED.length, "the endpoints are read from the flows by the first test");
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const chance = (p: number): boolean => rnd() < p;
    const nodeUrl = stack.env.PUBLIC_BASE_URL;
    const token = stack.twilio.defaultAccount.authToken;
    const sgSim: SendGridSim = stack.sendgrid;
    const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(rnd() * 16).toString(16)).join("");
    const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
    const CAP = 256 * 1024;
    const FIVE_MB = Buffer.alloc(5 * 1024 * 1024, 0x20);

    const pathForm = (p: string): string => {
      const base = `/mlc${p}`;
      switch (Math.floor(rnd() * 12)) {
        case 0:
          return `/MLC${p}`;
        case 1:
          return `/mlc/${p}`; // "/mlc//…"
        case 2:
          return `//mlc${p}`;
        case 3:
          return `http://evil.example${base}`;
        case 4:
          return `${base}${pick(["%", "%zz", "%e0%a4%a", "%C0%AE", "%00", "/%2e%2e/%2e%2e", "%ff%fe"])}`;
        case 5:
          return `${base}/`;
        case 6:
          return `${base}?${pick(["j=j" + hex(32), "bodySHA256=" + hex(64), "%zz", "a=%", "c=" + "x".repeat(2000), "__proto__[x]=1", "validationToken=" + hex(16), "validationToken=%ff"])}`;
        default:
          return base;
      }
    };
    const bodies: (() => [string, Buffer])[] = [
      () => ["empty", Buffer.alloc(0)],
      () => ["bad-json", Buffer.from(pick(["{", '{"a":', "}", "[1,2", '{"MessageSid":"SM1",}', "nul", "\u0000"]))],
      () => ["deep-json", Buffer.from("[".repeat(10000) + "]".repeat(chance(0.5) ? 10000 : 0))],
      () => ["json-scalar", Buffer.from(pick(["null", "0", "true", '"x"', "[]", "{}"]))],
      () => ["json-proto", Buffer.from('{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"x":1}},"MessageSid":"SM' + hex(32) + '","MessageStatus":"delivered"}')],
      () => ["json-types", Buffer.from(JSON.stringify({ MessageSid: chance(0.5) ? 12 : true, MessageStatus: chance(0.5) ? null : ["delivered"], CallSid: { a: 1 } }))],
      () => ["sendgrid-like", Buffer.from(`[{"__proto__":{"x":1},"event":"delivered","email":"a@b.example","sg_message_id":"${hex(22)}.filter","mlc_job_id":"j${hex(32)}"}]`)],
      () => ["form-proto", Buffer.from(`__proto__[polluted]=1&constructor[prototype][x]=1&__proto__=2&MessageSid=SM${hex(32)}&MessageStatus=delivered`)],
      () => ["form-10k", Buffer.from(Array.from({ length: 10000 }, (_, i) => `p${i}=${i}`).join("&"))],
      () => ["form", Buffer.from(new URLSearchParams({ MessageSid: "SM" + hex(32), MessageStatus: pick(["delivered", "failed", "sent"]), To: "+14155550100", Digits: "1", From: "+14155550177", Body: "STOP", CallSid: "CA" + hex(32), CallStatus: "completed" }).toString())],
      () => ["bad-utf8", Buffer.concat([Buffer.from("MessageSid="), Buffer.from([0xff, 0xfe, 0xc0, 0xae, 0xe0, 0xa4]), Buffer.from("&Body=%ff%fe")])],
      () => ["random", randomBytes(Math.floor(rnd() * 2000))],
      () => ["push-like", Buffer.from(JSON.stringify({ Id: "n" + hex(8), Query: "AP-Bills-Pending-Approval", CompanyId: "AcmeProd", Inserted: [{ Type: "Bill", ReferenceNbr: "9" + hex(5), Amount: 99999, ApproverID: "EP00000001" }], Deleted: [] }))],
      () => ["near-cap", Buffer.from('{"a":"' + "x".repeat(CAP - 40 + Math.floor(rnd() * 80)) + '"}')],
      () => ["exact-forged", exactForged()],
      () => ["bc-forged", bcForged()],
    ];
    const contentTypes = ["application/x-www-form-urlencoded", "application/json", "application/json; charset=bogus", "application/x-www-form-urlencoded; charset=utf-16", "text/plain", "multipart/form-data; boundary=x", "application/xml", "a/b;;;", "", "application/json; charset=utf-8"];

    /** An Exact webhook whose HashCode is wrong: another key, Exact's hash in lower case, or over re-encoded JSON. */
    const exactForged = (): Buffer => {
      const sim = exact();
      const content = JSON.stringify({ Topic: "SalesInvoices", ClientId: sim.clientId, Division: sim.division, Action: pick(["Create", "Update", "Delete"]), Key: crypto.randomUUID(), ExactOnlineEndpoint: `${sim.url}/api/v1/${sim.division}/salesinvoice/SalesInvoices`, EventCreatedOn: new Date().toISOString() });
      const hash = (key: string, text: string): string => createHmac("sha256", key).update(text, "utf8").digest("hex").toUpperCase();
      const forged = pick([() => hash("guess-" + hex(8), content), () => hash(sim.webhookSecret, content).toLowerCase(), () => hash(sim.webhookSecret, content.replace(/\//g, "\\/")), () => ""])();
      return Buffer.from(`{"Content":${content},"HashCode":"${forged}"}`);
    };
    /** A BC notification naming the live subscription, with a guessed (or no) clientState. */
    const bcForged = (): Buffer => {
      const sim = bc();
      const sub = [...sim.subs.values()][0];
      const item = { subscriptionId: sub?.subscriptionId ?? crypto.randomUUID(), clientState: pick(["guess-" + hex(8), "", null]), expirationDateTime: new Date(Date.now() + 86_400_000).toISOString(), resource: `/api/v2.0/companies(${sim.companyId})/purchaseInvoices(${crypto.randomUUID()})`, changeType: pick(["created", "updated", "deleted", "collection"]), lastModifiedDateTime: new Date().toISOString() };
      return Buffer.from(JSON.stringify({ value: chance(0.8) ? [item] : Array.from({ length: 50 }, () => item) }));
    };

    const signFor = (target: string, body: Buffer, ct: string): Record<string, string> => {
      const h: Record<string, string> = {};
      const url = `${nodeUrl}${target.startsWith("/") ? target : new URL(target).pathname}`;
      switch (Math.floor(rnd() * 6)) {
        case 0:
          h["X-Twilio-Signature"] = Buffer.from(randomBytes(20)).toString("base64");
          break;
        case 1: {
          const params = Object.fromEntries(new URLSearchParams(body.toString("latin1")));
          h["X-Twilio-Signature"] = signTwilioRequest("forged-" + hex(8), url, /json/.test(ct) ? {} : params); // wrong token
          break;
        }
        case 2: {
          const params = Object.fromEntries(new URLSearchParams(body.toString("latin1")));
          h["X-Twilio-Signature"] = signTwilioRequest(token, `${nodeUrl}/mlc/twilio/elsewhere`, /json/.test(ct) ? {} : params); // right token, another URL
          break;
        }
        case 3: {
          const ts = String(Math.floor(Date.now() / 1000) - pick([3600, -3600, 86400]));
          h["X-Twilio-Email-Event-Webhook-Timestamp"] = ts;
          h["X-Twilio-Email-Event-Webhook-Signature"] = sgSim.sign(body.toString("utf8"), ts); // validly signed, outside the tolerance
          break;
        }
        case 4:
          h["X-Twilio-Email-Event-Webhook-Signature"] = pick(["", "!!!", Buffer.from(randomBytes(70)).toString("base64")]);
          h["X-Twilio-Email-Event-Webhook-Timestamp"] = pick(["", "abc", "-1", "99999999999999999999", String(Math.floor(Date.now() / 1000))]);
          break;
        default:
          h["X-Notify-Secret"] = pick(["", "wrong", stack.pushSecret + "x", "x".repeat(4000)]);
      }
      return h;
    };

    const framing: (() => FuzzRequest)[] = [
      () => ({ kind: "frame-garbage", head: "GARBAGE", body: Buffer.alloc(0), opts: {} }),
      () => ({ kind: "frame-dup-cl", head: `POST /mlc/twilio/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6`, body: Buffer.from("hello!"), opts: {} }),
      () => ({ kind: "frame-cl-te", head: `POST /mlc/acumatica/bills HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked`, body: Buffer.from("0\r\n\r\n"), opts: {} }),
      () => ({ kind: "frame-bad-cl", head: `POST /mlc/twilio/status HTTP/1.1\r\nHost: x\r\nContent-Length: ${pick(["-1", "abc", "1e3", "0x10"])}`, body: Buffer.from("a=1"), opts: {} }),
      () => ({ kind: "frame-bad-chunk", head: `POST /mlc/twilio/status/inbound HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked`, body: Buffer.from("zz\r\nhello\r\n0\r\n\r\n"), opts: {} }),
      () => ({ kind: "frame-no-colon", head: `POST /mlc/twilio/events HTTP/1.1\r\nHost: x\r\nThis is not a header\r\nContent-Length: 0`, body: Buffer.alloc(0), opts: {} }),
      () => ({ kind: "frame-version", head: `POST /mlc/twilio/events HTTP/${pick(["9.9", "1.7", "0.9"])}\r\nHost: x\r\nContent-Length: 0`, body: Buffer.alloc(0), opts: {} }),
      () => ({ kind: "frame-long-target", head: `GET /mlc/${"a".repeat(20000)} HTTP/1.1\r\nHost: x`, body: Buffer.alloc(0), opts: {} }),
      () => ({ kind: "frame-nul", head: `POST /mlc/twilio/events HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\nContent-Length: 0`, body: Buffer.alloc(0), opts: {} }),
      () => ({ kind: "frame-many-headers", head: head("POST", "/mlc/twilio/events", Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`X-H${i}`, "v".repeat(50)])), ""), body: Buffer.alloc(0), opts: {} }),
      () => ({ kind: "frame-http10", head: `POST /mlc/acumatica/bills HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 2`, body: Buffer.from("{}"), opts: {} }),
    ];

    let bigLeft = 10;
    let slowLeft = 40;
    const next = (): FuzzRequest => {
      if (chance(0.06)) return pick(framing)();
      const target = pathForm(chance(0.7) ? pick(SERVED) : pick(UNSERVED) + (chance(0.3) ? "/" + hex(6) : ""));
      const method = chance(0.8) ? "POST" : pick(["GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO"]);
      let [kind, body] = pick(bodies)();
      if (bigLeft > 0 && chance(0.002)) {
        bigLeft--;
        kind = "5mb";
        body = FIVE_MB;
      }
      const ct = pick(contentTypes);
      const headers: Record<string, string> = { ...signFor(target, body, ct) };
      if (ct) headers["Content-Type"] = ct;
      if (chance(0.05)) headers["Content-Encoding"] = pick(["br", "gzip", "identity, br", "deflate"]);
      if (chance(0.02)) headers["X-Long"] = "y".repeat(8000);
      if (target.includes("/acumatica/") && chance(0.02) && /bad-json|deep-json/.test(kind)) headers["X-Notify-Secret"] = stack.pushSecret; // right secret, broken body: 400
      const opts: RawOptions = { timeoutMs: 30000 };
      if (slowLeft > 0 && chance(0.01) && body.length < 4000) {
        slowLeft--;
        kind = `slow-${kind}`;
        opts.slowChunkBytes = Math.max(1, Math.ceil(body.length / 8));
        opts.slowDelayMs = 25;
      }
      return { kind, head: head(method, target, headers, body), body, opts };
    };

    // Stalled bodies: sent first, answered with 408 by the dispatcher's body deadline while the rest runs.
    const stalled = Array.from({ length: 6 }, (_, i) => {
      const body = Buffer.from('{"a":"' + "x".repeat(1000) + '"}');
      return rawRequest(stack.nodeRed.port, head("POST", i % 2 ? "/mlc/acumatica/bills" : "/mlc/nowhere", { "Content-Type": "application/json" }, body), body, { stallAfterBytes: 10, timeoutMs: 40000 });
    });

    const before = await ledger();
    const logStart = stack.nodeRed.log.length;
    const rssBefore = stack.nodeRed.rssBytes();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, stack.nodeRed.rssBytes())), 200);

    const statuses = new Map<number, number>();
    const problems: string[] = [];
    const byKind = new Map<string, number>();
    const check = (req: FuzzRequest, res: RawResponse): void => {
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      byKind.set(req.kind, (byKind.get(req.kind) ?? 0) + 1);
      const line = req.head.split("\r\n")[0].slice(0, 120);
      if (res.status <= 0) problems.push(`unanswered (${res.status}): ${req.kind} ${line}`);
      else if (res.status >= 500) problems.push(`${res.status}: ${req.kind} ${line} → ${res.body.slice(0, 100)}`);
      if (looksLikeStackTrace(res.body)) problems.push(`stack trace: ${req.kind} ${line} → ${res.body.slice(0, 200)}`);
    };

    const concurrency = 16;
    let issued = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      while (issued < total) {
        issued++;
        const req = next();
        check(req, await rawRequest(stack.nodeRed.port, req.head, req.body, req.opts));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const stalledAnswers = await Promise.all(stalled);
    const seconds = (Date.now() - started) / 1000;
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 1000));
    const rssAfter = stack.nodeRed.rssBytes();

    const mb = (b: number): string => (b / 1048576).toFixed(1);
    const histogram = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(" ");
    process.stdout.write(
      `      seed ${seed}: ${total} requests (+${stalled.length} stalled) in ${seconds.toFixed(1)} s, concurrency ${concurrency}\n` +
        `      answers: ${histogram}\n` +
        `      Node-RED RSS: before ${mb(rssBefore)} MB, peak ${mb(rssPeak)} MB, after ${mb(rssAfter)} MB (growth ${mb(rssAfter - rssBefore)} MB)\n`,
    );

    assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
    assert.deepEqual(stalledAnswers.map((a) => a.status), stalled.map(() => 408), "stalled bodies are answered 408 by the body deadline");
    assert.ok((byKind.get("5mb") ?? 0) > 0 && [...byKind.keys()].some((k) => k.startsWith("slow-")) && [...byKind.keys()].filter((k) => k.startsWith("frame-")).length >= 8, `every class was sent: ${[...byKind.keys()].join(",")}`);

    const log = stack.nodeRed.log.slice(logStart);
    const traces = log.filter((l) => /^\s+at .+:\d+:\d+\)?$/.test(l) || looksLikeStackTrace(l));
    assert.deepEqual(traces.slice(0, 10), [], "no stack trace in Node-RED's log");
    const warnOrError = log.filter((l) => /\[(warn|error)\]/.test(l));
    process.stdout.write(`      Node-RED log during the run: ${log.length} lines, ${warnOrError.length} warn/error\n${warnOrError.slice(0, 8).map((l) => `        ${l.slice(0, 150)}\n`).join("")}`);
    assert.ok(warnOrError.length <= 50, `refused requests flooded the log:\n${warnOrError.slice(0, 10).join("\n")}`);

    assert.deepEqual(await ledger(), before, "no state changed: no SMS, call, Verify, e-mail, Acumatica write or audit record");
    assert.ok(rssPeak - rssBefore < 256 * 1048576, `memory bounded (peak growth ${mb(rssPeak - rssBefore)} MB)`);
  });

  it("afterwards a valid push still texts its approver and a signed status callback still reaches the audit trail", async function () {
    const sms0 = stack.twilio.messages.length;
    // The push endpoint takes JSON only: the right secret with another media type is 415, and nothing is sent.
    const notJson = await fetch(`${stack.nodeRed.url}/mlc/acumatica/bills`, { method: "POST", headers: { "Content-Type": "text/plain", "X-Notify-Secret": stack.pushSecret }, body: "Id=1" });
    assert.equal(notJson.status, 415);
    assert.equal(await notJson.text(), "Unsupported media type");
    const bill = stack.acumatica.get("Bill", ["Bill", "000123"]) as Record<string, unknown>;
    assert.deepEqual(await stack.pushBills([billRow(bill, "Contoso Freight LLC", "EP00000001")], 1), [200]);
    const m = await waitFor(() => stack.twilio.messages[sms0], 15000, "SMS after the fuzz");
    assert.equal(m.to, "+14155550132");
    const results = await stack.twilio.deliver(m.sid, "delivered");
    assert.deepEqual(results.map((r) => r.status), [200, 200]);
    const job = new URL(String(m.statusCallback)).searchParams.get("j") ?? "";
    const rec = await waitFor(async () => (await auditOf(stack.nodeRed.url, job)).find((r) => r.status === "delivered"), 15000, "delivered in audit");
    assert.equal(rec.sid, m.sid);
    // And a signed JSON callback (bodySHA256) that is not an object of strings is still refused without harm.
    const raw = "null";
    const url = `${stack.env.PUBLIC_BASE_URL}/mlc/twilio/status?bodySHA256=${createHash("sha256").update(raw).digest("hex")}`;
    const bad = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", "X-Twilio-Signature": signTwilioRequest(stack.twilio.defaultAccount.authToken, url, {}) }, body: raw });
    assert.equal(bad.status, 400);
  });

  it("afterwards a signed Exact webhook is taken (record fetched) and a BC notification texts the approver", async function () {
    const sim = exact();
    const reads = sim.apiCalls("SalesInvoices").length;
    const id = String(sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: 25009999, AmountDC: 10, Currency: "EUR", Status: 20 }).InvoiceID);
    assert.deepEqual(await sim.notify("SalesInvoices", "Create", id), [200]);
    await waitFor(() => sim.apiCalls("SalesInvoices").length > reads, 20000, "the Exact record fetched");
    const sms0 = stack.twilio.messages.length;
    bc().upsert("purchaseInvoices", { number: "PI-FUZZ", status: "Open", vendorName: "After Fuzz", totalAmountIncludingTax: 5000, currencyCode: "USD", dueDate: "2030-01-01" });
    assert.deepEqual((await bc().flush()).map((d) => d.status), [200]);
    const m = await waitFor(() => stack.twilio.messages.slice(sms0).find((x) => x.body.includes("PI-FUZZ")), 20000, "the BC approval SMS");
    assert.equal(m.to, "+14155550199");
    assert.ok([...bc().subs.values()].some((x) => x.entitySet === "purchaseInvoices"), "the subscription survived the fuzz");
  });
});
