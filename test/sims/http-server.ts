/**
 * HTTP plumbing shared by the local simulators (`twilio.ts`, `sendgrid.ts`, `acumatica.ts`).
 *
 * - {@link SimServer}: a `node:http` server bound to 127.0.0.1 on an ephemeral port (port 0, never anything else),
 *   idempotent start/stop that also destroys open (keep-alive) sockets, and a catch-all for handler failures.
 * - {@link splitUrl}, {@link readBody}: the request side (path and raw query, body with a size cap).
 * - {@link writeJson}: a JSON answer with `Content-Length`.
 * - {@link sendRequest}: one outgoing webhook request (what the simulated service posts to the code under test),
 *   with a total timeout; receiver failures are reported in the result, never thrown.
 *
 * Nothing here writes to the console.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";

/** Content type of the simulators' JSON answers unless a simulator says otherwise. */
export const JSON_UTF8 = "application/json; charset=utf-8";

/** Options of {@link SimServer}. */
export interface SimServerOptions {
  /** Simulator name used in errors, e.g. "TwilioSim" → `TwilioSim not started`. */
  name: string;
  /** Request handler. A throw or a rejection is answered by the server (see `onError`). */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;
  /**
   * Called with what the handler threw; returns the JSON body of the 500 answer (`undefined`: empty body). When the
   * answer had already begun, the value is unused and the socket is destroyed instead.
   */
  onError?: (e: unknown) => unknown;
  /** Content type of that 500 answer. Default {@link JSON_UTF8}. */
  errorContentType?: string;
}

/**
 * A loopback HTTP server for a simulator:
 * ```ts
 * const server = new SimServer({ name: "FooSim", handler: (req, res) => this.handle(req, res) });
 * await server.start();   // "http://127.0.0.1:<port>"
 * server.url;             // same; throws "FooSim not started" when not listening
 * await server.stop();    // closes the server and destroys every open socket
 * ```
 */
export class SimServer {
  private readonly opts: SimServerOptions;
  private readonly sockets = new Set<Socket>();
  private server: http.Server | null = null;
  private starting: Promise<string> | null = null;
  private lastOrigin = "";

  constructor(opts: SimServerOptions) {
    this.opts = opts;
  }

  /** Whether the server is listening. */
  get listening(): boolean {
    return this.server !== null;
  }

  /** `http://127.0.0.1:<port>` of the last start ("" before the first one); kept after `stop()`. */
  get origin(): string {
    return this.lastOrigin;
  }

  /** `http://127.0.0.1:<port>`; throws `Error("<name> not started")` when not listening. */
  get url(): string {
    if (!this.server) throw new Error(`${this.opts.name} not started`);
    return this.lastOrigin;
  }

  /**
   * Listen on 127.0.0.1, ephemeral port. Resolves the origin `http://127.0.0.1:<port>`. Idempotent (a call while
   * listening or starting resolves the same origin). Rejects with the listen error.
   */
  start(): Promise<string> {
    if (this.server) return Promise.resolve(this.lastOrigin);
    if (this.starting) return this.starting;
    const server = http.createServer((req, res) => {
      const run = async () => this.opts.handler(req, res);
      run().catch((e: unknown) => this.failed(e, res));
    });
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    this.starting = new Promise<string>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      });
    }).then(
      (origin) => {
        this.starting = null;
        this.server = server;
        this.lastOrigin = origin;
        return origin;
      },
      (e: unknown) => {
        this.starting = null;
        throw e;
      },
    );
    return this.starting;
  }

  /** Close the server and destroy every open socket (keep-alive included). Idempotent. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  private failed(e: unknown, res: http.ServerResponse): void {
    const payload = this.opts.onError?.(e);
    if (res.headersSent) res.destroy();
    else writeJson(res, 500, payload, {}, this.opts.errorContentType);
  }
}

/** Path (without the query) and raw query string (without `?`, "" when none) of a request URL, undecoded. */
export function splitUrl(rawUrl: string | undefined): { path: string; query: string } {
  const url = rawUrl ?? "/";
  const q = url.indexOf("?");
  return q >= 0 ? { path: url.slice(0, q), query: url.slice(q + 1) } : { path: url, query: "" };
}

/** Thrown by {@link readBody} when a body exceeds its limit. */
export class BodyTooLargeError extends Error {
  /** @param limit the limit exceeded, in bytes */
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Read a request body.
 * @param limit maximum size in bytes (default: no limit)
 * @param onOverflow past the limit: `"drain"` (default) reads and discards the rest so an answer can still be sent on
 *   the connection; `"destroy"` closes the request at once
 * @throws BodyTooLargeError past the limit; the request's own stream error
 */
export function readBody(req: http.IncomingMessage, limit = Infinity, onOverflow: "drain" | "destroy" = "drain"): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new BodyTooLargeError(limit));
        if (onOverflow === "destroy") req.destroy();
        else req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * Answer `status` with `payload` as JSON (`Content-Type` only when there is a body; `Content-Length` always), then
 * `headers` (they win over both). `payload === undefined` answers an empty body.
 */
export function writeJson(
  res: http.ServerResponse,
  status: number,
  payload: unknown,
  headers: http.OutgoingHttpHeaders = {},
  contentType: string = JSON_UTF8,
): void {
  const text = payload === undefined ? "" : JSON.stringify(payload);
  res.writeHead(status, { ...(text ? { "Content-Type": contentType } : {}), "Content-Length": String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** One outgoing request of {@link sendRequest}. */
export interface OutgoingRequest {
  /** Default "POST". */
  method?: "GET" | "POST";
  /** Request headers; `content-length` is added for a body when missing. */
  headers: Record<string, string>;
  /** Body (UTF-8); none for GET. */
  body?: string;
  /** Total time allowed for the whole exchange, in milliseconds. */
  timeoutMs: number;
}

/** What {@link sendRequest} got back. */
export interface OutgoingResult {
  /** HTTP status of the receiver; 0 when there was no complete answer (then `error`). */
  status: number;
  /** Response body as UTF-8 ("" on failure). */
  body: string;
  /** Why there is no answer: the connection error, or `timeout after <ms> ms`. */
  error?: string;
}

/**
 * Send one request to `target` the way a webhook sender does, on a fresh connection (no agent):
 * - the request line is the URL as written after the authority (no re-encoding), fragment removed;
 * - credentials written in the URL (`https://user:pass@host/…`) are sent as `Authorization: Basic …`;
 * - `http:` and `https:` targets.
 * Never throws or rejects: an unparseable URL, a connection failure or the timeout give `status: 0` and `error`.
 */
export function sendRequest(target: string, r: OutgoingRequest): Promise<OutgoingResult> {
  const method = r.method ?? "POST";
  return new Promise<OutgoingResult>((resolve) => {
    let done = false;
    let request: http.ClientRequest | undefined;
    const finish = (result: OutgoingResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    };
    const fail = (e: unknown) => finish({ status: 0, body: "", error: e instanceof Error ? e.message : String(e) });
    const timer = setTimeout(() => {
      finish({ status: 0, body: "", error: `timeout after ${r.timeoutMs} ms` });
      request?.destroy();
    }, r.timeoutMs);
    try {
      const u = new URL(target);
      const afterAuthority = target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "").split("#")[0];
      const headers: Record<string, string> = { ...r.headers };
      if (r.body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === "content-length"))
        headers["content-length"] = String(Buffer.byteLength(r.body));
      if (u.username || u.password) {
        const cred = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
        headers.authorization = "Basic " + Buffer.from(cred, "utf8").toString("base64");
      }
      const secure = u.protocol === "https:";
      request = (secure ? https : http).request(
        {
          method,
          hostname: u.hostname.replace(/^\[|\]$/g, ""),
          port: u.port || (secure ? 443 : 80),
          path: afterAuthority.startsWith("/") ? afterAuthority : "/" + afterAuthority,
          headers,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => finish({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", fail);
        },
      );
      request.on("error", fail);
      if (r.body !== undefined) request.end(r.body);
      else request.end();
    } catch (e) {
      fail(e);
    }
  });
}
