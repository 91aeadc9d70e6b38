/**
 * Who hears about an ERP event, and how: the routing rule every family shares (issue 9, Build 5), used by the
 * `mlc-route` node (nodes/flow/route.ts). Pure: no Node-RED.
 *
 * 1. Recipient. A mapping table is read top to bottom: a row names a role of the event (`user`, `vendor`,
 *    `location`, `department`) and a value ("V1007", "JSMITH"); the first row whose role's value on the event
 *    equals it (case-insensitive, trimmed) gives the contact. Failing that, a contact looked up earlier in the flow
 *    (an ERP fetch result on the message) is used; failing that, a row with role `any` (a default recipient).
 * 2. Channel. The row's own channel when it forces one (`sms`, `call`, `email`); otherwise by contact preference:
 *    a mobile number → SMS, or a voice call with acknowledgement when the amount is above the call threshold; a
 *    landline only (it cannot receive SMS) → call; an e-mail address only → e-mail.
 * 3. Numbers are normalised to E.164 with lib/phone.ts (the default region for national numbers); an address that
 *    is not valid is skipped for the next one.
 * 4. Nobody reachable (no row, no looked-up contact, or only invalid addresses) → {@link NoContact} with reason
 *    `no-contact-found`: the node sends it to its own output and the audit trail records it; it is never dropped.
 * E.164: ITU-T Recommendation E.164; Twilio "Formatting international phone numbers" (twilio.com/docs/glossary/what-e164).
 */
import { toE164 } from "./phone";

/** Roles an event can be routed by. `any` matches every event (the default recipient). */
export const ROUTE_ROLES = ["user", "vendor", "location", "department", "any"] as const;
export type RouteRole = (typeof ROUTE_ROLES)[number];

/** Channels, one output each. */
export type RouteChannel = "sms" | "call" | "email";

/** One row of the mapping table, as the editor stores it. Values may be `${ENV}` references (resolved by the caller). */
export interface RouteRow {
  /** The role this row matches on; an unknown role never matches. */
  by: string;
  /** The role's value on the event, e.g. "V1007"; ignored for `any`. */
  value?: string;
  /** Mobile number (free text; normalised to E.164). */
  phone?: string;
  /** E-mail address. */
  email?: string;
  /** Display name, for templates (`msg.route.name`). */
  name?: string;
  /** "auto" (default): by contact preference and amount; or always "sms" | "call" | "email". */
  channel?: string;
}

/**
 * A contact looked up earlier in the flow (any object; the fields of {@link CONTACT_FIELDS} are read, first non-empty
 * wins), or a recipient chosen upstream, `{ channel, to }` (an address with "@" is e-mail, anything else a mobile).
 */
export interface LookedUpContact {
  mobile?: unknown;
  phone?: unknown;
  email?: unknown;
  name?: unknown;
  [field: string]: unknown;
}

/** Field names read from a looked-up contact, first non-empty first (Intacct, Exact, BC, SAP B1 spellings). */
export const CONTACT_FIELDS = {
  mobile: ["mobile", "cellphone", "CELLPHONE", "DISPLAYCONTACT.CELLPHONE", "PAYTO.CELLPHONE", "Mobile", "BusinessMobile", "mobilePhoneNumber", "Cellular"],
  phone: ["phone", "PHONE1", "DISPLAYCONTACT.PHONE1", "Phone", "phoneNumber", "Phone1"],
  email: ["email", "EMAIL1", "DISPLAYCONTACT.EMAIL1", "Email", "BusinessEmail", "E_Mail"],
  name: ["name", "CONTACTNAME", "DISPLAYCONTACT.CONTACTNAME", "FullName", "displayName", "CardName", "NAME"],
} as const;

/** The event as routing sees it: each role's value, the amount, an optional looked-up contact. */
export interface RouteInput {
  keys: Partial<Record<RouteRole, unknown>>;
  /** The event's amount (a number or numeric text); undefined = no amount. */
  amount?: unknown;
  contact?: unknown;
}

export interface RouteOptions {
  rows: RouteRow[];
  /** Amounts strictly above this are called instead of texted; undefined/NaN = never call by amount. */
  callAbove?: number;
  /** ISO 3166-1 alpha-2 region for national numbers ("US"). */
  defaultRegion?: string;
}

/** A recipient and its channel. `to` is E.164 for sms/call, the address for e-mail. */
export interface RouteDecision {
  channel: RouteChannel;
  to: string;
  name?: string;
  /** Where the contact came from: a table row (`table`, with `by` and the row's index) or the message (`lookup`). */
  source: "table" | "lookup";
  by?: RouteRole;
  row?: number;
  /** Why this channel: "forced", "amount" (above the call threshold), "mobile", "landline", "email-only". */
  reason: string;
}

/** Nobody reachable. `invalid` counts addresses that were present but not valid. */
export interface NoContact {
  channel: "none";
  reason: "no-contact-found";
  invalid: number;
}

const EMAIL = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;

function text(v: unknown): string | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return typeof v === "string" && v.trim() !== "" ? v.trim() : undefined;
}

function pick(c: Record<string, unknown>, names: readonly string[]): string | undefined {
  for (const n of names) {
    const v = text(c[n]);
    if (v) return v;
  }
  return undefined;
}

/** The amount as a number, or undefined ("1,250.00" → 1250). */
export function amountOf(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) ? v : undefined;
  const s = text(v)?.replace(/,/g, "");
  const n = s === undefined ? NaN : Number(s);
  return Number.isFinite(n) ? n : undefined;
}

interface Candidate {
  mobile?: string;
  phone?: string;
  email?: string;
  name?: string;
  forced?: RouteChannel;
}

/** Choose the channel for one contact; undefined when nothing in it is usable. Counts invalid addresses in `bad`. */
function decide(c: Candidate, amount: number | undefined, opts: RouteOptions, bad: { n: number }): Omit<RouteDecision, "source"> | undefined {
  const e164 = (raw: string | undefined): string | undefined => {
    if (!raw) return undefined;
    try {
      return toE164(raw, opts.defaultRegion);
    } catch {
      bad.n++;
      return undefined;
    }
  };
  const mobile = e164(c.mobile);
  const landline = mobile ? undefined : e164(c.phone);
  const email = c.email && EMAIL.test(c.email) ? c.email : undefined;
  if (c.email && !email) bad.n++;
  const name = c.name;
  if (c.forced === "email") return email ? { channel: "email", to: email, name, reason: "forced" } : undefined;
  if (c.forced) {
    const to = mobile ?? landline;
    return to ? { channel: c.forced, to, name, reason: "forced" } : undefined;
  }
  const above = amount !== undefined && opts.callAbove !== undefined && Number.isFinite(opts.callAbove) && amount > opts.callAbove;
  if (mobile) return { channel: above ? "call" : "sms", to: mobile, name, reason: above ? "amount" : "mobile" };
  if (landline) return { channel: "call", to: landline, name, reason: "landline" };
  if (email) return { channel: "email", to: email, name, reason: "email-only" };
  return undefined;
}

function rowMatches(row: RouteRow, keys: RouteInput["keys"]): boolean {
  if (row.by === "any") return true;
  if (!(ROUTE_ROLES as readonly string[]).includes(row.by)) return false;
  const want = text(row.value)?.toLowerCase();
  const have = text(keys[row.by as RouteRole])?.toLowerCase();
  return want !== undefined && have !== undefined && want === have;
}

function forcedOf(channel: string | undefined): RouteChannel | undefined {
  return channel === "sms" || channel === "call" || channel === "email" ? channel : undefined;
}

/**
 * Route one event (see the module doc for the order). Never throws: an unusable address is skipped and counted.
 * @returns the recipient and channel, or {@link NoContact}
 */
export function route(input: RouteInput, opts: RouteOptions): RouteDecision | NoContact {
  const amount = amountOf(input.amount);
  const bad = { n: 0 };
  const fromRow = (row: RouteRow, i: number): RouteDecision | undefined => {
    const d = decide({ mobile: text(row.phone), email: text(row.email), name: text(row.name), forced: forcedOf(row.channel) }, amount, opts, bad);
    return d && { ...d, source: "table", by: row.by as RouteRole, row: i };
  };
  for (const [i, row] of opts.rows.entries()) {
    if (row.by === "any" || !rowMatches(row, input.keys)) continue;
    const d = fromRow(row, i);
    if (d) return d;
  }
  const c = input.contact;
  if (c !== null && typeof c === "object" && !Array.isArray(c)) {
    const rec = c as Record<string, unknown>;
    // a recipient already chosen upstream (`{channel, to}`, e.g. mlc-exact-fetch's msg.recipient): its address
    const to = text(rec.to);
    const mobile = pick(rec, CONTACT_FIELDS.mobile) ?? (to && !to.includes("@") ? to : undefined);
    const email = pick(rec, CONTACT_FIELDS.email) ?? (to?.includes("@") ? to : undefined);
    const d = decide({ mobile, phone: pick(rec, CONTACT_FIELDS.phone), email, name: pick(rec, CONTACT_FIELDS.name) }, amount, opts, bad);
    if (d) return { ...d, source: "lookup" };
  }
  for (const [i, row] of opts.rows.entries()) {
    if (row.by !== "any") continue;
    const d = fromRow(row, i);
    if (d) return d;
  }
  return { channel: "none", reason: "no-contact-found", invalid: bad.n };
}
