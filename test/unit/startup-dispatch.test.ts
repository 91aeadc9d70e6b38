/**
 * Node-RED answers requests while it starts, before any flow node exists (node-red-runtime.md §3.3: the HTTP server
 * listens before flows start), and a push sender must then get 503 + Retry-After, not Express's 404 (Business Central
 * deletes its subscription on a 404, Intacct does not retry it). So each node set with push endpoints mounts the
 * package dispatcher when Node-RED loads it (§6.1 "at module load"), not when its first node is created: loaded alone
 * (the Palette Manager enables node sets one by one), with no node created yet, its push path answers 503.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const express = require("express") as () => ExpressApp;

interface ExpressApp {
  (req: http.IncomingMessage, res: http.ServerResponse): void;
  use(...args: unknown[]): void;
}

type NodeSet = (RED: unknown) => void;

/** A Node-RED runtime as far as loading a node set goes: registerType, the two HTTP apps, settings, events, log. */
function fakeRed(node: ExpressApp): { RED: unknown; types: string[] } {
  const types: string[] = [];
  const noop = (): void => undefined;
  const RED = {
    nodes: { registerType: (t: string) => types.push(t), createNode: noop, getNode: () => null, getCredentials: () => ({}) },
    httpNode: node,
    httpAdmin: express(),
    settings: {},
    events: new EventEmitter(),
    log: { warn: noop, info: noop, error: noop, debug: noop, trace: noop, log: noop },
    util: {},
    _: (k: string) => k,
  };
  return { RED, types };
}

async function post(port: number, path: string): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method: "POST", headers: { "Content-Type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] as string | undefined }));
    });
    req.on("error", reject);
    req.end("{}");
  });
}

const SETS: [string, string, string][] = [
  ["acumatica", "mlc-acumatica-trigger", "/mlc/acumatica/bills"],
  ["bc", "mlc-bc-trigger", "/mlc/bc/purchase-invoices"],
  ["exact", "mlc-exact-trigger", "/mlc/exact/invoices"],
];

describe("node sets with push endpoints answer 503 while Node-RED starts (dispatcher mounted at load)", () => {
  for (const [set, type, path] of SETS) {
    it(`${set}: loaded alone, no node created yet, ${path} → 503 with Retry-After`, async () => {
      const node = express();
      const { RED, types } = fakeRed(node);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require(`../../nodes/${set}`) as NodeSet)(RED);
      assert.ok(types.includes(type), `${type} registered`);
      const server = http.createServer(node);
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      try {
        const r = await post((server.address() as AddressInfo).port, path);
        assert.equal(r.status, 503, "the sender retries instead of treating the path as gone");
        assert.ok(r.retryAfter, "Retry-After set");
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
    });
  }
});
