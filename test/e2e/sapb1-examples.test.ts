/**
 * End to end, the way a user runs it: the package packed and installed into a fresh Node-RED, the three SAP Business
 * One examples (examples/sapb1/) deployed unchanged with the README's settings (durable store) and the environment
 * variables pointing at the simulators (test/harness/stack.ts: the Service Layer over HTTPS with a self-signed
 * certificate trusted through SAPB1_CA). Checked: a new purchase invoice texts AP_PHONE once, and Twilio's signed
 * "delivered" callback, through the example's status endpoint and audit, is written into U_NotifyStatus; an invoice
 * overdue by OVERDUE_DAYS calls AR_PHONE once; an item below its warehouse minimum texts PURCHASING_PHONE once; across many polls, an expired session (renewed with one Login) and a restart nothing
 * is sent twice (after the restart the skeleton replays events no send settled; the send nodes' ledgers stop doubles).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Stack, startStack } from "../harness/stack";
import { tempDir, waitFor } from "../harness/nodered";

const pad = (n: number): string => String(n).padStart(2, "0");
function stamp(ms: number): { UpdateDate: string; UpdateTime: string } {
  const d = new Date(ms);
  return { UpdateDate: d.toISOString().slice(0, 10), UpdateTime: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` };
}
const day = (offsetDays: number): string => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);

describe("end to end: the SAP Business One examples (packed and installed)", function () {
  this.timeout(300000);
  let stack: Stack;
  let root: string;

  before(async () => {
    root = tempDir("mlc-e2e-sapb1-ex-");
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", families: ["sapb1"], pollIntervalSec: 1 });
  });
  after(async () => {
    await stack?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  const to = (n: string): number => stack.twilio.messages.filter((m) => m.to === n).length;
  const calls = (n: string): number => stack.twilio.calls.filter((c) => c.to === n).length;

  it("each alert once, across many polls, an expired session and a restart", async () => {
    const sim = stack.sapb1;
    // "now" trigger start: records modified after the deploy, in a past minute by the time they are read
    sim.put("PurchaseInvoices", { DocEntry: 1, DocNum: 9001, CardCode: "V1", CardName: "Acme Supplies", DocDate: day(0), DocDueDate: day(30), DocTotal: 1250, DocCurrency: "USD", PaidToDate: 0, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: day(0), ...stamp(Date.now() + 1000) });
    sim.put("Invoices", { DocEntry: 7, DocNum: 7007, CardCode: "C1", CardName: "Lakeside Bikes", DocDate: day(-60), DocDueDate: day(-40), DocTotal: 800, DocCurrency: "USD", PaidToDate: 100, DocumentStatus: "bost_Open", Cancelled: "tNO", ...stamp(Date.now() - 86_400_000) });
    sim.put("Items", { ItemCode: "A00001", ItemName: "Helmet", InventoryItem: "tYES", QuantityOnStock: 2, MinInventory: 0, ItemWarehouseInfoCollection: [{ WarehouseCode: "01", InStock: 2, MinimalStock: 5 }] });
    const ap = "+14155550123";
    const ar = "+14155550199";
    const buyer = "+14155550142";
    await waitFor(() => to(buyer) === 1 && calls(ar) === 1, 60000, "low-stock SMS and overdue call");
    await waitFor(() => to(ap) === 1, 90000, "purchase invoice SMS (read once its minute has passed)");
    // the final delivery status comes back through the example's status endpoint and is written onto the invoice
    const sms = stack.twilio.messages.find((m) => m.to === ap);
    assert.equal(sim.data.PurchaseInvoices.get("1")?.U_NotifyStatus, undefined, "nothing written before a final status");
    const callbacks = await stack.twilio.deliver(String(sms?.sid), "delivered");
    assert.ok(callbacks.every((c) => c.status === 200 || c.status === 204), JSON.stringify(callbacks));
    await waitFor(() => sim.data.PurchaseInvoices.get("1")?.U_NotifyStatus === `SMS delivered ${sms?.sid}`, 30000, "the delivery status written back");
    const logins = sim.logins.length;
    sim.expireSessions();
    await waitFor(() => sim.logins.length === logins + 1, 30000, "one re-login");
    let polled = sim.dataRequests.length;
    await waitFor(() => sim.dataRequests.length > polled + 10, 60000, "more polls");
    assert.deepEqual([to(ap), calls(ar), to(buyer)], [1, 1, 1], "nothing sent twice across polls and a re-login");
    assert.equal(sim.logins.length, logins + 1, "one Login per session, not per poll");
    await stack.nodeRed.restart();
    polled = sim.dataRequests.length;
    await waitFor(() => sim.dataRequests.length > polled + 10, 60000, "polls after the restart");
    assert.deepEqual([to(ap), calls(ar), to(buyer)], [1, 1, 1], "nothing sent twice after a restart");
    assert.deepEqual(sim.violations, []);
    const log = stack.nodeRed.log.join("\n");
    assert.doesNotMatch(log, new RegExp(`${sim.password}|B1SESSION=`));
  });
});
