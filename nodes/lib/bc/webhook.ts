/**
 * Business Central webhooks, the library half of the trigger's push mode (reference business-central.md §8):
 * - {@link handshakeAnswer}: the `validationToken` answer (exactly 200, the token as the sole `text/plain` body),
 *   for POST and GET, before any body parsing or secret check;
 * - {@link readNotifications}: a notification POST body checked item by item against `clientState` (one POST may mix
 *   subscriptions; compared in constant time), with the status to answer: 202 when at least one item carries our
 *   clientState (even one we cannot act on, e.g. a change type BC adds later: any 4xx would make BC delete every
 *   subscription of the URL, §8.5), 401 when none does (a forgery: BC itself always sends the clientState it was
 *   given), 400 for a body that is not a notification at all (charter: bad input → 4xx with a fixed short body; BC only
 *   sends JSON, so this is never BC);
 * - {@link notificationKey}: the dedupe key (subscriptionId, resource, changeType, lastModifiedDateTime);
 * - {@link BcSubscriptions}: the lifecycle — create per entity set (webhook-enabled ones only, the rest fall back to
 *   polling), adopt a subscription left by a crash before it was saved, renew a day before the 3-day expiry from the
 *   persisted `expirationDateTime` (so the schedule survives restarts), re-create an expired one, delete them all when
 *   the node is removed; and, for a set whose subscription BC lost (expired while Node-RED was down, or deleted after
 *   failed deliveries), a catch-up: a `collection` notification for every change since the subscription was last seen
 *   alive minus BC's 36 h retry horizon ({@link BcSubscriptions.catchUp}), which the receiver handles like one from BC.
 * The receiver must answer the handshake while {@link BcSubscriptions.ensure} / `renewDue` run (BC calls back
 * before it answers the create or renew).
 */
import { timingSafeEqual } from "node:crypto";
import { MlcError, ValidationError } from "../errors";
import type { ErpEventMsg } from "../envelope";
import { deriveJobId, hashedKey } from "../ids";
import type { BcClient, BcNotification, BcSubscription } from "./client";

/** Renew this long before `expirationDateTime`, ms (reference §8.2: renew well before the 3 days, e.g. daily). */
export const BC_RENEW_BEFORE_MS = 24 * 3600_000;

/** How long BC keeps retrying a notification before it gives up, ms (reference §8.5: "over the next 36 hours"). */
export const BC_RETRY_HORIZON_MS = 36 * 3600_000;

/** An HTTP answer for the adapter to send. */
export interface WebhookAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The answer to a validation request, or undefined when the query carries no `validationToken`.
 * @param query the raw query string (without `?`) or parsed params
 */
export function handshakeAnswer(query: string | URLSearchParams): WebhookAnswer | undefined {
  const q = typeof query === "string" ? new URLSearchParams(query) : query;
  const token = q.get("validationToken");
  if (token === null) return undefined;
  if (token.length > 1024) return { status: 400, headers: { "Content-Type": "text/plain" }, body: "bad validation token" };
  return { status: 200, headers: { "Content-Type": "text/plain; charset=utf-8" }, body: token };
}

/** Constant-time string equality (no early exit on the first differing byte). */
export function sameSecret(a: unknown, b: string): boolean {
  if (typeof a !== "string" || !b) return false;
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** What {@link readNotifications} found. */
export interface NotificationBatch {
  /** Items whose clientState matched, in order. */
  genuine: BcNotification[];
  /** Items refused (wrong or missing clientState). */
  forged: number;
  /** Items with our clientState but not of a notification's shape (unknown changeType, no subscriptionId or resource): acknowledged, not acted on. */
  unusable: number;
  /** What to answer BC (or the forger). */
  answer: WebhookAnswer;
}

const CHANGE_TYPES = new Set(["created", "updated", "deleted", "collection"]);

/**
 * Parse and check a notification POST body.
 * @param clientState the secret given at subscription (≤ 250 characters)
 */
export function readNotifications(body: string | Buffer, clientState: string): NotificationBatch {
  const fixed = (status: number, text: string): WebhookAnswer => ({ status, headers: { "Content-Type": "text/plain" }, body: text });
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.isBuffer(body) ? body.toString("utf8").replace(/^\uFEFF/, "") : body.replace(/^\uFEFF/, ""));
  } catch {
    return { genuine: [], forged: 0, unusable: 0, answer: fixed(400, "bad notification") };
  }
  const value = (parsed as { value?: unknown })?.value;
  if (!Array.isArray(value)) return { genuine: [], forged: 0, unusable: 0, answer: fixed(400, "bad notification") };
  const genuine: BcNotification[] = [];
  let forged = 0;
  let unusable = 0;
  for (const item of value) {
    const n = item as Partial<BcNotification> | null;
    const wellFormed = typeof n?.subscriptionId === "string" && typeof n.resource === "string" && CHANGE_TYPES.has(String(n.changeType));
    if (!sameSecret(n?.clientState, clientState)) forged++;
    else if (wellFormed) genuine.push(n as BcNotification);
    else unusable++;
  }
  if (!genuine.length && !unusable && value.length) return { genuine, forged, unusable, answer: fixed(401, "unauthorized") };
  return { genuine, forged, unusable, answer: fixed(202, "") };
}

/** Dedupe key of one notification (reference §8.5): the same item redelivered gives the same key. */
export function notificationKey(n: BcNotification): string {
  return [n.subscriptionId, n.resource, n.changeType, n.lastModifiedDateTime ?? ""].join("|");
}

/** A copy of `subs` without `key`. */
function without(subs: Record<string, BcSubscription>, key: string): Record<string, BcSubscription> {
  return Object.fromEntries(Object.entries(subs).filter(([k]) => k !== key));
}

/**
 * A notification as the event the trigger journals before answering BC: `erp.id` the record's GUID (a hashed key for a
 * `collection`), `erp.modifiedAt` the notification's time, `payload` the notification itself, `bcNotification: true`
 * (the trigger reads the record(s) it names before emitting). Its `jobId` is its own (version `notice:<time>`), never
 * a record's: the trigger journals each record read under the record's jobId and then settles the notification by this
 * one; were they equal (BC's notification time is often the record's), that settle would finish the record's entry
 * before its send and leave the notification pending.
 */
export function notificationEvent(client: BcClient, n: BcNotification): ErpEventMsg {
  const entity = /\/([A-Za-z]+)(?:\([^)]*\))?(?:\?.*)?$/.exec(n.resource.split("?")[0])?.[1] ?? "unknown";
  const id = /\(([0-9a-f-]{36})\)$/i.exec(n.resource.split("?")[0])?.[1] ?? hashedKey("collection", notificationKey(n));
  const action = n.changeType === "deleted" ? "deleted" : n.changeType === "created" ? "created" : "updated";
  const scope = client.scope;
  const tenant = `${scope.tenant}/${scope.environment}/${scope.companyId}`;
  const version = `notice:${n.lastModifiedDateTime ?? notificationKey(n)}`;
  const erp = { system: "bc" as const, tenant, entity, id, action: action as "created" | "updated" | "deleted", modifiedAt: n.lastModifiedDateTime, jobId: deriveJobId({ system: "bc", tenant, entity, id, version, action }) };
  return { topic: `bc/${entity}/${action}`, payload: { ...n }, erp, bcNotification: true };
}

/** Persisted lifecycle state: one subscription per entity set. Times ISO 8601. */
export interface BcSubscriptionState {
  notificationUrl: string;
  subs: Record<string, BcSubscription>;
  /** Per entity set: when BC last confirmed its subscription (created, listed, renewed). */
  seenAt?: Record<string, string>;
  /** Per entity set whose subscription BC lost: changes from this time on may not have been delivered (catch-up due). */
  lost?: Record<string, string>;
}

/** Options of {@link BcSubscriptions}. */
export interface BcSubscriptionsOptions {
  client: BcClient;
  /** Public URL BC posts to (the trigger's endpoint). */
  notificationUrl: string;
  /** Shared secret echoed in every notification (≤ 250 characters). */
  clientState: string;
  load: () => Promise<BcSubscriptionState | undefined>;
  /** Persists durably (awaited). */
  save: (s: BcSubscriptionState) => Promise<void>;
  /** Renew this long before expiry, ms; default {@link BC_RENEW_BEFORE_MS}. */
  renewBeforeMs?: number;
  /** Clock, ms since the epoch; default `Date.now`. */
  now?: () => number;
}

/** Outcome of {@link BcSubscriptions.ensure}. */
export interface EnsureResult {
  /** Entity sets with a live subscription. */
  subscribed: string[];
  /** Entity sets the environment cannot notify about (poll them on `lastModifiedDateTime`). */
  pollFallback: string[];
  /** Earliest renewal due, ms since the epoch (undefined without subscriptions). */
  nextRenewalAt?: number;
}

/** The subscription lifecycle of one trigger. Calls are serialised by the caller (one at a time). */
export class BcSubscriptions {
  private readonly o: BcSubscriptionsOptions;
  private readonly now: () => number;
  private readonly renewBeforeMs: number;

  /** @throws ValidationError `bad_config` for a clientState over 250 characters or an empty one */
  constructor(o: BcSubscriptionsOptions) {
    if (!o.clientState || o.clientState.length > 250) throw new ValidationError("clientState must be 1–250 characters", { code: "bad_config" });
    this.o = o;
    this.now = o.now ?? Date.now;
    this.renewBeforeMs = o.renewBeforeMs ?? BC_RENEW_BEFORE_MS;
  }

  private async state(): Promise<BcSubscriptionState> {
    const s = await this.o.load();
    // a saved state for another URL belongs to an older configuration: its subscriptions are looked up anew
    return s && s.notificationUrl === this.o.notificationUrl
      ? { notificationUrl: s.notificationUrl, subs: { ...s.subs }, seenAt: { ...s.seenAt }, lost: { ...s.lost } }
      : { notificationUrl: this.o.notificationUrl, subs: {}, seenAt: {}, lost: {} };
  }

  /** Record that BC confirmed `entitySet`'s subscription now. */
  private seen(state: BcSubscriptionState, entitySet: string): void {
    state.seenAt = { ...state.seenAt, [entitySet]: new Date(this.now()).toISOString() };
  }

  /**
   * Record that BC no longer has `entitySet`'s subscription: changes since it was last seen alive, minus BC's retry
   * horizon (deliveries that failed before BC deleted it), may be missing. Without a record of it: the last renewal
   * or creation (expiry − 3 days). An earlier loss not caught up yet keeps its earlier time.
   */
  private markLost(state: BcSubscriptionState, entitySet: string, sub: BcSubscription): void {
    const seen = Date.parse(state.seenAt?.[entitySet] ?? "") || Date.parse(sub.expirationDateTime) - 3 * 24 * 3600_000;
    const since = Math.min(seen - BC_RETRY_HORIZON_MS, Date.parse(state.lost?.[entitySet] ?? "") || Infinity);
    state.lost = { ...state.lost, [entitySet]: new Date(since).toISOString() };
  }

  /**
   * Make sure each entity set has a live subscription: keep a saved one (renewing it when due), adopt one BC already
   * has for this URL and resource (a crash between create and save), else create one. Not webhook-enabled → fallback.
   * @throws what the client throws (a failed handshake is an ErpError with status 400)
   */
  async ensure(entitySets: string[]): Promise<EnsureResult> {
    const supported = await this.o.client.webhookResources();
    const state = await this.state();
    const subscribed: string[] = [];
    const pollFallback = entitySets.filter((e) => !supported.has(e));
    const remote = await this.o.client.subscriptions();
    for (const entitySet of entitySets.filter((e) => supported.has(e))) {
      // a saved subscription BC no longer has (expired, or deleted after a refused delivery) is made again, and what it
      // may have missed is caught up
      const mine = state.subs[entitySet] as BcSubscription | undefined;
      if (mine && !remote.some((r) => r.subscriptionId === mine.subscriptionId)) {
        this.markLost(state, entitySet, mine);
        state.subs = without(state.subs, entitySet);
        await this.o.save(state);
      }
      if (!state.subs[entitySet]) {
        const resource = this.o.client.subscriptionResource(entitySet);
        const found = remote.find((r) => r.notificationUrl === this.o.notificationUrl && r.resource === resource);
        if (found && sameSecret(found.clientState, this.o.clientState)) state.subs[entitySet] = found;
        else {
          if (found) await this.o.client.unsubscribe(found);
          state.subs[entitySet] = await this.o.client.subscribe(entitySet, this.o.notificationUrl, this.o.clientState);
        }
      }
      this.seen(state, entitySet);
      await this.o.save(state);
      subscribed.push(entitySet);
    }
    for (const stale of Object.keys(state.subs).filter((e) => !subscribed.includes(e))) {
      await this.drop(state, stale);
    }
    const renewed = await this.renewIn(state);
    return { subscribed, pollFallback, nextRenewalAt: renewed };
  }

  /** Renew every subscription due (re-create an expired one). @returns the next renewal time, ms since the epoch */
  async renewDue(): Promise<number | undefined> {
    return this.renewIn(await this.state());
  }

  private async renewIn(state: BcSubscriptionState): Promise<number | undefined> {
    let next: number | undefined;
    for (const [entitySet, sub] of Object.entries(state.subs)) {
      let cur = sub;
      if (Date.parse(cur.expirationDateTime) - this.renewBeforeMs <= this.now()) {
        try {
          cur = await this.o.client.renew(cur);
        } catch (err) {
          if (!(err instanceof MlcError && err.code === "not_found")) throw err;
          this.markLost(state, entitySet, cur);
          await this.o.save(state);
          cur = await this.o.client.subscribe(entitySet, this.o.notificationUrl, this.o.clientState);
        }
        state.subs[entitySet] = cur;
        this.seen(state, entitySet);
        await this.o.save(state);
      }
      const due = Date.parse(cur.expirationDateTime) - this.renewBeforeMs;
      next = next === undefined ? due : Math.min(next, due);
    }
    return next;
  }

  private async drop(state: BcSubscriptionState, entitySet: string): Promise<void> {
    const sub = state.subs[entitySet];
    state.subs = without(state.subs, entitySet);
    if (sub) await this.o.client.unsubscribe(sub);
    await this.o.save(state);
  }

  /** Delete every saved subscription (the node was removed) and forget them. @returns how many BC still had */
  async removeAll(): Promise<number> {
    const state = await this.state();
    let n = 0;
    for (const entitySet of Object.keys(state.subs)) {
      const sub = state.subs[entitySet];
      state.subs = without(state.subs, entitySet);
      if (sub && (await this.o.client.unsubscribe(sub))) n++;
      await this.o.save(state);
    }
    return n;
  }

  /**
   * The catch-up due for sets whose subscription BC lost: per set, one `collection` notification of its current
   * subscription whose `resource` is the set filtered on `lastModifiedDateTime gt <since>` (BC's own collection form,
   * reference §8.4), to journal and expand like one BC sent. Its `lastModifiedDateTime` is the `since` time, so the
   * same catch-up handed out twice (a crash before {@link caughtUp}) has the same {@link notificationKey}. Records
   * already delivered come again with the same jobId (the flow's dedupe and the send ledger stop doubles).
   * @returns [] when nothing is due
   */
  async catchUp(): Promise<BcNotification[]> {
    const state = await this.state();
    return Object.entries(state.lost ?? {})
      .filter(([entitySet]) => state.subs[entitySet])
      .map(([entitySet, since]) => {
        const sub = state.subs[entitySet];
        const resource = `${this.o.client.subscriptionResource(entitySet)}?$filter=lastModifiedDateTime%20gt%20${since}`;
        return { subscriptionId: sub.subscriptionId, clientState: this.o.clientState, expirationDateTime: sub.expirationDateTime, resource, changeType: "collection" as const, lastModifiedDateTime: since };
      });
  }

  /** Forget the catch-ups handed out by {@link catchUp} (call once they are journaled). */
  async caughtUp(done: BcNotification[]): Promise<void> {
    const state = await this.state();
    const ids = new Set(done.map((n) => n.subscriptionId));
    const entitySets = Object.keys(state.subs).filter((e) => ids.has(state.subs[e].subscriptionId));
    const lost = Object.fromEntries(Object.entries(state.lost ?? {}).filter(([e]) => !entitySets.includes(e)));
    if (Object.keys(lost).length === Object.keys(state.lost ?? {}).length) return;
    state.lost = lost;
    await this.o.save(state);
  }

  /**
   * Hand the catch-up due ({@link catchUp}) to `journal` one notification at a time, then forget it
   * ({@link caughtUp}). A crash or a rejection before the end keeps the catch-up due: the next call hands out the same
   * notifications (same {@link notificationKey}), which a journal keyed on them drops.
   * @param journal commits one notification durably (the trigger: journal, then emit); false: it could not (closing),
   *   the catch-up stays due
   * @returns how many notifications were journaled and forgotten
   * @throws what `journal` throws, or what the state's load/save throws (the catch-up stays due)
   */
  async deliverCatchUp(journal: (n: BcNotification) => Promise<boolean>): Promise<number> {
    const due = await this.catchUp();
    for (const n of due) if (!(await journal(n))) return 0;
    if (due.length) await this.caughtUp(due);
    return due.length;
  }

  /** True when the notification belongs to a subscription this trigger holds (by id). */
  async owns(n: BcNotification): Promise<boolean> {
    const state = await this.state();
    return Object.values(state.subs).some((s) => s.subscriptionId === n.subscriptionId);
  }
}
