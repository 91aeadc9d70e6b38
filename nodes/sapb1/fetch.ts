/**
 * `mlc-sapb1-fetch`: reads and writes SAP Business One records for a flow through the config node's client:
 * get one record by key (`DocEntry` number, `ItemCode`/`CardCode` string, or `msg.erp.id` like `Invoices(812)`),
 * list with `$filter/$select/$orderby/$top` over every page (values templated into `$filter` are escaped as OData
 * literals), or update (PATCH, a merge) — e.g. write the SMS delivery status into the document's `Comments` or a user
 * field `U_…` as an audit trace on the document. `If-Match` from `msg.etag` when set (v2).
 * Vendor: SAP "Working with SAP Business One Service Layer" §3.5 (CRUD), §3.7 (query options).
 */
import { ErpError, ValidationError } from "../lib/errors";
import { renderODataFilter } from "../lib/odata";
import { renderOptional, renderTemplate } from "../lib/template";
import { FetchNodeProps, registerFetchNode } from "../shared/fetch";
import type { RedAPI } from "../shared/types";
import { sapB1Config } from "./config";

export interface SapB1FetchProps extends FetchNodeProps {
  sapb1?: string;
  operation?: "get" | "list" | "patch";
  filter?: string;
  select?: string;
  orderby?: string;
  /** PATCH: the field to write (e.g. "Comments", "U_NotifyStatus"); empty = msg.payload holds the fields. */
  field?: string;
  /** PATCH: the value written into `field`, a Mustache template over msg. */
  value?: string;
}

/** Entity and key from the configured entity and a key value (`812`, `"A00001"`, or `Invoices(812)` / `Items('A1')`). */
function target(entity: string, key: unknown): { entity: string; key: string | number } {
  if (typeof key === "number") return { entity, key };
  const s = typeof key === "string" ? key.trim() : "";
  const m = /^([A-Za-z_][A-Za-z0-9_]*)\((?:'((?:[^']|'')*)'|(\d+))\)$/.exec(s);
  if (m) return { entity: m[1], key: m[3] !== undefined ? Number(m[3]) : m[2].replace(/''/g, "'") };
  if (/^\d+$/.test(s)) return { entity, key: Number(s) };
  if (s) return { entity, key: s };
  throw new ValidationError("No record key: give a DocEntry, an ItemCode/CardCode, or msg.erp.id like Invoices(812)", { code: "missing_key" });
}

/** Register `mlc-sapb1-fetch` on the fetch skeleton (shared/fetch.ts). */
export function registerSapB1Fetch(RED: RedAPI): void {
  registerFetchNode<SapB1FetchProps>(RED, "mlc-sapb1-fetch", (node, config) => ({
    connect: () => sapB1Config(RED, config.sapb1, node),
    run: async ({ msg, operation, entity: configured, key, top }) => {
      const sap = sapB1Config(RED, config.sapb1, node);
      const select = renderOptional(config.select, msg);
      if (operation === "list") {
        const filter = renderOptional(config.filter, msg, renderODataFilter); // values become OData literals
        return sap.client().listAll(configured, { filter, select, orderby: renderOptional(config.orderby, msg), top: top(100000) });
      }
      const at = target(configured, await key(msg.key));
      if (operation === "get") {
        const rec = await sap.client().get(at.entity, at.key, { select });
        if (!rec) throw new ErpError(`${at.entity} ${String(at.key)} was not found`, { code: "not_found", status: 404, recordId: `${at.entity}(${String(at.key)})` });
        return rec;
      }
      const field = (config.field ?? "").trim();
      const fields = field ? { [field]: renderTemplate(config.value ?? "", msg) } : msg.payload;
      if (!fields || typeof fields !== "object" || Array.isArray(fields)) throw new ValidationError("Update needs a field to write or msg.payload as the fields to change", { code: "bad_record" });
      await sap.client().patch(at.entity, at.key, fields as Record<string, unknown>, { ifMatch: typeof msg.etag === "string" ? msg.etag : undefined });
      return fields;
    },
  }));
}
