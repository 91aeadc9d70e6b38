/**
 * HTTP on a raw TCP socket, for requests no HTTP client sends as written: absolute-form targets, bad percent
 * escapes, `//` and upper-case paths, broken framing. The request goes out byte for byte; the answer is read
 * until the server closes the connection or a complete response (Content-Length or chunked) arrived.
 */
import net from "node:net";

export interface RawResponse {
  /** 0 when the server closed without a status line. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Bytes received, as text. */
  raw: string;
  /** True when the connection ended (closed or reset) rather than the response completing. */
  closed: boolean;
}

export interface RawOptions {
  /** Give up after this long, ms; the result then has status -1 (never answered). */
  timeoutMs?: number;
  /** Write the body in pieces of this many bytes, waiting `slowDelayMs` between them (a slow client). */
  slowChunkBytes?: number;
  slowDelayMs?: number;
  /** Stop writing after this many body bytes and keep the socket open (a stalled client) until the answer or timeout. */
  stallAfterBytes?: number;
}

function parseResponse(buf: Buffer, closed: boolean): RawResponse | undefined {
  const text = buf.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  if (end === -1) return closed ? { status: 0, headers: {}, body: "", raw: text, closed } : undefined;
  const lines = text.slice(0, end).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const rest = buf.subarray(Buffer.byteLength(text.slice(0, end + 4), "latin1"));
  const status = m ? Number(m[1]) : 0;
  if (headers["content-length"] !== undefined) {
    const n = Number(headers["content-length"]);
    if (rest.length < n && !closed) return undefined;
    return { status, headers, body: rest.subarray(0, n).toString("utf8"), raw: text, closed };
  }
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
    const body: Buffer[] = [];
    let off = 0;
    for (;;) {
      const nl = rest.indexOf("\r\n", off);
      if (nl === -1) return closed ? { status, headers, body: Buffer.concat(body).toString("utf8"), raw: text, closed } : undefined;
      const size = parseInt(rest.subarray(off, nl).toString("latin1"), 16);
      if (!Number.isFinite(size)) return { status, headers, body: Buffer.concat(body).toString("utf8"), raw: text, closed };
      if (size === 0) return { status, headers, body: Buffer.concat(body).toString("utf8"), raw: text, closed };
      if (rest.length < nl + 2 + size + 2) return closed ? { status, headers, body: Buffer.concat(body).toString("utf8"), raw: text, closed } : undefined;
      body.push(rest.subarray(nl + 2, nl + 2 + size));
      off = nl + 2 + size + 2;
    }
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, headers, body: "", raw: text, closed };
  return closed ? { status, headers, body: rest.toString("utf8"), raw: text, closed } : undefined;
}

/**
 * Send `head` (request line and headers, CRLF-separated, without the final blank line) and `body`.
 * A Content-Length is not added: write it into `head` when wanted.
 */
export function rawRequest(port: number, head: string, body: Buffer | string = "", opts: RawOptions = {}): Promise<RawResponse> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (r: RawResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ status: -1, headers: {}, body: "", raw: Buffer.concat(chunks).toString("latin1"), closed: false }), opts.timeoutMs ?? 15000);
    sock.on("data", (d) => {
      chunks.push(d);
      const r = parseResponse(Buffer.concat(chunks), false);
      if (r) finish(r);
    });
    const onEnd = (): void => finish(parseResponse(Buffer.concat(chunks), true) ?? { status: 0, headers: {}, body: "", raw: "", closed: true });
    sock.on("end", onEnd);
    sock.on("close", onEnd);
    sock.on("error", onEnd);
    sock.on("connect", () => {
      const b = Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
      sock.write(head + "\r\n\r\n");
      const limit = opts.stallAfterBytes !== undefined ? Math.min(opts.stallAfterBytes, b.length) : b.length;
      if (!opts.slowChunkBytes) {
        if (limit > 0) sock.write(b.subarray(0, limit));
        return;
      }
      let off = 0;
      const step = (): void => {
        if (done || sock.destroyed || off >= limit) return;
        const next = Math.min(limit, off + (opts.slowChunkBytes as number));
        sock.write(b.subarray(off, next));
        off = next;
        setTimeout(step, opts.slowDelayMs ?? 10);
      };
      step();
    });
  });
}

/** A request head: `METHOD target HTTP/1.1`, Host, the given headers, Content-Length of `body` unless told otherwise. */
export function head(method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | string): string {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  const hasLength = Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h));
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (!hasLength && body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return lines.join("\r\n");
}

/** True when `text` looks like a stack trace or Express's HTML error page (install paths, "at fn (file.js:1:2)"). */
export function looksLikeStackTrace(text: string): boolean {
  return /\bat [^\n]*\.js:\d+/.test(text) || /<pre>[A-Za-z]*Error/.test(text) || /node_modules[\\/]/.test(text);
}
