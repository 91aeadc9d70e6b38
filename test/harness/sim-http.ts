/**
 * HTTP helpers shared by the simulator tests (test/unit/twilio-sim*.test.ts, test/unit/sendgrid-sim.test.ts):
 *
 * - {@link call}, {@link basic}, {@link form}: talk to a simulator's REST API over real HTTP (`fetch`) the way
 *   Twilio's clients do (HTTP Basic auth, `application/x-www-form-urlencoded` bodies, repeated keys for lists;
 *   /work/shared/reference/twilio.md §2–§3);
 * - {@link Receiver}, {@link useReceiver}: a loopback server that records the webhooks a simulator sends and answers
 *   them (plain "ok", or TwiML per path);
 * - {@link useSim}: a simulator started, reset and stopped by the mocha hooks of a `describe`;
 * - {@link SimRequestClient}, {@link simTwilio}: the official twilio-node client pointed at a simulator;
 * - {@link RFC2822}: Twilio's REST date format.
 *
 * Nothing here writes to the console.
 */
import type http from "node:http";
import twilio from "twilio";
import type TwilioRequestClient from "twilio/lib/base/RequestClient";
import { SimServer, readBody, splitUrl } from "../sims/http-server";

// ---------------------------------------------------------------------------------------------------------------------
// REST requests
// ---------------------------------------------------------------------------------------------------------------------

/** One answer of {@link call}. */
export interface HttpResult {
  /** HTTP status. */
  status: number;
  /** Response headers (`headers.get("retry-after")`). */
  headers: Headers;
  /** Parsed JSON body; `null` when the body is empty. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** `Authorization` header value for HTTP Basic auth: `"Basic " + base64("<user>:<pass>")`. */
export function basic(user: string, pass: string): string {
  return "Basic " + Buffer.from(`${user}:${pass}`).toString("base64");
}

/** A form-urlencoded body; an array value repeats its key once per element (Twilio's list parameters, e.g. `MediaUrl`). */
export function form(fields: Record<string, string | string[]>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
  return p.toString();
}

/** Options of {@link call}. */
export interface CallOptions {
  /** HTTP method; default POST with a body, GET without. */
  method?: string;
  /** `Authorization` header value, e.g. from {@link basic}; none when absent. */
  auth?: string;
  /** Request body as sent. */
  body?: string;
  /** `Content-Type` of the body; default `application/x-www-form-urlencoded`. */
  contentType?: string;
  /** Aborts the request (e.g. `AbortSignal.timeout(100)`). */
  signal?: AbortSignal;
}

/**
 * One request with `Accept: application/json`; the body is read whole and parsed as JSON.
 * @throws when the connection fails or is dropped, when `signal` aborts, or when a non-empty body is not JSON
 */
export async function call(url: string, opts: CallOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.auth) headers.Authorization = opts.auth;
  if (opts.body !== undefined) headers["Content-Type"] = opts.contentType ?? "application/x-www-form-urlencoded";
  const res = await fetch(url, { method: opts.method ?? (opts.body !== undefined ? "POST" : "GET"), headers, body: opts.body, signal: opts.signal });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null };
}

// ---------------------------------------------------------------------------------------------------------------------
// webhook receiver
// ---------------------------------------------------------------------------------------------------------------------

/** One request a {@link Receiver} got. */
export interface Received {
  method: string;
  /** Path + query as received. */
  url: string;
  /** Request headers (names in lower case). */
  headers: http.IncomingHttpHeaders;
  /** The body bytes as received (what a signature over the raw body is checked against). */
  raw: Buffer;
  /** The body as UTF-8. */
  rawBody: string;
  /** The body read as form-urlencoded (the last value of a repeated key); `{}` without a body. */
  params: Record<string, string>;
}

/** A fixed answer of a {@link Receiver} for one path. */
export interface ReceiverRoute {
  /** HTTP status; default 200. */
  status?: number;
  /** Body, sent as `text/xml` (TwiML). */
  body: string;
}

/**
 * A webhook receiver on 127.0.0.1, ephemeral port, that records every request in `received` (before answering it).
 * A path (without query) in `routes` is answered with its {@link ReceiverRoute}; every other request with the current
 * status (`setStatus`; initially the constructor's, default 200), `text/plain` "ok".
 */
export class Receiver {
  /** Every request, in arrival order. */
  readonly received: Received[] = [];
  /** Fixed answers by path, e.g. `routes.set("/twiml", { body: "<Response/>" })`. */
  readonly routes = new Map<string, ReceiverRoute>();
  private answer: number;
  private readonly server = new SimServer({ name: "Receiver", handler: (req, res) => this.handle(req, res) });

  /** @param status HTTP status of requests outside `routes` until `setStatus`/`reset` */
  constructor(private readonly status = 200) {
    this.answer = status;
  }

  /** `http://127.0.0.1:<port>`; throws `Error("Receiver not started")` when not listening. */
  get base(): string {
    return this.server.url;
  }

  /** Listen; resolves {@link base}. Idempotent. */
  start(): Promise<string> {
    return this.server.start();
  }

  /** Answer requests outside `routes` with HTTP `status` from now on. */
  setStatus(status: number): void {
    this.answer = status;
  }

  /** Forget the received requests and the routes; answer the constructor's status again. */
  reset(): void {
    this.received.length = 0;
    this.routes.clear();
    this.answer = this.status;
  }

  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void> {
    return this.server.stop();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const rawBody = raw.toString("utf8");
    const url = req.url ?? "";
    this.received.push({ method: req.method ?? "", url, headers: req.headers, raw, rawBody, params: Object.fromEntries(new URLSearchParams(rawBody)) });
    const route = this.routes.get(splitUrl(url).path);
    if (route) {
      res.writeHead(route.status ?? 200, { "Content-Type": "text/xml" });
      res.end(route.body);
    } else {
      res.writeHead(this.answer, { "Content-Type": "text/plain" });
      res.end("ok");
    }
  }
}

/**
 * A {@link Receiver} for the enclosing mocha `describe`, with its hooks registered there: started before all tests,
 * `reset()` before each, closed after all. Use `base` only once the hooks ran (inside hooks and tests).
 * @param status HTTP status of requests outside `routes` (default 200)
 */
export function useReceiver(status = 200): Receiver {
  const rx = new Receiver(status);
  before(() => rx.start());
  beforeEach(() => rx.reset());
  after(() => rx.close());
  return rx;
}

// ---------------------------------------------------------------------------------------------------------------------
// simulator lifecycle
// ---------------------------------------------------------------------------------------------------------------------

/** What {@link useSim} drives: a simulator of test/sims (`TwilioSim`, `SendGridSim`, …). */
export interface Sim {
  /** Listen; resolves the base URL. Idempotent. */
  start(): Promise<string>;
  /** Clear ledgers, requests and pending faults. */
  reset(): void;
  /** Close the server. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Registers the enclosing mocha `describe`'s hooks for `sim`: started before all tests (before the describe's own
 * `before` hooks registered after this call, so those can read `sim.url`), `reset()` before each, stopped after all.
 * @returns `sim`
 */
export function useSim<S extends Sim>(sim: S): S {
  before(() => sim.start());
  beforeEach(() => sim.reset());
  after(() => sim.stop());
  return sim;
}

// ---------------------------------------------------------------------------------------------------------------------
// official twilio-node client
// ---------------------------------------------------------------------------------------------------------------------

/**
 * twilio-node has no base-URL option; its supported hook is `opts.httpClient` (reference §8). This request client sends
 * every `https://<host>.twilio.com` request (api., verify., …) to `base` instead, path and query unchanged.
 */
export class SimRequestClient extends twilio.RequestClient {
  /** @param base simulator origin, e.g. `http://127.0.0.1:<port>` */
  constructor(private readonly base: string) {
    super();
  }
  override request<T>(opts: TwilioRequestClient.RequestOptions<T>) {
    return super.request<T>({ ...opts, uri: opts.uri.replace(/^https:\/\/[a-z0-9.-]+\.twilio\.com/, this.base) });
  }
}

/**
 * The official client `twilio(username, password, opts)` talking to the simulator at `base` through a
 * {@link SimRequestClient}.
 * @param username Account SID or API key SID (then `opts.accountSid`)
 * @param password Auth Token or API key secret
 */
export function simTwilio(base: string, username: string, password: string, opts: Parameters<typeof twilio>[2] = {}): twilio.Twilio {
  return twilio(username, password, { ...opts, httpClient: new SimRequestClient(base) });
}

// ---------------------------------------------------------------------------------------------------------------------
// formats
// ---------------------------------------------------------------------------------------------------------------------

/** Twilio's REST date format (RFC 2822 in UTC), e.g. `Mon, 02 Mar 2026 10:00:00 +0000`. */
export const RFC2822 = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$/;
