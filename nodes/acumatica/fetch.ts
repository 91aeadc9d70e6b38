/**
 * `mlc-acumatica-fetch`: reads and writes Acumatica records for a flow, through the config node's
 * client: get one record by key or id, list with `$filter/$select/$expand/$top/$skip` (value objects
 * unwrapped; values templated into `$filter` are escaped as OData literals), or update (PUT) a record, e.g. to write a delivery status into a document's note.
 * Vendor: MYOB-IDG IntegrationDev_RESTExample_Parameter_filter / _expand; contract-based REST PUT.
 */
import { ErpError, ValidationError } from "../lib/errors";
import { renderODataFilter } from "../lib/odata";
import { renderOptional } from "../lib/template";
import { Status, evaluate, firstSet, num, onInput, registerNode, statusTemplate } from "../shared/node";
import type { RedAPI } from "../shared/types";
import { acumaticaConfig } from "./config";

export interface FetchProps extends Record<string, unknown> {
  name?: string;
  acumatica?: string;
  operation?: "get" | "list" | "put";
  entity?: string;
  entityType?: string;
  key?: string;
  keyType?: string;
  filter?: string;
  select?: string;
  expand?: string;
  top?: string | number;
  skip?: string | number;
  putMode?: "upsert" | "update" | "insert";
  /** msg property that receives the result (default "payload"). */
  property?: string;
}



function keyParts(v: unknown): string[] {
  if (Array.isArray(v)) return v.map((x) => String(x));
  if (typeof v === "number") return [String(v)];
  if (typeof v === "string" && v.trim() !== "") return v.split("/").map((s) => s.trim());
  throw new ValidationError("No record key: give a GUID, a key like Bill/000123, or an array of key values", { code: "missing_key" });
}

export function registerAcumaticaFetch(RED: RedAPI): void {
  registerNode<FetchProps>(RED, "mlc-acumatica-fetch", (node, config) => {
    const operation = config.operation ?? "get";
    const property = (config.property || "payload").trim();
    let calls = 0;
    node.status(Status.idle(operation));
    // Translated once here; each message only fills in the count.
    const workingText = statusTemplate(RED, "mlc-acumatica-fetch.status.working", "__operation__…")({ operation });
    const doneText = statusTemplate(RED, "mlc-acumatica-fetch.status.done", "__operation__ ✓ __n__");
    try {
      acumaticaConfig(RED, config.acumatica, node); // shown the connection's sign-in problems from the start
    } catch {
      // no connection selected: reported on the first message
    }
    onInput(RED, node, async (msg, { send, status }) => {
      const acu = acumaticaConfig(RED, config.acumatica, node);
      const entity = String(firstSet(await evaluate(RED, node, config.entity, config.entityType, msg), msg.entity) ?? "").trim();
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(entity)) throw new ValidationError(`"${entity}" is not an Acumatica entity name`, { code: "bad_entity" });
      const select = renderOptional(config.select, msg);
      const expand = renderOptional(config.expand, msg);
      status(Status.busy(workingText));
      let result: unknown;
      if (operation === "get") {
        const key = config.key ? await evaluate(RED, node, config.key, config.keyType, msg) : msg.key;
        const parts = keyParts(key);
        const rec = await acu.client().get(entity, parts.length === 1 ? parts[0] : parts, { select, expand });
        if (!rec) throw new ErpError(`${entity} ${parts.join("/")} was not found`, { code: "not_found", status: 404, recordId: parts.join("/") });
        result = rec;
      } else if (operation === "list") {
        const top = config.top === undefined || config.top === "" ? undefined : num(config.top, 100, 1, 100000);
        const skip = config.skip === undefined || config.skip === "" ? undefined : num(config.skip, 0, 0, 1e9);
        result = await acu.client().list(entity, { filter: renderOptional(config.filter, msg, renderODataFilter), select, expand, top, skip });
      } else {
        const record = msg.payload;
        if (!record || typeof record !== "object" || Array.isArray(record)) throw new ValidationError("Update needs msg.payload to be the record (key fields and the fields to change)", { code: "bad_record" });
        result = await acu.client().put(entity, record as Record<string, unknown>, { select, expand, mode: config.putMode ?? "update" });
      }
      calls++;
      RED.util.setMessageProperty(msg, property, result, true);
      status(Status.ok(doneText({ operation, n: calls })));
      send(msg);
    });
  });
}
