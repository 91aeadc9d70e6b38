/**
 * `node dist/test/bench/exact.js` (also run by `npm run bench`): what an Exact Online alert costs in API calls, and how
 * often the connection asks for tokens, against ExactSim on a virtual clock (the simulator, the client and the
 * account cache share it, so hours pass in seconds; the simulator's rate limits are lifted: this measures calls,
 * not pacing). An alert = the webhook follow-up GET of the invoice + enrichment (account and contacts, cached per
 * connection, nodes/lib/exact/enrich.ts). Prints, per scenario: alerts, invoice GETs, account/contact calls, API
 * calls per alert, new grants (logins) and token refreshes per hour. Figures only, nothing asserted.
 */
import { ExactClient } from "../../nodes/lib/exact/client";
import { accountOf, pickRecipient } from "../../nodes/lib/exact/enrich";
import { PartyCache } from "../../nodes/lib/exact/parties";
import { ExactSim, exactDate } from "../sims/exact";

interface Scenario {
  name: string;
  alerts: number;
  customers: number;
  /** Virtual time between alerts, ms. */
  spacingMs: number;
  /** A contact's phone number changes every this many alerts (0: never). */
  changeEvery?: number;
}

const SCENARIOS: Scenario[] = [
  { name: "burst: 200 invoices, 10 customers, 1 s apart", alerts: 200, customers: 10, spacingMs: 1000 },
  { name: "steady: 480 invoices over 8 h, 20 customers", alerts: 480, customers: 20, spacingMs: 60_000 },
  { name: "steady: 1440 invoices over 24 h, 20 customers, a contact's mobile changes every hour", alerts: 1440, customers: 20, spacingMs: 60_000, changeEvery: 60 },
  { name: "quiet: 16 invoices over 8 h, 20 customers", alerts: 16, customers: 20, spacingMs: 1_800_000 },
];

function guid(n: number, prefix: string): string {
  return `${prefix}${n.toString(16).padStart(8 - prefix.length, "0")}-0000-4000-8000-000000000000`;
}

async function run(s: Scenario): Promise<void> {
  const sim = new ExactSim();
  const clock = { t: Date.UTC(2026, 0, 5, 8) };
  sim.now = () => clock.t;
  sim.minuteLimit = 1_000_000;
  sim.dayLimit = 10_000_000;
  await sim.start();
  const client = new ExactClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, division: sim.division, tokens: { refreshToken: sim.grant() }, now: () => clock.t, budget: { keyLimits: () => undefined } });
  const cache = new PartyCache({ now: () => clock.t }); // the connection's defaults
  try {
    for (let c = 0; c < s.customers; c++) {
      sim.put("crm/Accounts", { ID: guid(c, "a"), Name: `Customer ${c}`, MainContact: guid(c, "c") });
      sim.put("crm/Contacts", { ID: guid(c, "c"), Account: guid(c, "a"), FullName: `Contact ${c}`, Mobile: `+3161000${String(c).padStart(4, "0")}` });
    }
    const start = clock.t;
    let warm: { at: number; alerts: number; calls: number } | undefined;
    let wrong = 0;
    for (let i = 0; i < s.alerts; i++) {
      if (!warm && clock.t - start >= 3_600_000) warm = { at: clock.t, alerts: i, calls: sim.apiCalls().length };
      const c = i % s.customers;
      if (s.changeEvery && i % s.changeEvery === s.changeEvery - 1) sim.put("crm/Contacts", { ID: guid(c, "c"), Account: guid(c, "a"), FullName: `Contact ${c}`, Mobile: `+3162${String(i).padStart(7, "0")}` });
      const inv = sim.put("salesinvoice/SalesInvoices", { InvoiceNumber: 1000 + i, AmountDC: 10 + i, InvoiceTo: guid(c, "a"), Modified: exactDate(clock.t) });
      const rec = await client.get("salesinvoice/SalesInvoices", String(inv.InvoiceID), ["InvoiceID", "InvoiceNumber", "AmountDC", "InvoiceTo", "Modified"]);
      const party = await cache.get(client, sim.division, accountOf(rec ?? {}) ?? "");
      const mobile = party ? pickRecipient(party).recipient?.to : undefined;
      if (mobile !== sim.data.get("crm/Contacts")?.get(guid(c, "c"))?.Mobile) wrong++;
      clock.t += s.spacingMs;
    }
    const hours = (clock.t - start) / 3_600_000;
    const gets = sim.apiCalls("SalesInvoices").length;
    const party = sim.apiCalls("crm/").length;
    const tokens = sim.log.filter((l) => l.kind === "token");
    const logins = tokens.filter((l) => l.kind === "token" && l.grant === "authorization_code").length;
    const steady = warm && s.alerts > warm.alerts ? ` · after the first hour ${((sim.apiCalls().length - warm.calls) / (s.alerts - warm.alerts)).toFixed(3)}` : "";
    process.stdout.write(
      `  ${s.name}\n    alerts ${s.alerts}, invoice GETs ${gets}, account/contact calls ${party} (change-check listings ${cache.checkCalls}), API calls per alert ${((gets + party) / s.alerts).toFixed(3)}${steady}\n` +
        `    sent to an old number: ${wrong} (a change reaches routing within the 30-min check)\n` +
        `    virtual time ${hours.toFixed(2)} h, new grants ${logins} (${(logins / hours).toFixed(2)}/h), token requests ${tokens.length} incl. the first (${(tokens.length / hours).toFixed(2)}/h; 10-minute tokens need ≥ 6/h)\n`,
    );
  } finally {
    await client.close();
    await sim.stop();
  }
}

async function main(): Promise<void> {
  process.stdout.write("Exact Online: API calls per alert and token requests (ExactSim, virtual clock)\n");
  for (const s of SCENARIOS) await run(s);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
