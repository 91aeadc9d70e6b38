/**
 * Opt-out list per Twilio account, kept in a context store. Recipients who replied STOP (or whose send
 * failed with 21610) are not sent to again until they reply START. Twilio's own opt-out is per sender or
 * Messaging Service; this list is per account, the safer superset.
 * Keywords: https://support.twilio.com/hc/en-us/articles/223134027 (single-word, case-insensitive).
 */
import { BoundedStore, KvBackend } from "../store";

export const OPT_OUT_KEYWORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];
export const OPT_IN_KEYWORDS = ["START", "YES", "UNSTOP"];
export const HELP_KEYWORDS = ["HELP", "INFO"];

export type KeywordKind = "stop" | "start" | "help";

/**
 * Classify an inbound message. Twilio's `OptOutType` (Advanced Opt-Out) wins; otherwise the body must
 * be a single default keyword (surrounding spaces and punctuation ignored).
 */
export function classifyKeyword(body: string | undefined, optOutType?: string): KeywordKind | undefined {
  const t = (optOutType ?? "").trim().toUpperCase();
  if (t === "STOP") return "stop";
  if (t === "START") return "start";
  if (t === "HELP") return "help";
  const word = (body ?? "").trim().replace(/[.!?]+$/, "").toUpperCase();
  if (!/^[A-Z]+$/.test(word)) return undefined;
  if (OPT_OUT_KEYWORDS.includes(word)) return "stop";
  if (OPT_IN_KEYWORDS.includes(word)) return "start";
  if (HELP_KEYWORDS.includes(word)) return "help";
  return undefined;
}

/** One opt-out entry: why and when (ISO). No number is stored in clear: keys are hashed. */
export interface OptOutEntry {
  source: "keyword" | "21610";
  at: string;
}

/**
 * Lists shared by every config node of one account and store: owner (the runtime's global context object) →
 * `${store}|${accountSid}` → list. Keyed weakly by the owner, so a re-created global context gets a list loaded afresh.
 */
const shared = new WeakMap<object, Map<string, OptOutList>>();

export class OptOutList {
  private readonly store: BoundedStore<OptOutEntry>;

  /**
   * The one list of (`owner`, `storeName`, `accountSid`), created with `backend()` on first use. Every config node of
   * the same account and store must use this, so a STOP received through one stops sends through all of them.
   * @param owner the object the list lives with (Node-RED: the global context), held weakly
   */
  static shared(owner: object, storeName: string, accountSid: string, backend: () => KvBackend): OptOutList {
    let lists = shared.get(owner);
    if (!lists) {
      lists = new Map();
      shared.set(owner, lists);
    }
    const key = `${storeName}|${accountSid}`;
    let list = lists.get(key);
    if (!list) {
      list = new OptOutList(backend(), accountSid);
      lists.set(key, list);
    }
    return list;
  }

  /**
   * Never evicted (no count bound, no expiry): forgetting an opt-out would text someone who said STOP.
   * @param accountSid scopes the list to one account
   */
  constructor(backend: KvBackend, private readonly accountSid: string) {
    this.store = new BoundedStore<OptOutEntry>(backend, { prefix: "oo", ttlMs: 0, maxEntries: Number.POSITIVE_INFINITY });
  }

  private id(e164: string): string {
    return `${this.accountSid}|${e164.replace(/^whatsapp:/i, "")}`;
  }

  async isOptedOut(e164: string): Promise<boolean> {
    return this.store.has(this.id(e164));
  }

  async optOut(e164: string, source: OptOutEntry["source"], at: Date = new Date()): Promise<void> {
    await this.store.set(this.id(e164), { source, at: at.toISOString() });
  }

  async optIn(e164: string): Promise<boolean> {
    return this.store.delete(this.id(e164));
  }

  get size(): number {
    return this.store.size;
  }
}
