/**
 * Accounts with their contacts for enrichment (nodes/lib/exact/enrich.ts), cached per connection and kept fresh by
 * Exact's own `Modified` times instead of a short lifetime, so that in steady state an alert costs only its own record
 * read (issue 10: at most 1.1 API calls per alert; Exact allows 60 calls a minute and 5,000 a day per division).
 *
 * - A miss loads the account (`GET crm/Accounts(guid'…')`) and its contacts (`crm/Contacts?$filter=Account eq
 *   guid'…'`): two calls; concurrent callers share one load.
 * - Change check: when a cached party is asked for and the last check is `checkMs` old (default 30 min), one listing
 *   of `crm/Accounts` and one of `crm/Contacts` with `Modified gt datetime'<last check − overlap>'` (`$select`
 *   ID/Account/Modified only) name what changed in the whole division; an entry is dropped only when a row's
 *   `Modified` differs from the one it was loaded with (or a contact is new to, or moved from, its account), so the
 *   2 h overlap (Exact's datetime zone is undocumented, reference §3) costs rows, not reloads. Checks are lazy: no
 *   alerts, no calls; an alert for an account not cached loads it without a check. A failed check, or one that
 *   finds more than `maxCheckRows` changed rows (a mass import), drops the division's parties (the next alerts
 *   reload what they use) rather than trust stale data or page through the import.
 * - Age cap `maxAgeMs` (default 24 h): deletions have no `Modified`, so an entry is reloaded at least daily.
 * - {@link PartyCache.invalidate} drops an account at once (e.g. from an Accounts or Contacts webhook).
 * So a changed phone number, e-mail or opt-out reaches routing within `checkMs`, a deleted contact within `maxAgeMs`.
 */
import type { ExactClient } from "./client";
import { ACCOUNT_FIELDS, CONTACT_FIELDS, ExactParty } from "./enrich";
import { exactTime } from "../poll/conditions";

/** Options of {@link PartyCache}. */
export interface PartyCacheOptions {
  /** Time between change checks, ms; default 1800000 (30 min). */
  checkMs?: number;
  /** Longest an entry is used without a reload, ms; default 86400000 (24 h). */
  maxAgeMs?: number;
  /** How far below the last check the change listing starts, ms; default 7200000 (2 h). */
  overlapMs?: number;
  /** Entries kept (oldest evicted); default 1000. */
  max?: number;
  /** Changed rows a check reads at most (60 a page) before it drops the division's parties instead; default 300. */
  maxCheckRows?: number;
  /** Clock, ms since the epoch (tests, bench). */
  now?: () => number;
}

interface Entry {
  key: string;
  at: number;
  value: Promise<ExactParty | undefined>;
  /** Record GUID → `Modified` as loaded (account and contacts), set when the load settles. */
  versions?: Map<string, string>;
}

const lower = (v: unknown): string => String(v ?? "").toLowerCase();

/** Accounts with contacts per (division, account); see the module doc. */
export class PartyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly checkedAt = new Map<number, number>();
  private readonly checks = new Map<number, Promise<void>>();
  private readonly opts: Required<Omit<PartyCacheOptions, "now">>;
  private readonly now: () => number;
  /** Change-check listings made (for the bench and tests). */
  checkCalls = 0;

  constructor(opts: PartyCacheOptions = {}) {
    this.opts = { checkMs: opts.checkMs ?? 1_800_000, maxAgeMs: opts.maxAgeMs ?? 86_400_000, overlapMs: opts.overlapMs ?? 7_200_000, max: opts.max ?? 1000, maxCheckRows: opts.maxCheckRows ?? 300 };
    this.now = opts.now ?? Date.now;
  }

  /**
   * The account `accountId` of `division` with its contacts: cached, checked for changes every `checkMs`.
   * @returns undefined when the account does not exist (404)
   * @throws what the client throws for the load (a failed load is not cached)
   */
  async get(client: ExactClient, division: number, accountId: string): Promise<ExactParty | undefined> {
    const key = `${division}|${accountId.toLowerCase()}`;
    const fresh = (): Entry | undefined => {
      const e = this.entries.get(key);
      return e && this.now() - e.at < this.opts.maxAgeMs ? e : undefined;
    };
    const last = this.checkedAt.get(division);
    // only a hit needs the check (a miss loads the current state anyway); it then covers every cached party
    if (fresh() && last !== undefined && this.now() - last >= this.opts.checkMs) await this.check(client, division, last);
    const hit = fresh();
    if (hit) return hit.value;
    if (!this.checkedAt.has(division)) this.checkedAt.set(division, this.now()); // a load sees every change before now
    const entry: Entry = { key, at: this.now(), value: load(client, division, accountId) };
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.opts.max) this.entries.delete(this.entries.keys().next().value as string);
    entry.value.then(
      (party) => {
        if (party) entry.versions = new Map([party.account, ...party.contacts].map((r) => [lower(r.ID), String(r.Modified ?? "")]));
      },
      () => this.entries.get(key) === entry && this.entries.delete(key),
    );
    return entry.value;
  }

  /** One change check per division at a time; callers wait for it. Never rejects. */
  private check(client: ExactClient, division: number, since: number): Promise<void> {
    let p = this.checks.get(division);
    if (!p) {
      p = this.runCheck(client, division, since).finally(() => this.checks.delete(division));
      this.checks.set(division, p);
    }
    return p;
  }

  private async runCheck(client: ExactClient, division: number, since: number): Promise<void> {
    const started = this.now();
    const filter = exactTime("Modified", "gt", Math.max(0, since - this.opts.overlapMs));
    const prefix = `${division}|`;
    try {
      const changed: Record<string, unknown>[] = [];
      const keep = (r: Record<string, unknown>): void => {
        // a mass change (an import) would cost a page per 60 rows: reloading what is used is cheaper
        if (changed.push(r) > this.opts.maxCheckRows) throw new Error("too many changes to check");
      };
      this.checkCalls++;
      for await (const r of client.list("crm/Accounts", { select: ["ID", "Modified"], filter }, division)) keep({ ...r, Account: r.ID });
      this.checkCalls++;
      for await (const r of client.list("crm/Contacts", { select: ["ID", "Account", "Modified"], filter }, division)) keep(r);
      for (const [key, e] of this.entries) {
        if (!key.startsWith(prefix)) continue;
        // an entry still loading may have read before a change this check saw: reload it next time
        if (!e.versions || changed.some((r) => differs(e, r, key.slice(prefix.length)))) this.entries.delete(key);
      }
      this.checkedAt.set(division, started);
    } catch {
      for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.entries.delete(key);
      this.checkedAt.delete(division);
    }
  }

  /** Forget one account (e.g. after an Accounts or Contacts webhook), a division's accounts, or everything. */
  invalidate(division?: number, accountId?: string): void {
    if (division === undefined) {
      this.entries.clear();
      this.checkedAt.clear();
    } else if (!accountId) {
      for (const key of [...this.entries.keys()]) if (key.startsWith(`${division}|`)) this.entries.delete(key);
    } else this.entries.delete(`${division}|${accountId.toLowerCase()}`);
  }
}

/** Whether changed row `r` (ID, Account, Modified) makes entry `e` of account `accountId` stale. */
function differs(e: Entry, r: Record<string, unknown>, accountId: string): boolean {
  const id = lower(r.ID);
  const known = e.versions?.get(id);
  if (known !== undefined) return known !== String(r.Modified ?? "") || lower(r.Account) !== accountId;
  return lower(r.Account) === accountId; // a contact new to this account
}

async function load(client: ExactClient, division: number, accountId: string): Promise<ExactParty | undefined> {
  const account = await client.get("crm/Accounts", accountId, ACCOUNT_FIELDS, division);
  if (!account) return undefined;
  const contacts: Record<string, unknown>[] = [];
  for await (const c of client.list("crm/Contacts", { select: CONTACT_FIELDS, filter: `Account eq guid'${accountId.toLowerCase()}'` }, division)) contacts.push(c);
  return { account, contacts };
}
