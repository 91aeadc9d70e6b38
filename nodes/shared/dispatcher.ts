/**
 * One inbound-HTTP dispatcher for every webhook endpoint of the package (Twilio status callbacks,
 * Acumatica push notifications, …), mounted once per Node-RED HTTP app under `/mlc/` and kept across
 * deploys.
 *
 * Why: Node-RED removes and re-adds HTTP-in routes on every deploy, and requests in that window get 404,
 * which some senders treat as "unsubscribe". Here the route never goes away: a path whose node is being
 * (re)started by a deploy answers 503 with Retry-After so the sender retries. A path nothing serves answers
 * 404 once the flows have started (503 before, while Node-RED starts).
 *
 * Everything under `<httpNodeRoot>/mlc` belongs to the package (node-red-runtime.md §6):
 * - Node-RED mounts RED.httpAdmin before RED.httpNode on one root app, and the admin app's JSON/urlencoded
 *   body parsers would read (and, on bad input, answer with Express's default error page, stack trace
 *   included) every body before a node route sees it. So, like Node-RED's own HTTP-in node (21-httpin.js
 *   `rawBodyCapture`), a capture middleware sits at the top of the root app's stack: it claims every request
 *   whose target Express would route below `<httpNodeRoot>/mlc` (resolved with Express's own `parseurl` and
 *   mount rules: case-insensitive, a slash after the mount folded, absolute-form targets reduced to their
 *   path), marks it parsed so no other body parser touches it, and starts the one bounded read of its body.
 * - Bodies are read once, raw (signatures need the exact bytes), capped before anything is parsed (413 above
 *   256 KB by default, served path or not), within a deadline (408 and the socket closed after 10 s), so a
 *   stalled body costs one socket and at most the cap in memory. Before a 413 the rest of the body is read
 *   and dropped for at most 5 s (so the sender reads the answer instead of a connection reset); a body still
 *   arriving after that gets the 413 and the connection closed.
 * - Every refusal is a fixed short text: 400 malformed path (bad `%` escape), body or header; 404 nothing
 *   serves the path; 405 method; 408 body too slow; 413 body too large; 415 content coding, media type or
 *   charset the endpoint does not take; 503 endpoint restarting. A handler that throws (a store that cannot be
 *   reached, say) gets 503 "Temporarily unavailable, retry later" with `Retry-After: 5` (logged, rate-limited),
 *   so the sender (Twilio, the ERP) retries instead of treating a 5xx from us as final; never a stack trace. A root-level error handler answers any error raised
 *   for a claimed request before it reaches the dispatcher, so nothing under the prefix reaches Express's
 *   default error handler.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { parse as parseContentType } from "content-type";
import parseurl from "parseurl";
import type { HttpApp } from "./types";

/** Mount point of all package endpoints below httpNodeRoot. */
export const ENDPOINT_PREFIX = "/mlc";
/** Default body cap, bytes. */
export const DEFAULT_MAX_BODY_BYTES = 256 * 1024;
/** Default time for a whole request body to arrive, ms (Twilio's own request timeout is 15 s). */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;
/** After a 413, how long the rest of an oversized body is read and discarded before the socket is closed, ms. */
const LINGER_MS = 5_000;
/** Without runtime events: how long a released path answers 503 before it is treated as gone, ms. */
const RELEASE_GRACE_MS = 60_000;

export interface InboundRequest {
  method: string;
  /** Path below the prefix, percent-decoded, without trailing slash, e.g. "/twilio/status/abc". */
  path: string;
  /** Query string as received, without "?" ("" when none). */
  rawQuery: string;
  /**
   * Path and query exactly as received below httpNodeRoot, e.g. "/mlc/twilio/status/abc?j=…" (the request
   * target's path with the httpNodeRoot mount removed the way Express removes it). Public base URL +
   * httpNodeRoot + this is the URL the sender called (Twilio signs that URL).
   */
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

/** What an endpoint accepts; anything else is refused by the dispatcher before the handler runs. */
export interface EndpointOptions {
  /** Body cap, bytes (default 256 KB): 413 above it. */
  maxBodyBytes?: number;
  /** Allowed methods, upper case (default any): 405 with Allow otherwise. */
  methods?: string[];
  /**
   * Accepted media types, lower case, e.g. ["application/json"] (default any). A request with another
   * media type, a charset other than UTF-8 (or US-ASCII), or no Content-Type while it has a body gets 415;
   * a Content-Type that does not parse gets 400.
   */
  contentTypes?: string[];
  /** Time for the whole body to arrive, ms (default 30 000): 408 and the connection closed after it. */
  bodyTimeoutMs?: number;
}

/** The part of RED.events the dispatcher listens to ("flows:started"). */
export interface RuntimeEvents {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** What the dispatcher takes from the runtime (pass RED): its events and a log for handler failures. */
export interface DispatcherRuntime {
  events?: RuntimeEvents;
  log?: { warn(message: unknown): void };
}

interface Registration {
  handler: EndpointHandler;
  owner: string;
  opts: Required<Pick<EndpointOptions, "maxBodyBytes" | "bodyTimeoutMs">> & Pick<EndpointOptions, "methods" | "contentTypes">;
}

/** A request target resolved the way Express routes it to the dispatcher. */
export interface ResolvedTarget {
  /** Raw (still percent-encoded) path below `<httpNodeRoot>/mlc`, starting with "/". */
  sub: string;
  /** Raw path and query below httpNodeRoot (see InboundRequest.originalPath). */
  originalPath: string;
  /** Query string without "?" ("" when none). */
  rawQuery: string;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * Remove a mount path from `path` as Express 4 does for `app.use(mount, …)` (path-to-regexp 0.1,
 * `end: false`, case-insensitive, non-strict: `^<mount>\/?(?=\/|$)`; "/" matches everything). The mount is
 * taken literally (an httpNodeRoot using path-to-regexp syntax such as `:name` or `*` is not supported).
 * @returns the rest, starting with "/", or undefined when the mount does not match
 */
export function stripMount(path: string, mount: string): string | undefined {
  const m = mount.replace(/\/+$/, "");
  if (!m) return path;
  const hit = new RegExp(`^${escapeRegExp(m)}\\/?(?=\\/|$)`, "i").exec(path);
  if (!hit) return undefined;
  const rest = path.slice(hit[0].length);
  return rest.startsWith("/") ? rest : `/${rest}`;
}

/**
 * Resolve a request target (`req.url` as received: origin-form or absolute-form) against the mount of the
 * node app (httpNodeRoot, "" or "/" for the root) and the dispatcher's `/mlc` mount, exactly as Express
 * routes it (`parseurl` pathname, then each mount stripped in turn).
 * @returns undefined when Express would not route the request to the dispatcher
 */
export function resolveTarget(rawUrl: string, nodeMount: string): ResolvedTarget | undefined {
  let parsed: ReturnType<typeof parseurl>;
  try {
    parsed = parseurl({ url: rawUrl } as IncomingMessage);
  } catch {
    return undefined;
  }
  const pathname = parsed?.pathname;
  if (typeof pathname !== "string" || !pathname.startsWith("/")) return undefined;
  const below = stripMount(pathname, nodeMount);
  if (below === undefined) return undefined;
  const sub = stripMount(below, ENDPOINT_PREFIX);
  if (sub === undefined) return undefined;
  const search = parsed?.search ?? "";
  return { sub, originalPath: below + search, rawQuery: search.startsWith("?") ? search.slice(1) : search };
}

/**
 * The registry key of a raw sub-path: percent-decoded, trailing slashes removed.
 * @returns undefined for a malformed escape (`%`, `%zz`, a truncated or overlong UTF-8 sequence)
 */
export function decodeSubPath(sub: string): string | undefined {
  try {
    return decodeURIComponent(sub).replace(/\/+$/, "") || "/";
  } catch {
    return undefined;
  }
}

/** Outcome of the one read of a request body. */
type BodyRead = { kind: "ok"; body: Buffer } | { kind: "tooLarge" } | { kind: "timeout" } | { kind: "aborted" } | { kind: "consumed" };

const RAW_BODY = Symbol("mlc.rawBody");
const CLAIMED = Symbol("mlc.claimed");

type Req = IncomingMessage & { url: string; originalUrl?: string; _body?: boolean; [RAW_BODY]?: Promise<BodyRead>; [CLAIMED]?: ResolvedTarget };

/**
 * Read the raw body once per request, at most `cap` bytes, within `timeoutMs` (memoised: the root-level
 * capture and the dispatcher share one read). Never rejects. Over the cap (declared or streamed) reading
 * stops and nothing is kept; after the deadline the partial body is dropped and, when the response has
 * already been sent by someone else, the socket is closed.
 */
function readBody(req: Req, cap: number, timeoutMs: number, res?: ServerResponse): Promise<BodyRead> {
  const started = req[RAW_BODY];
  if (started) return started;
  const p = new Promise<BodyRead>((resolve) => {
    if (req.readableEnded) return resolve(req.complete ? { kind: "consumed" } : { kind: "aborted" });
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > cap) {
      req.pause();
      return resolve({ kind: "tooLarge" });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (r: BodyRead): void => {
      clearTimeout(timer); // declared below; finish runs only from the listeners and the timer added after it
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      req.on("error", () => undefined); // a late socket error after we stopped listening must not throw
      resolve(r);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= cap) return void chunks.push(chunk);
      chunks.length = 0;
      req.pause(); // stop reading; the 413 answer closes the connection
      finish({ kind: "tooLarge" });
    };
    const onEnd = (): void => finish({ kind: "ok", body: Buffer.concat(chunks, size) });
    const onError = (): void => finish({ kind: "aborted" });
    const onClose = (): void => finish(req.complete ? { kind: "ok", body: Buffer.concat(chunks, size) } : { kind: "aborted" });
    const timer = setTimeout(() => {
      chunks.length = 0;
      req.pause();
      finish({ kind: "timeout" });
      if (res?.writableEnded) req.socket?.destroy();
    }, timeoutMs);
    timer.unref?.();
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
  req[RAW_BODY] = p;
  return p;
}

/**
 * The raw body of a request below the prefix, read once (shared with the capture), e.g. for the package's
 * admin endpoints when httpAdminRoot and httpNodeRoot coincide.
 * @param cap bytes
 * @throws Error "request too large" above `cap`, "request body unavailable" when it timed out, was aborted or
 *   was already consumed by another reader
 */
export async function readRawBody(req: IncomingMessage, cap: number): Promise<Buffer> {
  const r = await readBody(req as Req, Math.min(cap, DEFAULT_MAX_BODY_BYTES), DEFAULT_BODY_TIMEOUT_MS);
  if (r.kind === "ok" && r.body.length <= cap) return r.body;
  throw new Error(r.kind === "tooLarge" || r.kind === "ok" ? "request too large" : "request body unavailable");
}

const FIXED: Record<number, string> = {
  400: "Bad request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  408: "Request timeout",
  413: "Payload too large",
  415: "Unsupported media type",
  500: "Internal error",
  503: "Endpoint starting, retry later",
};

/** What a request gets when its handler throws: retry later (the failure is ours and usually transient). */
const HANDLER_FAILED: InboundResponse = { status: 503, body: "Temporarily unavailable, retry later", headers: { "Retry-After": "5" } };

function refusal(status: number, headers?: Record<string, string>): InboundResponse {
  return { status, body: FIXED[status] ?? "Bad request", ...(headers ? { headers } : {}) };
}

function reply(res: ServerResponse, r: InboundResponse, close = false): void {
  if (res.headersSent || res.destroyed) return;
  const body = r.body ?? "";
  res.writeHead(r.status, {
    "Content-Type": r.headers?.["Content-Type"] ?? "text/plain; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    ...(r.headers ?? {}),
    ...(close ? { Connection: "close" } : {}),
    "Content-Length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/**
 * Read and drop the rest of the request body for at most LINGER_MS, then answer (closing the connection
 * when the body still had not ended). Answering and closing while the sender is still writing makes its TCP
 * stack reset the connection, and it may never read the answer.
 */
function replyAndLinger(req: IncomingMessage, res: ServerResponse, r: InboundResponse): void {
  if (req.complete || req.readableEnded) return reply(res, r);
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    reply(res, r, !req.complete);
  };
  const timer = setTimeout(finish, LINGER_MS);
  timer.unref?.();
  req.once("end", finish);
  req.once("close", finish);
  req.on("error", () => undefined);
  req.resume();
}

/**
 * Logs at most one line per `intervalMs` (ms) per key, with the count of lines suppressed since the last
 * one: refused requests anyone can send must not flood the log.
 * @param write receives the text (e.g. node.warn)
 * @returns log(key, text)
 */
export function rateLimitedLog(write: (text: string) => void, intervalMs = 60_000): (key: string, text: string) => void {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key, text) => {
    const now = Date.now();
    const seen = last.get(key);
    if (seen && now - seen.at < intervalMs) {
      seen.suppressed++;
      return;
    }
    if (last.size > 1000) last.clear();
    last.set(key, { at: now, suppressed: 0 });
    write(seen?.suppressed ? `${text} (${seen.suppressed} more since the last report)` : text);
  };
}

/** One "flows:started" listener per runtime, whatever the number of dispatchers (one per HTTP app) over time. */
const flowListeners = new WeakMap<RuntimeEvents, Set<WeakRef<Dispatcher>>>();

function listenFlowsStarted(events: RuntimeEvents, d: Dispatcher): void {
  let set = flowListeners.get(events);
  if (!set) {
    const dispatchers = new Set<WeakRef<Dispatcher>>();
    set = dispatchers;
    flowListeners.set(events, dispatchers);
    events.on("flows:started", () => {
      for (const ref of dispatchers) {
        const live = ref.deref();
        if (live) live.flowsStarted();
        else dispatchers.delete(ref);
      }
    });
  }
  set.add(new WeakRef(d));
}

class Dispatcher {
  readonly routes = new Map<string, Registration>();
  /** Paths released by a closing node, with the time: 503 until the flows have started again. */
  readonly restarting = new Map<string, number>();
  /** True once the runtime reported "flows:started" (or, without events, once a route was registered). */
  started = false;
  /** True when the runtime's events are attached (then "flows:started" decides what is restarting). */
  hasEvents = false;
  private warn?: (key: string, text: string) => void;

  constructor(private readonly app: HttpApp) {}

  attach(runtime: DispatcherRuntime | undefined): void {
    if (runtime?.log && !this.warn) {
      const log = runtime.log;
      this.warn = rateLimitedLog((text) => log.warn(text));
    }
    if (runtime?.events && !this.hasEvents) {
      this.hasEvents = true;
      listenFlowsStarted(runtime.events, this);
    }
  }

  /** The runtime reported "flows:started": unknown paths are 404 from now on. */
  flowsStarted(): void {
    this.started = true;
    this.restarting.clear(); // a released path that was not registered again is gone
  }

  /** Mount path of the node app inside the root app ("" at the root), read from Express's `mountpath`. */
  nodeMount(): string {
    let app = this.app as unknown as MountableApp;
    let mount = "";
    while (app.parent) {
      const mp = typeof app.mountpath === "string" ? app.mountpath : "/";
      mount = mp.replace(/\/+$/, "") + mount;
      app = app.parent;
    }
    return mount;
  }

  /** The route a raw sub-path would reach (for its body cap), if any. */
  routeOf(sub: string): Registration | undefined {
    const key = decodeSubPath(sub);
    return key === undefined ? undefined : this.routes.get(key);
  }

  /** Claim a request below the prefix: parsers skip it and its bounded body read starts. */
  claim(req: Req, res: ServerResponse, target: ResolvedTarget): void {
    req[CLAIMED] = target;
    req._body = true; // body parsers (express/body-parser) skip requests marked as parsed
    const reg = this.routeOf(target.sub);
    void readBody(req, reg?.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, reg?.opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS, res);
  }

  middleware = (req: Req, res: ServerResponse, next: (err?: unknown) => void): void => {
    this.handle(req, res).catch((err: unknown) => {
      this.warn?.("dispatcher", `mlc dispatcher: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) reply(res, refusal(500), true);
      else res.destroy();
    });
    void next; // the prefix belongs to the package; nothing else handles it
  };

  private async handle(req: Req, res: ServerResponse): Promise<void> {
    let target = req[CLAIMED];
    if (!target) {
      // No root-level capture (the node app serves the server itself): resolve and read here.
      target = resolveTarget(req.originalUrl ?? req.url, this.nodeMount());
      if (!target) {
        req.resume();
        return reply(res, refusal(404), !req.complete);
      }
      this.claim(req, res, target);
    }
    const first = this.routeOf(target.sub);
    const read = await readBody(req, first?.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, first?.opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS, res);
    if (read.kind === "aborted") return void res.destroy();
    if (read.kind === "tooLarge") return replyAndLinger(req, res, refusal(413));
    if (read.kind === "timeout") return reply(res, refusal(408), true);
    if (read.kind === "consumed") return reply(res, refusal(400));
    const path = decodeSubPath(target.sub);
    if (path === undefined) return reply(res, refusal(400));
    // The handler may have been replaced by a redeploy while the body streamed in: use the live one.
    const reg = this.routes.get(path);
    if (!reg) {
      const released = this.restarting.get(path);
      const restarting = released !== undefined && (this.hasEvents || Date.now() - released < RELEASE_GRACE_MS);
      if (!this.started || restarting) return reply(res, refusal(503, { "Retry-After": "5" }));
      return reply(res, refusal(404));
    }
    const method = req.method ?? "GET";
    if (reg.opts.methods && !reg.opts.methods.includes(method)) return reply(res, refusal(405, { Allow: reg.opts.methods.join(", ") }));
    const coding = String(req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
    if (coding !== "identity" && coding !== "") return reply(res, refusal(415));
    const contentType = String(req.headers["content-type"] ?? "");
    // An empty body's label says nothing (Business Central's and Exact's validation calls are empty POSTs whose media
    // type is undocumented; a .NET sender labels empty content text/plain): only a body is held to the route's types.
    if (read.body.length) {
      let media: { type: string; parameters: Record<string, string> } | undefined;
      if (contentType) {
        try {
          media = parseContentType(contentType);
        } catch {
          return reply(res, refusal(400));
        }
        const charset = media.parameters.charset?.toLowerCase();
        if (charset && charset !== "utf-8" && charset !== "utf8" && charset !== "us-ascii") return reply(res, refusal(415));
      }
      if (reg.opts.contentTypes && (!media || !reg.opts.contentTypes.includes(media.type))) return reply(res, refusal(415));
    }
    const inbound: InboundRequest = { method, path, rawQuery: target.rawQuery, originalPath: target.originalPath, headers: req.headers, contentType, body: read.body };
    let out: InboundResponse;
    try {
      out = await reg.handler(inbound);
    } catch (err) {
      this.warn?.(`handler:${path}`, `mlc endpoint ${ENDPOINT_PREFIX}${path} failed: ${err instanceof Error ? err.message : String(err)}`);
      out = HANDLER_FAILED;
    }
    reply(res, out);
  }
}

interface MountableApp {
  parent?: MountableApp;
  mountpath?: string | string[];
  use?: (...args: unknown[]) => unknown;
  _router?: { stack: { handle: unknown }[] };
}

/**
 * The target of a request the capture claims: what Express routes to the dispatcher, and targets that aim at
 * the prefix but that Express routes elsewhere: repeated slashes ("//mlc/…") and an escape right after the
 * prefix ("/mlc%2F…", "/mlc%zz"). Those are claimed only so that no body parser reads (and chokes on) their
 * bodies; Express then answers them 404.
 */
function claimable(d: Dispatcher, url: string): ResolvedTarget | undefined {
  const mount = d.nodeMount();
  const direct = resolveTarget(url, mount);
  if (direct) return direct;
  let pathname: string | null | undefined;
  try {
    pathname = parseurl({ url } as IncomingMessage)?.pathname;
  } catch {
    return undefined;
  }
  if (typeof pathname !== "string") return undefined;
  const below = stripMount(pathname.replace(/\/{2,}/g, "/"), mount);
  if (below === undefined || !/^\/mlc(?=$|[/%])/i.test(below)) return undefined;
  return { sub: `/${below.slice(ENDPOINT_PREFIX.length).replace(/^\/+/, "")}`, originalPath: below, rawQuery: "" };
}

/**
 * Put the raw-body capture at the top of the root app's stack and an error handler for claimed requests at
 * its end (see module doc). No-op when `app` is not mounted in another app (it then reads its own bodies).
 */
function hoistRawBodyCapture(app: HttpApp, d: Dispatcher): void {
  let root = app as unknown as MountableApp;
  while (root.parent) root = root.parent;
  if (root === (app as unknown as MountableApp) || typeof root.use !== "function" || !root._router) return;
  const router = root._router;
  const onError = (err: unknown, req: Req, res: ServerResponse, next: (err?: unknown) => void): void => {
    if (!req[CLAIMED]) return next(err);
    const status = Number((err as { status?: unknown })?.status);
    reply(res, refusal(status >= 400 && status < 500 && FIXED[status] ? status : status >= 400 && status < 500 ? 400 : 500), true);
  };
  const capture = (req: Req, res: ServerResponse, next: () => void): void => {
    // Keep the error handler last, whatever was mounted after the package loaded.
    const stack = router.stack;
    if (stack[stack.length - 1]?.handle !== onError) {
      const i = stack.findIndex((layer) => layer.handle === onError);
      if (i !== -1) stack.push(...stack.splice(i, 1));
    }
    const target = claimable(d, req.url);
    if (target) d.claim(req, res, target);
    next();
  };
  root.use(capture);
  root.use(onError);
  const stack = router.stack;
  const i = stack.findIndex((layer) => layer.handle === capture);
  if (i > 0) stack.unshift(...stack.splice(i, 1));
}

const dispatchers = new WeakMap<object, Dispatcher>();

function dispatcherFor(app: HttpApp): Dispatcher {
  let d = dispatchers.get(app);
  if (!d) {
    d = new Dispatcher(app);
    dispatchers.set(app, d);
    app.use(ENDPOINT_PREFIX, d.middleware);
    hoistRawBodyCapture(app, d);
  }
  return d;
}

/**
 * Mount the dispatcher on this HTTP app now (call at node-set load so startup requests get 503, not 404).
 * @param runtime pass RED: its events tell when flows have started (then unknown paths get 404), its log
 *   receives handler failures (rate-limited)
 */
export function mountDispatcher(app: HttpApp, runtime?: DispatcherRuntime): void {
  dispatcherFor(app).attach(runtime);
}

/**
 * Claim `path` (below /mlc, e.g. "/twilio/status/<nodeId>") for a node. A later claim by another owner
 * fails, so two nodes never answer the same webhook.
 * @param opts what the endpoint accepts (body cap in bytes, methods, media types, body deadline in ms)
 * @returns a function that releases the path (call it from the node's close handler); until the flows have
 *   started again the path answers 503 with Retry-After
 * @throws Error when another live node owns the path, or the path has characters other than letters,
 *   digits, / _ . -
 */
export function registerEndpoint(app: HttpApp, path: string, owner: string, handler: EndpointHandler, opts: EndpointOptions = {}): () => void {
  const d = dispatcherFor(app);
  const clean = path.replace(/\/+$/, "");
  if (!/^\/[A-Za-z0-9/_.-]+$/.test(clean)) throw new Error(`Invalid endpoint path "${path}" (letters, digits, / _ . - only)`);
  const existing = d.routes.get(clean);
  if (existing && existing.owner !== owner) throw new Error(`Endpoint ${ENDPOINT_PREFIX}${clean} is already used by node ${existing.owner}`);
  const reg: Registration = {
    handler,
    owner,
    opts: {
      maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      bodyTimeoutMs: opts.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS,
      ...(opts.methods ? { methods: opts.methods.map((m) => m.toUpperCase()) } : {}),
      ...(opts.contentTypes ? { contentTypes: opts.contentTypes.map((t) => t.toLowerCase()) } : {}),
    },
  };
  d.routes.set(clean, reg);
  d.restarting.delete(clean);
  if (!d.hasEvents) d.started = true;
  return () => {
    if (d.routes.get(clean) === reg) {
      d.routes.delete(clean);
      d.restarting.set(clean, Date.now());
    }
  };
}

/** Join a public base URL (e.g. "https://nr.example.com/api") with httpNodeRoot-relative endpoint path. */
export function publicEndpointUrl(publicBaseUrl: string, httpNodeRoot: string | undefined, endpointPath: string): string {
  const base = publicBaseUrl.replace(/\/+$/, "");
  const root = (httpNodeRoot ?? "/").replace(/\/+$/, "");
  return `${base}${root}${ENDPOINT_PREFIX}${endpointPath}`;
}
