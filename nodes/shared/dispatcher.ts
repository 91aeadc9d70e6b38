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
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > reg.maxBodyBytes) {
      req.resume();
      return reply(res, { status: 413, headers: { Connection: "close" }, body: "Payload too large" });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > reg.maxBodyBytes) {
        tooLarge = true;
        break;
      }
      chunks.push(chunk as Buffer);
    }
    if (tooLarge) return reply(res, { status: 413, headers: { Connection: "close" }, body: "Payload too large" });
    const inbound: InboundRequest = {
      method: req.method ?? "GET",
      path,
      rawQuery,
      originalPath: original.slice(original.indexOf(ENDPOINT_PREFIX)),
      headers: req.headers,
      contentType: String(req.headers["content-type"] ?? ""),
      body: Buffer.concat(chunks),
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
