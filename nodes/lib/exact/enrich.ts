/**
 * Routing for Exact Online documents (issue 10, Build 5): which account a document concerns, which of its contacts
 * hears about it, and by which channel. The account and contacts come from {@link PartyCache} (parties.ts).
 *
 * - Party: per document type, the account and the contact person the document itself names, e.g. a sales invoice's
 *   `InvoiceTo` / `InvoiceToContactPerson`, a sales order's `OrderedBy` / `OrderedByContactPerson`, a purchase order's
 *   `Supplier` / `SupplierContact` (order confirmations go to suppliers), a goods delivery's `DeliveryAccount` /
 *   `DeliveryContact` (field names as Exact's REST reference, HlpRestAPIResourcesDetails.aspx; reference §7).
 * - Contact order (contact type): the document's contact person, then the account's main contact (`MainContact`,
 *   `IsMainContact`), then the account's other contacts.
 * - Channel (communication preference): a mobile number (`Mobile`, then `BusinessMobile`, reference §7) → SMS, else
 *   an e-mail address (`Email`, then `BusinessEmail`) → e-mail, else the account's own `Email`; nobody reachable →
 *   `no-contact-found`.
 * - Opt-outs: a contact with `IsMailingExcluded` true ("excluded from the marketing list" in Exact's reference) or
 *   `IsAnonymised` set (GDPR anonymisation), or an account with `IsAnonymised` set, is never used; an address the
 *   caller's `optedOut` names (e.g. Twilio STOP) is skipped. Nobody left because of opt-outs → `opted-out`.
 *   The reference notes name no opt-out field; these are Exact's own (picqer/exact-php-client `Contact.php`,
 *   `Account.php`, generated from Exact's REST reference).
 */

/** Fields read from `crm/Accounts` (names exactly as Exact's REST reference). */
export const ACCOUNT_FIELDS = ["ID", "Code", "Name", "Email", "Phone", "MainContact", "Status", "Blocked", "IsAnonymised", "Modified"];
/** Fields read from `crm/Contacts`. */
export const CONTACT_FIELDS = ["ID", "Account", "FullName", "FirstName", "LastName", "Email", "BusinessEmail", "Mobile", "BusinessMobile", "Phone", "IsMainContact", "IsMailingExcluded", "IsAnonymised", "Modified"];

/** Who gets the notification and how. `to` is as stored in Exact (E.164 normalisation is the SMS node's job). */
export interface ExactRecipient {
  channel: "sms" | "email";
  to: string;
  name?: string;
  /** Contact GUID; absent when the account's own e-mail was used. */
  contactId?: string;
  accountId: string;
}

/** An account with its contacts, both raw Exact objects. */
export interface ExactParty {
  account: Record<string, unknown>;
  contacts: Record<string, unknown>[];
}

/** Result of {@link pickRecipient}: a recipient, or why there is none. */
export type RoutingResult = { recipient: ExactRecipient } | { recipient?: undefined; reason: "no-contact-found" | "opted-out" };

/** The account a document concerns and the contact person it names (lower-case GUIDs). */
export interface DocumentParty {
  accountId: string;
  contactId?: string;
}

/** (account field, contact field) pairs per document type, most specific first. */
const PARTY_FIELDS: Record<string, [string, string?][]> = {
  SalesInvoices: [["InvoiceTo", "InvoiceToContactPerson"], ["OrderedBy", "OrderedByContactPerson"]],
  SalesOrders: [["OrderedBy", "OrderedByContactPerson"], ["DeliverTo", "DeliverToContactPerson"], ["InvoiceTo", "InvoiceToContactPerson"]],
  PurchaseOrders: [["Supplier", "SupplierContact"]],
  GoodsDeliveries: [["DeliveryAccount", "DeliveryContact"]],
  other: [["InvoiceTo", "InvoiceToContactPerson"], ["OrderedBy", "OrderedByContactPerson"], ["DeliveryAccount", "DeliveryContact"], ["Account"], ["Supplier", "SupplierContact"]],
};

/** Primary keys that tell a document's type when the caller does not say it. */
const TYPE_BY_KEY: [string, string][] = [["InvoiceID", "SalesInvoices"], ["PurchaseOrderID", "PurchaseOrders"], ["OrderID", "SalesOrders"], ["DeliveryNumber", "GoodsDeliveries"]];

function guid(v: unknown): string | undefined {
  return typeof v === "string" && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v) ? v.toLowerCase() : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.trim() ? v.trim() : undefined;
}

/**
 * The account and named contact of `doc` (an Exact record, raw or `fromExact`-converted).
 * @param entity the document's entity name (`msg.erp.entity`, e.g. "SalesOrders"); guessed from its key when absent
 * @returns undefined when the document names no account GUID
 */
export function partyOf(doc: Record<string, unknown>, entity?: string): DocumentParty | undefined {
  const type = entity && PARTY_FIELDS[entity] ? entity : (TYPE_BY_KEY.find(([k]) => doc[k] !== undefined)?.[1] ?? "other");
  for (const [accountField, contactField] of PARTY_FIELDS[type]) {
    const accountId = guid(doc[accountField]);
    if (!accountId) continue;
    const contactId = contactField ? guid(doc[contactField]) : undefined;
    return contactId ? { accountId, contactId } : { accountId };
  }
  return undefined;
}

/** The account a document belongs to (see {@link partyOf}). */
export function accountOf(doc: Record<string, unknown>, entity?: string): string | undefined {
  return partyOf(doc, entity)?.accountId;
}

/** Exact's opt-out and anonymisation flags (`IsAnonymised` is a byte in the reference, a boolean in some clients). */
function excluded(row: Record<string, unknown>): boolean {
  return row.IsMailingExcluded === true || row.IsAnonymised === true || (typeof row.IsAnonymised === "number" && row.IsAnonymised !== 0);
}

function rank(c: Record<string, unknown>, named: string, main: string): number {
  const id = String(c.ID ?? "").toLowerCase();
  return (named && id === named ? 4 : 0) + (id === main ? 2 : 0) + (c.IsMainContact === true ? 1 : 0);
}

/**
 * Choose the recipient of `party` (see module doc).
 * @param doc the document, for the contact person it names (e.g. `InvoiceToContactPerson`); optional
 * @param optedOut true for an address that must not be used (e.g. the Twilio opt-out list)
 * @param entity the document's entity name, as for {@link partyOf}
 */
export function pickRecipient(party: ExactParty, doc: Record<string, unknown> = {}, optedOut: (to: string, channel: "sms" | "email") => boolean = () => false, entity?: string): RoutingResult {
  const accountId = String(party.account.ID ?? "");
  const main = String(party.account.MainContact ?? "").toLowerCase();
  const named = partyOf(doc, entity)?.contactId ?? "";
  const ordered = [...party.contacts].sort((a, b) => rank(b, named, main) - rank(a, named, main));
  let skipped = excluded(party.account);
  for (const c of skipped ? [] : ordered) {
    const mobile = str(c.Mobile) ?? str(c.BusinessMobile);
    const email = str(c.Email) ?? str(c.BusinessEmail);
    if (excluded(c)) {
      skipped ||= Boolean(mobile || email);
      continue;
    }
    const name = str(c.FullName) ?? ([str(c.FirstName), str(c.LastName)].filter(Boolean).join(" ") || undefined);
    for (const [channel, to] of [["sms", mobile], ["email", email]] as const) {
      if (!to) continue;
      if (optedOut(to, channel)) {
        skipped = true;
        continue;
      }
      return { recipient: { channel, to, name, contactId: String(c.ID ?? ""), accountId } };
    }
  }
  const accountEmail = excluded(party.account) ? undefined : str(party.account.Email);
  if (accountEmail && !optedOut(accountEmail, "email")) return { recipient: { channel: "email", to: accountEmail, name: str(party.account.Name), accountId } };
  return { reason: skipped || accountEmail ? "opted-out" : "no-contact-found" };
}
