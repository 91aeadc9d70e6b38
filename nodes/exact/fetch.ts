/**
 * `mlc-exact-fetch`: reads Exact Online records for a flow through the config node's client: get one record by GUID,
 * list with `$select/$filter/$top` (values templated into `$filter` are OData-escaped; GUIDs go in `guid'{{…}}'`), or
 * enrich a document (invoice, order, purchase order, goods delivery) with its account, the account's contacts and the
 * recipient (lib/exact/enrich.ts: the document's contact person, then the main contact; mobile → SMS, e-mail only →
 * e-mail; opt-out flags honoured; none → `msg.skipReason` "no-contact-found" or "opted-out"), parties cached per
 * connection and checked for changes by `Modified` (lib/exact/parties.ts); or forget a cached account at once when an
 * Accounts or Contacts trigger reports a change (`msg.payload.ID` of an account, `Account` of a contact; a deleted
 * contact, which names no account, forgets the division's accounts). Results are plain JSON (`/Date(ms)/` → ISO). Status shows the calls left today (X-RateLimit-Remaining).
 * Vendor: Exact Online REST reference (HlpRestAPIResources.aspx), reference exact-online.md §3, §4, §7.
 */
import { partyOf, pickRecipient } from "../lib/exact/enrich";
import { fromExact, isGuid } from "../lib/exact/values";
import { ErpError, ValidationError } from "../lib/errors";
import { renderODataFilter } from "../lib/odata";
import { isTemplate } from "../lib/template";
import { Status, evaluate, firstSet, num, onInput, registerNode, t } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { exactConfig } from "./config";

export interface ExactFetchProps extends Record<string, unknown> {
  name?: string;
  exact?: string;
  operation?: "get" | "list" | "enrich" | "forget";
  entity?: string;
  /** TypedInput of the record GUID ("id" is taken by Node-RED). */
  record?: string;
  recordType?: string;
  select?: string;
  filter?: string;
  top?: string | number;
  property?: string;
}

function fields(text: string | undefined): string[] | undefined {
  const list = String(text ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return list.length ? list : undefined;
}

async function recordId(RED: RedAPI, node: Parameters<typeof evaluate>[1], config: ExactFetchProps, msg: NodeMessage): Promise<string> {
  const v = config.record ? await evaluate(RED, node, config.record, config.recordType, msg) : firstSet((msg.erp as { id?: string } | undefined)?.id, msg.id as string);
  if (typeof v !== "string" || !v) throw new ValidationError("No record id: set the node's ID or msg.erp.id to the record's GUID", { code: "missing_key" });
  return v;
}

export function registerExactFetch(RED: RedAPI): void {
  registerNode<ExactFetchProps>(RED, "mlc-exact-fetch", (node, config) => {
    const operation = config.operation ?? "get";
    const property = (config.property || "payload").trim();
    let calls = 0;
    node.status(Status.idle(operation));
    try {
      exactConfig(RED, config.exact, node);
    } catch {
      // no connection selected: reported on the first message
    }
    onInput(RED, node, async (msg, { send, status }) => {
      const conn = exactConfig(RED, config.exact, node);
      const client = conn.client();
      const entity = String(config.entity || "salesinvoice/SalesInvoices").trim();
      status(Status.busy(t(RED, "mlc-exact-fetch.status.working", { operation }, operation)));
      if (operation === "get") {
        const id = await recordId(RED, node, config, msg);
        const rec = await client.get(entity, id, fields(config.select));
        if (!rec) throw new ErpError(`${entity} ${id} was not found`, { code: "not_found", status: 404, recordId: id });
        RED.util.setMessageProperty(msg, property, fromExact(rec), true);
      } else if (operation === "list") {
        const select = fields(config.select);
        if (!select) throw new ValidationError("List needs the fields to read ($select); Exact refuses listings without it", { code: "invalid_input" });
        const filter = config.filter && config.filter.trim() ? (isTemplate(config.filter) ? renderODataFilter(config.filter, msg) : config.filter) : undefined;
        const top = config.top === undefined || config.top === "" ? undefined : num(config.top, 60, 1, 100000);
        const rows: unknown[] = [];
        for await (const r of client.list(entity, { select, filter, top })) rows.push(fromExact(r));
        RED.util.setMessageProperty(msg, property, rows, true);
      } else if (operation === "forget") {
        const p = (msg.payload ?? {}) as Record<string, unknown>;
        const raw = (msg.erp as { entity?: string } | undefined)?.entity === "Accounts" ? p.ID : p.Account;
        const accountId = typeof raw === "string" && isGuid(raw) ? raw : undefined;
        conn.parties.invalidate(await client.currentDivision(), accountId);
        msg.forgotten = accountId ?? "all";
      } else {
        const doc = (msg.payload ?? {}) as Record<string, unknown>;
        const entityName = (msg.erp as { entity?: string } | undefined)?.entity;
        const accountId = partyOf(doc, entityName)?.accountId;
        if (!accountId) throw new ValidationError("Enrich needs msg.payload to be a document with InvoiceTo, OrderedBy, Supplier, DeliveryAccount or Account", { code: "invalid_input" });
        const party = await conn.parties.get(client, await client.currentDivision(), accountId);
        if (!party) throw new ErpError(`Account ${accountId} was not found`, { code: "not_found", status: 404, recordId: accountId });
        const routed = pickRecipient(party, doc, undefined, entityName);
        doc.account = fromExact(party.account);
        doc.contacts = fromExact(party.contacts);
        msg.payload = doc;
        msg.recipient = routed.recipient ?? null;
        if (!routed.recipient) msg.skipReason = routed.reason;
      }
      calls++;
      const left = client.rateRemaining().daily;
      status(Status.ok(t(RED, "mlc-exact-fetch.status.done", { operation, n: calls, left: left ?? "?" }, `${operation} ✓ ${calls} · ${left ?? "?"}/day`)));
      send(msg);
    });
  });
}
