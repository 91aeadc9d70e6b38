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
import { Status, evaluate, firstSet, num, onInput, registerNode, statusTemplate } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { bcConfig } from "./config";

export interface BcFetchProps extends Record<string, unknown> {
  name?: string;
  bc?: string;
  operation?: "get" | "list" | "update";
  entity?: string;
  entityType?: string;
  key?: string;
  keyType?: string;
  filter?: string;
  select?: string;
  expand?: string;
  orderby?: string;
  top?: string | number;
  /** msg property that receives the result (default "payload"). */
  property?: string;
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

export function registerBcFetch(RED: RedAPI): void {
  registerNode<BcFetchProps>(RED, "mlc-bc-fetch", (node, config) => {
    const operation = config.operation ?? "get";
    const property = (config.property || "payload").trim();
    let calls = 0;
    node.status(Status.idle(operation));
    // Translated once here; each message only fills in the count.
    const workingText = statusTemplate(RED, "mlc-bc-fetch.status.working", "__operation__…")({ operation });
    const doneText = statusTemplate(RED, "mlc-bc-fetch.status.done", "__operation__ ✓ __n__");
    try {
      bcConfig(RED, config.bc, node);
    } catch {
      // no connection selected: reported on the first message
    }
    onInput(RED, node, async (msg, { send, status }) => {
      const bc = bcConfig(RED, config.bc, node).client();
      const entity = String(firstSet(await evaluate(RED, node, config.entity, config.entityType, msg), msg.entity as string | undefined) ?? "").trim();
      const select = renderOptional(config.select, msg);
      const expand = renderOptional(config.expand, msg);
      status(Status.busy(workingText));
      let result: unknown;
      const recordId = async (): Promise<string> => String((config.key ? await evaluate(RED, node, config.key, config.keyType, msg) : (msg.erp as { id?: unknown } | undefined)?.id) ?? "");
      if (operation === "get") {
        result = await bc.get(entity, await recordId(), { select, expand });
      } else if (operation === "list") {
        const top = config.top === undefined || config.top === "" ? undefined : num(config.top, 100, 1, 20000);
        const rows: Record<string, unknown>[] = [];
        for await (const r of bc.list(entity, { filter: renderOptional(config.filter, msg, renderODataFilter), select, expand, orderby: renderOptional(config.orderby, msg), top })) rows.push(r);
        result = rows;
      } else {
        const { changes, etag } = updateInput(msg);
        result = await bc.update(entity, await recordId(), changes, etag);
      }
      calls++;
      RED.util.setMessageProperty(msg, property, result, true);
      status(Status.ok(doneText({ operation, n: calls })));
      send(msg);
    });
  });
}
