/**
 * Minimal typings for node-red-node-test-helper (the package ships none). Covers what the node tests
 * use; see node_modules/node-red-node-test-helper/README.md for the full API.
 */
declare module "node-red-node-test-helper" {
  /** A node of a test flow (the flow JSON the editor would deploy). */
  export interface TestFlowNode {
    id: string;
    type: string;
    z?: string;
    name?: string;
    wires?: string[][];
    [key: string]: unknown;
  }

  /** One recorded call of a sinon spy installed by the helper on Node.prototype. */
  export interface SpyCall {
    thisValue: unknown;
    args: unknown[];
  }

  /** The sinon spy the helper wraps around Node.prototype.{status,error,warn,log,send}. */
  export interface SpyLike {
    getCalls(): SpyCall[];
  }

  /** A runtime node as returned by {@link NodeTestHelper.getNode}. */
  export interface TestNode {
    id: string;
    type: string;
    on(event: "input", fn: (msg: Record<string, unknown>) => void): void;
    on(event: string, fn: (...args: unknown[]) => void): void;
    receive(msg?: Record<string, unknown>): void;
    status: SpyLike;
    error: SpyLike;
    warn: SpyLike;
    context(): unknown;
  }

  /** A Node-RED node-set module: a function of RED. */
  export type NodeModule = (RED: never) => unknown;

  export interface NodeTestHelper {
    /** Point the helper at a Node-RED runtime; `userSettings` are merged into RED.settings. */
    init(runtimePath?: string, userSettings?: Record<string, unknown>): void;
    /** Replace the user settings merged into RED.settings. */
    settings(userSettings?: Record<string, unknown>): Record<string, unknown>;
    /** Register the node set(s) and start `testFlow`. */
    load(testNode: NodeModule | NodeModule[], testFlow: TestFlowNode[], testCredentials?: Record<string, unknown>): Promise<void>;
    /** Stop flows and clear the registry. */
    unload(): Promise<void>;
    getNode(id: string): TestNode;
    clearFlows(): Promise<void>;
    setFlows(testFlow: TestFlowNode[], type?: "full" | "flows" | "nodes", testCredentials?: Record<string, unknown>): Promise<void>;
    /** Start the HTTP server used by nodes with endpoints (resolves, or calls `done`, once listening). */
    startServer(done?: (err?: Error) => void): Promise<void>;
    /** Stop that server. */
    stopServer(done?: (err?: Error) => void): Promise<void>;
    /** Base URL of that server, "http://127.0.0.1:<port>" (after startServer). */
    url(): string;
  }

  const helper: NodeTestHelper;
  export = helper;
}
