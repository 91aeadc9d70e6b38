/**
 * The test-only family's Node-RED node type, built from the trigger skeleton (nodes/shared/trigger.ts) and the kit
 * client (family.ts), to show what a new family's trigger costs: `mlc-kit-trigger`, with
 * - poll mode: the fake OData list of test/sims/kit-odata.ts (`modifiedAt` in OData v4 literals, next-link paging);
 * - push mode: `POST <httpNodeRoot>/mlc/kit/<endpoint>` with `{ deliveryId, items: [{ id, name, modifiedAt }] }`,
 *   signed `X-Kit-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with the node's signing key. With a public
 *   URL it registers a webhook subscription at start (the ERP's validation handshake `?validationToken=` is
 *   answered by the skeleton's hook) and deletes it when the node is deleted (the BC/Exact pattern).
 * Registered only by tests (`registerKitNodes` as a node set).
 */
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { ValidationError } from "../../nodes/lib/errors";
import { odataV4Time } from "../../nodes/lib/poll/conditions";
import { WatermarkWindow } from "../../nodes/lib/poll/window";
import { num, registerNode, reportError } from "../../nodes/shared/node";
import { SubscriptionManager, ValidationHandshake, hmacSignature, startTrigger } from "../../nodes/shared/trigger";
import type { RedAPI, RedNode } from "../../nodes/shared/types";
import { KitClient, kitEvent } from "./family";

interface KitTriggerProps extends Record<string, unknown> {
  mode?: "push" | "poll";
  url?: string;
  clientId?: string;
  endpoint?: string;
  interval?: string | number;
  overlap?: string | number;
  startFrom?: string;
  store?: string;
  /** push: the base URL at which the ERP reaches Node-RED's httpNodeRoot; set → a webhook subscription is registered. */
  publicUrl?: string;
}

/** Business Central's handshake: `?validationToken=<token>` answered 200 text/plain with the token (a safe token only). */
export const validationTokenHandshake: ValidationHandshake = {
  answer: (req) => {
    const token = new URLSearchParams(req.rawQuery).get("validationToken");
    if (token === null || !/^[A-Za-z0-9._~-]{1,256}$/.test(token)) return undefined;
    return { status: 200, headers: { "Content-Type": "text/plain; charset=utf-8" }, body: token };
  },
};

/** The webhook subscription of one node: registered at start, deleted when the node is deleted. */
function subscription(node: RedNode, kit: () => KitClient, notificationUrl: string): SubscriptionManager {
  let created: Promise<string | undefined> = Promise.resolve(undefined);
  return {
    start: () => {
      created = kit()
        .subscribe(notificationUrl)
        .then((sub) => {
          node.status({ fill: "green", shape: "ring", text: `subscribed until ${sub.expirationDateTime.slice(0, 10)}` });
          return sub.id;
        });
      return created.then(() => undefined);
    },
    // a close during the registration waits for it, so a deleted node leaves no subscription behind
    stop: async (removed) => {
      const id = await created.catch(() => undefined);
      if (removed && id) await kit().unsubscribe(id);
    },
  };
}

/** A push body → the events (jobIds as for the same rows polled). @throws SyntaxError, ValidationError */
export function kitPushEvents(body: Buffer): { key: string; events: ErpEventMsg[] } {
  const json = JSON.parse(body.toString("utf8")) as { deliveryId?: unknown; items?: unknown };
  if (typeof json?.deliveryId !== "string" || !Array.isArray(json.items)) throw new ValidationError("Kit push needs deliveryId and items", { code: "bad_push" });
  return { key: json.deliveryId, events: json.items.map(kitEvent) };
}

/** Registers `mlc-kit-trigger` (a node set entry: `require("…/test/kit/nodes")(RED)`). */
export function registerKitNodes(RED: RedAPI): void {
  registerNode<KitTriggerProps>(
    RED,
    "mlc-kit-trigger",
    (node: RedNode, config) => {
      let client: KitClient | undefined;
      const kit = (): KitClient => (client ??= new KitClient({ baseUrl: config.url ?? "", clientId: config.clientId ?? "", clientSecret: node.credentials.clientSecret ?? "" }));
      const intervalMs = num(config.interval, 60, 1, 86400) * 1000;
      const path = `/kit/${config.endpoint || "items"}`;
      const publicUrl = (config.publicUrl ?? "").replace(/\/+$/, "");
      startTrigger(RED, node, {
        i18n: "mlc-kit-trigger",
        family: "kit",
        store: config.store,
        stateKey: "mlc_kit_poll",
        push:
          config.mode === "push"
            ? {
                path,
                auth: hmacSignature({ headerName: "X-Kit-Signature", prefix: "sha256=", key: () => node.credentials.signingKey ?? "" }),
                parse: kitPushEvents,
                handshake: validationTokenHandshake,
                subscriptions: publicUrl ? subscription(node, kit, `${publicUrl}/mlc${path}`) : undefined,
              }
            : undefined,
        poll:
          config.mode === "poll"
            ? {
                window: new WatermarkWindow({ overlapMs: num(config.overlap, 60, 0, 86400) * 1000, modifiedField: "modifiedAt", timeCondition: odataV4Time }),
                intervalMs,
                firstDelayMs: 250,
                startFrom: config.startFrom || "now",
                read: async function* ({ filter }) {
                  for await (const row of kit().items(filter)) {
                    try {
                      yield kitEvent(row);
                    } catch (err) {
                      reportError(RED, node, err, { topic: "kit/poll" });
                    }
                  }
                },
              }
            : undefined,
        close: async () => client?.close(),
      });
    },
    { clientSecret: { type: "password" }, signingKey: { type: "password" } },
  );
}
