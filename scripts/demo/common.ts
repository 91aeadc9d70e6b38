/**
 * What every family's demo story shares: the story's shape, the audit viewer tab deployed beside the examples, and
 * the lines that print Twilio's ledger and the audit trail. One Node-RED runs every family asked for; each story
 * looks only at the messages, calls and e-mails about its own documents.
 */
import { FlowNode, Stack } from "../../test/harness/stack";
import { ErpSimName } from "../../test/harness/erp-sims";
import { waitFor } from "../../test/harness/nodered";

/** The families `npm run demo -- <family>` knows, in the order `npm run demo` shows them. */
export const FAMILIES = ["acumatica", "intacct", "exact", "bc", "sapb1"] as const;
export type Family = (typeof FAMILIES)[number];

export interface DemoContext {
  stack: Stack;
  /** Print one line of the story. */
  out(line?: string): void;
  /** What the story expected and did not see; the demo exits 1 when any. */
  problems: string[];
}

/** One family's story on the simulators. */
export interface FamilyDemo {
  family: Family;
  /** The headline printed above the story. */
  title: string;
  /** ERP simulators to start besides Acumatica's and SAP Business One's. */
  erps?: ErpSimName[];
  /** Right after the deploy, before any story runs (e.g. records a poller needs time to see). */
  prepare?(ctx: DemoContext): Promise<void> | void;
  story(ctx: DemoContext): Promise<void>;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The demo's audit viewer: GET /demo/audit?q=<sid, record id or jobId> one send's records; GET /demo/audit the failed sends. */
export const PROBE: FlowNode[] = [
  { id: "d3m0000000000000", type: "tab", label: "demo: audit viewer", info: "GET /demo/audit lists failed sends; GET /demo/audit?q=… one send's records (by Twilio sid, record id or jobId)." },
  { id: "d3m0000000000001", type: "http in", z: "d3m0000000000000", url: "/demo/audit", method: "get", upload: false, swaggerDoc: "", x: 120, y: 60, wires: [["d3m0000000000002"]] },
  { id: "d3m0000000000002", type: "switch", z: "d3m0000000000000", property: "req.query.q", propertyType: "msg", rules: [{ t: "nempty" }, { t: "else" }], checkall: "false", outputs: 2, x: 300, y: 60, wires: [["d3m0000000000003"], ["d3m0000000000005"]] },
  { id: "d3m0000000000003", type: "change", z: "d3m0000000000000", rules: [{ t: "set", p: "payload", pt: "msg", to: "req.query.q", tot: "msg" }], x: 480, y: 40, wires: [["d3m0000000000004"]] },
  { id: "d3m0000000000004", type: "mlc-audit", z: "d3m0000000000000", name: "look up", operation: "get", trail: "default", store: "", maxRecords: "10000", ttl: "30", x: 660, y: 40, wires: [["d3m0000000000006"]] },
  { id: "d3m0000000000005", type: "mlc-audit", z: "d3m0000000000000", name: "failed sends", operation: "failed", trail: "default", store: "", maxRecords: "10000", ttl: "30", x: 480, y: 100, wires: [["d3m0000000000006"]] },
  { id: "d3m0000000000006", type: "http response", z: "d3m0000000000000", statusCode: "", headers: {}, x: 860, y: 60, wires: [] },
];

/** An audit record as the viewer answers it (recipient masked). */
export interface AuditView {
  jobId: string;
  sid?: string;
  status: string;
  to: string;
  channel: string;
  erp?: { system?: string; entity: string; id: string };
  history: { status: string; at: string; errorCode?: number }[];
  error?: { code: string; message: string };
}

/** The audit records of one send (`q`: Twilio sid, record id or jobId), or the failed sends without `q`. */
export async function audit(ctx: DemoContext, q?: string): Promise<AuditView[]> {
  const r = await fetch(`${ctx.stack.nodeRed.url}/demo/audit${q ? `?q=${encodeURIComponent(q)}` : ""}`);
  return r.status === 200 ? ((await r.json()) as AuditView[]) : [];
}

/** Print the audit records of each sid as they are now. */
export async function printAudit(ctx: DemoContext, sids: string[]): Promise<void> {
  for (const sid of sids) for (const r of await audit(ctx, sid)) ctx.out(`   audit: ${auditLine(r)}`);
}

/** Note `what` as a problem unless `ok` (a story's check that needs no waiting). */
export function check(ctx: DemoContext, ok: boolean, what: string): void {
  if (ok) return;
  ctx.out(`   (!) expected: ${what}`);
  ctx.problems.push(what);
}

/** `Bill 000123  sms to +1415*****32  queued → sent → delivered` */
export function auditLine(r: AuditView): string {
  const trail = r.history.map((h) => h.status + (h.errorCode ? `(${h.errorCode})` : "")).join(" → ");
  return `${r.erp?.entity ?? "?"} ${r.erp?.id ?? "?"}  ${r.channel} to ${r.to}  ${trail}${r.error ? `  ${r.error.code}: ${r.error.message}` : ""}`;
}

/**
 * Let Twilio deliver each message and print what the flow heard of it: the answers to Twilio's signed status
 * callbacks (where the send node asked for them), or nothing (the send node polls Twilio instead). Then wait until
 * the audit trail has the final status (callbacks answered 2xx: up to `timeoutMs`; polled: one poll round, 12 s) and
 * print each record as it is.
 */
export async function deliverAndAudit(ctx: DemoContext, sids: string[], timeoutMs = 15000): Promise<void> {
  const { twilio } = ctx.stack;
  let wait = 0;
  const polled = new Set<string>();
  for (const sid of sids) {
    if (!["queued", "accepted"].includes(twilio.getMessage(sid)?.status ?? "")) continue;
    const answers = (await twilio.deliver(sid, "delivered")).map((r) => r.status);
    ctx.out(`   Twilio: ${sid} sent, delivered${answers.length ? `; status callbacks answered HTTP ${answers.join(", ")}` : " (no callback asked for: the SMS node polls)"}`);
    check(ctx, !answers.includes(404), `${sid}'s status callbacks served (404: no mlc-twilio-status node on the example's endpoint)`);
    if (answers.length && answers.every((a) => a >= 200 && a < 300)) wait = Math.max(wait, timeoutMs);
    else if (!answers.length) {
      wait = Math.max(wait, 12000);
      polled.add(sid);
    }
  }
  const final = (r: AuditView): boolean => ["delivered", "undelivered", "failed"].includes(r.status);
  for (const sid of sids) {
    const recs = await waitFor(async () => {
      const found = await audit(ctx, sid);
      return found.length && found.every(final) ? found : undefined;
    }, wait, "audit").catch(async () => audit(ctx, sid));
    wait = 0; // waited once: the others had the same time
    if (!recs.length) ctx.out(`   ${sid}: no audit record`);
    for (const r of recs) ctx.out(`   audit: ${auditLine(r)}`);
    if (polled.has(sid) && recs.length && !recs.every(final)) ctx.out("   (the polled status did not reach the audit: the SMS node sends it on its second output, which this example leaves unwired)");
  }
}

/** Wait for `check`; on a timeout say what did not happen, note it as a problem (exit code 1) and go on with the story. */
export async function expect<T>(ctx: DemoContext, check: () => T | Promise<T>, timeoutMs: number, what: string): Promise<NonNullable<T> | undefined> {
  try {
    return await waitFor(check, timeoutMs, what);
  } catch {
    ctx.out(`   (!) ${what}: did not happen within ${Math.round(timeoutMs / 1000)} s`);
    ctx.problems.push(what);
    return undefined;
  }
}
