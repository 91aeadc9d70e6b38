/**
 * The one HTTP client of the package: undici with a keep-alive pool per owner (one per config node),
 * per-request timeouts, and retries that are safe by construction.
 *
 * Retry rules (what is repeated and what never is):
 * - 429 (the server says it did not process the request): repeated for every method, waiting for
 *   `Retry-After` when sent, else capped exponential backoff with full jitter (unless `isFinal` says the answer is final).
 * - Failures before the request left (connection refused, DNS, connect timeout): repeated for every method.
 * - 502/503/504 and failures after the request left (reset, headers/body timeout): repeated only when the
 *   request is idempotent (GET/HEAD/PUT/DELETE by default, or `idempotent: true`). For a non-idempotent
 *   request (a POST that sends an SMS) the outcome is unknown: a {@link TimeoutError} with
 *   `outcomeUnknown: true` is thrown so the caller reconciles instead of sending twice.
 * Any other status is returned to the caller, which maps it to its vendor's typed error.
 */
import { PeerCertificate, checkServerIdentity } from "node:tls";
import { Agent, request as undiciRequest } from "undici";
import { MlcError, TimeoutError, ValidationError } from "./errors";
import { DEFAULT_RETRY_POLICY, RetryPolicy, backoffDelay, parseRetryAfter, sleep } from "./retry";

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface HttpRequest {
  method: HttpMethod;
  /** Absolute URL including the query string. */
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Whether repeating the request can cause no second effect. Default: true for GET/HEAD/PUT/DELETE. */
  idempotent?: boolean;
  /** Whole-request timeout for this call, ms (overrides the client's). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * True for a response that is final although its status is normally retried: e.g. Twilio Verify's 429 with
   * 60202/60203 is an attempt limit, not load, and a repeat would meet a deleted verification. Default: none.
   */
  isFinal?: (res: HttpResponse) => boolean;
}

export interface HttpResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  /** Raw body text (UTF-8). */
  body: string;
  /** Number of attempts it took (1 = first try). */
  attempts: number;
}

export interface HttpClientOptions {
  /** Whole-request timeout, ms. Default 30000. */
  timeoutMs?: number;
  /** Connect timeout, ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Max sockets per origin. Default 8. */
  connections?: number;
  /** Idle keep-alive socket lifetime, ms. Default 30000. */
  keepAliveTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** Called before each retry (for node status / logs). Never receives headers or bodies. */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string; url: string }) => void;
  /** TLS trust for this client only (never process-wide); verification always stays on. */
  tls?: HttpTlsOptions;
}

/**
 * Per-client TLS trust, passed to this client's undici `Agent` as `connect` options (Node `tls.connect`), like
 * Node-RED's `tls-config` node: nothing process-wide (`NODE_TLS_REJECT_UNAUTHORIZED`, global agents) is touched.
 * Chain and host-name verification always stay on; a pin is checked in addition, never instead.
 */
export interface HttpTlsOptions {
  /**
   * PEM CA certificate(s) to trust, e.g. an on-premises SAP Business One Service Layer's self-signed certificate.
   * Replaces Node's built-in root CAs for this client (as `tls.connect({ ca })` does).
   */
  ca?: string | string[];
  /**
   * SHA-256 fingerprint(s) of the server's leaf certificate, hex with or without colons (as `openssl x509
   * -fingerprint -sha256` prints it); the connection is refused when the certificate matches none.
   */
  pinSha256?: string | string[];
}

/** Error codes of a refused TLS handshake (Node / OpenSSL verification and our pin check): never retried. */
const TLS_REFUSED_RE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|^ERR_TLS_/;

/** Normalised fingerprint: 64 lower-case hex digits. @throws ValidationError when it is not a SHA-256 fingerprint */
function normalisePin(pin: string): string {
  const hex = String(pin).replace(/[:\s]/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new ValidationError("TLS pin must be a SHA-256 certificate fingerprint (64 hex digits, colons allowed)");
  return hex;
}

/** undici `connect` options for {@link HttpTlsOptions}. @throws ValidationError for a malformed pin or an empty CA */
function tlsConnectOptions(tls: HttpTlsOptions | undefined): Record<string, unknown> {
  if (!tls) return {};
  const out: Record<string, unknown> = { rejectUnauthorized: true };
  if (tls.ca !== undefined) {
    const ca = (Array.isArray(tls.ca) ? tls.ca : [tls.ca]).filter((c) => typeof c === "string" && c.includes("-----BEGIN CERTIFICATE-----"));
    if (!ca.length) throw new ValidationError("TLS CA must be PEM text (-----BEGIN CERTIFICATE-----)");
    out.ca = ca;
  }
  if (tls.pinSha256 !== undefined) {
    const pins = new Set((Array.isArray(tls.pinSha256) ? tls.pinSha256 : [tls.pinSha256]).map(normalisePin));
    out.checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined => {
      const err = checkServerIdentity(host, cert);
      if (err) return err;
      const got = String(cert.fingerprint256 ?? "").replace(/:/g, "").toLowerCase();
      if (pins.has(got)) return undefined;
      return Object.assign(new Error("server certificate does not match the pinned SHA-256 fingerprint"), { code: "ERR_TLS_PIN_MISMATCH" });
    };
  }
  return out;
}

const CONNECT_PHASE_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT", "EHOSTUNREACH", "ENETUNREACH"]);

function errorCodeOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR_SOCKET") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as { code?: string }).code;
}

/** Strip user-info and the query string, so a URL is safe for messages and logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}

/**
 * One keep-alive pool with the retry rules above. `new HttpClient(opts)` throws ValidationError for malformed TLS
 * settings ({@link HttpTlsOptions}: a pin that is not 64 hex digits, a CA that is not PEM).
 */
export class HttpClient {
  private readonly agent: Agent;
  private readonly policy: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly onRetry?: HttpClientOptions["onRetry"];
  private closed = false;

  constructor(opts: HttpClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30000;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...(opts.retry ?? {}) };
    this.onRetry = opts.onRetry;
    this.agent = new Agent({
      connections: opts.connections ?? 8,
      keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30000,
      connect: { timeout: opts.connectTimeoutMs ?? 10000, ...tlsConnectOptions(opts.tls) },
    });
  }

  /**
   * Send a request, retrying only what is safe (see module doc).
   * @returns the final response, whatever its status (429 only after the retry budget is spent)
   * @throws TimeoutError when no answer came: `outcomeUnknown` true if the request had left
   */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const idempotent = req.idempotent ?? ["GET", "HEAD", "PUT", "DELETE"].includes(req.method);
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= this.policy.maxAttempts;
      let res: HttpResponse | undefined;
      let failure: unknown;
      try {
        res = await this.once(req, attempt + 1);
      } catch (err) {
        failure = err;
      }
      if (res) {
        const retryable = (res.status === 429 || (idempotent && [502, 503, 504].includes(res.status))) && !req.isFinal?.(res);
        if (!retryable || last) return res;
        const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
        if (retryAfterMs !== undefined && retryAfterMs > this.policy.maxRetryAfterMs) return res;
        const delayMs = backoffDelay(attempt, this.policy, retryAfterMs);
        this.onRetry?.({ attempt: attempt + 1, delayMs, reason: `HTTP ${res.status}`, url: safeUrl(req.url) });
        await sleep(delayMs, req.signal);
        continue;
      }
      if (req.signal?.aborted) throw failure;
      const code = errorCodeOf(failure) ?? "unknown";
      if (TLS_REFUSED_RE.test(code)) {
        // the request never left; repeating cannot change the certificate
        throw new MlcError(`TLS refused for ${safeUrl(req.url)}: the server certificate is not trusted by this connection's settings (${code})`, {
          code: "tls_refused",
          retryable: false,
          cause: failure,
        });
      }
      const beforeSend = CONNECT_PHASE_CODES.has(code);
      if (!(beforeSend || idempotent) || last || this.closed) {
        throw new TimeoutError(
          beforeSend
            ? `Could not connect to ${safeUrl(req.url)} (${code})`
            : `No complete answer from ${safeUrl(req.url)} (${code})${idempotent ? "" : "; the request may have been processed"}`,
          { outcomeUnknown: !beforeSend, code: beforeSend ? "connect_failed" : "timeout", cause: failure },
        );
      }
      const delayMs = backoffDelay(attempt, this.policy);
      this.onRetry?.({ attempt: attempt + 1, delayMs, reason: code, url: safeUrl(req.url) });
      await sleep(delayMs, req.signal);
    }
  }

  private async once(req: HttpRequest, attempts: number): Promise<HttpResponse> {
    // One timer cleared when the answer is in: AbortSignal.timeout cost ~5 µs a request and left each timer pending
    // for the whole timeout (15 s of Twilio creates at 1,000/s: 15,000 live timers).
    const timeoutCtl = new AbortController();
    const timeout = timeoutCtl.signal;
    const timer = setTimeout(() => timeoutCtl.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")), req.timeoutMs ?? this.timeoutMs);
    timer.unref();
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    try {
      const r = await undiciRequest(req.url, {
        dispatcher: this.agent,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal,
      });
      const body = await r.body.text();
      return { status: r.statusCode, headers: r.headers as HttpResponse["headers"], body, attempts };
    } catch (err) {
      if (timeout.aborted && !req.signal?.aborted) {
        const e = new Error("request timed out") as Error & { code: string };
        e.code = "UND_ERR_HEADERS_TIMEOUT";
        throw e;
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Close the pool (idle sockets at once, busy ones after their request). */
  async close(): Promise<void> {
    this.closed = true;
    await this.agent.close();
  }
}
