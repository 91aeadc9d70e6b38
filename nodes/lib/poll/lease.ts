/**
 * One poller per trigger across instances: a lease in the shared store. The holder polls; the others stand by and
 * try again at each of their ticks; when the holder dies its lease expires after `ttlMs` and the next tick of another
 * instance takes it and continues from the shared watermark.
 *
 * - acquire: `SET key holder NX PX ttlMs`; when the key exists and holds our id, its expiry is extended (a
 *   compare-and-set: Lua on Redis, `renewIf`), so only the holder can renew.
 * - while held, renewed every `ttlMs / 3` (a long catch-up tick keeps it);
 * - release (node closed): deleted only if still ours (compare-and-delete).
 * - lost: a renewal that finds another holder (or fails: the store is unreachable) drops it; the tick in progress
 *   finishes (its events are journaled, so a second poller's overlap is harmless) and the next one stands by.
 * On a store of one process (LMDB, memory, …) the lease is always held and nothing is written.
 * (Redis: https://redis.io/docs/latest/develop/use/patterns/distributed-locks/, single-instance form.)
 */
import { randomUUID } from "node:crypto";
import { isSharedKv, type SharedKvStore } from "../shared-store";
import type { KvBackend } from "../store";

export interface LeaseOptions {
  /** Lease lifetime, ms: how long a dead holder blocks the others. */
  ttlMs: number;
  /** Holder id; default a random UUID per lease object. */
  holder?: string;
  /** Told when the lease is taken or lost (status display). Must not throw. */
  onChange?: (held: boolean) => void;
}

export class Lease {
  readonly holder: string;
  private readonly kv?: SharedKvStore;
  private readonly json: string;
  private renewer?: NodeJS.Timeout;
  private isHeld: boolean;

  /**
   * @param backend the trigger's store; a lease needs a shared one, on any other it is always held
   * @param key row key of the lease in that store's scope
   */
  constructor(
    backend: KvBackend,
    private readonly key: string,
    private readonly opts: LeaseOptions,
  ) {
    this.holder = opts.holder ?? randomUUID();
    this.json = JSON.stringify(this.holder);
    this.kv = isSharedKv(backend) ? backend : undefined;
    this.isHeld = this.kv === undefined;
  }

  /** Whether the lease can be contended (the store is shared). */
  get shared(): boolean {
    return this.kv !== undefined;
  }

  get held(): boolean {
    return this.isHeld;
  }

  private set(held: boolean): void {
    if (held === this.isHeld) return;
    this.isHeld = held;
    if (held) this.startRenewing();
    else this.stopRenewing();
    try {
      this.opts.onChange?.(held);
    } catch {
      /* display only */
    }
  }

  /**
   * Take the lease if free, or extend it if ours.
   * @returns whether this process holds it now
   * @throws what the store throws (unreachable): the caller treats it as not held
   */
  async acquire(): Promise<boolean> {
    const kv = this.kv;
    if (!kv) return true;
    const ok = (await kv.claim(this.key, this.holder, this.opts.ttlMs)) || (await kv.renewIf(this.key, this.json, this.opts.ttlMs));
    this.set(ok);
    return ok;
  }

  /** Give the lease up (only if still ours). Never rejects. */
  async release(): Promise<void> {
    this.stopRenewing();
    const kv = this.kv;
    if (!kv || !this.isHeld) return;
    this.set(false);
    await kv.removeFrom(this.key, undefined, this.json).catch(() => undefined);
  }

  private startRenewing(): void {
    if (this.renewer || !this.kv) return;
    const kv = this.kv;
    this.renewer = setInterval(
      () => {
        kv.renewIf(this.key, this.json, this.opts.ttlMs).then(
          (ok) => this.set(ok),
          () => this.set(false),
        );
      },
      Math.max(50, Math.floor(this.opts.ttlMs / 3)),
    );
    this.renewer.unref();
  }

  private stopRenewing(): void {
    if (this.renewer) clearInterval(this.renewer);
    this.renewer = undefined;
  }
}

/** Lease lifetime for a poll interval: twice the interval plus 10 s, at least 15 s (ms). */
export function leaseTtlFor(intervalMs: number): number {
  return Math.max(15000, 2 * intervalMs + 10000);
}
