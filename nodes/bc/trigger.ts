/**
 * `mlc-bc-trigger`: Business Central changes as envelope events. A thin adapter on the trigger skeleton
 * (nodes/shared/trigger.ts: endpoint, journal, replay, poll loop, status, close) with Business Central's pieces:
 * - webhook mode: serves `<httpNodeRoot>/mlc/bc/<endpoint>`; answers the `validationToken` handshake (POST or GET,
 *   exactly 200 and the token); checks `clientState` on every item (a POST with no genuine item → 401); journals the
 *   notifications before the 202 and then reads each changed record (notifications carry no data) or pages a
 *   `collection` notification's URL; subscribes the chosen entity sets, renews a day before the 3-day expiry from the
 *   persisted expiry (survives restarts), catches up what a lost subscription missed (journaled, then read like a
 *   `collection` notification) and deletes the subscriptions when the node is removed. Entity sets the
 *   environment cannot notify about (`webhookSupportedResources`: e.g. purchaseOrders) are polled instead.
 * - poll mode: every entity set polled on `lastModifiedDateTime` (unquoted OData v4 literal) with the persisted watermark.
 * Vendor: BCDOCS api-reference/v2.0/dynamics-subscriptions, devenv-connect-apps-filtering (reference §4, §8).
 */
import { senderSecret, unsetEnvVar } from "../lib/config-value";
import type { BcClient, BcNotification } from "../lib/bc/client";
import { BcSubscriptionState, BcSubscriptions, handshakeAnswer, notificationEvent, notificationKey, readNotifications } from "../lib/bc/webhook";
import { ValidationError } from "../lib/errors";
import { hashedKey } from "../lib/ids";
import { odataV4Time } from "../lib/poll/conditions";
import { WatermarkWindow } from "../lib/poll/window";
import { contextBackend, resolveStore } from "../shared/context";
import { mountDispatcher } from "../shared/dispatcher";
import { num, registerNode, reportError } from "../shared/node";
import { FetchAfterJournal, Ingest, PollSpec, PushSpec, RenewalTimer, startTrigger } from "../shared/trigger";
import type { RedAPI, RedNode } from "../shared/types";
import { bcConfig } from "./config";

export interface BcTriggerProps extends Record<string, unknown> {
  name?: string;
  bc?: string;
  mode?: "webhook" | "poll";
  /** Entity sets, comma-separated, e.g. "salesInvoices,purchaseInvoices,customers". */
  entities?: string;
  /** webhook: endpoint name below /mlc/bc/. */
  endpoint?: string;
  /** webhook: public origin BC reaches this Node-RED at, e.g. https://nodered.example.com (plus httpNodeRoot). */
  publicUrl?: string;
  interval?: string | number;
  overlap?: string | number;
  startFrom?: string;
  store?: string;
}

const list = (s: unknown): string[] => String(s ?? "").split(",").map((x) => x.trim()).filter(Boolean);

function webhookSpec(RED: RedAPI, node: RedNode, config: BcTriggerProps, fallback: string[]): PushSpec {
  const endpoint = (config.endpoint || "events").trim();
  const secret = (): string => senderSecret(node.credentials.clientState); // "" while it is an unset ${VAR}
  const connection = bcConfig(RED, config.bc, node); // kept: at close Node-RED may no longer find the config node
  const client = (): BcClient => bcConfig(RED, config.bc, node).client();
  const base = String(config.publicUrl ?? "").trim().replace(/\/+$/, "");
  const root = String((RED.settings as { httpNodeRoot?: unknown }).httpNodeRoot ?? "/").replace(/\/+$/, "");
  const url = `${base}${root}/mlc/bc/${endpoint}`;
  const backend = contextBackend(node, "node", resolveStore(RED, config.store).name);
  // no secret or no public URL: the endpoint answers 404 (skeleton) and nothing is subscribed
  const ready = !!secret() && !!base;
  const manager = (c: BcClient): BcSubscriptions =>
    new BcSubscriptions({
      client: c,
      notificationUrl: url,
      clientState: secret() || "-",
      load: async () => (await backend.get("mlc_bc_subscriptions")) as BcSubscriptionState | undefined,
      save: (s) => backend.set("mlc_bc_subscriptions", s),
    });
  const subs = manager(client());
  let ingest: Ingest = () => Promise.resolve(false);
  const catchUp = (): Promise<number> => subs.deliverCatchUp((n) => ingest(hashedKey("bc", notificationKey(n)), [notificationEvent(client(), n)]));
  const renew = async (): Promise<number | undefined> => [await subs.renewDue(), await catchUp()][0]; // renewal, then catch-up
  const renewal = new RenewalTimer(renew, (err) => reportError(RED, node, err, { topic: "bc/subscription" }));
  return {
    path: `/bc/${endpoint}`,
    methods: ["POST", "GET"],
    handshake: { answer: (req) => handshakeAnswer(req.rawQuery) },
    auth: { configured: () => !!secret() && !!base, verify: (req) => ((b) => b.genuine.length + b.unusable > 0)(readNotifications(req.body, secret())), unsetVar: () => unsetEnvVar(node.credentials.clientState) },
    parse: (body) => {
      const { genuine, unusable } = readNotifications(body, secret());
      const problems = unusable ? [{ index: 0, message: `${unusable} item(s) with our clientState but no known changeType, subscriptionId or resource: acknowledged, not read` }] : [];
      return { key: hashedKey("bc", genuine.map(notificationKey).sort().join("\n")), events: genuine.map((n) => notificationEvent(client(), n)), problems };
    },
    subscriptions: !ready ? undefined : {
      start: async (journal) => {
        ingest = journal;
        const r = await subs.ensure(list(config.entities));
        fallback.push(...r.pollFallback);
        await catchUp().finally(() => renewal.schedule(r.nextRenewalAt));
      },
      stop: async (removed) => {
        renewal.stop();
        if (!removed) return;
        // the shared client may be closing with its config node (full deploy): delete through a client of our own
        const own = connection.detached();
        await manager(own).removeAll().finally(() => own.close());
      },
    },
  };
}

function pollSpec(RED: RedAPI, node: RedNode, config: BcTriggerProps, sets: () => string[], firstDelayMs: number): PollSpec {
  return {
    window: new WatermarkWindow({ overlapMs: num(config.overlap, 60, 0, 86400) * 1000, modifiedField: "lastModifiedDateTime", timeCondition: odataV4Time }),
    intervalMs: num(config.interval, 60, 1, 86400) * 1000,
    firstDelayMs,
    startFrom: (config.startFrom ?? "").trim() || "now",
    read: async function* ({ filter }) {
      const client = bcConfig(RED, config.bc, node).client();
      for (const entitySet of sets()) yield* client.pollRead(entitySet, filter);
    },
  };
}

/**
 * Fetch after journal: each record a notification names is read, journaled under its own jobId (from the record's
 * `lastModifiedDateTime`: a notification's time need not be the record's, so a catch-up, a `collection` or a poll
 * reading the same version is dropped as journaled) and emitted; the notification is then settled.
 */
function readNotified(RED: RedAPI, node: RedNode, config: BcTriggerProps): FetchAfterJournal {
  return {
    names: (msg) => msg.bcNotification === true,
    journal: "event",
    read: (msg) => bcConfig(RED, config.bc, node).client().changes(msg.payload as unknown as BcNotification),
    about: (msg) => ({ resource: (msg.payload as { resource?: string }).resource }),
  };
}

export function registerBcTrigger(RED: RedAPI): void {
  // at load, not at the first node: pushes arriving while Node-RED starts get 503 + Retry-After, not 404 (runtime §6.1)
  mountDispatcher(RED.httpNode, RED);
  registerNode<BcTriggerProps>(
    RED,
    "mlc-bc-trigger",
    (node, config) => {
      const webhook = config.mode !== "poll";
      const fallback: string[] = [];
      let push: PushSpec | undefined;
      try {
        if (!list(config.entities).length) throw new ValidationError("Name at least one entity set, e.g. salesInvoices", { code: "bad_config" });
        if (webhook) push = webhookSpec(RED, node, config, fallback);
      } catch (err) {
        reportError(RED, node, err, { topic: "bc/trigger/start" });
        return;
      }
      startTrigger(RED, node, {
        i18n: "mlc-bc-trigger",
        family: "bc",
        store: config.store,
        stateKey: "mlc_bc_poll",
        push,
        fetch: readNotified(RED, node, config),
        poll: pollSpec(RED, node, config, () => (webhook ? fallback : list(config.entities)), webhook ? num(config.interval, 60, 1, 86400) * 1000 : 250),
        about: { entities: list(config.entities) },
      });
    },
    { clientState: { type: "password" } },
  );
}
