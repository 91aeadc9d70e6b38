/**
 * A virtual clock for schedulers (the rate budget, Twilio pacing): `clock` and `timerApi` are injected in place of
 * `performance.now()` and setTimeout, timers fire `lateness()` ms after they are due (0–4 ms at random by default, as
 * real ones do under load), and `sleep(ms)` is a request taking `ms` of virtual time. Every instant is exact and
 * independent of the machine's speed. Nothing here writes to the console.
 */
/** A virtual clock with timers that fire `lateness()` ms after they are due. */
export class VirtualTime {
  now = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private nextId = 1;
  wakeUps = 0;
  constructor(private readonly lateness: () => number = () => Math.random() * 4) {}
  readonly clock = (): number => this.now;
  readonly timerApi = {
    set: (fn: () => void, ms: number): unknown => {
      const id = this.nextId++;
      this.timers.push({ at: this.now + Math.max(0, ms) + this.lateness(), fn, id });
      return id;
    },
    clear: (h: unknown): void => {
      this.timers = this.timers.filter((t) => t.id !== h);
    },
  };
  /** Let promise callbacks run. */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
  /** Run until `done()` is true: settle, then jump to the next timer (or `sleepers`) and fire it. */
  async runUntil(done: () => boolean, maxSteps = 1e6): Promise<void> {
    for (let step = 0; step < maxSteps; step++) {
      await this.settle();
      if (done()) return;
      const next = [...this.timers, ...this.sleepers].sort((a, b) => a.at - b.at)[0];
      if (!next) throw new Error("nothing scheduled and not done");
      this.now = Math.max(this.now, next.at);
      this.timers = this.timers.filter((t) => t !== next);
      this.sleepers = this.sleepers.filter((t) => t !== next);
      if ("id" in next) this.wakeUps++;
      next.fn();
    }
    throw new Error("too many steps");
  }
  private sleepers: { at: number; fn: () => void }[] = [];
  /** A request that takes `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.sleepers.push({ at: this.now + ms, fn: r }));
  }
}
