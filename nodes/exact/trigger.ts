/**
 * `mlc-exact-trigger`: Exact Online changes → envelope events; a thin adapter on the trigger skeleton
 * (nodes/shared/trigger.ts) with the pieces of nodes/lib/exact/ (webhook.ts, subscriptions.ts, events.ts).
 * - webhook mode: serves `<httpNodeRoot>/mlc/exact/<endpoint>`; on deploy subscribes the entity's topic to
 *   `<Public URL><httpNodeRoot>/mlc/exact/<endpoint>` (listed before created), removed when the node is deleted. The empty
 *   validation POST gets 200 unchecked; any other body needs a valid `HashCode` (HMAC-SHA256 of the raw Content,
 *   upper-case hex, app webhook secret), else 401. A notification carries only the key: the skeleton journals a
 *   key-only notice before the 200, then (its fetch-after-journal step) the record is fetched, journaled under the
 *   poll path's key `p|<jobId>` (jobId from `Modified`, as a poll read) and emitted, and the notice is settled. So webhook and poll
 *   emit a change once, and a crash after the 200 replays the notice. A delete is journaled final (no fetch).
 * - poll mode (no webhooks: Receivables, Payments, PurchaseInvoices), or catch-up next to webhooks: `Modified` with a
 *   2 h overlap by default (Exact's datetime zone is undocumented), events journaled before the watermark moves.
 * Vendor: reference exact-online.md §7 (entities), §8.1–§8.4 (subscriptions, validation call, payload, HashCode).
 */
import { senderSecret, unsetEnvVar } from "../lib/config-value";
import type { ErpEventMsg } from "../lib/envelope";
import { MlcError, ValidationError } from "../lib/errors";
import { EXACT_EVENT_ENTITIES, EXACT_NOTICE, EXACT_POLL_OVERLAP_MS, eventFromNotification, exactEntity, exactEvent, exactNoticeEvent, exactWindow } from "../lib/exact/events";
import { ensureSubscriptions, removeSubscriptions } from "../lib/exact/subscriptions";
import { ExactNotification, parseExactNotification, verifyExactHashCode } from "../lib/exact/webhook";
import { mountDispatcher, publicEndpointUrl } from "../shared/dispatcher";
import { Status, num, registerNode, reportError } from "../shared/node";
import { FetchAfterJournal, PollSpec, PushSpec, startTrigger } from "../shared/trigger";
import type { RedAPI, RedNode } from "../shared/types";
import { exactConfig } from "./config";

/** Editor properties. `interval` and `overlap` in s; `publicUrl`: the https origin Exact reaches (redirect-URI domain). */
export interface ExactTriggerProps extends Record<string, unknown> {
  name?: string;
  exact?: string;
  mode?: "webhook" | "poll";
  /** Entity name, e.g. SalesInvoices (lib/exact/events.ts EXACT_EVENT_ENTITIES). */
  entity?: string;
  /** webhook: endpoint name below /mlc/exact/. */
  endpoint?: string;
  publicUrl?: string;
  filter?: string;
  interval?: string | number;
  overlap?: string | number;
  startFrom?: string;
  /** webhook mode: also poll the entity as a catch-up (Exact's redelivery policy is undocumented). */
  catchUp?: boolean;
  store?: string;
}

function pushSpec(RED: RedAPI, node: RedNode, config: ExactTriggerProps, entity: string): PushSpec {
  const path = `/exact/${(config.endpoint || "events").trim()}`;
  const secret = (): string => senderSecret(node.credentials.webhookSecret); // "" while it is an unset ${VAR}
  // an unset ${VAR} is left as is by Node-RED: like an empty Public URL, the subscription is then the user's to make
  const unsetVar = /^\$\{(\S+)\}$/.exec((config.publicUrl ?? "").trim())?.[1];
  const publicUrl = unsetVar ? "" : (config.publicUrl ?? "").trim();
  const callbackUrl = publicEndpointUrl(publicUrl, RED.settings.httpNodeRoot, path);
  const topic = exactEntity(entity).topic;
  const client = () => exactConfig(RED, config.exact, node).client();
  return {
    path,
    auth: { configured: () => !!secret(), verify: (req) => verifyExactHashCode(req.body, secret()), unsetVar: () => unsetEnvVar(node.credentials.webhookSecret) },
    handshake: { answer: (req) => (req.body.toString("utf8").trim() === "" ? { status: 200, body: "" } : undefined) },
    parse: (body) => {
      const n = parseExactNotification(body);
      if (!n) throw new ValidationError("Exact webhook body without the notification's fields", { code: "bad_push" });
      return { key: n.deliveryId, events: n.topic === topic ? [exactNoticeEvent(entity, n)] : [] };
    },
    subscriptions: {
      start: async () => {
        if (!topic) throw new ValidationError(`Exact has no webhook topic for ${entity}: use poll mode`, { code: "bad_config" });
        if (!publicUrl) {
          // the endpoint is served; no subscription is made (said in the status and the log, not an error)
          node.status(Status.warn("mlc-exact-trigger.status.unsubscribed"));
          node.log(`${unsetVar ? `environment variable ${unsetVar} is not set` : "no Public URL"}: no webhook subscription made`);
          return;
        }
        if (!/^https:\/\//.test(callbackUrl)) throw new ValidationError("Exact calls https URLs only: the Public URL must start with https://", { code: "bad_config" });
        const refused = (await ensureSubscriptions(client(), [topic], callbackUrl)).filter((r) => r.error);
        if (refused.length) throw new MlcError(`Exact refused the webhook subscription: ${refused.map((r) => `${r.topic}: ${r.error ?? ""}`).join("; ")}`, { code: "subscription_refused" });
      },
      stop: async (removed) => {
        if (removed && topic && /^https:\/\//.test(callbackUrl)) await removeSubscriptions(client(), callbackUrl);
      },
    },
  };
}

function pollSpec(RED: RedAPI, node: RedNode, config: ExactTriggerProps, entity: string, firstDelayMs: number): PollSpec {
  const e = exactEntity(entity);
  return {
    window: exactWindow((config.filter ?? "").trim() || undefined, num(config.overlap, EXACT_POLL_OVERLAP_MS / 1000, 0, 86400) * 1000),
    intervalMs: num(config.interval, 60, 1, 86400) * 1000,
    firstDelayMs,
    startFrom: (config.startFrom ?? "").trim() || "now",
    read: async function* ({ filter }) {
      const client = exactConfig(RED, config.exact, node).client();
      const division = await client.currentDivision();
      for await (const raw of client.list(e.path, { select: e.select, filter })) {
        try {
          yield exactEvent(entity, raw, division, "updated");
        } catch (err) {
          reportError(RED, node, err, { topic: "exact/poll", entity, recordId: err instanceof MlcError ? err.recordId : undefined });
        }
      }
    },
  };
}

/**
 * Fetch after journal: a key-only notice reads its record (ExactClient.getByEndpoint, one GET); the skeleton journals
 * the full event under `p|<jobId>` (dropped when a poll or an earlier delivery already journaled it), emits it and
 * settles the notice. A failed read leaves the notice pending: it is replayed at the next start.
 */
function readNotified(RED: RedAPI, node: RedNode, config: ExactTriggerProps): FetchAfterJournal {
  const noticeOf = (ev: ErpEventMsg): ExactNotification | undefined => ev.payload?.[EXACT_NOTICE] as ExactNotification | undefined;
  return {
    names: (ev) => noticeOf(ev) !== undefined,
    read: async function* (ev) {
      const full = await eventFromNotification(exactConfig(RED, config.exact, node).client(), noticeOf(ev) as ExactNotification);
      if (full) yield full;
    },
    journal: "event",
    about: (ev) => ({ entity: ev.erp.entity, recordId: ev.erp.id }),
  };
}

export function registerExactTrigger(RED: RedAPI): void {
  // at load, not at the first node: pushes arriving while Node-RED starts get 503 + Retry-After, not 404 (runtime §6.1)
  mountDispatcher(RED.httpNode, RED);
  registerNode<ExactTriggerProps>(
    RED,
    "mlc-exact-trigger",
    (node: RedNode, config) => {
      const entity = (config.entity ?? "").trim() || "SalesInvoices";
      if (!EXACT_EVENT_ENTITIES[entity]) return reportError(RED, node, new ValidationError(`Unknown Exact entity ${entity.slice(0, 40)}`, { code: "bad_entity" }), { topic: "exact/trigger/start" });
      const mode = config.mode === "poll" ? "poll" : "webhook";
      startTrigger(RED, node, {
        i18n: "mlc-exact-trigger",
        family: "exact",
        store: config.store,
        stateKey: "mlc_exact_poll",
        push: mode === "webhook" ? pushSpec(RED, node, config, entity) : undefined,
        fetch: readNotified(RED, node, config),
        poll: mode === "poll" || config.catchUp ? pollSpec(RED, node, config, entity, mode === "poll" ? 250 : num(config.interval, 60, 1, 86400) * 1000) : undefined,
        about: { entity },
      });
    },
    { webhookSecret: { type: "password" } },
  );
}
