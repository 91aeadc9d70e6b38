/**
 * `mlc-acumatica-trigger`: turns Acumatica changes into envelope events.
 * A thin adapter on the trigger skeleton (nodes/shared/trigger.ts), which does the endpoint, journal, replay, poll
 * loop, status and close; this file gives it Acumatica's pieces.
 * - push mode: serves `<httpNodeRoot>/mlc/acumatica/<endpoint>` for Acumatica Push Notifications
 *   (SM302000, webhook destination). The configured shared-secret header is required (compared in
 *   constant time; missing/wrong → 401 with no side effect; none configured → 404, and the status says why once;
 *   a body that is not JSON → 400, logged at most once a minute; JSON that is not a notification → 400 and Catch);
 *   a notification's events are committed to the
 *   push journal (lib/journal.ts, keyed by Query|Id) before the 200, so at-least-once redeliveries are
 *   answered 200 and dropped and a crash after the 200 replays them at the next start (msg.erp.replay);
 *   an event is finished when a send node settles its jobId. Inserted/Deleted rows become
 *   created/updated/deleted events. Optionally a catch-up poll runs too.
 * - poll mode: lists an entity with `LastModifiedDateTime gt <watermark − overlap>` and `le <poll start>` (+ the user's
 *   `$filter`), pages with $top/$skip, emits only events not seen before (tie-breaking on equal
 *   timestamps), journals each event before it is emitted and only then stores the watermark in the context store,
 *   so a restart (even after a crash) neither misses nor repeats; unsettled polled events are replayed like pushes.
 * Vendor: MYOB-IDG IS__con_Push_Notification_Format, IntegrationDev_RESTExample_Parameter_filter.
 */
import { PollWindow, pushToEvents, recordToEvent } from "../lib/acumatica/events";
import { MlcError, ValidationError } from "../lib/errors";
import { mountDispatcher } from "../shared/dispatcher";
import { num, registerNode, reportError } from "../shared/node";
import { PollSpec, PushSpec, sharedSecretHeader, startTrigger } from "../shared/trigger";
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
  /** Overlap re-read on every poll, s. */
  overlap?: string | number;
  /** "now" (default) or an ISO 8601 time to start from when no watermark is stored yet. */
  startFrom?: string;
  /** push mode: also poll the entity as a catch-up. */
  catchUp?: boolean;
  store?: string;
  pageSize?: string | number;
}

function splitList(s: string | undefined): string[] {
  return (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

/** Acumatica's push side: the shared-secret header and the notification format (reference §7). */
function pushSpec(RED: RedAPI, node: RedNode, config: TriggerProps, keyFields: string[] | undefined): PushSpec {
  const endpoint = (config.endpoint || "events").trim();
  const headerName = (config.headerName || "X-Notify-Secret").trim().toLowerCase();
  return {
    path: `/acumatica/${endpoint}`,
    auth: sharedSecretHeader(headerName, () => node.credentials.headerSecret ?? ""),
    parse: (body) => {
      const json = JSON.parse(body.toString("utf8")) as unknown;
      const tenant = acumaticaConfig(RED, config.acumatica, node).tenant;
      const r = pushToEvents(json, { tenant, keyFields, modifiedField: (config.modifiedField || "LastModifiedDateTime").trim(), entity: (config.entity ?? "").trim() || undefined });
      return { key: r.notificationKey, events: r.events, problems: r.problems };
    },
  };
}

/** Acumatica's poll side: `LastModifiedDateTime` in `datetimeoffset'…'` literals, $top/$skip paging. */
function pollSpec(RED: RedAPI, node: RedNode, config: TriggerProps, keyFields: string[] | undefined, firstDelayMs: number): PollSpec {
  const entity = (config.entity ?? "").trim();
  const modifiedField = (config.modifiedField || "LastModifiedDateTime").trim();
  const pageSize = num(config.pageSize, 100, 1, 1000);
  return {
    window: new PollWindow({ overlapMs: num(config.overlap, 60, 0, 86400) * 1000, modifiedField, userFilter: (config.filter ?? "").trim() || undefined }),
    intervalMs: num(config.interval, 60, 1, 86400) * 1000,
    firstDelayMs,
    startFrom: (config.startFrom ?? "").trim() || "now",
    read: async function* ({ filter }) {
      const acu = acumaticaConfig(RED, config.acumatica, node);
      if (!entity) throw new ValidationError("Poll mode needs an entity (e.g. Bill)", { code: "bad_config" });
      const rows = acu.client().listAll(entity, { filter, select: config.select || undefined, expand: config.expand || undefined }, pageSize);
      for await (const record of rows) {
        try {
          yield recordToEvent(entity, record, { tenant: acu.tenant, keyFields, modifiedField });
        } catch (err) {
          reportError(RED, node, err, { topic: "acumatica/poll", entity, recordId: err instanceof MlcError ? err.recordId : undefined });
        }
      }
    },
  };
}

export function registerAcumaticaTrigger(RED: RedAPI): void {
  // at load, not at the first node: pushes arriving while Node-RED starts get 503 + Retry-After, not 404 (runtime §6.1)
  mountDispatcher(RED.httpNode, RED);
  registerNode<TriggerProps>(
    RED,
    "mlc-acumatica-trigger",
    (node: RedNode, config) => {
      const mode = config.mode === "poll" ? "poll" : "push";
      const keyFields = splitList(config.keyFields);
      const keys = keyFields.length ? keyFields : undefined;
      const intervalMs = num(config.interval, 60, 1, 86400) * 1000;
      startTrigger(RED, node, {
        i18n: "mlc-acumatica-trigger",
        family: "acumatica",
        store: config.store,
        stateKey: "mlc_acumatica_poll",
        push: mode === "push" ? pushSpec(RED, node, config, keys) : undefined,
        poll: mode === "poll" || config.catchUp ? pollSpec(RED, node, config, keys, mode === "poll" ? 250 : intervalMs) : undefined,
        about: { entity: (config.entity ?? "").trim() },
      });
    },
    { headerSecret: { type: "password" } },
  );
}
