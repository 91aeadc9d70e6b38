/**
 * The test-only family's Node-RED node type, built from the trigger skeleton (nodes/shared/trigger.ts) and the kit
 * client (family.ts), to show what a new family's trigger costs: `mlc-kit-trigger`, with
 * - poll mode: the fake OData list of test/sims/kit-odata.ts (`modifiedAt` in OData v4 literals, next-link paging);
 * - push mode: `POST <httpNodeRoot>/mlc/kit/<endpoint>` with `{ deliveryId, items: [{ id, name, modifiedAt }] }`,
 *   signed `X-Kit-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with the node's signing key.
 * Registered only by tests (`registerKitNodes` as a node set).
 */
import { ErpEventMsg } from "../../nodes/lib/envelope";
import { ValidationError } from "../../nodes/lib/errors";
import { odataV4Time } from "../../nodes/lib/poll/conditions";
import { WatermarkWindow } from "../../nodes/lib/poll/window";
import { num, onClose, registerNode, reportError } from "../../nodes/shared/node";
import { hmacSignature, startTrigger } from "../../nodes/shared/trigger";
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
      startTrigger(RED, node, {
        i18n: "mlc-kit-trigger",
        family: "kit",
        store: config.store,
        stateKey: "mlc_kit_poll",
        push:
          config.mode === "push"
            ? {
                path: `/kit/${config.endpoint || "items"}`,
                auth: hmacSignature({ headerName: "X-Kit-Signature", prefix: "sha256=", key: () => node.credentials.signingKey ?? "" }),
                parse: kitPushEvents,
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
      });
      onClose(node, () => client?.close());
    },
    { clientSecret: { type: "password" }, signingKey: { type: "password" } },
  );
}
