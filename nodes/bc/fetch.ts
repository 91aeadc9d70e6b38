/**
 * `mlc-bc-fetch`: reads and writes Business Central API v2.0 records for a flow through the config node's client:
 * get one record by id (GUID), list with `$filter/$select/$expand/$orderby/$top` (all pages by `@odata.nextLink`;
 * values templated into `$filter` are escaped as OData literals), or update (PATCH with `If-Match`: the record's
 * `@odata.etag`, so a record changed meanwhile is refused with `etag_mismatch`, never overwritten).
 * Vendor: BCDOCS api-reference/v2.0 (resources, `*_update` pages), devenv-connect-apps-filtering,
 * webservices/use-odata-to-modify-data.
 */
import { ValidationError } from "../lib/errors";
import { renderODataFilter } from "../lib/odata";
import { renderOptional } from "../lib/template";
import { FetchNodeProps, registerFetchNode } from "../shared/fetch";
import { firstSet } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { bcConfig } from "./config";

export interface BcFetchProps extends FetchNodeProps {
  bc?: string;
  operation?: "get" | "list" | "update";
  filter?: string;
  select?: string;
  expand?: string;
  orderby?: string;
}

/** The record and its ETag for an update: msg.payload holds the fields to change; the ETag comes from msg.etag or payload["@odata.etag"]. */
function updateInput(msg: NodeMessage): { changes: Record<string, unknown>; etag: string } {
  const p = msg.payload;
  if (!p || typeof p !== "object" || Array.isArray(p)) throw new ValidationError("Update needs msg.payload to be an object with the fields to change", { code: "bad_record" });
  const rec = p as Record<string, unknown>;
  const etag = firstSet(typeof msg.etag === "string" ? msg.etag : undefined, typeof rec["@odata.etag"] === "string" ? (rec["@odata.etag"] as string) : undefined);
  if (!etag) throw new ValidationError("Update needs the record's ETag in msg.etag or msg.payload[\"@odata.etag\"] (or \"*\" to overwrite)", { code: "missing_etag" });
  return { changes: rec, etag };
}

/** Register `mlc-bc-fetch` on the fetch skeleton (shared/fetch.ts); the key defaults to msg.erp.id. */
export function registerBcFetch(RED: RedAPI): void {
  registerFetchNode<BcFetchProps>(RED, "mlc-bc-fetch", (node, config) => ({
    connect: () => bcConfig(RED, config.bc, node),
    run: async ({ msg, operation, entity, key, top }) => {
      const bc = bcConfig(RED, config.bc, node).client();
      const select = renderOptional(config.select, msg);
      const expand = renderOptional(config.expand, msg);
      const recordId = async (): Promise<string> => String((await key((msg.erp as { id?: unknown } | undefined)?.id)) ?? "");
      if (operation === "get") return bc.get(entity, await recordId(), { select, expand });
      if (operation === "list") {
        const rows: Record<string, unknown>[] = [];
        for await (const r of bc.list(entity, { filter: renderOptional(config.filter, msg, renderODataFilter), select, expand, orderby: renderOptional(config.orderby, msg), top: top(20000) })) rows.push(r);
        return rows;
      }
      const { changes, etag } = updateInput(msg);
      return bc.update(entity, await recordId(), changes, etag);
    },
  }));
}
