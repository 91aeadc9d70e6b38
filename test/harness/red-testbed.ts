/**
 * A real Node-RED runtime for node tests (node-red-node-test-helper), with the HTTP layout of
 * node-red/red.js: one root express app with RED.httpAdmin then RED.httpNode mounted at "/", so webhooks
 * from the simulators pass the admin API's body parsers exactly as in production and reach the package
 * dispatcher at <url>/mlc/…
 */
import http from "node:http";
import helper, { TestFlowNode } from "node-red-node-test-helper";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, next: (err?: unknown) => void) => void;
interface ExpressApp extends Handler {
  use(path: string, h: unknown): void;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const express = require("express") as () => ExpressApp;

export class Testbed {
  private root?: ExpressApp;
  private saved?: Record<string, unknown>;
  url = "";
  /** Every message each helper node received, by node id. */
  readonly received: Record<string, Msg[]> = {};

  /** @param nodeSets compiled node-set modules, e.g. require("../../nodes/twilio") */
  constructor(private readonly nodeSets: ((RED: unknown) => void)[], private readonly settings: Record<string, unknown> = {}) {}

  /** Call from mocha `before`: init the helper (settings restored in `stop`), start the HTTP server. */
  async start(): Promise<void> {
    this.saved = helper.settings();
    helper.init(require.resolve("node-red"), this.settings);
    await helper.startServer();
    this.url = helper.url();
    const app = (helper as unknown as { _app: { use(h: Handler): void } })._app;
    app.use((req, res, next) => (this.root ? this.root(req, res, next) : next()));
  }

  async stop(): Promise<void> {
    await helper.stopServer();
    if (this.saved) helper.settings(this.saved);
  }

  /** Deploy `flow`; every node of type "helper" collects into `received[id]`. */
  async load(flow: TestFlowNode[], credentials: Record<string, Record<string, string>> = {}): Promise<void> {
    const sets = this.nodeSets;
    const mount = (RED: never): void => {
      const red = RED as { httpAdmin: unknown; httpNode: unknown };
      const app = express();
      app.use("/", red.httpAdmin);
      app.use("/", red.httpNode);
      this.root = app;
      for (const s of sets) s(RED);
    };
    await helper.load(mount, flow, credentials);
    for (const n of flow.filter((x) => x.type === "helper")) {
      const list: Msg[] = (this.received[n.id] = []);
      helper.getNode(n.id).on("input", (msg) => list.push(msg as Msg));
    }
  }

  async unload(): Promise<void> {
    await helper.unload();
  }

  node(id: string): ReturnType<typeof helper.getNode> {
    return helper.getNode(id);
  }
}

/** Wait until `cond` holds (polling every 10 ms); throws naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Let anything that would (wrongly) still be emitted arrive. */
export const settle = (ms = 150): Promise<void> => new Promise((r) => setTimeout(r, ms));
