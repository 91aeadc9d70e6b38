/**
 * Enrichment for Exact Online documents: invoice or order → account (`crm/Accounts`) → contacts (`crm/Contacts`), and
 * the routing rule of issue 10: the recipient is the account's main contact first, then its other contacts; a
 * mobile number (`Mobile`, then `BusinessMobile`, reference §7) means SMS, else an e-mail address (`Email`, then
 * `BusinessEmail`) means e-mail, else the account's own `Email`; nobody reachable → `no-contact-found`.
 *
 * Accounts and their contacts are cached per division for `ttlMs` (default 300000 ms) with one load in flight per
 * account, so a burst of invoices for one customer costs two calls, not two per invoice (Exact's 60 calls/min).
 */
import type { ExactClient } from "./client";

/** Fields read from `crm/Accounts` (names exactly as Exact's REST reference). */
export const ACCOUNT_FIELDS = ["ID", "Code", "Name", "Email", "Phone", "MainContact", "Status", "Blocked"];
/** Fields read from `crm/Contacts`. */
export const CONTACT_FIELDS = ["ID", "Account", "FullName", "FirstName", "LastName", "Email", "BusinessEmail", "Mobile", "BusinessMobile", "Phone", "IsMainContact"];

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

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.trim() ? v.trim() : undefined;
}

/**
 * Choose the recipient of `party` (see module doc).
 * @param optedOut true for a contact or address that must not be used (e.g. the Twilio opt-out list)
 */
export function pickRecipient(party: ExactParty, optedOut: (to: string, channel: "sms" | "email") => boolean = () => false): RoutingResult {
  const accountId = String(party.account.ID ?? "");
  const main = String(party.account.MainContact ?? "").toLowerCase();
  const ordered = [...party.contacts].sort((a, b) => rank(b, main) - rank(a, main));
  let skipped = false;
  for (const c of ordered) {
    const name = str(c.FullName) ?? ([str(c.FirstName), str(c.LastName)].filter(Boolean).join(" ") || undefined);
    const mobile = str(c.Mobile) ?? str(c.BusinessMobile);
    const email = str(c.Email) ?? str(c.BusinessEmail);
    for (const [channel, to] of [["sms", mobile], ["email", email]] as const) {
      if (!to) continue;
      if (optedOut(to, channel)) {
        skipped = true;
        continue;
      }
      return { recipient: { channel, to, name, contactId: String(c.ID ?? ""), accountId } };
    }
  }
  const accountEmail = str(party.account.Email);
  if (accountEmail && !optedOut(accountEmail, "email")) return { recipient: { channel: "email", to: accountEmail, name: str(party.account.Name), accountId } };
  return { reason: skipped || accountEmail ? "opted-out" : "no-contact-found" };
}

function rank(c: Record<string, unknown>, main: string): number {
  return (String(c.ID ?? "").toLowerCase() === main ? 2 : 0) + (c.IsMainContact === true ? 1 : 0);
}

/** The account a document belongs to: `InvoiceTo`, `OrderedBy`, `Account`, `Supplier` (first GUID found). */
export function accountOf(doc: Record<string, unknown>): string | undefined {
  for (const f of ["InvoiceTo", "OrderedBy", "Account", "Supplier"]) {
    const v = doc[f];
    if (typeof v === "string" && /^[0-9a-f-]{36}$/i.test(v)) return v.toLowerCase();
  }
  return undefined;
}

/** Accounts with contacts, cached per (division, account) for `ttlMs`; at most `max` entries (oldest evicted). */
export class PartyCache {
  private readonly entries = new Map<string, { at: number; value: Promise<ExactParty | undefined> }>();
  constructor(
    private readonly ttlMs = 300_000,
    private readonly max = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The account `accountId` with its contacts; loaded once per TTL (concurrent callers share the load).
   * @returns undefined when the account does not exist (404)
   * @throws what the client throws (a failed load is not cached)
   */
  get(client: ExactClient, division: number, accountId: string): Promise<ExactParty | undefined> {
    const key = `${division}|${accountId.toLowerCase()}`;
    const hit = this.entries.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.value;
    const value = load(client, division, accountId);
    this.entries.delete(key);
    this.entries.set(key, { at: this.now(), value });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
    value.catch(() => this.entries.get(key)?.value === value && this.entries.delete(key));
    return value;
  }

  /** Forget one account (e.g. after an Accounts or Contacts webhook) or everything. */
  invalidate(division?: number, accountId?: string): void {
    if (division === undefined || !accountId) this.entries.clear();
    else this.entries.delete(`${division}|${accountId.toLowerCase()}`);
  }
}

async function load(client: ExactClient, division: number, accountId: string): Promise<ExactParty | undefined> {
  const account = await client.get("crm/Accounts", accountId, ACCOUNT_FIELDS, division);
  if (!account) return undefined;
  const contacts: Record<string, unknown>[] = [];
  for await (const c of client.list("crm/Contacts", { select: CONTACT_FIELDS, filter: `Account eq guid'${accountId.toLowerCase()}'` }, division)) contacts.push(c);
  return { account, contacts };
}
