/**
 * The small part of the Node-RED runtime API the adapters use, typed here so nodes/lib/ stays free of
 * Node-RED and the adapters stay strict. (Node-RED: https://nodered.org/docs/creating-nodes/node-js)
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export interface NodeMessage {
  _msgid?: string;
  topic?: string;
  payload?: unknown;
  [key: string]: unknown;
}

export type StatusFill = "red" | "green" | "yellow" | "blue" | "grey";
export interface NodeStatus {
  fill?: StatusFill;
  shape?: "ring" | "dot";
  text?: string;
}

export type ContextCallback = (err: Error | null | undefined, value?: unknown) => void;
export interface ContextScope {
  get(key: string, store: string | undefined, cb: ContextCallback): void;
  set(key: string, value: unknown, store: string | undefined, cb: (err?: Error | null) => void): void;
  keys(store: string | undefined, cb: (err: Error | null | undefined, keys?: string[]) => void): void;
}
export interface NodeContext extends ContextScope {
  flow: ContextScope;
  global: ContextScope;
}

export type SendFn = (msg: NodeMessage | (NodeMessage | NodeMessage[] | null)[] | null) => void;
export type DoneFn = (err?: Error) => void;

export interface RedNode {
  id: string;
  type: string;
  name?: string;
  z?: string;
  credentials: Record<string, string | undefined>;
  on(event: "input", fn: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): void;
  on(event: "close", fn: (removed: boolean, done: () => void) => void): void;
  send(msg: NodeMessage | (NodeMessage | NodeMessage[] | null)[] | null): void;
  status(status: NodeStatus): void;
  error(err: unknown, msg?: NodeMessage): void;
  warn(message: unknown): void;
  log(message: unknown): void;
  debug(message: unknown): void;
  context(): NodeContext;
  receive(msg?: NodeMessage): void;
}

/** Express-like app (RED.httpNode / RED.httpAdmin); only what we call. */
export interface HttpApp {
  use(path: string, handler: (req: IncomingMessage & { url: string; originalUrl?: string }, res: ServerResponse, next: (err?: unknown) => void) => void): void;
  get(path: string, ...handlers: unknown[]): void;
  post(path: string, ...handlers: unknown[]): void;
}

export interface RedAPI {
  nodes: {
    createNode(node: unknown, config: unknown): void;
    registerType(type: string, ctor: unknown, opts?: { credentials?: Record<string, { type: "text" | "password" }>; settings?: Record<string, unknown> }): void;
    getNode(id: string): unknown;
    getCredentials(id: string): Record<string, string | undefined> | undefined;
  };
  httpNode: HttpApp;
  httpAdmin: HttpApp;
  settings: Record<string, unknown> & { contextStorage?: Record<string, unknown>; httpNodeRoot?: string };
  util: {
    evaluateNodeProperty(value: unknown, type: string, node: RedNode, msg: NodeMessage | undefined, cb: (err: Error | null, result: unknown) => void): void;
    getMessageProperty(msg: NodeMessage, prop: string): unknown;
    setMessageProperty(msg: NodeMessage, prop: string, value: unknown, createMissing?: boolean): boolean;
    cloneMessage<T>(msg: T): T;
  };
  auth?: { needsPermission(permission: string): unknown };
  log: { info(m: unknown): void; warn(m: unknown): void; error(m: unknown): void; debug(m: unknown): void };
  _(key: string, subs?: Record<string, unknown>): string;
}
