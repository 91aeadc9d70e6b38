/**
 * `mlc-acumatica-fetch`: reads and writes Acumatica records for a flow, through the config node's
 * client: get one record by key or id, list with `$filter/$select/$expand/$top/$skip` (value objects
 * unwrapped; values templated into `$filter` are escaped as OData literals), or update (PUT) a record, e.g. to write a delivery status into a document's note.
 * Vendor: MYOB-IDG IntegrationDev_RESTExample_Parameter_filter / _expand; contract-based REST PUT.
 */
import { ErpError, ValidationError } from "../lib/errors";
import { renderODataFilter } from "../lib/odata";
import { renderOptional } from "../lib/template";
import { FetchNodeProps, registerFetchNode } from "../shared/fetch";
import { num } from "../shared/node";
import type { RedAPI } from "../shared/types";
import { acumaticaConfig } from "./config";

export interface FetchProps extends FetchNodeProps {
  acumatica?: string;
  operation?: "get" | "list" | "put";
  filter?: string;
  select?: string;
  expand?: string;
  skip?: string | number;
  putMode?: "upsert" | "update" | "insert";
}

function keyParts(v: unknown): string[] {
  if (Array.isArray(v)) return v.map((x) => String(x));
  if (typeof v === "number") return [String(v)];
  if (typeof v === "string" && v.trim() !== "") return v.split("/").map((s) => s.trim());
  throw new ValidationError("No record key: give a GUID, a key like Bill/000123, or an array of key values", { code: "missing_key" });
}

/** Register `mlc-acumatica-fetch` on the fetch skeleton (shared/fetch.ts). */
export function registerAcumaticaFetch(RED: RedAPI): void {
  registerFetchNode<FetchProps>(RED, "mlc-acumatica-fetch", (node, config) => {
    const client = () => acumaticaConfig(RED, config.acumatica, node).client();
    return {
      connect: () => acumaticaConfig(RED, config.acumatica, node),
      checkEntity: (entity) => {
        if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(entity)) throw new ValidationError(`"${entity}" is not an Acumatica entity name`, { code: "bad_entity" });
      },
      run: async ({ msg, operation, entity, key, top }) => {
        const select = renderOptional(config.select, msg);
        const expand = renderOptional(config.expand, msg);
        if (operation === "get") {
          const parts = keyParts(await key(msg.key));
          const rec = await client().get(entity, parts.length === 1 ? parts[0] : parts, { select, expand });
          if (!rec) throw new ErpError(`${entity} ${parts.join("/")} was not found`, { code: "not_found", status: 404, recordId: parts.join("/") });
          return rec;
        }
        if (operation === "list") {
          const skip = config.skip === undefined || config.skip === "" ? undefined : num(config.skip, 0, 0, 1e9);
          return client().list(entity, { filter: renderOptional(config.filter, msg, renderODataFilter), select, expand, top: top(100000), skip });
        }
        const record = msg.payload;
        if (!record || typeof record !== "object" || Array.isArray(record)) throw new ValidationError("Update needs msg.payload to be the record (key fields and the fields to change)", { code: "bad_record" });
        return client().put(entity, record as Record<string, unknown>, { select, expand, mode: config.putMode ?? "update" });
      },
    };
  });
}
