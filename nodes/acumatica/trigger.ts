/**
 * `mlc-acumatica-trigger`: turns Acumatica changes into envelope events.
 * - push mode: serves `<httpNodeRoot>/mlc/acumatica/<endpoint>` for Acumatica Push Notifications
 *   (SM302000, webhook destination). The configured shared-secret header is required (compared in
 *   constant time; missing/wrong → 401 with no side effect); a notification's events are committed to the
 *   push journal (lib/journal.ts, keyed by Query|Id) before the 200, so at-least-once redeliveries are
 *   answered 200 and dropped and a crash after the 200 replays them at the next start (msg.erp.replay);
 *   an event is finished when a send node settles its jobId. Inserted/Deleted rows become
 *   created/updated/deleted events. Optionally a catch-up poll runs too.
 * - poll mode: lists an entity with `LastModifiedDateTime gt <watermark − overlap>` and `le <poll start>` (+ the user's
 *   `$filter`), pages with $top/$skip, emits only events not seen before (tie-breaking on equal
 *   timestamps) and stores the watermark in the context store, so a restart neither misses nor repeats.
 * Vendor: MYOB-IDG IS__con_Push_Notification_Format, IntegrationDev_RESTExample_Parameter_filter.
 */
import { timingSafeEqual } from "node:crypto";
import { PollState, PollWindow, pushToEvents, recordToEvent } from "../lib/acumatica/events";
import type { ErpEventMsg } from "../lib/envelope";
import { MlcError, ValidationError, errorDetails } from "../lib/errors";
import { PushJournal, onJobSettled } from "../lib/journal";
import { contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { mountDispatcher, publicEndpointUrl, registerEndpoint, InboundRequest, InboundResponse } from "../shared/dispatcher";
import { Status, num, onClose, registerNode, reportError, t } from "../shared/node";
import type { KvBackend } from "../lib/store";
import type { RedAPI, RedNode } from "../shared/types";
import { acumaticaConfig } from "./config";

export interface TriggerProps extends Record<string, unknown> {
  name?: string;
  acumatica?: string;
  mode?: "push" | "poll";
  /** push: endpoint name below /mlc/acumatica/. */
  endpoint?: string;
  headerName?: string;
  /** push: Generic Inquiry columns forming the record key, comma-separated. */
  keyFields?: string;
  /** Entity name: polled entity, or the entity name given to push events (default: the GI name). */
  entity?: string;
  modifiedField?: string;
  filter?: string;
  select?: string;
  expand?: string;
  /** Poll interval, s. */
  interval?: string | number;
  /** Overlap pollWindow re-read on every poll, s. */
  overlap?: string | number;
  /** "now" (default) or an ISO 8601 time to start from when no watermark is stored yet. */
  startFrom?: string;
  /** push mode: also poll the entity as a catch-up. */
  catchUp?: boolean;
  store?: string;
  pageSize?: string | number;
}

const POLL_STATE_KEY = "mlc_acumatica_poll";
const PUSH_JOURNAL_TTL_MS = 7 * 24 * 3600 * 1000;

function splitList(s: string | undefined): string[] {
  return (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

function secretMatches(expected: string, got: string | string[] | undefined): boolean {
  const value = Array.isArray(got) ? got[0] : got;
  if (!expected || typeof value !== "string") return false;
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(value, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

export function registerAcumaticaTrigger(RED: RedAPI): void {
  mountDispatcher(RED.httpNode, RED);
  registerNode<TriggerProps>(
    RED,
    "mlc-acumatica-trigger",
    (node: RedNode, config) => {
      const mode = config.mode === "poll" ? "poll" : "push";
      const endpoint = (config.endpoint || "events").trim();
      const headerName = (config.headerName || "X-Notify-Secret").trim().toLowerCase();
      const keyFields = splitList(config.keyFields);
      const entity = (config.entity ?? "").trim();
      const modifiedField = (config.modifiedField || "LastModifiedDateTime").trim();
      const intervalMs = num(config.interval, 60, 1, 86400) * 1000;
      const overlapMs = num(config.overlap, 60, 0, 86400) * 1000;
      const pageSize = num(config.pageSize, 100, 1, 1000);
      let emitted = 0;
      let closed = false;
      let timer: NodeJS.Timeout | undefined;
      let polling: Promise<void> | undefined;
      let release: (() => void) | undefined;

      let backend: KvBackend;
      let pollWindow: PollWindow;
      let journal: PushJournal;
      let unsubscribe: (() => void) | undefined;
      try {
        const store = resolveStore(RED, config.store);
        backend = contextBackend(node, "node", store.name);
        journal = new PushJournal(backend, { prefix: "pn", ttlMs: PUSH_JOURNAL_TTL_MS, maxEntries: 50000 });
        pollWindow = new PollWindow({ overlapMs, modifiedField, userFilter: (config.filter ?? "").trim() || undefined });
        if (store.memoryOnly) node.warn(t(RED, "mlc-acumatica-trigger.warn.memory", undefined, "The context store is memory-only: the watermark and push journal do not survive a restart"));
      } catch (err) {
        reportError(RED, node, err, { topic: "acumatica/trigger/start" });
        return;
      }

      const emit = (events: ErpEventMsg[]): void => {
        for (const e of events) node.send(e);
        emitted += events.length;
      };

      const onPush = async (req: InboundRequest): Promise<InboundResponse> => {
        if (req.method !== "POST") return { status: 405, headers: { Allow: "POST" }, body: "Method not allowed" };
        const secret = node.credentials.headerSecret ?? "";
        if (!secret) {
          reportError(RED, node, new ValidationError("No shared secret configured for the push endpoint", { code: "no_secret" }), { topic: "acumatica/push", endpoint });
          return { status: 500, body: "Endpoint not configured" };
        }
        if (!secretMatches(secret, req.headers[headerName])) {
          node.status(Status.warn(t(RED, "mlc-acumatica-trigger.status.refused", undefined, "refused push")));
          return { status: 401, body: "Unauthorized" };
        }
        let body: unknown;
        try {
          body = JSON.parse(req.body.toString("utf8"));
        } catch {
          reportError(RED, node, new ValidationError("Push notification body is not JSON", { code: "bad_push" }), { topic: "acumatica/push", endpoint });
          return { status: 400, body: "Bad request" };
        }
        let result: ReturnType<typeof pushToEvents>;
        try {
          result = pushToEvents(body, { tenant: acumaticaConfig(RED, config.acumatica, node).tenant, keyFields: keyFields.length ? keyFields : undefined, modifiedField, entity: entity || undefined });
        } catch (err) {
          reportError(RED, node, err, { topic: "acumatica/push", endpoint });
          return { status: 400, body: "Bad request" };
        }
        // Journal first: the events are committed before the 200 (a crash after it replays them at the next start);
        // a redelivery of an accepted notification is answered 200 and dropped. A journal that cannot commit
        // answers 503, so Acumatica retries.
        let first: boolean;
        try {
          first = await journal.accept(result.notificationKey, result.events);
        } catch (err) {
          reportError(RED, node, err, { topic: "acumatica/push", endpoint });
          return { status: 503, body: "Service unavailable" };
        }
        if (!first) return { status: 200, body: "" };
        for (const p of result.problems) {
          reportError(RED, node, new ValidationError(`Push row ${p.index}: ${p.message}`, { code: "bad_record" }), { topic: "acumatica/push", endpoint, row: p.index });
        }
        emit(result.events);
        node.status(Status.ok(t(RED, "mlc-acumatica-trigger.status.pushed", { n: emitted }, `${emitted} events`)));
        return { status: 200, body: "" };
      };

      const pollOnce = async (): Promise<void> => {
        const acu = acumaticaConfig(RED, config.acumatica, node);
        if (!entity) throw new ValidationError("Poll mode needs an entity (e.g. Bill)", { code: "bad_config" });
        let state = (await backend.get(POLL_STATE_KEY)) as PollState | undefined;
        if (!state || typeof state.watermark !== "string") {
          const start = (config.startFrom ?? "").trim();
          const at = start && start !== "now" ? Date.parse(start) : Date.now();
          if (Number.isNaN(at)) throw new ValidationError(`Start time "${start}" is not an ISO 8601 date-time`, { code: "bad_config" });
          state = PollWindow.initial(new Date(at).toISOString());
          await backend.set(POLL_STATE_KEY, state);
        }
        node.status(Status.busy(t(RED, "mlc-acumatica-trigger.status.polling", undefined, "polling")));
        const filter = pollWindow.filterFor(state, undefined, Date.now()); // bounded above: paging cannot skip rows
        const events: ErpEventMsg[] = [];
        for await (const record of acu.client().listAll(entity, { filter, select: config.select || undefined, expand: config.expand || undefined }, pageSize)) {
          try {
            events.push(recordToEvent(entity, record, { tenant: acu.tenant, keyFields: keyFields.length ? keyFields : undefined, modifiedField }));
          } catch (err) {
            reportError(RED, node, err, { topic: "acumatica/poll", entity, recordId: err instanceof MlcError ? err.recordId : undefined });
          }
        }
        const { fresh, next } = pollWindow.accept(state, events);
        emit(fresh);
        await backend.set(POLL_STATE_KEY, next);
        const time = new Date().toISOString().slice(11, 19);
        node.status(Status.ok(t(RED, "mlc-acumatica-trigger.status.polled", { time, n: fresh.length }, `polled ${time} (+${fresh.length})`)));
      };

      const schedule = (delayMs: number): void => {
        if (closed) return;
        timer = setTimeout(() => {
          polling = pollOnce()
            .catch((err: unknown) => {
              reportError(RED, node, err, { topic: "acumatica/poll", entity, error: errorDetails(err).code });
            })
            .finally(() => {
              polling = undefined;
              schedule(intervalMs);
            });
        }, delayMs);
      };

      if (mode === "push") {
        // An event is finished when a send node settles its jobId (lib/journal.ts); events still pending from before
        // a restart are replayed once the journal is loaded (msg.erp.replay = true).
        unsubscribe = onJobSettled((jobId) => {
          if (journal.has(jobId)) journal.settle(jobId).catch((err: unknown) => reportError(RED, node, err, { topic: "acumatica/journal" }));
        });
        journal
          .replay()
          .then(({ events, givenUp }) => {
            if (closed) return;
            if (givenUp) node.warn(t(RED, "mlc-acumatica-trigger.warn.givenUp", { n: givenUp }, `${givenUp} journaled events were replayed too often without being settled and are dropped`));
            if (events.length) {
              node.log(t(RED, "mlc-acumatica-trigger.log.replay", { n: events.length }, `replaying ${events.length} acknowledged events that had not reached a send`));
              emit(events);
              node.status(Status.ok(t(RED, "mlc-acumatica-trigger.status.replayed", { n: events.length }, `replayed ${events.length}`)));
            }
          })
          .catch((err: unknown) => reportError(RED, node, err, { topic: "acumatica/journal" }));
        try {
          release = registerEndpoint(RED.httpNode, `/acumatica/${endpoint}`, node.id, onPush, { contentTypes: ["application/json"] }); // 415 to a body that is not JSON
          // The full path below the HTTP root, the one to paste into Acumatica: "/mlc/acumatica/bills".
          const full = publicEndpointUrl("", RED.settings.httpNodeRoot, `/acumatica/${endpoint}`);
          node.status(Status.idle(t(RED, "mlc-acumatica-trigger.status.watching", { endpoint: full }, `watching ${full}`)));
        } catch (err) {
          reportError(RED, node, err, { topic: "acumatica/trigger/start", endpoint });
        }
      }
      if (mode === "poll" || config.catchUp) schedule(mode === "poll" ? 250 : intervalMs);
      warnIfLossy(RED, node, resolveStore(RED, config.store));

      onClose(node, async () => {
        closed = true;
        if (timer) clearTimeout(timer);
        release?.();
        unsubscribe?.();
        if (polling) await polling;
      });
    },
    { headerSecret: { type: "password" } },
  );
}
