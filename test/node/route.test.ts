/**
 * mlc-route in a real Node-RED runtime (node-red-node-test-helper via test/harness/red-testbed.ts), loading the
 * COMPILED flow node set: recipients from the mapping table by ERP user, vendor, location and department (values as
 * `${ENV}` references Node-RED substitutes at deploy), from a contact looked up on the message, or from the default
 * row; channel by amount threshold and contact preference; numbers normalised to E.164; an event nobody can be
 * reached for leaves on the fourth output and a real mlc-audit node records it as `no-contact-found`.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { shown } from "../harness/catalog";
import { Msg, Testbed, settle, until } from "../harness/red-testbed";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const flowSet = require("../../nodes/flow") as (RED: unknown) => void;

const bed = new Testbed([flowSet]);
const TAB: TestFlowNode = { id: "t1", type: "tab", label: "main" };
const OUTS = ["sms", "call", "email", "none"];

/** A bill as the Intacct trigger emits it. */
function bill(ref: string, extra: Msg = {}): Msg {
  return {
    topic: "intacct/APBILL/updated",
    payload: { RECORDID: ref, VENDORID: "V1007", TOTALENTERED: "1250.00", APPROVERID: "JSMITH", LOCATIONID: "LA", DEPARTMENTID: "D200", ...extra },
    erp: { system: "intacct", tenant: "ACME-US", entity: "APBILL", id: `APBILL/V1007/${ref}`, number: ref, action: "updated", jobId: `job-${ref}` },
  };
}

function routeFlow(props: Msg = {}): TestFlowNode[] {
  return [
    TAB,
    {
      id: "r1",
      type: "mlc-route",
      z: "t1",
      name: "",
      user: "payload.APPROVERID",
      vendor: "payload.VENDORID",
      location: "payload.LOCATIONID",
      department: "payload.DEPARTMENTID",
      contact: "contact",
      amount: "payload.TOTALENTERED",
      callAbove: "${MLC_TEST_CALL_ABOVE}",
      region: "US",
      rows: [],
      ...props,
      wires: [["sms"], ["call"], ["email"], ["none", "a1"]],
    },
    ...OUTS.map((id) => ({ id, type: "helper", z: "t1" })),
    { id: "a1", type: "mlc-audit", z: "t1", name: "audit", operation: "auto", trail: "route", store: "", maxRecords: 100, ttl: 1, wires: [["audited"]] },
    { id: "audited", type: "helper", z: "t1" },
  ];
}

/** Send one message to the route node; resolves the output it left on and the message. */
async function routeOne(msg: Msg): Promise<{ out: string; msg: Msg }> {
  const before = OUTS.map((id) => bed.received[id].length);
  bed.node("r1").receive(msg);
  await until(() => OUTS.some((id, i) => bed.received[id].length > before[i]), "a routed message");
  await settle(20);
  const hits = OUTS.filter((id, i) => bed.received[id].length > before[i]);
  assert.equal(hits.length, 1, `exactly one output, got ${hits.join(",")}`);
  const out = hits[0];
  return { out, msg: bed.received[out][bed.received[out].length - 1] };
}

/** The route node's own last status (the helper spies on Node.prototype.status, shared by every node). */
function lastStatus(): { fill: string; text: string } {
  const node = bed.node("r1");
  const calls = node.status.getCalls().filter((c) => c.thisValue === node);
  return calls[calls.length - 1].args[0] as { fill: string; text: string };
}

describe("mlc-route in Node-RED", function () {
  this.timeout(15000);
  bed.hooks({
    beforeEach: () => {
      process.env.MLC_TEST_APPROVER = "(415) 555-0123";
      process.env.MLC_TEST_CALL_ABOVE = "10000";
      delete process.env.MLC_TEST_UNSET;
    },
  });

  it("maps by ERP user from the table (an env var reference, normalised to E.164): SMS below the threshold, a call above it", async () => {
    await bed.load(routeFlow({ rows: [{ by: "user", value: "jsmith", phone: "${MLC_TEST_APPROVER}", channel: "auto" }] }));
    const small = await routeOne(bill("INV-1"));
    assert.equal(small.out, "sms");
    assert.equal(small.msg.to, "+14155550123");
    assert.deepEqual(small.msg.route, { channel: "sms", reason: "mobile", source: "table", by: "user", row: 0, name: undefined });
    const big = await routeOne(bill("INV-2", { TOTALENTERED: "25,000.00" }));
    assert.equal(big.out, "call");
    assert.equal(big.msg.to, "+14155550123");
    assert.equal((big.msg.route as Msg).reason, "amount");
    // exactly at the threshold is not above it
    assert.equal((await routeOne(bill("INV-3", { TOTALENTERED: 10000 }))).out, "sms");
  });

  it("the first matching row wins, by vendor, location or department; a forced channel is kept", async () => {
    const rows = [
      { by: "vendor", value: "V2000", phone: "+14155550100", channel: "auto" },
      { by: "location", value: "NY", phone: "+14155550101", channel: "auto" },
      { by: "department", value: "D200", email: "ap@example.com", channel: "auto" },
      { by: "vendor", value: "V1007", phone: "+14155550102", channel: "call" },
    ];
    await bed.load(routeFlow({ rows }));
    const byDept = await routeOne(bill("INV-4"));
    assert.equal(byDept.out, "email");
    assert.equal(byDept.msg.to, "ap@example.com");
    assert.equal(byDept.msg.email, "ap@example.com");
    assert.equal((byDept.msg.route as Msg).by, "department");
    const byLocation = await routeOne(bill("INV-5", { LOCATIONID: "ny" }));
    assert.equal(byLocation.msg.to, "+14155550101");
    const forced = await routeOne(bill("INV-6", { DEPARTMENTID: "D999", TOTALENTERED: "5" }));
    assert.equal(forced.out, "call", "the row forces a call whatever the amount");
    assert.equal(forced.msg.to, "+14155550102");
    assert.equal((forced.msg.route as Msg).reason, "forced");
  });

  it("uses a contact looked up on the message when no row matches: mobile → SMS, e-mail only → e-mail, landline only → call", async () => {
    await bed.load(routeFlow({ rows: [{ by: "any", value: "", phone: "+14155550199", channel: "auto" }] }));
    const mobile = await routeOne({ ...bill("INV-7"), contact: { "DISPLAYCONTACT.CELLPHONE": "415-555-0142", "DISPLAYCONTACT.EMAIL1": "v@example.com" } });
    assert.equal(mobile.out, "sms");
    assert.equal(mobile.msg.to, "+14155550142");
    assert.equal((mobile.msg.route as Msg).source, "lookup");
    const mail = await routeOne({ ...bill("INV-8"), contact: { "DISPLAYCONTACT.EMAIL1": "v@example.com", NAME: "Blue Ridge Paper" } });
    assert.equal(mail.out, "email");
    assert.equal((mail.msg.route as Msg).name, "Blue Ridge Paper");
    const landline = await routeOne({ ...bill("INV-9"), contact: { PHONE1: "+1 212 555 0100" } });
    assert.equal(landline.out, "call");
    assert.equal((landline.msg.route as Msg).reason, "landline");
    // a recipient chosen upstream ({channel, to}, as mlc-exact-fetch's msg.recipient)
    const chosen = await routeOne({ ...bill("INV-9b"), contact: { channel: "email", to: "pay@vendor.example", name: "Vendor AP" } });
    assert.equal(chosen.out, "email");
    assert.equal(chosen.msg.email, "pay@vendor.example");
    // nothing looked up: the default row
    const fallback = await routeOne(bill("INV-10"));
    assert.equal(fallback.msg.to, "+14155550199");
    assert.equal((fallback.msg.route as Msg).by, "any");
  });

  it("an event nobody can be reached for leaves on output 4 and the audit trail records it as no-contact-found", async () => {
    await bed.load(routeFlow({ rows: [{ by: "vendor", value: "V1007", phone: "${MLC_TEST_UNSET}", channel: "auto" }, { by: "user", value: "JSMITH", phone: "12", channel: "auto" }] }));
    const { out, msg } = await routeOne({ ...bill("INV-11"), contact: { email: "not an address" } });
    assert.equal(out, "none");
    assert.equal(msg.skipReason, "no-contact-found");
    assert.deepEqual(msg.route, { channel: "none", reason: "no-contact-found", invalid: 2 });
    assert.equal(msg.to, undefined);
    await until(() => bed.received.audited.length === 1, "the audit record");
    const record = bed.received.audited[0].audit as Msg;
    assert.equal(record.status, "no-contact-found");
    assert.equal(record.jobId, "job-INV-11");
    assert.equal(record.channel, "none");
    assert.equal((record.error as Msg).code, "no_contact_found");
    assert.equal((record.erp as Msg).id, "APBILL/V1007/INV-11");
    // the same event again (a replay) is not a second record; it is listed among the failed notifications
    bed.node("r1").receive({ ...bill("INV-11") });
    await until(() => bed.received.audited.length === 2, "the second pass through audit");
    bed.node("a1").receive({ operation: "failed" });
    await until(() => bed.received.audited.length === 3, "the failed list");
    const failed = bed.received.audited[2].payload as Msg[];
    assert.deepEqual(failed.map((r) => [r.jobId, r.status]), [["job-INV-11", "no-contact-found"]]);
    const st = lastStatus();
    assert.equal(st.fill, "yellow");
    assert.equal(shown("flow", st.text), "0 sms / 0 call / 0 mail / 2 none");
  });

  it("an unset call threshold never calls; an unknown role is warned about and never matches", async () => {
    delete process.env.MLC_TEST_CALL_ABOVE;
    await bed.load(routeFlow({ rows: [{ by: "costcentre", value: "V1007", phone: "+14155550100" }, { by: "vendor", value: "V1007", phone: "+14155550123", channel: "auto" }] }));
    const r = await routeOne(bill("INV-12", { TOTALENTERED: "1000000" }));
    assert.equal(r.out, "sms");
    assert.equal(r.msg.to, "+14155550123");
    const warned = bed.node("r1").warn.getCalls().map((c) => String(c.args[0]));
    assert.ok(warned.some((w) => w.includes('"costcentre"')), warned.join("|"));
    const st = lastStatus();
    assert.equal(st.fill, "green");
    assert.equal(shown("flow", st.text), "1 sms / 0 call / 0 mail / 0 none");
  });
});
