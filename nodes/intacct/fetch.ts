/**
 * `mlc-intacct-fetch`: reads Sage Intacct records for a flow through the config node's client, e.g. to enrich a
 * bill alert with the vendor's name and mobile number or the approver's contact.
 * - Get: one record by a key field (`query` with `equalto`), answers cached for *Cache* seconds (default 3600) so the
 *   alerts about one vendor cost one gateway call an hour;
 * - Query: every row of a `query` (filter as JSON: one condition or `{and: […]}` / `{or: […]}`), up to *Limit* rows.
 * Values only ever travel as XML text (escaped, control characters removed), never spliced into query syntax.
 * Vendor: developer.intacct.com web-services/queries; api/accounts-payable/bills; api/accounts-payable/vendors.
 */
import { ErpError, ValidationError } from "../lib/errors";
import { IntacctFilter } from "../lib/intacct/query";
import { Status, evaluate, firstSet, num, onInput, registerNode, t } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { intacctConfig } from "./config";

export interface IntacctFetchProps extends Record<string, unknown> {
  name?: string;
  intacct?: string;
  operation?: "get" | "query";
  object?: string;
  objectType?: string;
  keyField?: string;
  key?: string;
  keyType?: string;
  /** Comma-separated field names (dotted names allowed: DISPLAYCONTACT.CELLPHONE). */
  fields?: string;
  filter?: string;
  filterType?: string;
  orderBy?: string;
  limit?: string | number;
  /** Get: reuse an answer this long, s (0 = always ask); default 3600. */
  cacheSeconds?: string | number;
  property?: string;
}

function fieldList(text: string | undefined): string[] {
  const fields = String(text ?? "").split(",").map((f) => f.trim()).filter(Boolean);
  if (!fields.length) throw new ValidationError("Give the fields to read (Intacct has no 'all fields' for query)", { code: "bad_config" });
  return fields;
}

function filterOf(v: unknown): IntacctFilter | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  let f = v;
  if (typeof v === "string") {
    try {
      f = JSON.parse(v);
    } catch {
      throw new ValidationError("Filter is not JSON", { code: "bad_filter" });
    }
  }
  if (typeof f !== "object" || f === null || Array.isArray(f)) throw new ValidationError("Filter must be an object: {field, op, value} or {and: [...]}", { code: "bad_filter" });
  return f as IntacctFilter;
}

export function registerIntacctFetch(RED: RedAPI): void {
  registerNode<IntacctFetchProps>(RED, "mlc-intacct-fetch", (node, config) => {
    const operation = config.operation === "query" ? "query" : "get";
    const property = (config.property || "payload").trim();
    // 3600 s: vendors' contacts and approvers change rarely, and with 300 s a steady flow of alerts over a few dozen vendors
    // cost one lookup per alert (1.5 gateway calls per alert in test/bench/intacct.ts; 0.71 with an hour)
    const cacheMs = num(config.cacheSeconds ?? 3600, 3600, 0, 86_400) * 1000;
    const limit = num(config.limit ?? 100, 100, 1, 100_000);
    let calls = 0;
    node.status(Status.idle(operation));
    try {
      intacctConfig(RED, config.intacct, node);
    } catch {
      // no connection selected: reported on the first message
    }
    onInput(RED, node, async (msg: NodeMessage, { send, status }) => {
      const ia = intacctConfig(RED, config.intacct, node);
      const object = String(firstSet(await evaluate(RED, node, config.object, config.objectType, msg), msg.object) ?? "").trim();
      if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(object)) throw new ValidationError(`"${object}" is not an Intacct object name`, { code: "bad_entity" });
      const fields = fieldList(config.fields);
      status(Status.busy(t(RED, "mlc-intacct-fetch.status.working", { operation }, operation)));
      let result: unknown;
      if (operation === "get") {
        const keyField = String(config.keyField || "RECORDNO").trim();
        const key = config.key ? await evaluate(RED, node, config.key, config.keyType, msg) : msg.key;
        if (key === undefined || key === null || String(key).trim() === "") throw new ValidationError(`No ${keyField} value to look up`, { code: "missing_key" });
        const row = await ia.client().get(object, keyField, String(key).trim(), fields, cacheMs);
        if (!row) throw new ErpError(`${object.toUpperCase()} ${keyField} ${String(key)} was not found`, { code: "not_found", recordId: String(key) });
        result = row;
      } else {
        const filter = filterOf(config.filter ? await evaluate(RED, node, config.filter, config.filterType, msg) : msg.filter);
        const orderBy = config.orderBy ? [{ field: config.orderBy.replace(/^-/, ""), descending: config.orderBy.startsWith("-") }] : undefined;
        const rows: Record<string, unknown>[] = [];
        for await (const r of ia.client().queryAll({ object, select: fields, filter, orderBy, pageSize: Math.min(limit, 2000) })) {
          rows.push(r);
          if (rows.length >= limit) break;
        }
        result = rows;
      }
      calls++;
      RED.util.setMessageProperty(msg, property, result, true);
      status(Status.ok(t(RED, "mlc-intacct-fetch.status.done", { operation, n: calls }, `${operation} ✓ ${calls}`)));
      send(msg);
    });
  });
}
