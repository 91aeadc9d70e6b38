/**
 * nodes/shared/dispatcher.ts on real Express apps laid out as node-red/red.js lays them out (a root app with an
 * admin app that has body parsers, then the node app at httpNodeRoot), on a real HTTP server, driven over raw
 * sockets so that targets go out exactly as written.
 *
 * - path resolution agrees with Express's own routing for every target (case, `//`, absolute-form, roots
 *   "/", "/mlc-hooks", "/hooks/mlc");
 * - bad escapes → 400; unknown paths → 503 before the flows started, 404 after; a path whose node is restarting → 503;
 * - method, content coding, media type, charset → 405 / 415 / 400; bodies capped (413) and timed (408);
 * - errors raised for a claimed request before the dispatcher never reach Express's default error handler.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { decodeSubPath, InboundRequest, mountDispatcher, rateLimitedLog, registerEndpoint, resolveTarget } from "../../nodes/shared/dispatcher";
import type { HttpApp } from "../../nodes/shared/types";
import { head, looksLikeStackTrace, rawRequest } from "../harness/raw-http";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const express = require("express") as () => ExpressApp;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const bodyParser = require("body-parser") as { json(o?: unknown): unknown; urlencoded(o?: unknown): unknown };

interface ExpressApp extends HttpApp {
  (req: http.IncomingMessage, res: http.ServerResponse): void;
  use(...args: unknown[]): void;
}

interface Rig {
  port: number;
  node: ExpressApp;
  events: EventEmitter;
  seen: InboundRequest[];
  warnings: string[];
  close(): Promise<void>;
}

/** root → admin (json + urlencoded parsers, like Node-RED's admin app) → node app at `nodeRoot`. */
async function rig(nodeRoot: string, adminExtra?: (admin: ExpressApp) => void): Promise<Rig> {
  const root = express();
  const admin = express();
  admin.use(bodyParser.json());
  admin.use(bodyParser.urlencoded({ extended: true }));
  adminExtra?.(admin);
  const node = express();
  root.use("/", admin);
  root.use(nodeRoot, node);
  const events = new EventEmitter();
  const warnings: string[] = [];
  mountDispatcher(node, { events, log: { warn: (m) => warnings.push(String(m)) } });
  const server = http.createServer(root);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    node,
    events,
    seen: [],
    warnings,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function echo(r: Rig): (req: InboundRequest) => Promise<{ status: number; body: string }> {
  return async (req) => {
    r.seen.push(req);
    return { status: 200, body: `ok ${req.path} ${req.body.length}` };
  };
}

describe("shared/dispatcher: resolution against httpNodeRoot, as Express routes", () => {
  for (const nodeRoot of ["/", "/mlc-hooks/", "/hooks/mlc/"]) {
    it(`agrees with Express's routing for every target (httpNodeRoot ${nodeRoot})`, async () => {
      // A probe app at the same mount: what Express hands to `use("/mlc")`, versus resolveTarget.
      const root = express();
      const node = express();
      root.use(nodeRoot, node);
      const reached: string[] = [];
      node.use("/mlc", (req: http.IncomingMessage & { originalUrl: string }, res: http.ServerResponse) => {
        reached.push(req.originalUrl);
        res.end("probe");
      });
      const server = http.createServer(root);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as AddressInfo).port;
      const base = nodeRoot.replace(/\/$/, "");
      const targets = [
        `${base}/mlc/twilio/events`,
        `${base}/MLC/twilio/events`,
        `${base}/mlc//twilio/events/inbound`,
        `${base}/mlc/`,
        `${base}/mlc`,
        `${base}/mlcx/a`,
        `${base}/mlc.x`,
        `${base}/mlc/%zz`,
        `${base}/mlc/a?x=1&y=%2F`,
        `http://evil.example${base}/mlc/acumatica/bills`,
        `//mlc/a`,
        `/mlc-hooks/mlc/a`,
        `/hooks/mlc/mlc/a`,
        `${base.toUpperCase()}/mlc/a`,
      ];
      try {
        for (const t of targets) {
          reached.length = 0;
          await rawRequest(port, head("GET", t));
          const expressRoutes = reached.length === 1;
          const ours = resolveTarget(t, base);
          assert.equal(!!ours, expressRoutes, `${t}: Express ${expressRoutes ? "routes" : "does not route"} it to /mlc`);
        }
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }

  it("keeps the path and query as received below httpNodeRoot (the URL Twilio signed)", () => {
    assert.deepEqual(resolveTarget("/mlc-hooks/mlc/twilio/events?j=1", "/mlc-hooks/"), { sub: "/twilio/events", originalPath: "/mlc/twilio/events?j=1", rawQuery: "j=1" });
    assert.deepEqual(resolveTarget("/hooks/mlc/mlc/twilio/events?j=1", "/hooks/mlc"), { sub: "/twilio/events", originalPath: "/mlc/twilio/events?j=1", rawQuery: "j=1" });
    assert.deepEqual(resolveTarget("http://evil.example/mlc/acumatica/bills", "/"), { sub: "/acumatica/bills", originalPath: "/mlc/acumatica/bills", rawQuery: "" });
    assert.equal(resolveTarget("/mlc/twilio/events", "/mlc-hooks/"), undefined);
  });

  it("a malformed escape does not decode (%, %zz, truncated and overlong UTF-8)", () => {
    for (const bad of ["/%", "/%zz", "/%e0%a4%a", "/%C0%AE", "/a%"]) assert.equal(decodeSubPath(bad), undefined, bad);
    assert.equal(decodeSubPath("/twilio/events/"), "/twilio/events");
    assert.equal(decodeSubPath("/twilio/ev%65nts"), "/twilio/events");
  });

  it("rate-limited log: one line per interval and key, with the count suppressed", () => {
    const lines: string[] = [];
    const log = rateLimitedLog((t) => lines.push(t), 60_000);
    for (let i = 0; i < 500; i++) log("forged", "refused");
    log("other", "x");
    assert.deepEqual(lines, ["refused", "x"]);
  });
});

describe("shared/dispatcher: answers on a real server (red.js layout)", () => {
  let r: Rig;
  afterEach(async () => r?.close());

  it("bad escapes get 400 with a fixed text, not 500", async () => {
    r = await rig("/");
    registerEndpoint(r.node, "/a", "n1", echo(r));
    r.events.emit("flows:started");
    for (const t of ["/mlc/%", "/mlc/%zz", "/mlc/twilio/%e0%a4%a", "/mlc/%C0%AE%C0%AE/x"]) {
      const res = await rawRequest(r.port, head("POST", t, { "Content-Type": "application/json" }, "{bad"), "{bad");
      assert.equal(res.status, 400, t);
      assert.equal(res.body, "Bad request", t);
    }
  });

  it("unknown paths: 503 while the flows start, 404 once they have started; a restarting node's path 503 until started again", async () => {
    r = await rig("/");
    assert.equal((await rawRequest(r.port, head("GET", "/mlc/nowhere"))).status, 503, "before flows:started");
    const release = registerEndpoint(r.node, "/a", "n1", echo(r));
    r.events.emit("flows:started");
    const unknown = await rawRequest(r.port, head("GET", "/mlc/nowhere"));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body, "Not found");
    release(); // the node closes for a deploy
    const during = await rawRequest(r.port, head("POST", "/mlc/a", { "Content-Type": "application/json" }, "{}"), "{}");
    assert.equal(during.status, 503);
    assert.equal(during.headers["retry-after"], "5");
    assert.equal((await rawRequest(r.port, head("GET", "/mlc/nowhere"))).status, 404, "other unknown paths stay 404 during the deploy");
    r.events.emit("flows:started"); // deploy done, the node was removed
    assert.equal((await rawRequest(r.port, head("POST", "/mlc/a", { "Content-Type": "application/json" }, "{}"), "{}")).status, 404);
  });

  it("/MLC, /mlc// and absolute-form targets are claimed and answered (no hang, no admin body parser)", async () => {
    r = await rig("/");
    registerEndpoint(r.node, "/twilio/events/inbound", "n1", echo(r));
    registerEndpoint(r.node, "/twilio/events/sendgrid", "n1", echo(r));
    registerEndpoint(r.node, "/acumatica/bills", "n1", echo(r));
    r.events.emit("flows:started");
    const form = "From=%2B14155550100&Body=STOP";
    const a = await rawRequest(r.port, head("POST", "/mlc//twilio/events/inbound", { "Content-Type": "application/x-www-form-urlencoded" }, form), form, { timeoutMs: 5000 });
    assert.equal(a.status, 200);
    const b = await rawRequest(r.port, head("POST", "/MLC/twilio/events/sendgrid", { "Content-Type": "application/json" }, "[]"), "[]", { timeoutMs: 5000 });
    assert.equal(b.status, 200);
    const c = await rawRequest(r.port, head("POST", "http://evil.example/mlc/acumatica/bills", { "Content-Type": "application/json" }, "{}"), "{}", { timeoutMs: 5000 });
    assert.equal(c.status, 200, "absolute-form resolves to its path, not 503 forever");
    assert.deepEqual(r.seen.map((s) => [s.path, s.originalPath, s.body.toString()]), [
      ["/twilio/events/inbound", "/mlc//twilio/events/inbound", form],
      ["/twilio/events/sendgrid", "/MLC/twilio/events/sendgrid", "[]"],
      ["/acumatica/bills", "/mlc/acumatica/bills", "{}"],
    ]);
  });

  it("bodies the admin parsers would choke on never reach Express's default error handler", async () => {
    r = await rig("/");
    registerEndpoint(r.node, "/a", "n1", echo(r));
    r.events.emit("flows:started");
    const bad: [string, Record<string, string>, string][] = [
      ["/mlc/nowhere", { "Content-Type": "application/json" }, '{"a":'],
      ["/MLC/nowhere", { "Content-Type": "application/json; charset=bogus" }, "{}"],
      ["/mlc//nowhere", { "Content-Type": "application/json", "Content-Encoding": "br" }, "\x0b\x02\x80"],
      ["/mlc/%zz", { "Content-Type": "application/x-www-form-urlencoded" }, Array.from({ length: 5000 }, (_, i) => `k${i}=v`).join("&")],
      ["//mlc/a", { "Content-Type": "application/json" }, "{nope"],
      ["/mlc/a", { "Content-Type": "application/json", "Content-Encoding": "br" }, "\x0b\x02\x80"],
      ["/mlc/a", { "Content-Type": "application/json; charset=bogus" }, "{}"],
      ["/mlc/a", { "Content-Type": "text/plain;;" }, "x"],
    ];
    for (const [t, h, body] of bad) {
      const res = await rawRequest(r.port, head("POST", t, h, body), body, { timeoutMs: 5000 });
      assert.ok(res.status >= 400 && res.status < 500, `${t} ${JSON.stringify(h)}: ${res.status}`);
      assert.ok(!looksLikeStackTrace(res.body), `${t}: stack trace in ${res.body.slice(0, 200)}`);
      assert.ok(res.body.length < 200, `${t}: short fixed body`);
    }
    assert.equal(r.seen.length, 0);
  });

  it("an error raised for a claimed request before the dispatcher gets a fixed answer from the package's error handler", async () => {
    r = await rig("/", (admin) =>
      admin.use((req: http.IncomingMessage, _res: http.ServerResponse, next: (e?: unknown) => void) => next(req.url?.includes("boom") ? Object.assign(new Error("boom at /x.js:1:2"), { status: 400 }) : undefined)),
    );
    r.events.emit("flows:started");
    const res = await rawRequest(r.port, head("GET", "/mlc/boom"));
    assert.equal(res.status, 400);
    assert.equal(res.body, "Bad request");
  });

  it("methods, content types and charset per endpoint: 405, 415 (JSON-only push), 400 for an unparsable Content-Type", async () => {
    r = await rig("/");
    registerEndpoint(r.node, "/push", "n1", echo(r), { methods: ["POST"], contentTypes: ["application/json"] });
    r.events.emit("flows:started");
    const get = await rawRequest(r.port, head("GET", "/mlc/push"));
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, "POST");
    for (const [ct, want] of [["text/plain", 415], ["application/x-www-form-urlencoded", 415], ["application/json; charset=latin1", 415], ["application/json;;", 400], ["application/json; charset=UTF-8", 200]] as const) {
      const res = await rawRequest(r.port, head("POST", "/mlc/push", { "Content-Type": ct }, "{}"), "{}");
      assert.equal(res.status, want, ct);
    }
    const none = await rawRequest(r.port, head("POST", "/mlc/push", {}, "{}"), "{}");
    assert.equal(none.status, 415, "a body without Content-Type");
    assert.equal(r.seen.length, 1);
  });

  it("bodies over the cap get 413 whether the path is served or not (declared and streamed); a stalled body gets 408 and its socket closed", async () => {
    r = await rig("/");
    registerEndpoint(r.node, "/a", "n1", echo(r), { bodyTimeoutMs: 1000 });
    r.events.emit("flows:started");
    const big = Buffer.alloc(5 * 1024 * 1024, 0x61);
    for (const t of ["/mlc/a", "/mlc/nowhere"]) {
      const declared = await rawRequest(r.port, head("POST", t, { "Content-Type": "application/json" }, big), big);
      assert.equal(declared.status, 413, t);
    }
    const chunked = `${(300 * 1024).toString(16)}\r\n${"a".repeat(300 * 1024)}\r\n0\r\n\r\n`;
    const streamed = await rawRequest(r.port, head("POST", "/mlc/a", { "Content-Type": "application/json", "Transfer-Encoding": "chunked" }), chunked);
    assert.equal(streamed.status, 413);
    const body = '{"a":"' + "x".repeat(1000) + '"}';
    const stalled = await rawRequest(r.port, head("POST", "/mlc/a", { "Content-Type": "application/json" }, body), body, { stallAfterBytes: 10, timeoutMs: 10000 });
    assert.equal(stalled.status, 408);
    assert.equal(stalled.headers.connection, "close");
    const slow = await rawRequest(r.port, head("POST", "/mlc/a", { "Content-Type": "application/json" }, '{"a":1}'), '{"a":1}', { slowChunkBytes: 2, slowDelayMs: 20 });
    assert.equal(slow.status, 200, "a slow body that completes in time is served");
    assert.equal(r.seen.length, 1);
  });

  it("a handler that throws gets 503 with Retry-After and a fixed text (never 500), and one (rate-limited) log line", async () => {
    r = await rig("/");
    registerEndpoint(r.node, "/a", "n1", async () => {
      throw new Error("kaput");
    });
    r.events.emit("flows:started");
    for (let i = 0; i < 5; i++) {
      const res = await rawRequest(r.port, head("POST", "/mlc/a", { "Content-Type": "application/json" }, "{}"), "{}");
      assert.equal(res.status, 503);
      assert.equal(res.body, "Temporarily unavailable, retry later");
      assert.equal(res.headers["retry-after"], "5");
    }
    assert.equal(r.warnings.length, 1);
  });
});
