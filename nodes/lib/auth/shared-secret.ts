/**
 * One connection's secret (Exact's rotating refresh token, an Acumatica grant, SAP B1 session cookies) shared by the
 * Node-RED instances of one shared store (Redis, nodes/store/redis-kv.ts), with a lock that makes a renewal
 * single-flight across them.
 *
 * - Encrypted exactly like the token file (nodes/lib/auth/token-file.ts, itself Node-RED's credentials scheme:
 *   AES-256-CTR, key = SHA-256(credential secret)); never plain text in Redis unless `credentialSecret: false`. Every
 *   instance must therefore run with the same `credentialSecret` (they already need it to read one `flows_cred.json`).
 * - Keyed by the connection, not the node: `secret_<sha256(key fingerprint + binding)>`, where `binding` is vendor +
 *   URL + company/tenant + user, so every instance's config node for the same connection finds it; instances with
 *   another credential secret use other rows (they could not read these), and a value stored for another binding
 *   reads as absent.
 * - Lock: `SET lock_<hash> <owner> NX PX lockTtlMs` to take it, compare-and-delete (Lua, `removeFrom` with the owner's
 *   JSON) to release it, so only the owner releases and a dead owner's lock expires after `lockTtlMs`
 *   (Redis: https://redis.io/docs/latest/develop/use/patterns/distributed-locks/, single-instance form, as
 *   nodes/lib/poll/lease.ts). A waiter polls every `pollMs`, then re-reads the secret the holder stored.
 * - Holders (sessions the vendor counts: sign out once, by the last instance): each instance that holds the session
 *   keeps a row `holder_<hash>_<instance>` that expires after `holderTtlMs` unless renewed (every third of it), so a
 *   crashed instance stops counting; {@link SharedSecret.leave} drops ours under the lock and runs the sign-out only
 *   when no other live holder remains.
 */
import { createHash, randomUUID } from "node:crypto";
import { MlcError } from "../errors";
import type { SharedKvStore } from "../shared-store";
import { seal, sealKey, unseal } from "./token-file";

/** Options of {@link SharedSecret}. */
export interface SharedSecretOptions {
  /** The shared store (a scope of it reserved for connections, e.g. `mlc-auth`). */
  kv: SharedKvStore;
  /** Identity of the connection: vendor, URL, company/tenant, user (hashed into the key; never stored in clear). */
  binding: string;
  /** Node-RED's credential secret; `false` stores the value unencrypted (as Node-RED's credentials then are). */
  secret: string | false;
  /** Lifetime of the renewal lock, ms: how long a dead holder blocks the others; default 60000. */
  lockTtlMs?: number;
  /** How long a waiter waits for the lock before giving up, ms; default lockTtlMs + 5000. */
  waitMs?: number;
  /** Poll interval of a waiter, ms; default 100. */
  pollMs?: number;
  /** Lifetime of an instance's holder row, ms (how long a crashed instance still counts as a holder); default 60000. */
  holderTtlMs?: number;
}

interface Stored<T> {
  binding: string;
  value: T;
  savedAt: string;
}

/** The shared, encrypted secret of one connection and its renewal lock (see module doc). */
export class SharedSecret<T> {
  private readonly key?: Buffer;
  private readonly binding: string;
  private readonly rowKey: string;
  private readonly lockKey: string;
  /** This instance's holder row (one per SharedSecret object). */
  private readonly holderKey: string;
  private renewer?: NodeJS.Timeout;

  constructor(private readonly opts: SharedSecretOptions) {
    this.key = sealKey(opts.secret);
    // the key's fingerprint is part of the row names: instances with another credential secret (which could not read
    // these rows) form their own group instead of overwriting each other's sessions
    const fingerprint = this.key ? createHash("sha256").update(this.key).digest("hex") : "plain";
    this.binding = createHash("sha256").update(`${fingerprint}\u0000${opts.binding}`).digest("hex");
    this.rowKey = `secret_${this.binding}`;
    this.lockKey = `lock_${this.binding}`;
    this.holderKey = `holder_${this.binding}_${randomUUID()}`;
  }

  /** Whether this instance counts as a holder (between {@link join} and {@link leave}). */
  get joined(): boolean {
    return this.renewer !== undefined;
  }

  /**
   * Count this instance as a holder of the session (idempotent); the row is renewed every third of `holderTtlMs`
   * while joined (a failed renewal is retried at the next). @throws what the store throws (the caller may retry)
   */
  async join(): Promise<void> {
    const ttl = this.opts.holderTtlMs ?? 60_000;
    await this.opts.kv.set(this.holderKey, 1, ttl);
    if (this.renewer) return;
    this.renewer = setInterval(() => void this.opts.kv.set(this.holderKey, 1, ttl).catch(() => undefined), Math.max(50, Math.floor(ttl / 3)));
    this.renewer.unref();
  }

  /**
   * Stop holding the session: under the lock, drop our holder row; when no other live holder remains, run
   * `signOut` (the caller's logout) and remove the shared value.
   * @returns whether this instance was the last holder (and `signOut` ran)
   * @throws what the store throws or what `signOut` throws (the holder row is dropped either way when reachable)
   */
  async leave(signOut: () => Promise<void>): Promise<boolean> {
    if (this.renewer) clearInterval(this.renewer);
    this.renewer = undefined;
    return this.exclusive(async () => {
      await this.opts.kv.delete(this.holderKey);
      for await (const [k] of this.opts.kv.scan(`holder_${this.binding}_`)) if (k !== this.holderKey) return false;
      await signOut();
      await this.remove();
      return true;
    });
  }

  /**
   * The stored value, or undefined (absent, stored for another binding, or sealed with another secret).
   * @throws what the store throws (MlcError `store_unavailable` when Redis is unreachable)
   */
  async read(): Promise<T | undefined> {
    const raw = await this.opts.kv.get(this.rowKey);
    if (raw === undefined) return undefined;
    let stored: Stored<T> | undefined;
    try {
      stored = unseal<Stored<T>>(raw, this.key);
    } catch {
      return undefined;
    }
    return stored && stored.binding === this.binding ? stored.value : undefined;
  }

  /** Store `value` (replacing the previous one). Resolves once the store applied it. @throws as {@link read} */
  write(value: T): Promise<void> {
    const stored: Stored<T> = { binding: this.binding, value, savedAt: new Date().toISOString() };
    return this.opts.kv.set(this.rowKey, seal(stored, this.key));
  }

  /** Forget the value (the grant or session ended). @throws as {@link read} */
  async remove(): Promise<void> {
    await this.opts.kv.delete(this.rowKey);
  }

  /**
   * Run `fn` while holding the connection's lock (single-flight across instances); waits while another holds it.
   * The lock is released (only if still ours) when `fn` settles, whatever its outcome.
   * @returns what `fn` returns
   * @throws MlcError `auth_busy` (retryable) when the lock stayed taken for `waitMs`; what the store throws; what `fn` throws
   */
  async exclusive<R>(fn: () => Promise<R>): Promise<R> {
    const owner = randomUUID();
    const ttl = this.opts.lockTtlMs ?? 60_000;
    const deadline = Date.now() + (this.opts.waitMs ?? ttl + 5000);
    while (!(await this.opts.kv.claim(this.lockKey, owner, ttl))) {
      if (Date.now() >= deadline) throw new MlcError("Another Node-RED instance is renewing this connection's sign-in; try again", { code: "auth_busy", retryable: true });
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 100));
    }
    try {
      return await fn();
    } finally {
      await this.opts.kv.removeFrom(this.lockKey, undefined, JSON.stringify(owner)).catch(() => undefined);
    }
  }
}
