/**
 * RateHeaderSim: an API that counts requests in fixed windows and tells its clients so in every answer, the way
 * Exact Online does (reference: /work/shared/reference/exact-online.md §5). 127.0.0.1, port 0.
 *
 * - `GET /api/v1/{division}/items`: `{"d":{"results":[]}}` with `X-RateLimit-Minutely-Limit/-Remaining/-Reset` and
 *   `X-RateLimit-Limit/-Remaining/-Reset`; resets are Unix epoch ms, the end of the current fixed window (Exact's
 *   minutely reset falls on the minute; the daily one at midnight).
 * - Over the minutely limit: 429 with only the minutely headers and no `Retry-After` (as Exact answers); over the
 *   daily limit: 429 with both sets. A refused request is not counted.
 * - The window lengths are options (Exact: 60000 ms and 86400000 ms) so a test can run a window in a second; the
 *   answers keep Exact's shape whatever the length.
 * - `injectUnavailable(seconds, n)`: the next `n` requests answer 503 with `Retry-After: <seconds>`, not counted.
 * - Ledger `requests`: every request's arrival (epoch ms) and status.
 */
import http from "node:http";
import { SimServer, splitUrl, writeJson } from "./http-server";

export interface RateHeaderSimOptions {
  /** Requests per minutely window. Default 60 (Exact). */
  perMinute?: number;
  /** Length of the "minutely" window, ms. Default 60000. */
  minuteMs?: number;
  /** Requests per daily window. Default 5000 (Exact). */
  perDay?: number;
  /** Length of the "daily" window, ms. Default 86400000. */
  dayMs?: number;
  /** Wall clock, epoch ms. Default Date.now. */
  now?: () => number;
}

/** One request the simulator answered. */
export interface RateHeaderSimRequest {
  at: number;
  status: number;
}

/** The simulator; `start()` → origin. */
export class RateHeaderSim {
  readonly requests: RateHeaderSimRequest[] = [];
  private readonly perMinute: number;
  private readonly minuteMs: number;
  private readonly perDay: number;
  private readonly dayMs: number;
  private readonly now: () => number;
  private minute = { index: -1, used: 0 };
  private day = { index: -1, used: 0 };
  private unavailable: { seconds: number; left: number } = { seconds: 0, left: 0 };
  private readonly server = new SimServer({ name: "RateHeaderSim", handler: (req, res) => this.handle(req, res) });

  constructor(opts: RateHeaderSimOptions = {}) {
    this.perMinute = opts.perMinute ?? 60;
    this.minuteMs = opts.minuteMs ?? 60000;
    this.perDay = opts.perDay ?? 5000;
    this.dayMs = opts.dayMs ?? 86400000;
    this.now = opts.now ?? Date.now;
  }

  start(): Promise<string> {
    return this.server.start();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  get url(): string {
    return this.server.url;
  }

  /** Clear the ledger, the counters and pending faults. */
  reset(): void {
    this.requests.length = 0;
    this.minute = { index: -1, used: 0 };
    this.day = { index: -1, used: 0 };
    this.unavailable = { seconds: 0, left: 0 };
  }

  /** The next `n` requests answer 503 with `Retry-After: <seconds>`. */
  injectUnavailable(seconds: number, n = 1): void {
    this.unavailable = { seconds, left: n };
  }

  /** Requests refused with 429. */
  get rejected429(): number {
    return this.requests.filter((r) => r.status === 429).length;
  }

  /** Arrival instants (epoch ms) of the requests served 200. */
  served(): number[] {
    return this.requests.filter((r) => r.status === 200).map((r) => r.at);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const at = this.now();
    const { path } = splitUrl(req.url);
    if (req.method !== "GET" || !/^\/api\/v1\/\d+\/items$/.test(path)) return this.answer(res, at, 404, { error: { code: "", message: { lang: "", value: "Not found" } } });
    if (this.unavailable.left > 0) {
      this.unavailable.left--;
      res.setHeader("Retry-After", String(this.unavailable.seconds));
      return this.answer(res, at, 503, { error: { code: "", message: { lang: "", value: "Service unavailable" } } });
    }
    this.roll(at);
    const minuteFull = this.minute.used >= this.perMinute;
    const dayFull = this.day.used >= this.perDay;
    if (!minuteFull && !dayFull) {
      this.minute.used++;
      this.day.used++;
    }
    this.setMinutely(res);
    if (!minuteFull || dayFull) this.setDaily(res);
    if (minuteFull || dayFull) return this.answer(res, at, 429, { error: { code: "", message: { lang: "", value: "Too many requests" } } });
    this.answer(res, at, 200, { d: { results: [] } });
  }

  private roll(at: number): void {
    const m = Math.floor(at / this.minuteMs);
    if (m !== this.minute.index) this.minute = { index: m, used: 0 };
    const d = Math.floor(at / this.dayMs);
    if (d !== this.day.index) this.day = { index: d, used: 0 };
  }

  private setMinutely(res: http.ServerResponse): void {
    res.setHeader("X-RateLimit-Minutely-Limit", String(this.perMinute));
    res.setHeader("X-RateLimit-Minutely-Remaining", String(Math.max(0, this.perMinute - this.minute.used)));
    res.setHeader("X-RateLimit-Minutely-Reset", String((this.minute.index + 1) * this.minuteMs));
  }

  private setDaily(res: http.ServerResponse): void {
    res.setHeader("X-RateLimit-Limit", String(this.perDay));
    res.setHeader("X-RateLimit-Remaining", String(Math.max(0, this.perDay - this.day.used)));
    res.setHeader("X-RateLimit-Reset", String((this.day.index + 1) * this.dayMs));
  }

  private answer(res: http.ServerResponse, at: number, status: number, body: unknown): void {
    this.requests.push({ at, status });
    writeJson(res, status, body);
  }
}
