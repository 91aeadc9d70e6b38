/**
 * The trigger skeleton every ERP family's trigger node configures (design.md "Family kit"): the family gives its
 * pieces (how a push body becomes events, how a push is authenticated, how a poll reads one window), the skeleton
 * does the rest the same way for every family:
 * - **push**: an endpoint `<httpNodeRoot>/mlc/<path>` on the package dispatcher (dispatcher.ts: body cap, methods,
 *   media types checked before the handler). Optional validation handshake first (Business Central answers
 *   `?validationToken=…`), then the {@link PushAuth} check (shared-secret header or HMAC signature, constant time):
 *   no secret configured → 404 and the status says why once (refusals.ts `notServed`); wrong or missing → 401,
 *   logged at most once a minute. A body that is not JSON → 400, logged at most once a minute; one the family's
 *   parser refuses → 400 and reported to Catch (never a 500).
 *   The events are committed to the push journal (lib/journal.ts) before the 2xx; a redelivery is answered 2xx and
 *   dropped. A journal that cannot commit (store unreachable) answers 503, reported at most once a minute with a count.
 * - **poll** (or catch-up next to push): the generic {@link Poller} (lib/poll/poller.ts) with its state in the
 *   node's context store. Every fresh event is committed to the same journal (key `p|<jobId>`) before it is emitted,
 *   and the watermark is saved only after that, so a crash at any point neither loses a polled event (replayed at
 *   the next start) nor emits it twice (a re-read of a journaled event is dropped).
 * - **replay** at start: events acknowledged (pushed or polled) but not settled by a send node (lib/journal.ts
 *   `jobSettled`) before a restart are emitted again with `msg.erp.replay = true`.
 * - **fetch after journal** hook (a webhook that names a record without its data: Business Central, Exact Online):
 *   a journaled notification is not sent on as it is; the family reads the record(s) it names (after the journal
 *   commit and the 2xx, before anything is sent), and the skeleton emits them (flagged `replay` when the notification
 *   was replayed), optionally journaling each under the poll path's key `p|<jobId>` and settling the notification.
 *   A failed read is reported to Catch and leaves the notification pending: it is replayed at the next start.
 * - **subscription manager** hook (Business Central renews its subscription every three days, Exact Online registers
 *   webhook subscriptions): started after the endpoint is served, stopped on close. It is handed an {@link Ingest}
 *   for events that arrive without an HTTP request (Business Central: the catch-up of a lost subscription): journaled
 *   under a dedupe key first, then emitted through the fetch-after-journal path, so dedupe and replay hold for them.
 * - **status** and **close**: close stops the poller (awaiting a poll in progress), releases the endpoint, stops the
 *   subscription manager and never rejects.
 * Status texts are keys `<i18n>.status.*` of the family's catalog (`watching`, `polling`, `polled`, `pushed`,
 * `refused`, `replayed`) with English fallbacks.
 * Vendor: Node-RED "Creating nodes" (close with done, status); RFC 2104 (HMAC).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { senderSecret, unsetEnvVar } from "../lib/config-value";
import type { ErpEventMsg } from "../lib/envelope";
import { MlcError, ValidationError, errorDetails } from "../lib/errors";
import { PushJournal, onJobSettled } from "../lib/journal";
import { Lease, leaseTtlFor } from "../lib/poll/lease";
import { PollRead, Poller } from "../lib/poll/poller";
import type { PollState, WatermarkWindow } from "../lib/poll/window";
import type { KvBackend } from "../lib/store";
import { contextBackend, resolveStore, warnIfLossy } from "./context";
import { InboundRequest, InboundResponse, mountDispatcher, publicEndpointUrl, registerEndpoint } from "./dispatcher";
import { Status, onClose, reportError, statusTemplate, t } from "./node";
import { logRefusal, notServed, reportUnavailable } from "./refusals";
import type { RedAPI, RedNode } from "./types";

/** How a push proves it comes from the ERP. */
export interface PushAuth {
  /** Whether a secret/key is configured (false: the endpoint answers 404 and says why once). */
  configured(): boolean;
  /** Whether the request carries the right secret or signature (compare in constant time). */
  verify(req: InboundRequest): boolean;
  /** The environment variable a secret left as `${NAME}` names (Node-RED did not substitute it), for the report. */
  unsetVar?(): string | undefined;
}

function sameText(expected: string, got: string | undefined): boolean {
  if (!expected || typeof got !== "string") return false;
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(got, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

function header(req: InboundRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** A shared secret carried as-is in a header (Acumatica push notifications: a custom header of the destination). */
export function sharedSecretHeader(headerName: string, secret: () => string): PushAuth {
  const s = (): string => senderSecret(secret());
  return { configured: () => !!s(), verify: (req) => sameText(s(), header(req, headerName)), unsetVar: () => unsetEnvVar(secret()) };
}

/** Options of {@link hmacSignature}. */
export interface HmacOptions {
  /** Header carrying the signature, e.g. "X-Signature". */
  headerName: string;
  /** The signing key ("" = not configured). */
  key: () => string;
  /** Digest; default "sha256". */
  algorithm?: string;
  /** Signature encoding; default "hex". */
  encoding?: "hex" | "base64";
  /** Text before the signature in the header, e.g. "sha256="; default none. */
  prefix?: string;
}

/** An HMAC of the raw body in a header (RFC 2104), e.g. `X-Signature: sha256=<hex>`. */
export function hmacSignature(o: HmacOptions): PushAuth {
  const key = (): string => senderSecret(o.key());
  return {
    configured: () => !!key(),
    unsetVar: () => unsetEnvVar(o.key()),
    verify: (req) => {
      const mac = createHmac(o.algorithm ?? "sha256", key()).update(req.body).digest(o.encoding ?? "hex");
      return sameText(`${o.prefix ?? ""}${mac}`, header(req, o.headerName));
    },
  };
}

/** What a family's push parser returns for one body. */
export interface ParsedPush {
  /** Dedupe key of the delivery (Acumatica `Query|Id`): a redelivery carries the same key. */
  key: string;
  events: ErpEventMsg[];
  /** Rows that could not become events (reported to Catch; the others are still emitted). */
  problems?: { index: number; message: string }[];
}

/** Validation handshake (Business Central: `POST …?validationToken=x` must be answered 200 `x` in text/plain). */
export interface ValidationHandshake {
  /** The answer to a handshake request, or undefined when `req` is not one. Runs before the auth check. */
  answer(req: InboundRequest): InboundResponse | undefined;
}

/**
 * Journal `events` under the dedupe key `key` (as a push with that key would be), then emit them through the same path
 * as a push's (fetch after journal). Waits for the replay of the start; emits nothing once the node is closing (what
 * was journaled is replayed at the next start).
 * @returns true when the events are journaled (now, or under `key` before: then not emitted again), false when the
 *   node is closing (nothing journaled)
 * @throws what the journal throws when it cannot commit (nothing emitted; call again later with the same key)
 */
export type Ingest = (key: string, events: ErpEventMsg[]) => Promise<boolean>;

/** Subscription manager (BC renews every three days; Exact registers webhook subscriptions). */
export interface SubscriptionManager {
  /**
   * Called once the endpoint is served. Rejections are reported to Catch.
   * @param ingest journals and emits events that arrive without an HTTP request (see {@link Ingest})
   */
  start(ingest: Ingest): Promise<void>;
  /** Called on close (`removed`: the node was deleted, unsubscribe). Rejections are logged. */
  stop(removed: boolean): Promise<void>;
}

/**
 * Renews a subscription when it is due (Business Central: a day before the 3-day expiry): at `at` (epoch ms) it
 * calls `renew`, which returns when the next renewal is due (undefined: none). A failed renewal is reported and
 * retried after `retryMs`. The timer never keeps the process alive; {@link stop} ends it.
 */
export class RenewalTimer {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  /** @param retryMs wait after a failed renewal, ms (default 10 min) */
  constructor(
    private readonly renew: () => Promise<number | undefined>,
    private readonly onError: (err: unknown) => void,
    private readonly retryMs = 600_000,
  ) {}

  /** Renew at `at` (epoch ms; at least 1 s from now, at most the longest timer Node.js keeps); undefined: never. */
  schedule(at: number | undefined): void {
    if (this.stopped || at === undefined) return;
    this.timer = setTimeout(() => {
      this.renew().then(
        (next) => this.schedule(next),
        (err: unknown) => {
          this.onError(err);
          this.schedule(Date.now() + this.retryMs);
        },
      );
    }, Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1)));
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

/** The push side of a trigger. */
export interface PushSpec {
  /** Path below /mlc, e.g. "/acumatica/bills". */
  path: string;
  auth: PushAuth;
  /** Media types accepted (default ["application/json"]): 415 otherwise. */
  contentTypes?: string[];
  /** Methods accepted (default ["POST"]): 405 with Allow otherwise. */
  methods?: string[];
  /**
   * The verified body → events.
   * @throws SyntaxError for a body that does not parse (answered 400, logged at most once a minute), anything else
   *   for a body that is not what the ERP sends (answered 400, reported to Catch)
   */
  parse(body: Buffer, req: InboundRequest): ParsedPush;
  handshake?: ValidationHandshake;
  subscriptions?: SubscriptionManager;
}

/**
 * Fetch after journal: how a journaled notification that only names a record becomes the record's event(s).
 * Runs after the notification was committed (and answered), before anything is sent on; also for replayed ones.
 */
export interface FetchAfterJournal {
  /** Whether `ev` is such a notification (other events are emitted as they are). */
  names(ev: ErpEventMsg): boolean;
  /**
   * The event(s) the notification stands for, read now (none: nothing is emitted).
   * @throws what the family's client throws (reported to Catch, the notification stays pending)
   */
  read(ev: ErpEventMsg): AsyncIterable<ErpEventMsg>;
  /**
   * "notice" (default): each event read is emitted; the notification's journal entry is settled by a send (an event
   * that stands for the notification keeps its jobId). "event": each event read is journaled under
   * `p|<jobId>` (dropped when a poll or an earlier delivery journaled it) and emitted, then the notification is
   * settled (Exact Online, Business Central: a webhook, a catch-up and a poll of the same change emit it once).
   */
  journal?: "notice" | "event";
  /** Extra properties of the report of a failed read (topic `<family>/push`). */
  about?(ev: ErpEventMsg): Record<string, unknown>;
}

/** The poll side of a trigger (poll mode, or catch-up next to push). */
export interface PollSpec {
  window: WatermarkWindow;
  /** Between polls, ms. */
  intervalMs: number;
  /** First poll after, ms. */
  firstDelayMs: number;
  /** ISO 8601 or "now" (default): where a first poll starts. */
  startFrom?: string;
  /** Catch-up slice, ms (default unbounded). */
  sliceMs?: number;
  /** Every event of one window, all pages; rows that cannot become events are reported by `read` itself. */
  read(r: PollRead): AsyncIterable<ErpEventMsg>;
}

/** What a family's trigger gives the skeleton. */
export interface TriggerSpec {
  /** Catalog prefix of the status texts, normally the node type, e.g. "mlc-acumatica-trigger". */
  i18n: string;
  /** Topic prefix of error reports, e.g. "acumatica" ("acumatica/push", "acumatica/poll"). */
  family: string;
  /** Context store name (node property `store`; "" = default). */
  store?: string;
  /** Context key of the poll state, e.g. "mlc_acumatica_poll". */
  stateKey: string;
  push?: PushSpec;
  poll?: PollSpec;
  /** Fetch after journal (see {@link FetchAfterJournal}). */
  fetch?: FetchAfterJournal;
  /** Extra properties of a poll error's report (e.g. the entity). */
  about?: Record<string, unknown>;
  /** Runs last on close, after the poll and the subscription manager stopped (e.g. close the family's client). */
  close?: (removed: boolean) => Promise<void>;
}

const JOURNAL_TTL_MS = 7 * 24 * 3600 * 1000;

/** The running trigger (tests and families read it; the node's close stops it). */
export interface TriggerHandle {
  journal: PushJournal;
  poller?: Poller;
}

/**
 * Start a trigger on `node` per `spec` (call from the node's setup) and register its close. Errors of the setup
 * (unknown store, endpoint already served) are reported to Catch and leave the node idle; never throws.
 */
export function startTrigger(RED: RedAPI, node: RedNode, spec: TriggerSpec): TriggerHandle | undefined {
  mountDispatcher(RED.httpNode, RED);
  const text = (key: string, subs: Record<string, unknown> | undefined, fallback: string): string => t(RED, `${spec.i18n}.${key}`, subs, fallback);
  const report = (err: unknown, what: string, extra: Record<string, unknown> = {}): void => reportError(RED, node, err, { topic: `${spec.family}/${what}`, ...extra });
  let backend: KvBackend;
  let journal: PushJournal;
  try {
    const store = resolveStore(RED, spec.store);
    backend = contextBackend(node, "node", store.name);
    journal = new PushJournal(backend, { prefix: "pn", ttlMs: JOURNAL_TTL_MS, maxEntries: 50000 });
    if (store.memoryOnly) node.warn(text("warn.memory", undefined, "The context store is memory-only: the watermark and push journal do not survive a restart"));
  } catch (err) {
    report(err, "trigger/start");
    return undefined;
  }
  let closed = false;
  const fetch = spec.fetch;
  const emit = (events: ErpEventMsg[]): void => {
    for (const e of events) {
      if (fetch?.names(e)) fetchAfterJournal(node, fetch, journal, e, () => closed).catch((err: unknown) => report(err, "push", fetch.about?.(e)));
      else node.send(e);
    }
  };
  const unsubscribe = onJobSettled((jobId) => {
    if (journal.has(jobId)) journal.settle(jobId).catch((err: unknown) => report(err, "journal"));
  });
  const replayed = replayJournal(node, journal, emit, text, () => closed).catch((err: unknown) => report(err, "journal"));

  let release: (() => void) | undefined;
  if (spec.push) release = servePush(RED, node, spec, spec.push, journal, emit, text);
  const poller = spec.poll ? startPoller(node, spec, spec.poll, backend, journal, emit, text, report) : undefined;
  if (poller) void replayed.then(() => (closed ? undefined : poller.start(spec.poll?.firstDelayMs)));
  const ingest: Ingest = async (key, events) => {
    await replayed; // a replay after this journal entry would emit it twice
    if (closed) return false;
    if ((await journal.accept(key, events)) && !closed) emit(events);
    return true;
  };
  const subs = spec.push?.subscriptions;
  if (subs && release) subs.start(ingest).catch((err: unknown) => report(err, "subscription"));
  warnIfLossy(RED, node, resolveStore(RED, spec.store));

  onClose(node, async (removed) => {
    closed = true;
    release?.();
    unsubscribe();
    try {
      await Promise.all([poller?.stop(), subs?.stop(removed)]);
    } finally {
      await spec.close?.(removed);
    }
  });
  return { journal, poller };
}

/** A push body of the wrong shape (a ValidationError or ErpError about the body), not a missing config node. */
function isBodyError(err: unknown): boolean {
  return err instanceof MlcError && !err.retryable && err.code !== "no_config" && err.code !== "closed" && err.code !== "client_closed";
}

/**
 * Read what the journaled notification `notice` names and emit it (see {@link FetchAfterJournal}). A read that ends
 * after the node began closing (a deploy) journals and settles nothing: the next instance replays the notice, and an
 * event journaled here but emitted by a closed node would be dropped as journaled by that replay.
 */
async function fetchAfterJournal(node: RedNode, fetch: FetchAfterJournal, journal: PushJournal, notice: ErpEventMsg, isClosed: () => boolean): Promise<void> {
  const perEvent = fetch.journal === "event";
  for await (const ev of fetch.read(notice)) {
    if (perEvent && isClosed()) return;
    // a replayed notice may have passed a dedupe before the crash: what it stands for goes on as a replay too
    const out = notice.erp.replay ? { ...ev, erp: { ...ev.erp, replay: true } } : ev;
    if (!perEvent || (await journal.accept(`p|${ev.erp.jobId}`, [ev]))) node.send(out);
  }
  if (perEvent && !isClosed()) await journal.settle(notice.erp.jobId);
}

type Text = (key: string, subs: Record<string, unknown> | undefined, fallback: string) => string;

async function replayJournal(node: RedNode, journal: PushJournal, emit: (e: ErpEventMsg[]) => void, text: Text, isClosed: () => boolean): Promise<void> {
  const { events, givenUp } = await journal.replay();
  if (isClosed()) return;
  if (givenUp) node.warn(text("warn.givenUp", { n: givenUp }, `${givenUp} journaled events were replayed too often without being settled and are dropped`));
  if (!events.length) return;
  node.log(text("log.replay", { n: events.length }, `replaying ${events.length} acknowledged events that had not reached a send`));
  emit(events);
  node.status(Status.ok(text("status.replayed", { n: events.length }, `replayed ${events.length}`)));
}

function servePush(RED: RedAPI, node: RedNode, spec: TriggerSpec, push: PushSpec, journal: PushJournal, emit: (e: ErpEventMsg[]) => void, text: Text): (() => void) | undefined {
  const about = { topic: `${spec.family}/push`, endpoint: push.path };
  let count = 0;
  // Translated once here; each push only fills in the count (a translation per push was ~2.5 % of Node-RED's CPU).
  const pushedText = statusTemplate(RED, `${spec.i18n}.status.pushed`, "__n__ events");
  const onPush = async (req: InboundRequest): Promise<InboundResponse> => {
    const shake = push.handshake?.answer(req);
    if (shake) return shake;
    if (!push.auth.configured()) {
      const unset = push.auth.unsetVar?.();
      const why = unset ? `: its credential names environment variable ${unset}, which is not set` : "";
      return notServed(RED, node, "no_secret", new ValidationError(`No shared secret or signing key configured for the push endpoint${why}`, { code: "no_secret" }), about);
    }
    if (!push.auth.verify(req)) {
      node.status(Status.warn(text("status.refused", undefined, "refused push")));
      logRefusal(node, "forged", `${push.path}: refused a push without the right secret or signature`);
      return { status: 401, body: "Unauthorized" };
    }
    let parsed: ParsedPush;
    try {
      parsed = push.parse(req.body, req);
    } catch (err) {
      // broken JSON is logged at most once a minute; a body of the wrong shape goes to Catch; both are 400. Anything
      // else (the config node missing between a deploy's stop and start, a closing client) is not the body's fault:
      // 503, so the sender retries (a 4xx makes Business Central delete the subscription, reference §8.5).
      if (err instanceof SyntaxError) logRefusal(node, "bad_json", `${push.path}: refused a push whose body is not JSON`);
      else reportError(RED, node, err, about);
      if (err instanceof SyntaxError || isBodyError(err)) return { status: 400, body: "Bad request" };
      return { status: 503, headers: { "Retry-After": "5" }, body: "Service unavailable" };
    }
    // Journal first: committed before the 2xx (a crash after it replays them); a journal that cannot commit
    // answers 503, so the ERP retries. The events go on while it commits (lib/journal.ts acceptIssued: what they
    // write later commits after it).
    try {
      const { first, committed } = await journal.acceptIssued(parsed.key, parsed.events);
      if (first) {
        for (const p of parsed.problems ?? []) reportError(RED, node, new ValidationError(`Push row ${p.index}: ${p.message}`, { code: "bad_record" }), { ...about, row: p.index });
        emit(parsed.events);
        count += parsed.events.length;
        node.status(Status.ok(pushedText({ n: count })));
      }
      await committed;
    } catch (err) {
      // one report a minute with a count (refusals.ts): an outage refuses every retry of every sender
      reportUnavailable(RED, node, err, about);
      return { status: 503, body: "Service unavailable" };
    }
    return { status: 200, body: "" };
  };
  try {
    const release = registerEndpoint(RED.httpNode, push.path, node.id, onPush, { methods: push.methods ?? ["POST"], contentTypes: push.contentTypes ?? ["application/json"] });
    // The full path below the HTTP root, the one to paste into the ERP: "/mlc/acumatica/bills".
    const full = publicEndpointUrl("", RED.settings.httpNodeRoot, push.path);
    node.status(Status.idle(text("status.watching", { endpoint: full }, `watching ${full}`)));
    return release;
  } catch (err) {
    reportError(RED, node, err, { topic: `${spec.family}/trigger/start`, endpoint: push.path });
    return undefined;
  }
}

function startPoller(
  node: RedNode,
  spec: TriggerSpec,
  poll: PollSpec,
  backend: KvBackend,
  journal: PushJournal,
  emit: (e: ErpEventMsg[]) => void,
  text: Text,
  report: (err: unknown, what: string, extra?: Record<string, unknown>) => void,
): Poller | undefined {
  let fresh = 0;
  try {
    return new Poller({
      window: poll.window,
      intervalMs: poll.intervalMs,
      startFrom: poll.startFrom,
      sliceMs: poll.sliceMs,
      load: async () => (await backend.get(spec.stateKey)) as PollState | undefined,
      save: (s) => backend.set(spec.stateKey, s),
      read: (r) => {
        node.status(Status.busy(text("status.polling", undefined, "polling")));
        return poll.read(r);
      },
      // Acknowledged means durable: each event is journaled before it is emitted, the watermark saved after. All of
      // a slice's events are committed at once (the store batches them: ~0.05 ms an event instead of ~5 ms one by
      // one, test/bench/poll-journal.ts); those committed are emitted in order, and if any failed the tick fails so
      // the watermark stays and the next poll re-reads them (the committed ones are then dropped as journaled).
      deliver: async (events) => {
        const results = await Promise.allSettled(events.map((ev) => journal.accept(`p|${ev.erp.jobId}`, [ev])));
        events.forEach((ev, i) => {
          const r = results[i];
          if (r.status === "fulfilled" && r.value) {
            emit([ev]);
            fresh++;
          }
        });
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        if (failed) throw failed.reason;
      },
      onSlice: (r) => {
        if (!r.last) return;
        const time = new Date().toISOString().slice(11, 19);
        node.status(Status.ok(text("status.polled", { time, n: fresh }, `polled ${time} (+${fresh})`)));
        fresh = 0;
      },
      onError: (err) => report(err, "poll", { ...spec.about, error: errorDetails(err).code }),
      // One poller among instances sharing a Redis store (lib/poll/lease.ts); always held on a local store.
      lease: new Lease(backend, "lease_poll", { ttlMs: leaseTtlFor(poll.intervalMs) }),
      onStandby: () => node.status(Status.idle("mlc.status.standby")),
    });
  } catch (err) {
    report(err, "trigger/start");
    return undefined;
  }
}
