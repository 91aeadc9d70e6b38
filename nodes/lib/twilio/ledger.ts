/**
 * The send ledger: "claim before send, record before ack" for Twilio creates.
 *
 * One entry per idempotency key `jobId|recipient|channel` ({@link ledgerKey}), committed through a
 * {@link KvBackend} (a Node-RED context store) before the create request leaves:
 *
 * 1. {@link SendLedger.claim} writes `{state: "sending", at}`; only one caller wins a key.
 * 2. After the create answered, {@link SendLedger.settle} writes `{state: "sent", sid, status}`.
 * 3. A create that Twilio refused (4xx: the message was not created) is {@link SendLedger.release}d, so a later
 *    attempt may send.
 *
 * A claim that finds an entry in "sending" is an **unknown outcome** (a crash between claim and answer, or a
 * create that timed out): it must be reconciled with {@link reconcileSend} (lookup by To, From and time window,
 * with back-off until Twilio has had time to finish the create) before anything is sent again. A claim that
 * finds "sent" is a duplicate: nothing is sent.
 *
 * Vendor: Message resource list filters (To, From, DateSent>),
 * https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
 */
import { MlcError, TimeoutError } from "../errors";
import { BoundedStore, KvBackend } from "../store";

/** One ledger entry. Times are ms since the epoch. No message body is stored; the recipient is in the key hash only. */
export interface LedgerEntry {
  state: "sending" | "sent";
  /** When the claim was written (the create left at or after this time), ms since epoch. */
  at: number;
  /** Twilio sid, once known. */
  sid?: string;
  /** Status Twilio answered (queued, accepted, scheduled…). */
  status?: string;
}

/** Result of {@link SendLedger.claim}. */
export type ClaimResult =
  /** This caller owns the send: create now, then settle or release. */
  | { outcome: "claimed"; entry: LedgerEntry }
  /** Already sent: do not send again. */
  | { outcome: "sent"; entry: LedgerEntry }
  /** A previous attempt claimed and never settled: reconcile before sending. */
  | { outcome: "unknown"; entry: LedgerEntry };

/** Default lifetime of ledger entries: 35 days (the longest SendAt horizon), ms. */
export const DEFAULT_LEDGER_TTL_MS = 35 * 24 * 3600 * 1000;

/** The idempotency key of one send: `jobId|recipient|channel` (hashed by the store before it is written). */
export function ledgerKey(jobId: string, to: string, channel: string): string {
  return `${jobId}|${to}|${channel}`;
}

export interface SendLedgerOptions {
  /** Entry lifetime, ms (default {@link DEFAULT_LEDGER_TTL_MS}). */
  ttlMs?: number;
  /** Maximum entries, oldest evicted first (default 100000). */
  maxEntries?: number;
  /** Key prefix in the store (default "sl"); one prefix per kind of create sharing a node context. */
  prefix?: string;
  /**
   * Who owns the ledger (the node id): {@link SendLedger.serial} waits for work of the same scope and key in this
   * process, also work started by the node's previous instance before a redeploy.
   */
  scope?: string;
  now?: () => number;
}

/** Work running per ledger scope and key in this process (see SendLedger.serial). */
const running = new Map<string, Promise<unknown>>();

export class SendLedger {
  private readonly store: BoundedStore<LedgerEntry>;
  private readonly now: () => number;
  private readonly scope: string;
  readonly ready: Promise<void>;

  /** @param backend committing key/value backend (context store); key prefix `opts.prefix` (default "sl") */
  constructor(backend: KvBackend, opts: SendLedgerOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.scope = `${opts.prefix ?? "sl"}|${opts.scope ?? ""}`;
    this.store = new BoundedStore<LedgerEntry>(backend, {
      prefix: opts.prefix ?? "sl",
      ttlMs: opts.ttlMs ?? DEFAULT_LEDGER_TTL_MS,
      maxEntries: opts.maxEntries ?? 100000,
      now: this.now,
      // an evicted or expired entry's sid is forgotten with it (local stores; on a shared one see settle)
      onDrop: (e) => {
        if (e.v?.sid) this.sids.delete(e.v.sid);
      },
    });
    this.ready = this.store.ready.then(async () => {
      for (const e of await this.store.entries()) if (e.v.sid) this.sids.add(e.v.sid);
    });
  }

  /** Sids recorded for some key (a lookup that finds one of them found another send, not the unknown one). */
  private readonly sids = new Set<string>();

  /** Whether `sid` is already recorded for a key of this ledger. */
  knows(sid: string): boolean {
    return this.sids.has(sid);
  }

  /**
   * Claim `key` for a send. Atomic within the process; the claim is committed before this resolves.
   * @throws whatever the backend throws (then nothing may be sent)
   */
  async claim(key: string): Promise<ClaimResult> {
    const r = await this.claimIssued(key);
    await r.committed;
    return r.result;
  }

  /**
   * {@link claim}, resolving as soon as the claim is decided and its write issued, so that the caller can issue the
   * other writes that must precede the send (the audit record) into the same commit. Nothing may be sent before
   * `committed` has resolved; it rejects with what the backend throws.
   */
  async claimIssued(key: string): Promise<{ result: ClaimResult; committed: Promise<void> }> {
    let existing: LedgerEntry | undefined;
    let entry: LedgerEntry | undefined;
    const { committed } = await this.store.updateIssued(key, (cur) => {
      entry = undefined; // on a shared store this may run again after a concurrent write: only the last call counts
      existing = undefined;
      if (cur) {
        existing = cur;
        return undefined;
      }
      entry = { state: "sending", at: this.now() };
      return entry;
    });
    if (entry) return { result: { outcome: "claimed", entry }, committed };
    const e = existing as LedgerEntry;
    return { result: e.state === "sent" ? { outcome: "sent", entry: e } : { outcome: "unknown", entry: e }, committed };
  }

  /** Re-arm an unknown entry after a lookup proved the message absent: a new "sending" claim at now. */
  async reclaim(key: string): Promise<LedgerEntry> {
    const entry: LedgerEntry = { state: "sending", at: this.now() };
    await this.store.set(key, entry);
    return entry;
  }

  /** Record the sid Twilio answered (committed before this resolves). */
  async settle(key: string, sid: string, status: string): Promise<void> {
    await this.store.update(key, (cur) => ({ state: "sent", at: cur?.at ?? this.now(), sid, status }));
    this.sids.add(sid);
    // A shared store expires rows itself (no onDrop): now and then the set is trimmed to the live entries' sids.
    if (this.store.isShared && this.sids.size > this.store.size + Math.max(64, Math.floor(this.store.size / 10))) {
      this.pruneSids().catch(() => undefined); // best effort: a sid kept too long only makes a lookup skip it
    }
  }

  /** Forget the sids of entries a shared store expired (the set would otherwise grow with every send). */
  private async pruneSids(): Promise<void> {
    const before = [...this.sids];
    const live = new Set<string>();
    for (const e of await this.store.entries()) if (e.v.sid) live.add(e.v.sid);
    for (const sid of before) if (!live.has(sid)) this.sids.delete(sid);
  }

  /** Forget a claim whose create was refused (Twilio created nothing), so a later attempt may send. */
  async release(key: string): Promise<void> {
    await this.store.delete(key);
  }

  async get(key: string): Promise<LedgerEntry | undefined> {
    return this.store.get(key);
  }

  get size(): number {
    return this.store.size;
  }

  /**
   * Run `work` for `key` after any earlier work for the same scope and key has finished (its failure is not this
   * caller's): a replay while the first attempt still runs waits for it.
   * @returns what `work` resolves to; @throws what `work` throws
   */
  async serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const id = `${this.scope}|${key}`;
    const before = running.get(id);
    if (before) await before.catch(() => undefined);
    const p = work();
    running.set(id, p);
    try {
      return await p;
    } finally {
      if (running.get(id) === p) running.delete(id);
    }
  }
}

/** A message as the lookup returns it (subset of lib/twilio/client.ts TwilioMessage). */
export interface FoundMessage {
  sid: string;
  status: string;
}

/** Options of {@link reconcileSend}. All durations in ms. */
export interface ReconcileOptions {
  /** When the create may have left (the ledger claim time), ms since epoch. */
  since: number;
  /**
   * How long after `since` Twilio may still be processing a create we stopped waiting for; only a lookup made
   * after `since + windowMs` that finds nothing proves the message absent. Default 30000 (twice the default
   * 15 s request timeout).
   */
  windowMs?: number;
  /** First wait before the first lookup; doubles after each empty lookup (capped at 8000). Default 500. */
  firstDelayMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Stop waiting (node closing): resolves as `{outcome: "unsettled"}`. */
  aborted?: () => boolean;
}

/** Result of {@link reconcileSend}. */
export type ReconcileResult<M extends FoundMessage = FoundMessage> =
  | { outcome: "found"; message: M; lookups: number }
  /** No such message after the window: it was never created, a new create cannot double-send. */
  | { outcome: "absent"; lookups: number }
  /** Aborted before the window ended: still unknown. */
  | { outcome: "unsettled"; lookups: number };

/**
 * Settle an unknown outcome by looking the message up (`lookup`, e.g. TwilioClient.findRecentMessage with To,
 * From, body and `since`) with exponential back-off until `since + windowMs` has passed; a lookup error counts as
 * "not proven" and is retried. Never sends anything itself.
 * @throws nothing from lookups before the window ends; the last lookup error when the final lookup fails
 */
export async function reconcileSend<M extends FoundMessage>(lookup: () => Promise<M | null>, opts: ReconcileOptions): Promise<ReconcileResult<M>> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const windowEnd = opts.since + (opts.windowMs ?? 30000);
  let delay = opts.firstDelayMs ?? 500;
  let lookups = 0;
  for (;;) {
    if (opts.aborted?.()) return { outcome: "unsettled", lookups };
    const final = now() >= windowEnd;
    let found: M | null = null;
    try {
      lookups++;
      found = await lookup();
    } catch (err) {
      if (final) throw err;
    }
    if (found) return { outcome: "found", message: found, lookups };
    if (final) return { outcome: "absent", lookups };
    const wait = Math.max(0, Math.min(delay, windowEnd - now()));
    delay = Math.min(delay * 2, 8000);
    await sleep(wait);
  }
}

/** Whether a create error leaves the outcome unknown: a timeout after the request left, or a 5xx answer. */
export function isUnknownOutcome(err: unknown): boolean {
  return (err instanceof TimeoutError && err.outcomeUnknown) || (err instanceof MlcError && (err.status ?? 0) >= 500);
}

/** Options of {@link sendOnce}. Durations in ms, times in ms since epoch. */
export interface SendOnceOptions<M extends FoundMessage> {
  ledger: SendLedger;
  /** {@link ledgerKey} of the send. */
  key: string;
  /** The create request (one attempt; the caller's client applies its own safe retries). */
  create: () => Promise<M>;
  /** Look the resource up: the newest one created at or after `since` that the ledger does not know, or null. */
  lookup: (since: number) => Promise<M | null>;
  /** See {@link ReconcileOptions.windowMs}. */
  windowMs: number;
  /** When this process started: a claim older than that may have left before a crash. */
  loadedAt: number;
  aborted: () => boolean;
}

/** Result of {@link sendOnce}: created now, already recorded (nothing sent), or found by a lookup. */
export interface SendOnceResult<M extends FoundMessage> {
  outcome: "created" | "duplicate" | "reconciled";
  sid: string;
  status: string;
  /** The resource when created now or found by the lookup. */
  message?: M;
}

/**
 * Create a resource at most once per ledger key: claim → create → settle; a key already settled is not created
 * again ("duplicate"); a claim left unsettled (crash, timeout) or a create with an unknown outcome is looked up
 * with {@link reconcileSend} and created again only when the lookup proves it absent. Used by the call node (Call
 * resource); the SMS node runs the same steps with its audit writes in between.
 * @throws TimeoutError (outcomeUnknown) while the outcome is still unknown (the claim stays for the next attempt);
 *   MlcError code "not_sent" (retryable) when a create with an unknown outcome proved absent; else what `create`
 *   threw (the claim is released: nothing was created)
 */
export async function sendOnce<M extends FoundMessage>(o: SendOnceOptions<M>): Promise<SendOnceResult<M>> {
  const settle = async (m: M, outcome: SendOnceResult<M>["outcome"]): Promise<SendOnceResult<M>> => {
    await o.ledger.settle(o.key, m.sid, m.status);
    return { outcome, sid: m.sid, status: m.status, message: m };
  };
  const claim = await o.ledger.claim(o.key);
  if (claim.outcome === "sent" && claim.entry.sid) return { outcome: "duplicate", sid: claim.entry.sid, status: claim.entry.status ?? "queued" };
  if (claim.outcome === "unknown") {
    const r = await reconcileSend(() => o.lookup(claim.entry.at), { since: Math.max(claim.entry.at, o.loadedAt), windowMs: o.windowMs, aborted: o.aborted });
    if (r.outcome === "found") return settle(r.message, "reconciled");
    if (r.outcome === "unsettled") throw new TimeoutError("Outcome of an earlier create is unknown (not settled before the node closed)", { outcomeUnknown: true });
    await o.ledger.reclaim(o.key); // proven absent: this attempt owns the create
  }
  const startedAt = Date.now();
  try {
    return await settle(await o.create(), "created");
  } catch (err) {
    if (!isUnknownOutcome(err)) {
      await o.ledger.release(o.key); // Twilio created nothing
      throw err;
    }
    const r = await reconcileSend(() => o.lookup(startedAt), { since: Date.now(), windowMs: o.windowMs, aborted: o.aborted });
    if (r.outcome === "found") return settle(r.message, "reconciled");
    if (r.outcome === "unsettled") throw new TimeoutError("Outcome of the create is unknown (not settled before the node closed)", { outcomeUnknown: true });
    await o.ledger.release(o.key);
    const text = err instanceof Error ? err.message : String(err);
    throw new MlcError(`The create failed (${text}) and Twilio has no such resource after ${o.windowMs / 1000} s: not sent`, { code: "not_sent", retryable: true, status: err instanceof MlcError ? err.status : undefined, cause: err });
  }
}
