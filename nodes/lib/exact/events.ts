/**
 * Exact Online records and webhook notifications → the package's event envelope (nodes/lib/envelope.ts), and the
 * Exact pieces of the kit's watermark poller: what the trigger (on the kit's trigger skeleton) configures.
 *
 * - Entities (reference exact-online.md §7): path, primary key, document number, webhook topic (none for
 *   Receivables, Payments and PurchaseInvoices: those are polled), and the `$select` read (never `*`).
 * - jobId = (exact, division, entity, GUID, `Modified` as ISO, deleted?): a webhook delivery fetches the record and
 *   so yields the same jobId as a poll that reads the same change, and a later change yields a new one.
 * - Polling: `Modified gt datetime'…'` (kit `exactTime`: UTC field accessors, no zone suffix), overlap 2 h by default
 *   because the zone of Exact's datetimes is undocumented (CET/CEST misreadings stay inside the window).
 */
import { ErpAction, ErpEventMsg, eventTopic } from "../envelope";
import { ValidationError } from "../errors";
import { deriveJobId } from "../ids";
import { exactTime } from "../poll/conditions";
import { msDate } from "../poll/modified-time";
import { PollRead } from "../poll/poller";
import { WatermarkWindow } from "../poll/window";
import type { ExactClient } from "./client";
import { fromExact } from "./values";
import type { ExactNotification } from "./webhook";

/** One entity the trigger can watch. */
export interface ExactEntity {
  /** `service/Entity` path. */
  path: string;
  /** Primary key field (a GUID). */
  pk: string;
  /** Human document number field, when there is one. */
  numberField?: string;
  /** Webhook topic; undefined for entities without webhooks (poll them). */
  topic?: string;
  /** Fields read for an event (`Modified` always included). */
  select: string[];
}

/** Entities of the trigger, by entity name (also the `msg.erp.entity`). */
export const EXACT_EVENT_ENTITIES: Readonly<Record<string, ExactEntity>> = Object.freeze({
  SalesInvoices: { path: "salesinvoice/SalesInvoices", pk: "InvoiceID", numberField: "InvoiceNumber", topic: "SalesInvoices", select: ["InvoiceID", "InvoiceNumber", "InvoiceDate", "DueDate", "AmountDC", "AmountFC", "Currency", "OrderedBy", "OrderedByName", "InvoiceTo", "InvoiceToName", "InvoiceToContactPerson", "OrderedByContactPerson", "Status", "Type", "PaymentReference", "YourRef", "Modified"] },
  SalesOrders: { path: "salesorder/SalesOrders", pk: "OrderID", numberField: "OrderNumber", topic: "SalesOrders", select: ["OrderID", "OrderNumber", "OrderDate", "DeliveryDate", "AmountDC", "Currency", "OrderedBy", "OrderedByName", "OrderedByContactPerson", "InvoiceTo", "InvoiceToContactPerson", "DeliverTo", "DeliverToContactPerson", "Status", "ApprovalStatus", "DeliveryStatus", "YourRef", "Modified"] },
  PurchaseOrders: { path: "purchaseorder/PurchaseOrders", pk: "PurchaseOrderID", numberField: "OrderNumber", topic: "PurchaseOrders", select: ["PurchaseOrderID", "OrderNumber", "OrderDate", "ReceiptDate", "AmountDC", "Currency", "Supplier", "SupplierName", "SupplierContact", "SupplierContactPersonFullName", "OrderStatus", "ApprovalStatus", "YourRef", "Modified"] },
  GoodsDeliveries: { path: "salesorder/GoodsDeliveries", pk: "EntryID", numberField: "DeliveryNumber", topic: "GoodsDeliveries", select: ["EntryID", "DeliveryNumber", "DeliveryDate", "DeliveryAccount", "DeliveryAccountName", "DeliveryContact", "DeliveryContactPersonFullName", "Description", "ShippingMethodDescription", "TrackingNumber", "Modified"] },
  PurchaseEntries: { path: "purchaseentry/PurchaseEntries", pk: "EntryID", numberField: "EntryNumber", topic: "PurchaseEntries", select: ["EntryID", "EntryNumber", "EntryDate", "DueDate", "AmountDC", "Currency", "InvoiceNumber", "Supplier", "SupplierName", "Status", "Type", "YourRef", "Modified"] },
  PurchaseInvoices: { path: "purchase/PurchaseInvoices", pk: "ID", numberField: "EntryNumber", select: ["ID", "Amount", "Currency", "DueDate", "InvoiceDate", "EntryNumber", "Status", "Supplier", "Type", "YourRef", "PaymentReference", "Modified"] },
  Accounts: { path: "crm/Accounts", pk: "ID", numberField: "Code", topic: "Accounts", select: ["ID", "Code", "Name", "Email", "Phone", "Status", "MainContact", "Blocked", "Modified"] },
  Contacts: { path: "crm/Contacts", pk: "ID", topic: "Contacts", select: ["ID", "Account", "FullName", "Email", "BusinessEmail", "Mobile", "BusinessMobile", "Phone", "IsMainContact", "IsMailingExcluded", "Modified"] },
  Receivables: { path: "cashflow/Receivables", pk: "ID", numberField: "InvoiceNumber", select: ["ID", "Account", "AccountName", "AmountDC", "Currency", "DueDate", "InvoiceNumber", "InvoiceDate", "IsFullyPaid", "LastPaymentDate", "Status", "YourRef", "Modified"] },
  Payments: { path: "cashflow/Payments", pk: "ID", numberField: "InvoiceNumber", select: ["ID", "Account", "AccountName", "AmountDC", "Currency", "DueDate", "InvoiceNumber", "PaymentMethod", "Status", "Modified"] },
});

/** Default poll overlap below the watermark, ms (2 h: Exact's datetime zone is undocumented). */
export const EXACT_POLL_OVERLAP_MS = 7_200_000;

/** The entity called `name`. @throws ValidationError for an unknown one */
export function exactEntity(name: string): ExactEntity {
  const e = EXACT_EVENT_ENTITIES[name];
  if (!e) throw new ValidationError(`Unknown Exact entity "${String(name).slice(0, 40)}" (one of ${Object.keys(EXACT_EVENT_ENTITIES).join(", ")})`, { code: "bad_entity" });
  return e;
}

/**
 * One raw Exact record → the envelope. `version` (ISO) overrides `Modified` (a delete has no record to read).
 * @throws ValidationError `bad_record` (with recordId) when the key or the modification time is missing
 */
export function exactEvent(entityName: string, raw: Record<string, unknown>, division: number, action: ErpAction, extra: { deliveryId?: string; version?: string } = {}): ErpEventMsg {
  const e = exactEntity(entityName);
  const id = String(raw[e.pk] ?? "").toLowerCase();
  const modifiedAt = msDate(raw.Modified);
  const version = extra.version ?? modifiedAt;
  if (!id || !version) throw new ValidationError(`Exact ${entityName} record without ${!id ? e.pk : "Modified"}`, { code: "bad_record", recordId: id || undefined });
  const number = e.numberField && raw[e.numberField] !== undefined && raw[e.numberField] !== null ? String(raw[e.numberField]).trim() : undefined;
  const tenant = String(division);
  const erp = { system: "exact" as const, tenant, entity: entityName, id, action, jobId: deriveJobId({ system: "exact", tenant, entity: entityName, id, version, action }) };
  return {
    topic: eventTopic({ system: "exact", entity: entityName, action }),
    payload: fromExact(raw) as Record<string, unknown>,
    erp: { ...erp, ...(number ? { number } : {}), ...(modifiedAt ? { modifiedAt } : {}), ...(extra.deliveryId ? { deliveryId: extra.deliveryId } : {}) },
  };
}

const ACTIONS: Record<string, ErpAction> = { create: "created", update: "updated", delete: "deleted" };

/**
 * A verified webhook notification → its event: the record is fetched from `ExactOnlineEndpoint` (the notification
 * carries only the key; the GET counts against the rate limit). A delete is not fetched (payload = the key only).
 * @returns undefined when the topic is not watched or the record is gone (deleted after the notification)
 * @throws as {@link ExactClient.getByEndpoint} (a foreign endpoint URL is refused)
 */
export async function eventFromNotification(client: ExactClient, n: ExactNotification): Promise<ErpEventMsg | undefined> {
  const entityName = Object.keys(EXACT_EVENT_ENTITIES).find((k) => EXACT_EVENT_ENTITIES[k].topic === n.topic);
  const action = ACTIONS[n.action];
  if (!entityName || !action) return undefined;
  const e = EXACT_EVENT_ENTITIES[entityName];
  if (action === "deleted") return exactEvent(entityName, { [e.pk]: n.key }, n.division, action, { deliveryId: n.deliveryId, version: `deleted:${n.eventCreatedOn}` });
  const raw = await client.getByEndpoint(n.endpoint, e.select);
  return raw ? exactEvent(entityName, raw, n.division, action, { deliveryId: n.deliveryId }) : undefined;
}

/** Payload property of a key-only notice (the trigger journals it before answering 200 and fetches the record after). */
export const EXACT_NOTICE = "exactNotice";

/**
 * The event journaled for a verified notification before the 200: the final event for a delete (nothing to fetch),
 * else a key-only notice (`payload.exactNotice` = the notification, version `notice:<EventCreatedOn>`) that the trigger
 * replaces with {@link eventFromNotification}'s event, whose jobId is the poll path's.
 * @throws ValidationError `bad_entity` for an unknown entity name
 */
export function exactNoticeEvent(entityName: string, n: ExactNotification): ErpEventMsg {
  const pk = exactEntity(entityName).pk;
  if (n.action === "delete") return exactEvent(entityName, { [pk]: n.key }, n.division, "deleted", { deliveryId: n.deliveryId, version: `deleted:${n.eventCreatedOn}` });
  const ev = exactEvent(entityName, { [pk]: n.key }, n.division, n.action === "create" ? "created" : "updated", { deliveryId: n.deliveryId, version: `notice:${n.eventCreatedOn}` });
  return { ...ev, payload: { [EXACT_NOTICE]: n } };
}

/** The kit's watermark window for Exact: `Modified`, `datetime'…'` literals, 2 h overlap unless given. */
export function exactWindow(userFilter?: string, overlapMs = EXACT_POLL_OVERLAP_MS): WatermarkWindow {
  return new WatermarkWindow({ modifiedField: "Modified", timeCondition: exactTime, overlapMs, userFilter });
}

/** The poller's `read` for one entity: every row of the window's filter, as events ("updated"; polling cannot tell). */
export function exactPollRead(client: ExactClient, entityName: string): (r: PollRead) => AsyncIterable<ErpEventMsg> {
  const e = exactEntity(entityName);
  return async function* (r: PollRead) {
    const division = await client.currentDivision();
    for await (const raw of client.list(e.path, { select: e.select, filter: r.filter })) yield exactEvent(entityName, raw, division, "updated");
  };
}
