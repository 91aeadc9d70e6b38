/**
 * `mlc-bc-trigger` catching up what a lost subscription missed, in a real Node-RED (node-red-node-test-helper, a
 * configured memory context store loaded as Node-RED's start loads it, so a full redeploy stands for a restart over
 * kept context) against BcSim and the Twilio simulator, the trigger wired to `mlc-twilio-sms`:
 * - BC lets the subscription expire and deletes it while Node-RED is not listening; invoices posted meanwhile are
 *   never notified. At the restart the trigger re-creates the subscription, journals a catch-up and texts each missed
 *   invoice once (an invoice texted before the loss is read again with the same jobId and not texted again); the
 *   catch-up is settled in the journal once its records are journaled, so a further restart replays nothing;
 * - a renewal that finds the subscription deleted by BC re-creates it and texts what was posted meanwhile, once;
 * - the catch-up is journaled before it is read: when BC refuses the read (the node closes before it, as after a
 *   crash between journal and emit), nothing is texted and nothing lost; the next start replays the journaled
 *   catch-up and texts each missed invoice once.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, settle, until } from "../harness/red-testbed";
import { BcSim } from "../sims/bc";
import { TwilioSim } from "../sims/twilio";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcSet = require("../../nodes/bc") as (RED: unknown) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioSet = require("../../nodes/twilio") as (RED: unknown) => void;

const DAY = 86_400_000;
const bc = new BcSim();
const twilio = new TwilioSim();
const SECRET = "k7Qp9v-shared-secret";
const bed = new Testbed([bcSet, twilioSet], { contextStorage: { default: { module: "memory" } } }, { loadContextStores: true });
const creds = () => ({
  cfg: { clientId: bc.clientId, clientSecret: bc.clientSecret, caPem: BcSim.caPem },
  trig: { clientState: SECRET },
  tw: { accountSid: twilio.defaultAccount.accountSid, authToken: twilio.defaultAccount.authToken },
});

function flow(): TestFlowNode[] {
  return [
    { id: "t1", type: "tab", label: "main" },
    { id: "cfg", type: "mlc-bc-config", tenant: bc.tenant, environment: bc.environment, companyId: bc.companyId, authorityHost: bc.authorityHost, apiHost: bc.apiHost },
    { id: "trig", type: "mlc-bc-trigger", z: "t1", bc: "cfg", mode: "webhook", entities: "salesInvoices", endpoint: "events", publicUrl: bed.url, wires: [["sms"]] },
    { id: "tw", type: "mlc-twilio-config", from: "+15005550006", defaultRegion: "US", apiHost: twilio.url, timeout: "5" },
    { id: "sms", type: "mlc-twilio-sms", z: "t1", twilio: "tw", to: "payload.phoneNumber", toType: "msg", body: "Invoice {{payload.number}} is ready", wires: [["out"], []] },
    { id: "out", type: "helper", z: "t1" },
    { id: "c1", type: "catch", z: "t1", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", z: "t1" },
  ];
}

/** How many texts mention invoice `n`. */
const texted = (n: string): number => twilio.messages.filter((m) => m.body === `Invoice ${n} is ready`).length;
const invoice = (n: string) => bc.upsert("salesInvoices", { number: n, status: "Open", phoneNumber: "+14155550101" });
/** The trigger's saved subscription state (the memory store answers synchronously). */
const subsState = (): { lost?: Record<string, string> } => ((bed.node("trig").context() as unknown as { get(k: string): unknown }).get("mlc_bc_subscriptions") ?? {}) as { lost?: Record<string, string> };

/** Events still pending in the trigger's journal; `collections`: only those standing for a `collection` (catch-up or BC's). */
function pending(collections = false): number {
  const ctx = bed.node("trig").context() as unknown as { get(k: string): unknown; keys(): string[] };
  return ctx
    .keys()
    .filter((k) => k.startsWith("pn_"))
    .flatMap((k) => ((ctx.get(k) as { v?: { pending?: Array<{ erp?: { id?: string } }> } } | undefined)?.v?.pending ?? []))
    .filter((ev) => !collections || String(ev.erp?.id).startsWith("collection")).length;
}

/** Start, text one invoice through the webhook, then let BC lose the subscription and post `missed` unnoticed. */
async function loseSubscription(missed: string[]): Promise<void> {
  bc.notificationSkewMs = -7; // the notification's time is not the record's: one jobId needs the record's (read) time
  await bed.load(flow(), creds());
  await until(() => bc.subs.size === 1, "subscription");
  invoice("INV-BEFORE");
  await bc.flush();
  await until(() => texted("INV-BEFORE") === 1, "the invoice before the loss texted", 20000);
  bc.advance(4 * DAY); // four days: BC lets the subscription expire and deletes it
  assert.equal(bc.subs.size, 0);
  for (const n of missed) invoice(n);
  assert.deepEqual(await bc.flush(), [], "BC has no subscription to notify");
}

describe("bc trigger catch-up after a lost subscription", function () {
  this.timeout(90000);
  bed.hooks({ sims: [bc, twilio] });

  it("texts each invoice posted while BC had no subscription once, after the restart re-created it", async () => {
    await loseSubscription(["INV-M1", "INV-M2"]);
    await bed.redeploy(flow(), creds()); // the restart
    await until(() => bc.subs.size === 1, "subscription re-created");
    await until(() => texted("INV-M1") === 1 && texted("INV-M2") === 1, () => `missed invoices texted: ${JSON.stringify(twilio.messages.map((m) => m.body))} ${JSON.stringify(bed.received.caught?.map((m) => m.error))}`, 30000);
    await until(() => Object.keys(subsState().lost ?? {}).length === 0, "the catch-up forgotten once journaled");
    // its records journaled each under its own jobId, the catch-up itself is settled: no restart replays it again
    await until(() => pending(true) === 0, () => `the catch-up settled in the journal once read (${pending(true)} pending)`);
    await until(() => pending() === 0, () => `every journaled record settled by its send (${pending()} pending)`);
    const before = bed.received.out.length;
    await bed.redeploy(flow(), creds()); // a further restart: nothing to catch up, nothing of the catch-up replayed
    await until(() => bc.subs.size === 1, "subscription kept");
    await settle(1000);
    const replayed = bed.received.out.slice(before).filter((m) => m.erp?.replay === true);
    assert.deepEqual(replayed.map((m) => m.payload?.number), [], "the catch-up's records not replayed");
    assert.deepEqual([texted("INV-BEFORE"), texted("INV-M1"), texted("INV-M2")], [1, 1, 1]);
    assert.equal(twilio.messages.length, 3);
    assert.equal(bc.subs.size, 1);
    assert.equal(bed.received.caught.length, 0, JSON.stringify(bed.received.caught.map((m) => m.error)));
  });

  it("a record read still running when a deploy stops the node is read again by the next instance: texted once, not lost", async () => {
    await bed.load(flow(), creds());
    await until(() => bc.subs.size === 1, "subscription");
    const releases: Array<() => void> = [];
    bc.holdApi = (method, p) => (method === "GET" && /salesInvoices\(/.test(p) ? new Promise<void>((r) => releases.push(r)) : undefined);
    try {
      invoice("INV-D1");
      assert.deepEqual((await bc.flush()).map((d) => d.status), [200]);
      await until(() => releases.length === 1, "the record's read held");
      const deploying = bed.redeploy(flow(), creds()); // the old instance closes while its read is out
      await settle(500);
      releases[0](); // the old instance's read answers now, after it began closing
      await deploying;
      await settle(500);
    } finally {
      bc.holdApi = undefined;
      for (const r of releases) r();
    }
    await until(() => texted("INV-D1") === 1, () => `texted once by the next instance: ${JSON.stringify(twilio.messages.map((m) => m.body))}`, 15000);
    await settle(500);
    assert.equal(texted("INV-D1"), 1);
    // the notification settled by the read, the record's entry by its send (the notification's time is the record's
    // here: one jobId for both would settle the record's entry at the read and leave the notification pending)
    await until(() => pending() === 0, () => `journal settled (${pending()} pending)`);
  });

  it("a renewal that finds the subscription deleted re-creates it and texts what was posted meanwhile, once", async () => {
    // BC's clock two days behind: a subscription made now expires in a day and 4 s, so its renewal is due in 4 s
    bc.offsetMs = -(2 * DAY - 4000);
    await bed.load(flow(), creds());
    await until(() => bc.subs.size === 1, "subscription");
    const first = [...bc.subs.keys()][0];
    bc.subs.clear(); // BC deleted it (after failed deliveries): the renewal meets not_found
    bc.upsert("salesInvoices", { number: "INV-R1", status: "Open", phoneNumber: "+14155550101" }, Date.now());
    assert.deepEqual(await bc.flush(), [], "BC has no subscription to notify");
    await until(() => texted("INV-R1") === 1, "the invoice posted while it was gone texted after the renewal", 30000);
    assert.equal(bc.subs.size, 1);
    assert.notEqual([...bc.subs.keys()][0], first, "made again");
    await settle(1000);
    assert.equal(twilio.messages.length, 1);
    assert.equal(bed.received.caught.length, 0, JSON.stringify(bed.received.caught.map((m) => m.error)));
  });

  it("a catch-up journaled but not read (BC refuses the read, the node restarts) loses nothing: texted once at the next start", async () => {
    await loseSubscription(["INV-K1"]);
    // BC refuses the catch-up's read (its collection URL filters on lastModifiedDateTime gt): after the journal commit
    bc.refuseApi = (method, path, q) => (method === "GET" && path.endsWith("/salesInvoices") && /lastModifiedDateTime gt/.test(q.get("$filter") ?? "") ? 500 : undefined);
    try {
      await bed.redeploy(flow(), creds());
      await until(() => bed.received.caught.length > 0, "the failed read reported", 30000);
    } finally {
      bc.refuseApi = undefined;
    }
    await until(() => Object.keys(subsState().lost ?? {}).length === 0, "the catch-up forgotten (it is journaled)");
    assert.equal(texted("INV-K1"), 0);
    await bed.redeploy(flow(), creds()); // the restart: the journaled catch-up is replayed and read
    await until(() => texted("INV-K1") === 1, "the missed invoice texted after the restart", 30000);
    await settle(1000);
    assert.deepEqual([texted("INV-BEFORE"), texted("INV-K1")], [1, 1]);
    assert.equal(bc.subs.size, 1);
  });
});
