/**
 * Page iterators: every row of a listing, one at a time, whatever way the ERP pages.
 * - {@link nextLinkPages}: OData next links — v4 `{"value":[…],"@odata.nextLink":"…"}` (Business Central, SAP B1
 *   `/b1s/v2`), v3 `"odata.nextLink"` (SAP B1 `/b1s/v1`), v2 `{"d":{"results":[…],"__next":"…"}}` (Exact Online);
 *   relative links are resolved against the page's URL.
 * - {@link readMorePages}: Sage Intacct `readByQuery` then `readMore` with the `resultId` until `numremaining` is 0.
 * - {@link topSkipPages}: `$top`/`$skip` with an anchored check that catches rows moving between pages (Acumatica,
 *   which has no next link), restarting the listing and skipping rows already yielded.
 */
import { ErpError, ValidationError } from "../errors";

/** One OData page as parsed JSON. */
export type ODataPage = unknown;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The rows and next link of an OData page (v4, v3 or v2 shape).
 * @throws ErpError `unexpected_response` when the page has no row array
 */
export function odataPage(page: ODataPage): { rows: unknown[]; next?: string } {
  if (isObj(page) && Array.isArray(page.value)) {
    const next = page["@odata.nextLink"] ?? page["odata.nextLink"];
    return { rows: page.value, next: typeof next === "string" && next ? next : undefined };
  }
  const d = isObj(page) ? page.d : undefined;
  if (isObj(d) && Array.isArray(d.results)) return { rows: d.results, next: typeof d.__next === "string" && d.__next ? d.__next : undefined };
  if (Array.isArray(d)) return { rows: d };
  throw new ErpError("OData answer has neither value[] nor d.results[]", { code: "unexpected_response" });
}

/**
 * Follow OData next links from `firstUrl`.
 * @param get fetches and parses one page (the client's authenticated GET)
 * @param maxPages safety bound against a server that links in a circle (default 100000)
 * @throws what `get` throws; ErpError `unexpected_response` for a page without rows; ErpError `paging_loop` when a
 *   next link repeats
 */
export async function* nextLinkPages(firstUrl: string, get: (url: string) => Promise<ODataPage>, maxPages = 100_000): AsyncGenerator<unknown, void, undefined> {
  const seen = new Set<string>();
  let url: string | undefined = firstUrl;
  while (url) {
    if (seen.has(url) || seen.size >= maxPages) throw new ErpError("OData next link repeats (server pages in a circle)", { code: "paging_loop" });
    seen.add(url);
    const { rows, next } = odataPage(await get(url));
    yield* rows;
    url = next ? new URL(next, url).toString() : undefined;
  }
}

/** One Intacct result page: rows, the `resultId` for `readMore`, and `numremaining`. */
export interface ReadMorePage<R> {
  rows: R[];
  resultId: string;
  numRemaining: number;
}

/**
 * Sage Intacct paging: `first()` (a `readByQuery`/`query`), then `more(resultId)` while `numRemaining > 0`. An
 * expired `resultId` must not be retried: the caller restarts from the watermark (the poll fails and runs again).
 * @throws what `first`/`more` throw; ErpError `unexpected_response` when rows remain but no resultId came
 */
export async function* readMorePages<R>(first: () => Promise<ReadMorePage<R>>, more: (resultId: string) => Promise<ReadMorePage<R>>): AsyncGenerator<R, void, undefined> {
  let page = await first();
  for (;;) {
    yield* page.rows;
    if (!(page.numRemaining > 0)) return;
    if (!page.resultId) throw new ErpError("Intacct said rows remain but gave no resultId", { code: "unexpected_response" });
    page = await more(page.resultId);
  }
}

/** Options of {@link topSkipPages}. */
export interface TopSkipOptions<R> {
  /** New rows per request, 1…10000. */
  pageSize: number;
  /** Starting offset; default 0. */
  skip?: number;
  /** Maximum rows over all pages; default unbounded. */
  cap?: number;
  /** What identifies a row across pages (e.g. its id). */
  identity: (row: R) => string;
  /** Identity plus version (e.g. modification time): a row already yielded with this key is not yielded again. */
  versionKey: (row: R) => string;
  /** Restarts allowed when rows moved; default 5. */
  maxPasses?: number;
  /** The error thrown when rows moved in every pass; default ErpError `unstable_paging` (retryable). */
  unstable?: (passes: number) => Error;
}

/**
 * `$top`/`$skip` paging with an anchor: every page after the first re-reads the last row of the page before (`$skip`
 * one lower, `$top` one higher) and checks it is still there. When rows left or joined the result meanwhile, the
 * anchor is elsewhere and the listing starts again from the first page, so no row is skipped; rows already yielded
 * (same `versionKey`) are not yielded again. Stops at a page shorter than asked.
 * @param list reads one page (`top` rows from offset `skip`)
 * @throws ValidationError bad pageSize; what `list` throws; `unstable(passes)` after `maxPasses` moving passes
 */
export async function* topSkipPages<R>(list: (top: number, skip: number) => Promise<R[]>, opts: TopSkipOptions<R>): AsyncGenerator<R, void, undefined> {
  const { pageSize } = opts;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 10_000) throw new ValidationError(`pageSize must be an integer 1…10000, got ${String(pageSize)}`);
  const start = opts.skip ?? 0;
  const cap = opts.cap ?? Number.POSITIVE_INFINITY;
  const maxPasses = opts.maxPasses ?? 5;
  const yielded = new Set<string>();
  let count = 0;
  for (let pass = 1; ; pass++) {
    let skip = start;
    let anchor: string | undefined;
    let moved = false;
    while (count < cap) {
      const overlap = anchor === undefined ? 0 : 1;
      const want = Math.min(pageSize, cap - count);
      const page = await list(want + overlap, skip - overlap);
      if (overlap && (page.length === 0 || opts.identity(page[0]) !== anchor)) {
        moved = true;
        break;
      }
      const rows = overlap ? page.slice(1) : page;
      for (const r of rows) {
        const key = opts.versionKey(r);
        if (yielded.has(key)) continue;
        yielded.add(key);
        yield r;
        if (++count >= cap) return;
      }
      skip += rows.length;
      if (rows.length < want) return;
      anchor = opts.identity(page[page.length - 1]);
    }
    if (!moved) return;
    if (pass >= maxPasses) throw opts.unstable ? opts.unstable(pass) : new ErpError(`Rows kept moving between pages in ${pass} passes; try again later`, { code: "unstable_paging", retryable: true });
  }
}
