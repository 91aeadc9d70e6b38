/**
 * lib/routing.ts without a runtime: the order rows → looked-up contact → `any` rows, matching (trimmed,
 * case-insensitive), amounts written as ERP text, forced channels that have no usable address, and invalid addresses
 * skipped for the next candidate. The node around it is tested in a real Node-RED in test/node/route.test.ts.
 */
import assert from "node:assert/strict";
import { amountOf, route, RouteRow } from "../../nodes/lib/routing";

const opts = (rows: RouteRow[], callAbove?: number) => ({ rows, callAbove, defaultRegion: "US" });
/** The recipient of a decision, undefined for no contact. */
const toOf = (d: ReturnType<typeof route>): string | undefined => (d.channel === "none" ? undefined : d.to);

describe("routing (lib/routing.ts)", () => {
  it("reads amounts as ERP text", () => {
    assert.equal(amountOf("1,250.00"), 1250);
    assert.equal(amountOf(" 42 "), 42);
    assert.equal(amountOf(17.5), 17.5);
    for (const bad of ["", "abc", NaN, Infinity, null, undefined, {}]) assert.equal(amountOf(bad), undefined, String(bad));
  });

  it("a specific row wins over an earlier 'any' row; matching is trimmed and case-insensitive", () => {
    const rows: RouteRow[] = [
      { by: "any", phone: "+14155550100" },
      { by: "vendor", value: " v1007 ", phone: "+14155550101" },
    ];
    const d = route({ keys: { vendor: "V1007" } }, opts(rows));
    assert.equal(d.channel, "sms");
    assert.equal(toOf(d), "+14155550101");
    const other = route({ keys: { vendor: "V2" } }, opts(rows));
    assert.equal(toOf(other), "+14155550100");
  });

  it("a row forcing e-mail without an address, or holding an invalid number, gives way to the next candidate", () => {
    const rows: RouteRow[] = [
      { by: "user", value: "JSMITH", phone: "+14155550101", channel: "email" },
      { by: "user", value: "JSMITH", phone: "555" },
      { by: "department", value: "D1", email: "ap@example.com" },
    ];
    const d = route({ keys: { user: "jsmith", department: "D1" } }, opts(rows));
    assert.deepEqual(d, { channel: "email", to: "ap@example.com", name: undefined, reason: "email-only", source: "table", by: "department", row: 2 });
  });

  it("a looked-up contact with an invalid mobile but a valid address gets an e-mail; nothing usable → no-contact-found with the count", () => {
    const d = route({ keys: {}, contact: { CELLPHONE: "12", EMAIL1: "v@example.com" } }, opts([]));
    assert.equal(d.channel, "email");
    const none = route({ keys: {}, contact: { CELLPHONE: "12", EMAIL1: "not-an-address" } }, opts([]));
    assert.deepEqual(none, { channel: "none", reason: "no-contact-found", invalid: 2 });
    assert.deepEqual(route({ keys: {}, contact: "not an object" }, opts([])), { channel: "none", reason: "no-contact-found", invalid: 0 });
  });

  it("calls a mobile only strictly above the threshold; a landline is called whatever the amount", () => {
    const rows: RouteRow[] = [{ by: "any", phone: "(415) 555-0123" }];
    assert.equal(route({ keys: {}, amount: "1000.00" }, opts(rows, 1000)).channel, "sms");
    assert.equal(route({ keys: {}, amount: "1000.01" }, opts(rows, 1000)).channel, "call");
    assert.equal(route({ keys: {}, amount: "5" }, opts(rows, NaN)).channel, "sms");
    const landline = route({ keys: {}, amount: 1, contact: { PHONE1: "+1 212 555 0100" } }, opts([], 1000));
    assert.deepEqual(landline.channel === "none" ? landline : [landline.channel, landline.reason], ["call", "landline"]);
  });
});
