/**
 * The generic watermark poller every ERP trigger's poll mode runs: a timer, the persisted {@link PollState}, the
 * {@link WatermarkWindow} that decides what is new, and catch-up in time slices. What differs per ERP is injected: the
 * window's time condition (conditions.ts), `read` (the client's listing through a page iterator, pages.ts, turning
 * rows into envelope events with a modified-time normaliser, modified-time.ts), and the state store.
 *
 * One poll ("tick"):
 * 1. load the state (or start it at `startFrom`, saved at once so a restart keeps the same start);
 * 2. upper bound `until` = the poll's start time, or, when the watermark lags more than `sliceMs` behind, one slice
 *    past the last slice read (`scannedUntil`): a long outage is caught up in bounded reads, not one huge listing;
 * 3. `read` every event of `filterFor(state, overlap, until)`; `accept` them; hand `fresh` to `deliver` and only then
 *    save the next state (acknowledged means durable: the watermark moves only past delivered events);
 * 4. repeat 2–3 while slices remain, then wait `intervalMs`.
 * Errors of a tick go to `onError`; the next tick runs after `intervalMs` all the same. Never two ticks at once.
 */
import { ErpEventMsg } from "../envelope";
import { ValidationError } from "../errors";
import { PollState, WatermarkWindow } from "./window";

/** One read the poller asks for. */
export interface PollRead {
  /** The filter text for the ERP (time condition, upper bound, user filter). */
  filter: string;
  /** Upper bound of this read, ms since the epoch. */
  untilMs: number;
  /** Aborted when the poller stops; a reader may pass it to its HTTP calls (the poller stops waiting either way). */
  signal?: AbortSignal;
}

/** Outcome of one slice, for status and tests. */
export interface PollSliceResult {
  fresh: number;
  duplicates: number;
  untilMs: number;
  /** True when this slice reached the poll's start time (no catch-up slice left). */
  last: boolean;
}

/** Options of {@link Poller}. */
export interface PollerOptions {
  window: WatermarkWindow;
  /** Time between the end of one tick and the start of the next, ms (≥ 1). */
  intervalMs: number;
  /** Loads the persisted state (undefined when none). */
  load: () => Promise<PollState | undefined>;
  /** Persists the state durably (awaited before the next slice). */
  save: (state: PollState) => Promise<void>;
  /** Where a first poll starts: ISO 8601 with offset, ms since the epoch, or "now" (default). */
  startFrom?: string | number;
  /** Reads every event of one window, all pages; events that cannot be read are reported by `read` itself. */
  read: (r: PollRead) => AsyncIterable<ErpEventMsg>;
  /** Hands fresh events on (oldest first); awaited before the state is saved. */
  deliver: (events: ErpEventMsg[]) => void | Promise<void>;
  /** Catch-up slice length, ms; default unbounded (one read per tick). */
  sliceMs?: number;
  /** Told about each finished slice (status display). Errors ignored. */
  onSlice?: (r: PollSliceResult) => void;
  /** Told about a failed tick. Must not throw. */
  onError: (err: unknown) => void;
  /** Clock in ms since the epoch (tests); default `Date.now`. */
  now?: () => number;
  /**
   * One poller among instances sharing the store (lease.ts): a tick runs only while `acquire()` resolves true, else
   * `onStandby` is told and the tick ends; released on stop. A failing `acquire` fails the tick (`onError`).
   */
  lease?: { acquire(): Promise<boolean>; release(): Promise<void> };
  onStandby?: () => void;
}

/** A running poll loop; {@link start} it, {@link stop} it on close. */
export class Poller {
  private readonly opts: PollerOptions;
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** Aborted by {@link stop}: the read in flight is abandoned (Node-RED gives a close 15 s, an ERP page may take 30). */
  private readonly abort = new AbortController();

  /** @throws ValidationError for an interval below 1 ms or a slice below 1 ms */
  constructor(opts: PollerOptions) {
    if (!(opts.intervalMs >= 1)) throw new ValidationError(`intervalMs must be ≥ 1, got ${String(opts.intervalMs)}`);
    if (opts.sliceMs !== undefined && !(opts.sliceMs >= 1)) throw new ValidationError(`sliceMs must be ≥ 1, got ${String(opts.sliceMs)}`);
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /** Start ticking; the first tick runs after `firstDelayMs` (default 0). */
  start(firstDelayMs = 0): void {
    this.schedule(firstDelayMs);
  }

  /**
   * Stop ticking and wait for a tick in progress: a slice being delivered or saved finishes; a read in flight is
   * abandoned (its events are neither delivered nor saved: the next start re-reads them from the watermark), so a
   * slow ERP does not hold Node-RED's close past its 15 s timeout. Idempotent; never rejects (a failing tick is
   * reported through `onError` by the timer, or to the caller of {@link tick}).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) await this.running.catch(() => undefined);
    await this.opts.lease?.release();
  }

  /**
   * Run one tick now (all catch-up slices), unless one is running: then wait for that one.
   * @throws what `load`, `read`, `deliver` or `save` throw; ValidationError for a bad `startFrom`
   */
  tick(): Promise<void> {
    if (!this.running) {
      this.running = this.runSlices().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick()
        .catch((err: unknown) => this.opts.onError(err))
        .finally(() => this.schedule(this.opts.intervalMs))
        .catch(() => undefined);
    }, delayMs);
  }

  private async initialState(): Promise<PollState> {
    const loaded = await this.opts.load();
    if (loaded && typeof loaded.watermark === "string") return loaded;
    const start = this.opts.startFrom ?? "now";
    const at = start === "now" || start === "" ? this.now() : typeof start === "number" ? start : Date.parse(start);
    if (!Number.isFinite(at)) throw new ValidationError(`Start time "${String(start)}" is not an ISO 8601 date-time`, { code: "bad_config" });
    const state = WatermarkWindow.initial(new Date(at).toISOString());
    await this.opts.save(state);
    return state;
  }

  /** Upper bound of the next slice: the tick's start, or one slice past what was read when catching up. */
  private sliceEnd(state: PollState, tickStart: number): number {
    const slice = this.opts.sliceMs;
    if (slice === undefined) return tickStart;
    const wm = state.watermark ? Date.parse(state.watermark) : Number.NaN;
    const scanned = state.scannedUntil ? Date.parse(state.scannedUntil) : Number.NaN;
    const from = Math.max(Number.isNaN(wm) ? -Infinity : wm, Number.isNaN(scanned) ? -Infinity : scanned);
    return Number.isFinite(from) ? Math.min(tickStart, from + slice) : tickStart;
  }

  /**
   * Every event of one read into `into`, unless {@link stop} aborts it first.
   * @returns false when aborted: the read in flight finishes in the background and nothing of it is used
   */
  private async readAll(r: PollRead, into: ErpEventMsg[]): Promise<boolean> {
    const signal = this.abort.signal;
    if (signal.aborted) return false;
    const it = this.opts.read(r)[Symbol.asyncIterator]();
    let onAbort = (): void => undefined;
    const aborted = new Promise<"aborted">((resolve) => {
      onAbort = () => resolve("aborted");
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      for (;;) {
        const next = it.next();
        const step = await Promise.race([next, aborted]);
        if (step === "aborted") {
          next.then(() => it.return?.(), () => undefined).catch(() => undefined);
          return false;
        }
        if (step.done) return true;
        into.push(step.value);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  private async runSlices(): Promise<void> {
    if (this.opts.lease && !(await this.opts.lease.acquire())) {
      this.opts.onStandby?.();
      return;
    }
    let state = await this.initialState();
    const tickStart = this.now();
    for (;;) {
      const untilMs = this.sliceEnd(state, tickStart);
      const filter = this.opts.window.filterFor(state, undefined, untilMs);
      const events: ErpEventMsg[] = [];
      if (!(await this.readAll({ filter, untilMs, signal: this.abort.signal }, events))) return;
      const { fresh, next, duplicates } = this.opts.window.accept(state, events);
      await this.opts.deliver(fresh);
      const last = untilMs >= tickStart;
      // scannedUntil is kept after the last slice too: the next tick then starts one slice after it, not at a
      // watermark that lags behind because nothing changed
      state = { ...next, scannedUntil: new Date(untilMs).toISOString() };
      await this.opts.save(state);
      try {
        this.opts.onSlice?.({ fresh: fresh.length, duplicates, untilMs, last });
      } catch {
        // display only
      }
      if (last || this.stopped) return;
    }
  }
}
