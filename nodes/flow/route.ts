/**
 * `mlc-route`: picks who hears about an ERP event and through which channel (lib/routing.ts), one output per
 * channel so it wires straight into `mlc-twilio-sms`, `mlc-twilio-call` and `mlc-twilio-email`; a fourth output
 * takes the events nobody can be reached for, marked so that an `mlc-audit` node records them as `no-contact-found`.
 * Any family: the roles (user, vendor, location, department) are message properties the editor names, e.g.
 * `payload.VENDORID` for Intacct, `payload.Vendor` for Acumatica.
 */
import { amountOf, route, RouteRole, RouteRow, ROUTE_ROLES } from "../lib/routing";
import { Status, messageJobId, onInput, registerNode, statusTemplate, t } from "../shared/node";
import type { NodeMessage, RedAPI, RedNode } from "../shared/types";

/** Editor properties of `mlc-route`. `${ENV}` references anywhere in them are substituted by Node-RED at deploy. */
export interface RouteProps extends Record<string, unknown> {
  name?: string;
  /** The mapping table, read top to bottom (lib/routing.ts RouteRow). */
  rows?: RouteRow[];
  /** Message property (msg.<path>) holding each role's value, e.g. "payload.VENDORID"; empty = role unused. */
  user?: string;
  vendor?: string;
  location?: string;
  department?: string;
  /** Message property of a contact looked up earlier (e.g. an ERP fetch result); empty = none. */
  contact?: string;
  /** Message property of the event's amount, e.g. "payload.TOTALENTERED"; empty = no amount. */
  amount?: string;
  /** Amounts above this are called (with acknowledgement) instead of texted; empty = never. */
  callAbove?: string | number;
  /** ISO 3166-1 alpha-2 region for national numbers; default "US". */
  region?: string;
}

/** `msg.route` on every output. `to` is never repeated here (it is `msg.to`); `row` is the table row's index. */
export interface RouteInfo {
  channel: "sms" | "call" | "email" | "none";
  reason: string;
  source?: "table" | "lookup";
  by?: RouteRole;
  row?: number;
  name?: string;
  invalid?: number;
}

const OUTPUT = { sms: 0, call: 1, email: 2, none: 3 } as const;

/** An unsubstituted `${NAME}` (the variable is not set) reads as empty. */
function setting(v: unknown): string | undefined {
  const s = typeof v === "number" ? String(v) : typeof v === "string" ? v.trim() : "";
  return s === "" || /^\$\{\S+\}$/.test(s) ? undefined : s;
}

function rowsOf(v: unknown): RouteRow[] {
  if (!Array.isArray(v)) return [];
  return v
    .filter((r): r is Record<string, unknown> => r !== null && typeof r === "object")
    .map((r) => ({ by: String(r.by ?? ""), value: setting(r.value), phone: setting(r.phone), email: setting(r.email), name: setting(r.name), channel: setting(r.channel) }));
}

/** The message property at `path`, or undefined when the path is empty or leads nowhere. */
function prop(RED: RedAPI, msg: NodeMessage, path: string | undefined): unknown {
  if (!path) return undefined;
  try {
    return RED.util.getMessageProperty(msg, path);
  } catch {
    return undefined;
  }
}

/** Settings a deploy cannot fix later: warned once at start (the node still routes). */
function startWarnings(RED: RedAPI, node: RedNode, rows: RouteRow[], callAboveText: string | undefined): number | undefined {
  for (const r of rows) {
    if (!(ROUTE_ROLES as readonly string[]).includes(r.by)) node.warn(t(RED, "mlc-route.warn.role", { role: r.by }, `A mapping row has the unknown role "__role__": it never matches`));
  }
  const callAbove = callAboveText === undefined ? undefined : amountOf(callAboveText);
  if (callAboveText !== undefined && callAbove === undefined) node.warn(t(RED, "mlc-route.warn.threshold", {}, "The call threshold is not a number: nobody is called by amount"));
  return callAbove;
}

/**
 * Register `mlc-route`. Never fails a message: an event without any reachable recipient leaves on output 4 with
 * `msg.skipReason = "no-contact-found"`, `msg.twilio = { jobId, status: "no-contact-found", channel: "none" }` and
 * `msg.error = { code: "no_contact_found", message, source }`, which `mlc-audit` (auto) records as a failed notification.
 */
export function registerRoute(RED: RedAPI): void {
  registerNode<RouteProps>(RED, "mlc-route", (node, config) => {
    const rows = rowsOf(config.rows);
    const paths: Partial<Record<RouteRole, string | undefined>> = {
      user: setting(config.user),
      vendor: setting(config.vendor),
      location: setting(config.location),
      department: setting(config.department),
    };
    const callAbove = startWarnings(RED, node, rows, setting(config.callAbove));
    const region = setting(config.region) ?? "US";
    const counts = { sms: 0, call: 0, email: 0, none: 0 };
    const countsText = statusTemplate(RED, "mlc-route.status.counts", "__sms__ sms / __call__ call / __email__ mail / __none__ none");
    node.status(Status.idle("mlc-route.status.ready"));

    onInput(RED, node, async (msg: NodeMessage, { send, status }) => {
      const keys: Partial<Record<RouteRole, unknown>> = {};
      for (const role of ["user", "vendor", "location", "department"] as const) keys[role] = prop(RED, msg, paths[role]);
      const d = route({ keys, amount: prop(RED, msg, setting(config.amount)), contact: prop(RED, msg, setting(config.contact)) }, { rows, callAbove, defaultRegion: region });
      const out: (NodeMessage | null)[] = [null, null, null, null];
      if (d.channel === "none") {
        const jobId = messageJobId(msg);
        msg.route = { channel: "none", reason: d.reason, invalid: d.invalid } satisfies RouteInfo;
        msg.skipReason = d.reason;
        msg.twilio = { jobId, status: d.reason, channel: "none" };
        msg.error = { code: "no_contact_found", message: `No contact found for ${String(msg.topic ?? "the event")}${d.invalid ? ` (${d.invalid} invalid address${d.invalid > 1 ? "es" : ""})` : ""}`, source: { id: node.id, type: node.type, name: node.name } };
      } else {
        msg.to = d.to;
        if (d.channel === "email") msg.email = d.to;
        msg.route = { channel: d.channel, reason: d.reason, source: d.source, by: d.by, row: d.row, name: d.name } satisfies RouteInfo;
      }
      counts[d.channel]++;
      out[OUTPUT[d.channel]] = msg;
      status((counts.none ? Status.warn : Status.ok)(countsText(counts)));
      send(out);
    });
  });
}
