/**
 * The whole main job on the built-in simulators: an Acumatica simulator (seeded), SAP Business One's Service Layer,
 * Twilio and SendGrid simulators, on request the Intacct, Exact and Business Central simulators (`erps`,
 * test/harness/erp-sims.ts), and a real Node-RED with this package and the chosen families' example flows deployed
 * (default: Acumatica's). Used by `npm run demo` and by the end-to-end tests, so both exercise exactly the same wiring.
 */
import fs from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { AcumaticaSim, AcuRecord } from "../sims/acumatica";
import { DEFAULT_VERIFY_SERVICE_SID, TwilioSim, TwilioSimOptions } from "../sims/twilio";
import { SapB1Sim } from "../sims/sapb1";
import { DEFAULT_SENDGRID_KEY, SendGridSim } from "../sims/sendgrid";
import { NodeRed, REPO_ROOT, freePort, installInto, linkInto, packRepo } from "./nodered";
import { ErpSimName, ErpSims, erpCredentialRefs, startErpSims, stopErpSims } from "./erp-sims";

/** A node of a flow file (loosely typed: flows are data). */
export type FlowNode = Record<string, unknown> & { id: string; type: string };

/** Credentials the examples need, as `${VAR}` references resolved by Node-RED from its environment. */
export const CREDENTIAL_REFS: Record<string, Record<string, string>> = {
  "mlc-acumatica-config": { clientId: "${ACUMATICA_CLIENT_ID}", clientSecret: "${ACUMATICA_CLIENT_SECRET}", username: "${ACUMATICA_USERNAME}", password: "${ACUMATICA_PASSWORD}" },
  "mlc-twilio-config": { accountSid: "${TWILIO_ACCOUNT_SID}", authToken: "${TWILIO_AUTH_TOKEN}", sendgridApiKey: "${SENDGRID_API_KEY}" },
  "mlc-acumatica-trigger": { headerSecret: "${ACUMATICA_PUSH_SECRET}" },
  "mlc-bc-config": { clientId: "${BC_CLIENT_ID}", clientSecret: "${BC_CLIENT_SECRET}" },
  "mlc-bc-trigger": { clientState: "${BC_CLIENT_STATE}" },
  "mlc-sapb1-config": { username: "${SAPB1_USERNAME}", password: "${SAPB1_PASSWORD}" },
};

/** Read every example flow under examples/<family>/ and merge them (config nodes shared by id appear once). */
export function loadExamples(...families: string[]): FlowNode[] {
  const byId = new Map<string, FlowNode>();
  for (const family of families.length ? families : ["acumatica"]) {
    const dir = path.join(REPO_ROOT, "examples", family);
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".json")).sort()) {
      for (const n of JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as FlowNode[]) byId.set(n.id, n);
    }
  }
  return [...byId.values()];
}

/** Add `credentials` with environment references to the nodes that need them (a deploy carries them inline). */
export function withCredentialRefs(flows: FlowNode[], more: Record<string, Record<string, string>> = {}): FlowNode[] {
  const refs = { ...CREDENTIAL_REFS, ...more };
  return flows.map((n) => (refs[n.type] ? { ...n, credentials: { ...refs[n.type] } } : n));
}

export interface StackOptions {
  userDir: string;
  /** Node-RED port; 0 = free port. */
  port?: number;
  /** "pack": npm pack + npm install (what a palette user gets); "link": symlink the repo (fast, for the demo). */
  install: "pack" | "link";
  pollIntervalSec?: number;
  /** Example families to deploy (examples/<family>/); default ["acumatica"]; [] deploys none (an empty workspace). */
  families?: string[];
  /** Options of the Twilio simulator (rate and concurrency limits…). */
  twilio?: TwilioSimOptions;
  /** More ERP simulators to start (test/harness/erp-sims.ts), their environment and credentials set for the examples. */
  erps?: ErpSimName[];
  /** More flow nodes deployed together with the examples (test probes, the demo's audit viewer). */
  extraFlows?: FlowNode[];
  /** More environment for the Node-RED process (e.g. NODE_ENV "development", Node-RED's own default). */
  extraEnv?: Record<string, string>;
  /** settings.js `contextStorage` (JavaScript source), as NodeRedOptions; default the package's store (README). */
  contextStorage?: string;
  onLog?: (line: string) => void;
}

export interface Stack {
  acumatica: AcumaticaSim;
  twilio: TwilioSim;
  sendgrid: SendGridSim;
  /** SAP Business One Service Layer (HTTPS, self-signed; the examples in examples/sapb1/ poll it). */
  sapb1: SapB1Sim;
  /** The simulators started for `erps` (only those asked for). */
  erps: ErpSims;
  nodeRed: NodeRed;
  env: Record<string, string>;
  pushSecret: string;
  /** Push rows of the "bills pending approval" Generic Inquiry, delivered `times` times with the same Id. */
  pushBills(rows: AcuRecord[], times?: number, id?: string): Promise<number[]>;
  stop(): Promise<void>;
}

export const BILLS_QUERY = "AP-Bills-Pending-Approval";

export async function startStack(opts: StackOptions): Promise<Stack> {
  const acumatica = new AcumaticaSim({ maxApiUsers: 5 });
  const twilio = new TwilioSim(opts.twilio);
  const sendgrid = new SendGridSim();
  await acumatica.start();
  await twilio.start();
  await sendgrid.start();
  const sapb1 = new SapB1Sim();
  await sapb1.start();
  acumatica.seedDemoData();
  const port = opts.port || (await freePort());
  const erps = await startErpSims(opts.erps ?? [], port);
  const pushSecret = randomBytes(18).toString("base64url");
  const env: Record<string, string> = {
    ACUMATICA_URL: acumatica.url,
    ACUMATICA_TENANT: "AcmeProd",
    ACUMATICA_CLIENT_ID: "3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@AcmeProd",
    ACUMATICA_CLIENT_SECRET: "s3cr3t",
    ACUMATICA_USERNAME: "api.user",
    ACUMATICA_PASSWORD: "P@ss-w0rd",
    ACUMATICA_PUSH_SECRET: pushSecret,
    TWILIO_API_URL: twilio.url,
    TWILIO_ACCOUNT_SID: twilio.defaultAccount.accountSid,
    TWILIO_AUTH_TOKEN: twilio.defaultAccount.authToken,
    TWILIO_FROM: "+15005550006",
    // What Twilio allows the sender per second (the examples' per-sender pacing fields read it); unset, a long code
    // is paced at Twilio's default 1/s and a burst of reminders would take minutes.
    TWILIO_SENDER_RATE: "100",
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    APPROVAL_THRESHOLD: "1000",
    CONTROLLER_PHONE: "(415) 555-0199",
    POLL_INTERVAL: String(opts.pollIntervalSec ?? 2),
    VERIFY_SERVICE_SID: DEFAULT_VERIFY_SERVICE_SID,
    ESCALATION_PHONE_1: "(415) 555-0132",
    ESCALATION_PHONE_2: "(212) 555-0187",
    ESCALATION_EMAIL: "controller@acme.example",
    MAIL_FROM: "Acme Accounts Receivable <ar@acme.example>",
    SENDGRID_API_URL: sendgrid.url,
    SENDGRID_API_KEY: DEFAULT_SENDGRID_KEY,
    SENDGRID_VERIFICATION_KEY: sendgrid.publicKeyBase64,
    REMINDER_TIMEZONE: "America/Chicago",
    SAPB1_URL: sapb1.url,
    SAPB1_COMPANY_DB: sapb1.companyDb,
    SAPB1_TIMEZONE: "UTC",
    SAPB1_CA: sapb1.cert ?? "",
    SAPB1_USERNAME: sapb1.username,
    SAPB1_PASSWORD: sapb1.password,
    AP_PHONE: "(415) 555-0123",
    AR_PHONE: "(415) 555-0199",
    OVERDUE_DAYS: "30",
    PURCHASING_PHONE: "(415) 555-0142",
    ...erps.env,
  };
  sendgrid.eventWebhookUrl = `http://127.0.0.1:${port}/mlc/twilio/events/sendgrid`;
  if (opts.install === "pack") installInto(opts.userDir, packRepo(path.join(opts.userDir, "..", "pack")));
  else linkInto(opts.userDir);
  const nodeRed = new NodeRed({ userDir: opts.userDir, port, env: { ...env, ...(opts.extraEnv ?? {}) }, onLog: opts.onLog, contextStorage: opts.contextStorage });
  await nodeRed.start();
  const families = opts.families ?? ["acumatica"];
  const refs = erpCredentialRefs(erps.sims.exact?.grant());
  const flows = [...(families.length ? withCredentialRefs(loadExamples(...families), refs) : []), ...(opts.extraFlows ?? [])];
  if (flows.length) await nodeRed.deploy(flows);
  return {
    acumatica,
    twilio,
    sendgrid,
    sapb1,
    erps: erps.sims,
    nodeRed,
    env,
    pushSecret,
    pushBills: (rows, times = 1, id) =>
      acumatica.pushNotification(
        { url: `${nodeRed.url}/mlc/acumatica/bills`, headerName: "X-Notify-Secret", headerValue: pushSecret },
        { query: BILLS_QUERY, inserted: rows, ...(id ? { id } : {}) },
        { times },
      ),
    stop: async () => {
      await nodeRed.stop();
      await twilio.stop();
      await sendgrid.stop();
      await sapb1.stop();
      await stopErpSims(erps.sims);
      await acumatica.stop();
    },
  };
}

/** A bill row as the customer's Generic Inquiry would push it. */
export function billRow(bill: AcuRecord, vendorName: string, approverId: string): AcuRecord {
  return {
    Type: bill.Type,
    ReferenceNbr: bill.ReferenceNbr,
    VendorID: bill.Vendor,
    VendorName: vendorName,
    Amount: bill.Amount,
    CurrencyID: bill.CurrencyID,
    Description: bill.Description,
    Status: "Pending Approval",
    ApproverID: approverId,
    LastModifiedDateTime: bill.LastModifiedDateTime,
  };
}

/**
 * A test tab reading the audit trail through the mlc-audit node itself: GET /e2e/audit?jobId=… answers a
 * job's records, GET /e2e/failed the failed sends.
 */
export const AUDIT_PROBE: FlowNode[] = [
  { id: "e2e0000000000000", type: "tab", label: "e2e probe" },
  { id: "e2e0000000000001", type: "http in", z: "e2e0000000000000", url: "/e2e/audit", method: "get", upload: false, swaggerDoc: "", x: 100, y: 40, wires: [["e2e0000000000002"]] },
  { id: "e2e0000000000002", type: "change", z: "e2e0000000000000", rules: [{ t: "set", p: "payload", pt: "msg", to: "req.query.jobId", tot: "msg" }], x: 300, y: 40, wires: [["e2e0000000000003"]] },
  { id: "e2e0000000000003", type: "mlc-audit", z: "e2e0000000000000", operation: "get", trail: "default", store: "", maxRecords: "10000", ttl: "30", x: 500, y: 40, wires: [["e2e0000000000004"]] },
  { id: "e2e0000000000004", type: "http response", z: "e2e0000000000000", statusCode: "", headers: {}, x: 700, y: 40, wires: [] },
  { id: "e2e0000000000005", type: "http in", z: "e2e0000000000000", url: "/e2e/failed", method: "get", upload: false, swaggerDoc: "", x: 100, y: 100, wires: [["e2e0000000000006"]] },
  { id: "e2e0000000000006", type: "mlc-audit", z: "e2e0000000000000", operation: "failed", trail: "default", store: "", maxRecords: "10000", ttl: "30", x: 300, y: 100, wires: [["e2e0000000000004"]] },
];

/** An audit record as the probe returns it. */
export interface AuditRecordView {
  recordId: string;
  jobId: string;
  sid?: string;
  status: string;
  to: string;
  channel: string;
  history: { status: string; errorCode?: number }[];
  error?: { code: string; message: string };
  erp?: { entity: string; id: string };
}

/** Read the audit trail through the probe tab. */
export async function auditOf(nodeRedUrl: string, jobId?: string): Promise<AuditRecordView[]> {
  const r = await fetch(jobId === undefined ? `${nodeRedUrl}/e2e/failed` : `${nodeRedUrl}/e2e/audit?jobId=${encodeURIComponent(jobId)}`);
  if (r.status !== 200) throw new Error(`audit probe: HTTP ${r.status}`);
  return (await r.json()) as AuditRecordView[];
}
