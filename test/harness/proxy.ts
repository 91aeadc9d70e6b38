/**
 * A small round-robin HTTP load balancer for tests (node:http, 127.0.0.1, port 0 or given): each request goes to the
 * next backend in turn. A backend that refuses the connection (a killed instance: nothing was sent) is skipped and the
 * request goes to the next one, like a balancer's passive health check; any other failure answers 502, so the sender
 * retries. Counts requests per backend.
 */
import http from "node:http";
import net from "node:net";

export class RoundRobinProxy {
  private server?: http.Server;
  private next = 0;
  port = 0;
  /** Requests answered by each backend (index as in `backends`). */
  readonly served: number[];
  /** Requests that found no live backend or failed mid-way (answered 502). */
  failed = 0;
  /** Pin a request to a backend (its index), e.g. to send a keypress to the instance that did not place the call; undefined = round robin. */
  route?: (method: string, url: string) => number | undefined;

  /** @param backends base URLs (`http://127.0.0.1:<port>`) */
  constructor(readonly backends: string[]) {
    this.served = backends.map(() => 0);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => this.forward(req, Buffer.concat(chunks), res, 0));
      req.on("error", () => res.destroy());
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private forward(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, tried: number): void {
    if (tried >= this.backends.length) {
      this.failed++;
      res.writeHead(502, { "Content-Type": "text/plain" }).end("Bad gateway");
      return;
    }
    const pinned = tried === 0 ? this.route?.(req.method ?? "GET", req.url ?? "/") : undefined;
    const i = pinned ?? this.next++ % this.backends.length;
    const target = new URL(this.backends[i]);
    const headers = { ...req.headers, host: target.host, connection: "close" };
    const out = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: false }, (up) => {
      this.served[i]++;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on("error", () => res.destroy());
    });
    out.on("error", (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return void res.destroy();
      if (err.code === "ECONNREFUSED") return this.forward(req, body, res, tried + 1);
      this.failed++;
      res.writeHead(502, { "Content-Type": "text/plain" }).end("Bad gateway");
    });
    out.end(body);
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    await closed;
  }
}
