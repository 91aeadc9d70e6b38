/**
 * Node-RED context-store plugin on {@link RedisEngine}: the `open/close/get/set/keys/delete/clean` contract of
 * Node-RED's context stores (https://nodered.org/docs/api/context/), asynchronous like Node-RED's localfilesystem
 * store without cache: a `get` or `keys` without a callback throws "only asynchronous access supported"; a `set`
 * without one is applied in the background (a failure is returned by the next `set` that has a callback). A `set`
 * callback fires once Redis has applied it.
 *
 * - Keys are property paths (`a.b[0]`); a top-level key is one Redis string (JSON); a nested set rewrites it.
 * - `clean(activeIds)` (Node-RED calls it at every deploy, before the new flows start; not at startup) deletes the
 *   scopes of nodes and flows no longer deployed, as Node-RED's stores do; `global`, the connections' secrets
 *   (`mlc-auth`) and the rate windows are never cleaned. It walks the prefix's keys with SCAN (~0.2 s per 100,000
 *   rows on a local Redis) and the deploy waits for it. With several instances, the instance that deploys cleans
 *   for all: set `config.redis.keepRemovedNodes` when instances may run different flow versions for a while.
 */
import { getPath, parsePath, setPath } from "./path";
import { RedisEngine } from "./redis";
import { AUTH_SCOPE, redisEngines, type StoreConfig } from "./registry";

type Cb = (err?: Error | null, ...values: unknown[]) => void;

const ASYNC_ONLY = "ml-connector store (Redis): only asynchronous access supported (pass a callback)";
/** Scopes that are not a node's or a flow's: never cleaned. */
const KEPT_SCOPES = new Set(["global", AUTH_SCOPE]);

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class RedisContextStore {
  private engine?: RedisEngine;
  private readonly id: string;
  /** Failure of the last `set` without a callback, handed to the next `set` with one. */
  private unawaitedError?: Error;
  /** Writes in flight per row (scope + top-level key): a row's writes apply in call order, and a get waits for them. */
  private readonly inFlight = new Map<string, Promise<void>>();

  /** @throws Error when `config.redis.url` is not a redis:// or rediss:// URL */
  constructor(private readonly config: StoreConfig) {
    const r = config.redis;
    if (!r || typeof r.url !== "string" || !/^rediss?:\/\//.test(r.url)) throw new Error("ml-connector store: config.redis.url must be a redis:// or rediss:// URL");
    this.id = r.url + "\u0000" + (r.prefix ?? "mlc:");
  }

  get storeEngine(): RedisEngine | undefined {
    return this.engine;
  }

  async open(): Promise<void> {
    const cur = redisEngines().get(this.id);
    if (cur && !cur.engine.isClosed) {
      cur.users++;
      this.engine = cur.engine;
      return;
    }
    const engine = new RedisEngine(this.config.redis as NonNullable<StoreConfig["redis"]>);
    redisEngines().set(this.id, { engine, users: 1 });
    this.engine = engine;
    await engine.open();
  }

  async close(): Promise<void> {
    const e = this.engine;
    this.engine = undefined;
    if (!e) return;
    const cur = redisEngines().get(this.id);
    if (cur && cur.engine === e && --cur.users > 0) return;
    if (cur?.engine === e) redisEngines().delete(this.id);
    await e.close();
  }

  private eng(): RedisEngine {
    if (!this.engine) throw new Error("ml-connector store is not open");
    return this.engine;
  }

  /** Run `fn` after the writes already queued on row `id`. */
  private serial(id: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.inFlight.get(id);
    const next = prev ? prev.then(fn, fn) : fn();
    this.inFlight.set(id, next);
    const clear = (): void => {
      if (this.inFlight.get(id) === next) this.inFlight.delete(id);
    };
    next.then(clear, clear);
    return next;
  }

  private async getOne(scope: string, key: string): Promise<unknown> {
    const segs = parsePath(key);
    await this.inFlight.get(scope + "\u0000" + String(segs[0]))?.catch(() => undefined);
    const json = await this.eng().readJson(scope, String(segs[0]));
    const top: unknown = json === undefined ? undefined : JSON.parse(json);
    return segs.length === 1 ? top : getPath(top, segs.slice(1));
  }

  /** A nested key reads, changes and writes back its row: queued behind that row's earlier writes (see {@link serial}). */
  private async setOne(scope: string, key: string, value: unknown): Promise<void> {
    const segs = parsePath(key);
    const top = String(segs[0]);
    if (top === "__proto__") return;
    const e = this.eng();
    return this.serial(scope + "\u0000" + top, async () => {
      let next = value;
      if (segs.length > 1) {
        const json = await e.readJson(scope, top);
        next = setPath(json === undefined ? undefined : JSON.parse(json), segs.slice(1), value);
      }
      if (next === undefined) await e.remove(scope, top);
      else await e.write(scope, top, JSON.stringify(next), 0);
    });
  }

  get(scope: string, key: string | string[], callback?: Cb): void {
    if (typeof callback !== "function") throw new Error(ASYNC_ONLY);
    const keys = Array.isArray(key) ? key : [key];
    Promise.all(keys.map((k) => this.getOne(scope, k))).then(
      (values) => callback(null, ...values),
      (err: unknown) => callback(asError(err)),
    );
  }

  set(scope: string, key: string | string[], value: unknown, callback?: Cb): void {
    if (callback !== undefined && typeof callback !== "function") throw new Error("Callback must be a function");
    const run = async (): Promise<void> => {
      if (!Array.isArray(key)) return this.setOne(scope, key, value);
      const vals = Array.isArray(value) ? value : [value];
      await Promise.all(key.map((k, i) => this.setOne(scope, k, i < vals.length ? vals[i] : null)));
    };
    if (!callback) {
      run().catch((err: unknown) => {
        this.unawaitedError = asError(err);
      });
      return;
    }
    const pending = this.unawaitedError;
    this.unawaitedError = undefined;
    (pending ? Promise.reject(pending) : run()).then(
      () => callback(null),
      (err: unknown) => callback(asError(err)),
    );
  }

  keys(scope: string, callback?: (err: Error | null | undefined, keys?: string[]) => void): void {
    if (typeof callback !== "function") throw new Error(ASYNC_ONLY);
    Promise.resolve()
      .then(() => this.eng().scanKeys(scope, ""))
      .then(
        (keys) => callback(null, keys),
        (err: unknown) => callback(asError(err)),
      );
  }

  async delete(scope: string): Promise<void> {
    await this.eng().deleteScope(scope);
  }

  /**
   * Node-RED's clean: delete every scope whose id (the part before ":") is not in `activeIds` (node, flow and
   * subflow-instance ids), except `global` and the connections' secrets; nothing with `keepRemovedNodes`.
   * @throws StoreUnavailableError when Redis is unreachable (Node-RED logs it; the deploy goes on)
   */
  async clean(activeIds: string[]): Promise<void> {
    if (this.config.redis?.keepRemovedNodes === true) return;
    const active = new Set(activeIds);
    const e = this.eng();
    for (const scope of await e.scopes()) {
      if (KEPT_SCOPES.has(scope) || active.has(scope.split(":")[0])) continue;
      await e.deleteScope(scope);
    }
  }
}
