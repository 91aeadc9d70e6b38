/**
 * One HTTP request through a {@link Budget}: what a family client calls for every request the API counts.
 *
 * The request waits for its turn, leaves, and its answer's rate headers feed the budget. A 429, or a 503 with
 * `Retry-After` (RFC 9110 §15.6.4 and §10.2.3: the server did not process it and says when to come back), is not
 * retried inside the HTTP client (that would wait holding a slot and leave uncounted): it becomes a
 * {@link RateLimitedError} carrying the `Retry-After` delay, and the budget re-queues the request at the head of its
 * queue, pauses, and sends it again through the same windows. Any other answer (502/503/504 included) is returned as
 * it is, never repeated unseen. Failures without an answer follow the HttpClient's rules (a request that never left
 * is retried there); a client that must count those exactly too gives its HttpClient `retry: { maxAttempts: 1 }`.
 */
import { RateLimitedError } from "../errors";
import { HttpClient, HttpRequest, HttpResponse, safeUrl } from "../http";
import { parseRetryAfter } from "../retry";
import { Budget } from "./budget";

/** True for an answer that means "not processed, come back later": 429 always, 503 only with `Retry-After`. */
export function isRefusal(res: Pick<HttpResponse, "status" | "headers">): boolean {
  return res.status === 429 || (res.status === 503 && parseRetryAfter(res.headers["retry-after"]) !== undefined);
}

/**
 * Send `req` through `http` within `budget` under `key`.
 * @param req the request, or a function building it when the request gets its turn (each time it leaves, a re-queued
 *   one included): auth headers read then carry the token current at that moment, not one renewed while it waited
 * @param key the sub-budget (endpoint, division); undefined = the budget's rates only
 * @returns the answer (any status but a refusal)
 * @throws RateLimitedError after the budget's `maxRequeueMs` of refusals; MlcError "closed" when the budget closed;
 *   whatever `http.request` or `req` throws (TimeoutError, TLS refusal)
 */
export function pacedRequest(budget: Budget, http: HttpClient, req: HttpRequest | (() => HttpRequest), key?: string): Promise<HttpResponse> {
  return budget.run(key, async () => {
    const attempt = budget.currentAttempt(); // read synchronously, before the first await
    const r = typeof req === "function" ? req() : req;
    // every answer is final here: an answered request repeated inside the HTTP client would leave uncounted
    const res = await http.request({ ...r, isFinal: () => true });
    budget.noteResponse(attempt, res.headers);
    if (isRefusal(res)) {
      throw new RateLimitedError(`Rate limited (${res.status}) by ${safeUrl(r.url)}, not processed`, {
        status: res.status,
        retryAfterMs: parseRetryAfter(res.headers["retry-after"]),
      });
    }
    return res;
  });
}
