/**
 * One inbound-HTTP dispatcher for every webhook endpoint of the package (Twilio status callbacks,
 * Acumatica push notifications, …), mounted once per Node-RED HTTP app under `/mlc/` and kept across
 * deploys.
 *
 * Why: Node-RED removes and re-adds HTTP-in routes on every deploy, and requests in that window get 404,
 * which some senders treat as "unsubscribe". Here the route never goes away: a path under `/mlc/` whose
 * node is (re)starting answers 503 with Retry-After so the sender retries, never 404.
 * Bodies are read raw (signatures need the exact bytes) with a hard size cap (413); error answers are
 * small fixed texts with no stack trace.
 *
 * Node-RED mounts RED.httpAdmin before RED.httpNode on one root app, both at "/" by default, and the admin
 * app's JSON/urlencoded body parsers then consume every form or JSON body before a node route sees it.
 * So, like Node-RED's own HTTP-in node (21-httpin.js `rawBodyCapture`), a capture middleware is put at the
 * top of the root app's stack: it starts reading the raw body of requests under <httpNodeRoot>/mlc/ (same
 * cap) and marks them parsed so no other body parser touches them.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpApp } from "./types";

/** Mount point of all package endpoints below httpNodeRoot. */
export const ENDPOINT_PREFIX = "/mlc";
/** Default body cap, bytes. */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;

export interface InboundRequest {
  method: string;
  /** Path below the prefix, e.g. "/twilio/status/abc". */
  path: string;
  /** Query string as received, without "?" ("" when none). */
  rawQuery: string;
  /** Path and query exactly as received below httpNodeRoot, e.g. "/mlc/twilio/status/abc?j=…". */
  originalPath: string;
  /** Lower-case header names. */
  headers: IncomingMessage["headers"];
  contentType: string;
  body: Buffer;
}

export interface InboundResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export type EndpointHandler = (req: InboundRequest) => Promise<InboundResponse>;

interface Registration {
  handler: EndpointHandler;
  maxBodyBytes: number;
  owner: string;
}

class Dispatcher {
  readonly routes = new Map<string, Registration>();

  middleware = (req: IncomingMessage & { url: string; originalUrl?: string }, res: ServerResponse, next: (err?: unknown) => void): void => {
    void this.handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) reply(res, { status: 500, body: "Internal error" });
      else res.destroy(err as Error);
    });
    void next; // the prefix belongs to the package; nothing else handles it
  };

  private async handle(req: IncomingMessage & { url: string; originalUrl?: string }, res: ServerResponse): Promise<void> {
    const original = req.originalUrl ?? req.url;
    const qIndex = req.url.indexOf("?");
    const path = decodeURIComponent(qIndex === -1 ? req.url : req.url.slice(0, qIndex)).replace(/\/+$/, "") || "/";
    const rawQuery = qIndex === -1 ? "" : req.url.slice(qIndex + 1);
    const reg = this.routes.get(path);
    if (!reg) {
      req.resume();
      return reply(res, { status: 503, headers: { "Retry-After": "5" }, body: "Endpoint starting, retry later" });
    }
    const read = await readBody(req, reg.maxBodyBytes);
    if (!read.body) return reply(res, { status: 413, headers: { Connection: "close" }, body: "Payload too large" });
    const inbound: InboundRequest = {
      method: req.method ?? "GET",
      path,
      rawQuery,
      originalPath: original.slice(original.indexOf(ENDPOINT_PREFIX)),
      headers: req.headers,
      contentType: String(req.headers["content-type"] ?? ""),
      body: read.body,
    };
    // The handler may have been replaced by a redeploy while the body streamed in: use the live one.
    const live = this.routes.get(path) ?? reg;
    let out: InboundResponse;
    try {
      out = await live.handler(inbound);
    } catch {
      out = { status: 500, body: "Internal error" };
    }
    reply(res, out);
  }
}

const RAW_BODY = Symbol("mlc.rawBody");

/** Raw body, or no body when it exceeded the cap (then it was not buffered). */
interface BodyRead {
  body?: Buffer;
}

/**
 * Read the raw body once per request, at most `cap` bytes (memoised: the root-level capture and the
 * dispatcher share one read). Over the cap (declared or streamed), reading stops and nothing is kept.
 * @throws Error when the request is aborted or fails while streaming
 */
function readBody(req: IncomingMessage, cap: number): Promise<BodyRead> {
  const holder = req as IncomingMessage & { [RAW_BODY]?: Promise<BodyRead> };
  const started = holder[RAW_BODY];
  if (started) return started;
  const p = new Promise<BodyRead>((resolve, reject) => {
    if (Number(req.headers["content-length"] ?? "0") > cap) {
      req.resume();
      return resolve({});
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= cap) return void chunks.push(chunk);
      cleanup();
      chunks.length = 0;
      req.pause(); // stop reading; the 413 answer closes the connection
      resolve({});
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ body: Buffer.concat(chunks) });
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error("request aborted"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
  p.catch(() => undefined); // a capture nobody awaits must not become an unhandled rejection
  holder[RAW_BODY] = p;
  return p;
}

interface MountableApp {
  parent?: MountableApp;
  mountpath?: string | string[];
  use?: (...args: unknown[]) => unknown;
  _router?: { stack: { handle: unknown }[] };
}

/**
 * Put a raw-body capture for `<mount path of app>/mlc/…` at the top of the root app's stack (see module
 * doc). No-op when `app` is not mounted in another app (it then reads its own bodies).
 */
function hoistRawBodyCapture(app: HttpApp, d: Dispatcher): void {
  let root = app as unknown as MountableApp;
  let mount = "";
  while (root.parent) {
    const mp = typeof root.mountpath === "string" ? root.mountpath : "/";
    mount = mp.replace(/\/+$/, "") + mount;
    root = root.parent;
  }
  if (root === (app as unknown as MountableApp) || typeof root.use !== "function" || !root._router) return;
  const prefix = `${mount}${ENDPOINT_PREFIX}/`;
  const capture = (req: IncomingMessage & { url: string; _body?: boolean }, _res: ServerResponse, next: () => void): void => {
    const q = req.url.indexOf("?");
    const pathname = q === -1 ? req.url : req.url.slice(0, q);
    if (!pathname.startsWith(prefix)) return next();
    let sub: string;
    try {
      sub = decodeURIComponent(pathname.slice(prefix.length - 1)).replace(/\/+$/, "");
    } catch {
      return next();
    }
    const reg = d.routes.get(sub);
    if (reg) {
      req._body = true; // body parsers (express/body-parser) skip requests marked as parsed
      void readBody(req, reg.maxBodyBytes);
    }
    next();
  };
  root.use(capture);
  const stack = root._router.stack;
  const i = stack.findIndex((layer) => layer.handle === capture);
  if (i > 0) stack.unshift(...stack.splice(i, 1));
}

function reply(res: ServerResponse, r: InboundResponse): void {
  const body = r.body ?? "";
  res.writeHead(r.status, { "Content-Type": r.headers?.["Content-Type"] ?? "text/plain; charset=utf-8", "Cache-Control": "no-store", ...(r.headers ?? {}), "Content-Length": String(Buffer.byteLength(body)) });
  res.end(body);
}

const dispatchers = new WeakMap<object, Dispatcher>();

function dispatcherFor(app: HttpApp): Dispatcher {
  let d = dispatchers.get(app);
  if (!d) {
    d = new Dispatcher();
    dispatchers.set(app, d);
    app.use(ENDPOINT_PREFIX, d.middleware);
    hoistRawBodyCapture(app, d);
  }
  return d;
}

/** Mount the dispatcher on this HTTP app now (call at node-set load so startup requests get 503, not 404). */
export function mountDispatcher(app: HttpApp): void {
  dispatcherFor(app);
}

/**
 * Claim `path` (below /mlc, e.g. "/twilio/status/<nodeId>") for a node. A later claim by another owner
 * fails, so two nodes never answer the same webhook.
 * @returns a function that releases the path (call it from the node's close handler)
 * @throws Error when another live node owns the path
 */
export function registerEndpoint(app: HttpApp, path: string, owner: string, handler: EndpointHandler, opts: { maxBodyBytes?: number } = {}): () => void {
  const d = dispatcherFor(app);
  const clean = path.replace(/\/+$/, "");
  if (!/^\/[A-Za-z0-9/_.-]+$/.test(clean)) throw new Error(`Invalid endpoint path "${path}" (letters, digits, / _ . - only)`);
  const existing = d.routes.get(clean);
  if (existing && existing.owner !== owner) throw new Error(`Endpoint ${ENDPOINT_PREFIX}${clean} is already used by node ${existing.owner}`);
  const reg: Registration = { handler, maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, owner };
  d.routes.set(clean, reg);
  return () => {
    if (d.routes.get(clean) === reg) d.routes.delete(clean);
  };
}

/** Join a public base URL (e.g. "https://nr.example.com/api") with httpNodeRoot-relative endpoint path. */
export function publicEndpointUrl(publicBaseUrl: string, httpNodeRoot: string | undefined, endpointPath: string): string {
  const base = publicBaseUrl.replace(/\/+$/, "");
  const root = (httpNodeRoot ?? "/").replace(/\/+$/, "");
  return `${base}${root}${ENDPOINT_PREFIX}${endpointPath}`;
}
