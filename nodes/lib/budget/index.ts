/**
 * The family kit's rate budget: exact sliding windows per second, minute and day, a concurrency cap, keyed
 * sub-budgets, the API's own counters from response headers, and re-queue on refusals (see `budget.ts`).
 */
export { Budget, BudgetAttempt, BudgetOptions, BudgetStats, BudgetTimers, Limits } from "./budget";
export { EXACT_ONLINE_RATE_HEADERS, HeaderBag, RateHeaderRule, RateReading, ServerAllowance, readRateHeaders } from "./headers";
export { isRefusal, pacedRequest } from "./request";
export { Fifo, SlidingWindow } from "./window";
