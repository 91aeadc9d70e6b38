/**
 * The webhook subscriptions of one trigger (reference exact-online.md §8.1): on deploy, every topic is subscribed to
 * the trigger's callback URL, listing first and posting only what is missing (Exact has no update and treats a
 * duplicate as an error); when the node is deleted, the subscriptions pointing at that URL are removed. The callback
 * must already answer Exact's empty validation POST with 2xx (Exact probes it while creating the subscription).
 */
import type { ExactClient, ExactSubscription } from "./client";

/** Topics Exact accepts (reference §8.1); Receivables, Payments and PurchaseInvoices have none: poll them. */
export const EXACT_WEBHOOK_TOPICS: ReadonlySet<string> = new Set(["Accounts", "Contacts", "SalesInvoices", "SalesOrders", "PurchaseOrders", "PurchaseEntries", "FinancialTransactions", "GoodsDeliveries", "Items", "StockPositions", "Documents", "Quotations", "BankAccounts", "CostTransactions", "TimeTransactions"]);

/** Outcome per topic. */
export interface SubscriptionResult {
  topic: string;
  subscription?: ExactSubscription;
  /** The error text when Exact refused (e.g. "Invalid: Post to callback URL endpoint returns 503"). */
  error?: string;
}

/**
 * Subscribe every topic of `topics` to `callbackUrl` (https, on the app's redirect-URI domain), one at a time
 * (requests per division are sequential). A refused topic does not stop the others; its error is returned. Topics
 * without webhooks are refused here, without a call.
 */
export async function ensureSubscriptions(client: ExactClient, topics: string[], callbackUrl: string, division?: number): Promise<SubscriptionResult[]> {
  const out: SubscriptionResult[] = [];
  for (const topic of topics) {
    if (!EXACT_WEBHOOK_TOPICS.has(topic)) {
      out.push({ topic, error: `Exact has no webhook topic ${topic}: poll it` }); // never sent: a refusal counts as an error
      continue;
    }
    try {
      out.push({ topic, subscription: await client.subscribe(topic, callbackUrl, division) });
    } catch (err) {
      out.push({ topic, error: (err as Error).message });
    }
  }
  return out;
}

/**
 * Delete this app's subscriptions whose callback is `callbackUrl` (all topics). Returns how many were deleted.
 * @throws as ExactClient.subscriptions / unsubscribe
 */
export async function removeSubscriptions(client: ExactClient, callbackUrl: string, division?: number): Promise<number> {
  let n = 0;
  for (const s of await client.subscriptions(division)) {
    if (s.CallbackURL === callbackUrl && (await client.unsubscribe(s.ID, division))) n++;
  }
  return n;
}
