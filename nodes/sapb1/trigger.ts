/**
 * `mlc-sapb1-trigger`: turns SAP Business One changes into envelope events by polling the Service Layer (B1 has no
 * verified webhook: reference sap-business-one.md §8; polling-first). A thin adapter on the trigger skeleton
 * (nodes/shared/trigger.ts: poll loop on the kit's Poller, state in the context store, journal before emit, replay
 * after a restart, status, close); this file gives it SAP B1's pieces (nodes/lib/sapb1):
 * - `created` / `changed`: documents, items or partners on the split UpdateDate/UpdateTime watermark (server time
 *   zone of the config node); `created` alerts once per DocNum + DocDate, `changed` once per version;
 * - `payments`: IncomingPayments (no UpdateDate) from the start day, then by DocEntry;
 * - `overdue`: open A/R invoices overdue by N days, with amount due and due date on `msg.alert`;
 * - `lowStock`: inventory items below their minimum per warehouse, once per dip, on `msg.alert`.
 * Vendor: SAP "Working with SAP Business One Service Layer" §3.7 (query options), reference §4.1, §7.
 */
import { MlcError, ValidationError } from "../lib/errors";
import { EventContext, entitySpec, updateWindow } from "../lib/sapb1/events";
import { updateReader } from "../lib/sapb1/poll";
import { lowStockWindow, overdueWindow, paymentsWindow } from "../lib/sapb1/scan";
import { num, registerNode, reportError } from "../shared/node";
import { PollSpec, startTrigger } from "../shared/trigger";
import type { RedAPI, RedNode } from "../shared/types";
import { sapB1Config } from "./config";

export type SapB1Watch = "created" | "changed" | "payments" | "overdue" | "lowStock";

export interface SapB1TriggerProps extends Record<string, unknown> {
  name?: string;
  sapb1?: string;
  watch?: SapB1Watch;
  /** created/changed: the entity (Invoices, PurchaseInvoices, PurchaseOrders, Orders, Items, BusinessPartners). */
  entity?: string;
  /** overdue: N days past the due date. */
  overdueDays?: string | number;
  /** Extra `$filter`, ANDed. */
  filter?: string;
  /** Poll interval, s. */
  interval?: string | number;
  /** "now" (default) or ISO 8601: where the first poll starts (created/changed/payments). */
  startFrom?: string;
  store?: string;
}

const WATCHES: SapB1Watch[] = ["created", "changed", "payments", "overdue", "lowStock"];

/** The poll side for the chosen watch. @throws ValidationError `bad_config` */
function pollSpec(RED: RedAPI, node: RedNode, config: SapB1TriggerProps, watch: SapB1Watch): PollSpec {
  const sap = sapB1Config(RED, config.sapb1, node);
  const client = () => sapB1Config(RED, config.sapb1, node).client();
  const filter = (config.filter ?? "").trim() || undefined;
  const entity = watch === "overdue" ? "Invoices" : watch === "payments" ? "IncomingPayments" : watch === "lowStock" ? "Items" : (config.entity ?? "").trim();
  const ctx: EventContext = { entity, tenant: sap.tenant, timeZone: sap.timeZone };
  let pieces;
  if (watch === "created" || watch === "changed") {
    if (entitySpec(entity).watermark !== "update") throw new ValidationError(`${entity} has no UpdateDate: use the payments watch`, { code: "bad_config" });
    const onMalformed = (err: MlcError): void => reportError(RED, node, err, { topic: "sapb1/poll", entity, recordId: err.recordId });
    // "created" on documents: only those created inside the window (an old one that is only updated now is not new)
    const createdOnly = watch === "created" && entitySpec(entity).number !== undefined;
    pieces = { window: updateWindow(sap.timeZone, filter, undefined, createdOnly), read: updateReader(client, ctx, watch, { onMalformed }) };
  } else if (watch === "payments") pieces = paymentsWindow(client, ctx, filter);
  else if (watch === "overdue") pieces = overdueWindow(client, ctx, num(config.overdueDays, 30, 0, 3650));
  else pieces = lowStockWindow(client, ctx, filter);
  return {
    ...pieces,
    intervalMs: num(config.interval, 60, 1, 86400) * 1000,
    firstDelayMs: 250,
    startFrom: (config.startFrom ?? "").trim() || "now",
  };
}

export function registerSapB1Trigger(RED: RedAPI): void {
  registerNode<SapB1TriggerProps>(RED, "mlc-sapb1-trigger", (node, config) => {
    const watch = WATCHES.includes(config.watch as SapB1Watch) ? (config.watch as SapB1Watch) : "created";
    let poll: PollSpec;
    try {
      poll = pollSpec(RED, node, config, watch);
    } catch (err) {
      reportError(RED, node, err, { topic: "sapb1/trigger/start", watch });
      return;
    }
    startTrigger(RED, node, {
      i18n: "mlc-sapb1-trigger",
      family: "sapb1",
      store: config.store,
      stateKey: `mlc_sapb1_${watch}_${(config.entity ?? "").trim()}`,
      poll,
      about: { watch, entity: (config.entity ?? "").trim() },
    });
  });
}
