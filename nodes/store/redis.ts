/**
 * The shared store engine: the package's store on Redis (ioredis, https://github.com/redis/ioredis), so several
 * Node-RED processes share dedupe claims, the push journal, the send ledger, audit records, opt-outs and watermarks.
 * Selected in settings.js by a `redis` entry in the store's config (see nodes/store/index.ts).
 *
 * Key layout (one JSON text per context row; `P` = the configured key prefix, default `mlc:`):
 * - `P{scope}:key`      a row of a Node-RED context scope (`<nodeId>:<flowId>`, `<flowId>` or `global`); expiry is Redis's own (PX)
 * - `P{scope}#name`     sorted set of the rows of one bounded store (score = creation ms × 1000 + write order), for its
 *                       `maxEntries` eviction; `P{scope}#name:seq` the write-order counter
 * The braces are a Redis Cluster hash tag: the rows of one scope share a slot, so the Lua scripts touch one slot.
 *
 * Semantics (Redis commands, https://redis.io/docs/latest/commands/): claim = `SET NX PX`, set with a TTL = `SET PX`,
 * set without = `SET` (clears an expiry, like the LMDB engine), scan = `SCAN MATCH`. A command resolves once Redis has
 * applied it, so it survives a crash of this process; whether it survives a crash of Redis is Redis's persistence
 * (`appendonly yes`). Commands never wait for a connection: while Redis is unreachable they fail at once (offline
 * queue off) or after `commandTimeoutMs`, and the caller refuses its work (a push gets 503) instead of acknowledging it.
 */
import crypto from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import type { SharedRateStore } from "../lib/budget/gate";
import { MlcError } from "../lib/errors";

/**
 * Redis did not run a command (unreachable, connection lost mid-command, no answer within the command timeout).
 * Code `store_unavailable`, retryable: the caller refuses its work (a push gets 503) and the sender retries. The
 * message names the target without its password.
 */
export class StoreUnavailableError extends MlcError {
  constructor(target: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message.replace(/redis(s?):\/\/[^@\s]*@/g, "redis$1://***@") : "no answer";
    super(`Redis store unreachable (${target}): ${why}`, { code: "store_unavailable", retryable: true, status: 503 });
  }
}

/** `config.redis` of the store in settings.js. */
export interface RedisStoreConfig {
  /** `redis://[user[:password]@]host:port[/db]` or `rediss://` (TLS). */
  url: string;
  /** Key prefix, default "mlc:". Several installations on one Redis use different prefixes. */
  prefix?: string;
  /** Name of an environment variable holding the password (instead of putting it in the URL). */
  passwordEnv?: string;
  /** TLS options for `rediss://` (Node's tls.connect options: `ca`, `servername`, …); `true` = TLS with defaults. */
  tls?: boolean | Record<string, unknown>;
  /** Per-command timeout, ms (default 5000): a command Redis does not answer in time fails instead of hanging. */
  commandTimeoutMs?: number;
  /** Connect timeout, ms (default 10000). */
  connectTimeoutMs?: number;
  /**
   * true: a deploy's `clean` leaves the rows of removed nodes and flows (they expire on their own TTLs, journal 7 days).
   * For rolling deploys where instances run different flow versions for a while; default false (Node-RED's contract).
   */
  keepRemovedNodes?: boolean;
}

/** Condition of {@link RedisEngine.write}: any (unconditional), absent (`NX`), or the current JSON text equals `expect`. */
export type WriteCondition = { kind: "any" } | { kind: "absent" } | { kind: "equals"; expect: string };

/** Bounded-store index a write joins: sorted set `name` in the row's scope, score `at` (ms), at most `max` rows. */
export interface WriteIndex {
  name: string;
  at: number;
  /** Maximum rows; Infinity = no bound. */
  max: number;
}

// KEYS[1] row, KEYS[2] index (or ""), ARGV: cond ("any"|"absent"|"equals"), expect, json, ttlMs (>0 PX, 0 none, -1 keep), at, max (-1 none)
// Returns -1 when the condition failed, else the index size after eviction (0 without an index).
const WRITE_LUA = `
local cond = ARGV[1]
if cond == "absent" then
  if redis.call("EXISTS", KEYS[1]) == 1 then return -1 end
elseif cond == "equals" then
  if redis.call("GET", KEYS[1]) ~= ARGV[2] then return -1 end
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call("SET", KEYS[1], ARGV[3], "PX", ttl)
elseif ttl < 0 then redis.call("SET", KEYS[1], ARGV[3], "KEEPTTL")
else redis.call("SET", KEYS[1], ARGV[3]) end
if KEYS[2] == "" then return 0 end
-- score: creation ms, then the order of writes within that ms (a counter beside the index), so "oldest first" is exact
local seq = redis.call("INCR", KEYS[2] .. ":seq") % 1000
redis.call("ZADD", KEYS[2], tonumber(ARGV[5]) * 1000 + seq, KEYS[1])
local n = redis.call("ZCARD", KEYS[2])
local max = tonumber(ARGV[6])
if max >= 0 and n > max then
  local old = redis.call("ZPOPMIN", KEYS[2], n - max)
  for i = 1, #old, 2 do redis.call("DEL", old[i]) end
  n = max
end
return n
`;

// KEYS[1] row, KEYS[2] index (or ""); ARGV[1] expected JSON or "" for any. Returns 1 when a row was deleted.
const DELETE_LUA = `
if ARGV[1] ~= "" and redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
if KEYS[2] ~= "" then redis.call("ZREM", KEYS[2], KEYS[1]) end
return redis.call("DEL", KEYS[1])
`;

// KEYS[1] row; ARGV[1] expected JSON, ARGV[2] ttlMs. PEXPIRE only while the value is still ours. Returns 1 or 0.
const RENEW_LUA = `
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[2]))
`;

/** Units a request enters under a key: its weight (whole, at least 1), at most the key's limit (else it could never pass). */
function unitsOf(weight: number | undefined, limit: number): number {
  return Math.max(1, Math.min(Math.ceil(weight ?? 1), limit));
}

// KEYS: rate windows (sorted sets of request units by latest arrival, ms on Redis's clock); ARGV: id, flightMs, then
// limit, span and weight per key. Enters `weight` units of the id (members "<id>#1".."<id>#<weight>") under every key
// when each holds at most limit − weight within its span. Returns {1, now, 0} or {0, now, waitMs}.
const RESERVE_LUA = `
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for i, k in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i])
  local span = tonumber(ARGV[1 + 3 * i])
  local w = tonumber(ARGV[2 + 3 * i])
  redis.call("ZREMRANGEBYSCORE", k, "-inf", now - span)
  local n = redis.call("ZCARD", k)
  if n + w > limit then
    local s = tonumber(redis.call("ZRANGE", k, n + w - limit - 1, n + w - limit - 1, "WITHSCORES")[2])
    local d = 5
    if s <= now then d = s + span - now end
    if d > wait then wait = d end
  end
end
if wait > 0 then return {0, now, wait} end
local flight = tonumber(ARGV[2])
for i, k in ipairs(KEYS) do
  for j = 1, tonumber(ARGV[2 + 3 * i]) do redis.call("ZADD", k, now + flight, ARGV[1] .. "#" .. j) end
  redis.call("PEXPIRE", k, tonumber(ARGV[1 + 3 * i]) + flight + 1000)
end
return {1, now, 0}
`;

// KEYS: rate windows; ARGV: id, arrival ms, then the weight per key. Re-counts the id's units at their latest possible arrival.
const SETTLE_LUA = `
for i, k in ipairs(KEYS) do
  for j = 1, tonumber(ARGV[2 + i]) do redis.call("ZADD", k, "XX", tonumber(ARGV[2]), ARGV[1] .. "#" .. j) end
end
return 1
`;

interface Scripted {
  mlcReserve(...args: (string | number)[]): Promise<[number, number, number]>;
  mlcSettle(...args: (string | number)[]): Promise<number>;
  mlcWrite(row: string, index: string, cond: string, expect: string, json: string, ttlMs: number, at: number, max: number): Promise<number>;
  mlcDelete(row: string, index: string, expect: string): Promise<number>;
  mlcRenew(row: string, expect: string, ttlMs: number): Promise<number>;
}

/** Escape Redis glob characters (`* ? [ ] \`) so a literal can lead a `SCAN MATCH` pattern. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

/** The URL with any password replaced by `***` (for messages and logs). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "redis (unparsable URL)";
  }
}

/** One Redis connection with the store's key layout and scripts; shared by every scope and node of a process. */
export class RedisEngine {
  readonly prefix: string;
  /** Random id of this process's engine (lease holder values). */
  readonly instanceId = crypto.randomUUID();
  readonly client: Redis & Scripted;
  private closed = false;

  /** @throws Error when `url` is missing or not a redis:// / rediss:// URL */
  constructor(readonly config: RedisStoreConfig) {
    if (typeof config.url !== "string" || !/^rediss?:\/\//.test(config.url)) {
      throw new Error("ml-connector store: config.redis.url must be a redis:// or rediss:// URL");
    }
    this.prefix = config.prefix ?? "mlc:";
    const opts: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: config.commandTimeoutMs ?? 5000,
      connectTimeout: config.connectTimeoutMs ?? 10000,
      retryStrategy: (times) => Math.min(200 * times, 2000),
    };
    const pw = config.passwordEnv ? process.env[config.passwordEnv] : undefined;
    if (pw) opts.password = pw;
    if (config.tls) opts.tls = config.tls === true ? {} : (config.tls as RedisOptions["tls"]);
    const client = new Redis(config.url, opts) as Redis & Scripted;
    client.defineCommand("mlcWrite", { numberOfKeys: 2, lua: WRITE_LUA });
    client.defineCommand("mlcDelete", { numberOfKeys: 2, lua: DELETE_LUA });
    client.defineCommand("mlcRenew", { numberOfKeys: 1, lua: RENEW_LUA });
    client.defineCommand("mlcReserve", { lua: RESERVE_LUA });
    client.defineCommand("mlcSettle", { lua: SETTLE_LUA });
    // ioredis reconnects on its own; an 'error' event without a listener would be thrown by the emitter.
    client.on("error", () => undefined);
    this.client = client;
  }

  /** Human-readable target without the password. */
  get target(): string {
    return redactUrl(this.config.url) + " prefix " + this.prefix;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** True while the connection is up (commands can run). */
  get connected(): boolean {
    return this.client.status === "ready";
  }

  /**
   * Connect; resolves when ready or, if Redis is not reachable, after the connect timeout (the client keeps
   * retrying and every command fails meanwhile). Never rejects.
   */
  async open(): Promise<void> {
    await this.client.connect().catch(() => undefined);
  }

  /** Disconnect after replies to commands already sent. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.quit().catch(() => this.client.disconnect());
  }

  rowKey(scope: string, key: string): string {
    return `${this.prefix}{${scope}}:${key}`;
  }

  indexKey(scope: string, name: string): string {
    return `${this.prefix}{${scope}}#${name}`;
  }

  /** Run one command; a failure of Redis (not of the command's logic) becomes a {@link StoreUnavailableError}. */
  private async run<T>(cmd: () => Promise<T>): Promise<T> {
    try {
      return await cmd();
    } catch (err) {
      // ReplyError = Redis answered with an error (a bug here, not an outage): kept as it is
      if (err instanceof Error && err.name === "ReplyError") throw err;
      throw new StoreUnavailableError(this.target, err);
    }
  }

  /** JSON text of a live row, or undefined. @throws StoreUnavailableError */
  async readJson(scope: string, key: string): Promise<string | undefined> {
    return (await this.run(() => this.client.get(this.rowKey(scope, key)))) ?? undefined;
  }

  /**
   * Write a row's JSON text atomically under a condition, optionally joining a bounded index (evicting the oldest
   * rows above its `max`).
   * @param ttlMs > 0: expire after ttlMs; 0: no expiry; -1: keep the row's current expiry
   * @returns false when the condition did not hold (nothing written)
   */
  async write(scope: string, key: string, json: string, ttlMs: number, cond: WriteCondition = { kind: "any" }, index?: WriteIndex): Promise<{ written: boolean; size: number }> {
    const n = await this.run(() =>
      this.client.mlcWrite(
        this.rowKey(scope, key),
        index ? this.indexKey(scope, index.name) : "",
        cond.kind,
        cond.kind === "equals" ? cond.expect : "",
        json,
        Math.round(ttlMs),
        index ? Math.round(index.at) : 0,
        index && Number.isFinite(index.max) ? index.max : -1,
      ),
    );
    return { written: n >= 0, size: Math.max(0, n) };
  }

  /** Delete a row (only when its JSON text equals `expect`, if given), leaving `indexName`'s set. @returns whether a row was deleted */
  async remove(scope: string, key: string, indexName?: string, expect?: string): Promise<boolean> {
    return (await this.run(() => this.client.mlcDelete(this.rowKey(scope, key), indexName ? this.indexKey(scope, indexName) : "", expect ?? ""))) === 1;
  }

  /** Extend a row's expiry only while its JSON text equals `expect` (a lease still held). @returns whether it was extended */
  async renew(scope: string, key: string, expect: string, ttlMs: number): Promise<boolean> {
    return (await this.run(() => this.client.mlcRenew(this.rowKey(scope, key), expect, Math.round(ttlMs)))) === 1;
  }

  /** Rate window key: `P{rate|<budget>}|<rest>` (the budget part, before the first "|", is the Cluster hash tag). */
  private rateKey(k: string): string {
    const i = k.indexOf("|");
    return i < 0 ? `${this.prefix}{rate|${k}}` : `${this.prefix}{rate|${k.slice(0, i)}}${k.slice(i)}`;
  }

  /** {@link SharedRateStore} on this engine: rate windows under `P{rate|<budget>}|<key>`. */
  readonly rates: SharedRateStore = {
    reserve: async (keys, limits, spansMs, flightMs, id, weights) => {
      const args: (string | number)[] = [keys.length, ...keys.map((k) => this.rateKey(k)), id, Math.round(flightMs)];
      keys.forEach((_, i) => args.push(limits[i], Math.ceil(spansMs[i]), unitsOf(weights?.[i], limits[i])));
      const [ok, now, waitMs] = await this.run(() => this.client.mlcReserve(...args));
      return { ok: ok === 1, now, waitMs: Math.max(1, waitMs) };
    },
    settle: async (keys, id, atMs, weights, limits) => {
      const units = keys.map((_, i) => unitsOf(weights?.[i], limits?.[i] ?? 1));
      await this.run(() => this.client.mlcSettle(keys.length, ...keys.map((k) => this.rateKey(k)), id, Math.round(atMs), ...units));
    },
  };

  /** Keys (without the scope part) of live rows of `scope` starting with `prefix`, through `SCAN MATCH` (never `KEYS`). */
  async scanKeys(scope: string, prefix: string): Promise<string[]> {
    const head = this.rowKey(scope, "");
    const match = globEscape(head + prefix) + "*";
    const out = new Set<string>();
    let cursor = "0";
    do {
      const [next, batch] = await this.run(() => this.client.scan(cursor, "MATCH", match, "COUNT", 500));
      for (const k of batch) out.add(k.slice(head.length));
      cursor = next;
    } while (cursor !== "0");
    return [...out].sort();
  }

  /** Live rows of `scope` whose key starts with `prefix`, in key order, as JSON text (rows expiring meanwhile skipped). */
  async scanJson(scope: string, prefix: string): Promise<[string, string][]> {
    const keys = await this.scanKeys(scope, prefix);
    const out: [string, string][] = [];
    for (let i = 0; i < keys.length; i += 500) {
      const part = keys.slice(i, i + 500);
      const vals = await this.run(() => this.client.mget(part.map((k) => this.rowKey(scope, k))));
      part.forEach((k, j) => {
        const v = vals[j];
        if (v !== null && v !== undefined) out.push([k, v]);
      });
    }
    return out;
  }

  /**
   * Scope ids that hold rows or indexes (`P{scope}…`), through `SCAN MATCH` (never `KEYS`). Rate windows
   * (`P{rate|…}`) are not scopes and are left out.
   */
  async scopes(): Promise<string[]> {
    const head = this.prefix + "{";
    const match = globEscape(head) + "*";
    const out = new Set<string>();
    let cursor = "0";
    do {
      const [next, batch] = await this.run(() => this.client.scan(cursor, "MATCH", match, "COUNT", 500));
      for (const k of batch) {
        const end = k.indexOf("}", head.length);
        const scope = end < 0 ? "" : k.slice(head.length, end);
        if (scope && !scope.startsWith("rate|")) out.add(scope);
      }
      cursor = next;
    } while (cursor !== "0");
    return [...out];
  }

  /** Delete every row and index of a scope. */
  async deleteScope(scope: string): Promise<void> {
    const match = globEscape(`${this.prefix}{${scope}}`) + "*";
    let cursor = "0";
    do {
      const [next, batch] = await this.run(() => this.client.scan(cursor, "MATCH", match, "COUNT", 500));
      if (batch.length) await this.run(() => this.client.del(...batch));
      cursor = next;
    } while (cursor !== "0");
  }
}
