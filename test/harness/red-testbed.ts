/**
 * A real Node-RED runtime for node tests (node-red-node-test-helper), with the HTTP layout of
 * node-red/red.js: one root express app with RED.httpAdmin then RED.httpNode mounted at "/", so webhooks
 * from the simulators pass the admin API's body parsers exactly as in production and reach the package
 * dispatcher at <url>/mlc/…
 *
 * Usage: one Testbed per test file and `bed.hooks({ sims })` inside the file's `describe` (it calls `start()`
 * before all tests: helper init with this file's settings, restored by `stop()` after all; `unload()` after
 * each), then `bed.load(flow)` in each test. `start`/`stop`/`unload` may also be called from hooks of one's own.
 */
import http from "node:http";
import helper, { TestFlowNode } from "node-red-node-test-helper";

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, next: (err?: unknown) => void) => void;
interface ExpressApp extends Handler {
  use(path: string, h: unknown): void;
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;
/** Node credentials by node id, as the runtime's credential store holds them. */
export type Credentials = Record<string, Record<string, string>>;

/**
 * How the helper's server reaches the runtime's HTTP apps.
 * "red": admin then node app on one root app, as node-red/red.js does (default httpAdminRoot = httpNodeRoot = "/").
 * "nodeOnly": the node app alone serves the server (no admin body parsers in front of it).
 */
export type Layout = "red" | "nodeOnly";

/** A simulator the tests run against (test/sims): started before the runtime, reset before each test. */
export interface SimServer {
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  reset(): void;
}

/** What `hooks` does besides the runtime's own start/load/unload. */
export interface TestbedHooks {
  /** Simulators: started (in order) before the runtime, reset before each test, stopped after it. */
  sims?: SimServer[];
  /** Run before each test, after the simulators are reset (e.g. clearing per-test records). */
  beforeEach?: () => void;
  /** Run after each test, before the flows are unloaded (e.g. "no secret in any msg" checks on `received`). */
  afterEach?: () => void | Promise<void>;
}

export interface TestbedOptions {
  /** Initial HTTP layout (default "red"); may be changed through `layout` before a `load`. */
  layout?: Layout;
  /** Credentials used by `load`/`redeploy` when none are passed (default none). */
  credentials?: Credentials;
  /** Where the "red" layout mounts RED.httpNode (default "/"); give the same value as settings.httpNodeRoot. */
  httpNodeRoot?: string;
  /** Load the configured context stores at every runtime init, as Node-RED's start does (see {@link Testbed.loadContextStores}). */
  loadContextStores?: boolean;
}

/** The helper's context module (node-red's @node-red/runtime context/index.js). */
interface HelperContext {
  init(settings: unknown): void;
  load(): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const express = require("express") as () => ExpressApp;

export class Testbed {
  private root?: ExpressApp;
  private saved?: Record<string, unknown>;
  /** Base URL of the helper's server, "http://127.0.0.1:<port>" (after `start`). */
  url = "";
  /** HTTP layout applied by the next `load` (the node set is registered after the apps are mounted). */
  layout: Layout;
  /** Every message each helper node received, by node id (emptied by `unload`). */
  readonly received: Record<string, Msg[]> = {};
  /**
   * Load the configured context stores (settings.contextStorage) after every init of the runtime's context module,
   * from `start` to `stop`. node-red-node-test-helper initialises that module but never loads the stores, which
   * Node-RED does at start (context/index.js `load`); without it node context lives in a plain memory store that a
   * redeploy deletes, so no redeploy could stand for a restart over a store that kept its data. Set before `start`.
   */
  loadContextStores: boolean;
  private readonly credentials: Credentials;
  private readonly httpNodeRoot: string;
  private restoreContextInit?: () => void;

  /**
   * @param nodeSets compiled node-set modules, e.g. require("../../nodes/twilio")
   * @param settings runtime settings for this file (e.g. contextStorage), merged into RED.settings
   */
  constructor(
    private readonly nodeSets: ((RED: unknown) => void)[],
    private readonly settings: Record<string, unknown> = {},
    options: TestbedOptions = {},
  ) {
    this.layout = options.layout ?? "red";
    this.credentials = options.credentials ?? {};
    this.httpNodeRoot = options.httpNodeRoot ?? "/";
    this.loadContextStores = options.loadContextStores ?? false;
  }

  /** Call from mocha `before`: init the helper (settings restored in `stop`), start the HTTP server. */
  async start(): Promise<void> {
    this.saved = helper.settings();
    helper.init(require.resolve("node-red"), this.settings);
    if (this.loadContextStores) {
      const ctx = (helper as unknown as { _context: HelperContext })._context;
      const init = ctx.init;
      ctx.init = (settings: unknown): void => {
        init.call(ctx, settings);
        ctx.load().catch((err: unknown) => console.error("context load", err));
      };
      this.restoreContextInit = () => {
        ctx.init = init;
      };
    }
    await helper.startServer();
    this.url = helper.url();
    const app = (helper as unknown as { _app: { use(h: Handler): void } })._app;
    app.use((req, res, next) => (this.root ? this.root(req, res, next) : next()));
  }

  /** Call from mocha `after`: stop the server and restore the helper's previous settings. */
  async stop(): Promise<void> {
    this.restoreContextInit?.();
    this.restoreContextInit = undefined;
    await helper.stopServer();
    if (this.saved) helper.settings(this.saved);
  }

  /**
   * Register the mocha hooks of the enclosing `describe`: before all, start `sims` then the runtime (`start`);
   * before each, reset `sims` then run `beforeEach`; after each, run `afterEach` then `unload` (also when the
   * check fails); after all, `stop` the runtime then the `sims`.
   */
  hooks(opts: TestbedHooks = {}): void {
    const sims = opts.sims ?? [];
    before(async () => {
      for (const s of sims) await s.start();
      await this.start();
    });
    after(async () => {
      await this.stop();
      for (const s of [...sims].reverse()) await s.stop();
    });
    beforeEach(() => {
      for (const s of sims) s.reset();
      opts.beforeEach?.();
    });
    afterEach(async () => {
      try {
        await opts.afterEach?.();
      } finally {
        await this.unload();
      }
    });
  }

  /** Deploy `flow`; every node of type "helper" collects into `received[id]` (emptied first). */
  async load(flow: TestFlowNode[], credentials: Credentials = this.credentials): Promise<void> {
    const mount = (RED: never): void => {
      const red = RED as { httpAdmin: unknown; httpNode: ExpressApp };
      if (this.layout === "red") {
        const app = express();
        app.use("/", red.httpAdmin);
        app.use(this.httpNodeRoot, red.httpNode);
        this.root = app;
      } else {
        this.root = red.httpNode;
      }
      for (const s of this.nodeSets) s(RED);
    };
    await helper.load(mount, flow, credentials);
    for (const n of flow.filter((x) => x.type === "helper")) this.received[n.id] = [];
    this.collect(flow);
  }

  /**
   * Full redeploy of the running runtime (helper.setFlows "full": every node restarted). Helper nodes of the
   * new flow collect into `received[id]`, after what they received before the redeploy.
   */
  async redeploy(flow: TestFlowNode[], credentials: Credentials = this.credentials): Promise<void> {
    await helper.setFlows(flow, "full", credentials);
    this.collect(flow);
  }

  /** Stop the flows, detach the HTTP apps and empty `received`. */
  async unload(): Promise<void> {
    await helper.unload();
    this.root = undefined;
    for (const k of Object.keys(this.received)) delete this.received[k];
  }

  node(id: string): ReturnType<typeof helper.getNode> {
    return helper.getNode(id);
  }

  /** Everything the helper nodes received, as one JSON text (for "no secret in any msg" checks). */
  emitted(): string {
    return JSON.stringify(Object.values(this.received).flat());
  }

  /** The runtime's log calls since the last `load` (the helper's spy on RED.log.log), each with its arguments. */
  logCalls(): { args: unknown[] }[] {
    return (helper as unknown as { log(): { getCalls(): { args: unknown[] }[] } }).log().getCalls();
  }

  private collect(flow: TestFlowNode[]): void {
    for (const n of flow.filter((x) => x.type === "helper")) {
      helper.getNode(n.id).on("input", (msg) => (this.received[n.id] ??= []).push(msg as Msg));
    }
  }
}

/**
 * Wait until `cond` holds (polling every 10 ms); throws naming `what` after `timeoutMs`. `what` may be a
 * function, evaluated at the timeout (to report the state reached).
 */
export async function until(cond: () => boolean, what: string | (() => string), timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Let anything that would (wrongly) still be emitted arrive (`ms` milliseconds). */
export const settle = (ms = 150): Promise<void> => new Promise((r) => setTimeout(r, ms));
