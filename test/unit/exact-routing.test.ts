/**
 * Exact routing and the party cache (nodes/lib/exact/enrich.ts, parties.ts): the recipient per document type
 * (invoice → InvoiceTo and its contact person, sales order → OrderedBy, purchase order → the supplier's contact, goods
 * delivery → DeliveryContact), Exact's opt-out flags (IsMailingExcluded, IsAnonymised), and the cache kept fresh by
 * `Modified` checks against ExactSim: unchanged parties cost nothing after their first load, a changed phone number,
 * opt-out, new or moved contact is seen at the next check, a failed check drops the cache.
 */
import assert from "node:assert/strict";
import { ExactClient } from "../../nodes/lib/exact/client";
import { partyOf, pickRecipient } from "../../nodes/lib/exact/enrich";
import { PartyCache } from "../../nodes/lib/exact/parties";
import { ExactSim, exactDate } from "../sims/exact";

const A = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const B = "1f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const MAIN = "2a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const CLERK = "3a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";
const OTHER = "4a9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f";

describe("exact: routing (contact type, channel, opt-outs)", () => {
  const account = { ID: A, MainContact: MAIN, Email: "ap@acme.example", Name: "Acme" };
  const main = { ID: MAIN, FullName: "Main", Mobile: "+31611111111" };
  const clerk = { ID: CLERK, FullName: "Clerk", Email: "clerk@acme.example" };

  it("the document's contact person first, per document type; else the main contact", () => {
    const party = { account, contacts: [main, clerk] };
    assert.equal(pickRecipient(party, { InvoiceID: "x", InvoiceTo: A, InvoiceToContactPerson: CLERK }).recipient?.to, "clerk@acme.example");
    assert.equal(pickRecipient(party, { InvoiceID: "x", InvoiceTo: A }).recipient?.to, "+31611111111");
    assert.deepEqual(partyOf({ OrderID: "o", InvoiceTo: B, OrderedBy: A, OrderedByContactPerson: CLERK }), { accountId: A, contactId: CLERK });
    assert.deepEqual(partyOf({ PurchaseOrderID: "p", DeliveryAccount: B, Supplier: A.toUpperCase(), SupplierContact: CLERK }), { accountId: A, contactId: CLERK }, "a purchase order goes to the supplier");
    assert.deepEqual(partyOf({ EntryID: "e", DeliveryNumber: 7, DeliveryAccount: A, DeliveryContact: CLERK }, "GoodsDeliveries"), { accountId: A, contactId: CLERK });
    assert.equal(partyOf({ InvoiceID: "x", InvoiceTo: "not-a-guid" }), undefined);
  });

  it("opt-outs: IsMailingExcluded and IsAnonymised contacts are skipped; an anonymised account is nobody's; all opted out → opted-out", () => {
    const doc = { InvoiceID: "x", InvoiceTo: A, InvoiceToContactPerson: MAIN };
    assert.equal(pickRecipient({ account, contacts: [{ ...main, IsMailingExcluded: true }, clerk] }, doc).recipient?.to, "clerk@acme.example");
    assert.equal(pickRecipient({ account, contacts: [{ ...main, IsAnonymised: 1 }, { ...clerk, IsMailingExcluded: true }] }, doc).recipient?.to, "ap@acme.example", "the account's own address is left");
    assert.deepEqual(pickRecipient({ account: { ID: A }, contacts: [{ ...main, IsMailingExcluded: true }] }, doc), { reason: "opted-out" });
    assert.deepEqual(pickRecipient({ account: { ...account, IsAnonymised: 1 }, contacts: [main] }, doc), { reason: "opted-out" });
    assert.deepEqual(pickRecipient({ account: { ID: A }, contacts: [{ ID: OTHER, FullName: "No address", IsMailingExcluded: true }] }, doc), { reason: "no-contact-found" });
  });
});

describe("exact: party cache checked by Modified (against ExactSim)", function () {
  this.timeout(30000);
  let sim: ExactSim;
  let clock: { t: number };
  let client: ExactClient;

  beforeEach(async () => {
    sim = new ExactSim();
    clock = { t: Date.UTC(2026, 0, 5, 8) };
    sim.now = () => clock.t;
    await sim.start();
    sim.put("crm/Accounts", { ID: A, Name: "Acme", MainContact: MAIN });
    sim.put("crm/Contacts", { ID: MAIN, Account: A, FullName: "Main", Mobile: "+31611111111" });
    sim.put("crm/Accounts", { ID: B, Name: "Beta" });
    sim.put("crm/Contacts", { ID: OTHER, Account: B, FullName: "Other", Email: "other@beta.example" });
    client = new ExactClient({ baseUrl: sim.url, clientId: sim.clientId, clientSecret: sim.clientSecret, division: sim.division, tokens: { refreshToken: sim.grant() }, now: () => clock.t });
  });
  afterEach(async () => {
    await client.close();
    await sim.stop();
  });

  const to = async (cache: PartyCache, account = A) => {
    const party = await cache.get(client, sim.division, account);
    return party ? pickRecipient(party).recipient?.to : "missing";
  };
  const calls = () => sim.apiCalls("crm/").length;

  it("unchanged parties cost two calls once, then one check (two listings) per 30 min whatever the number of alerts", async () => {
    const cache = new PartyCache({ now: () => clock.t });
    assert.equal(await to(cache), "+31611111111");
    assert.equal(await to(cache, B), "other@beta.example");
    assert.equal(calls(), 4);
    for (let i = 0; i < 120; i++) {
      clock.t += 60_000; // two hours of one alert a minute for each customer
      assert.equal(await to(cache), "+31611111111");
      assert.equal(await to(cache, B), "other@beta.example");
    }
    assert.equal(calls(), 4 + 2 * 4, "4 checks of 2 listings in 2 h, no reload");
    assert.ok(sim.apiCalls("crm/").every((e) => e.kind === "api" && e.status === 200));
  });

  it("a changed mobile number, an opt-out, a new main contact and a contact moved away are all seen at the next check", async () => {
    const cache = new PartyCache({ now: () => clock.t });
    assert.equal(await to(cache), "+31611111111");
    assert.equal(await to(cache, B), "other@beta.example");
    clock.t += 60_000;
    sim.put("crm/Contacts", { ID: MAIN, Account: A, FullName: "Main", Mobile: "+31622222222" });
    clock.t += 10 * 60_000;
    assert.equal(await to(cache), "+31611111111", "inside the check interval the cached number is used");
    clock.t += 20 * 60_000;
    assert.equal(await to(cache), "+31622222222", "after 30 min the change is seen");
    assert.equal(await to(cache, B), "other@beta.example");
    const before = calls();
    sim.put("crm/Contacts", { ID: MAIN, Account: A, FullName: "Main", Mobile: "+31622222222", IsMailingExcluded: true });
    sim.put("crm/Contacts", { ID: CLERK, Account: B, FullName: "Clerk", Mobile: "+31633333333" });
    sim.put("crm/Accounts", { ID: B, Name: "Beta", MainContact: CLERK });
    clock.t += 31 * 60_000;
    assert.equal(await to(cache), undefined, "opted out: nobody left for Acme");
    assert.equal(await to(cache, B), "+31633333333", "Beta's new main contact");
    assert.equal(calls() - before, 2 + 2 + 2, "one check, then one reload of each changed account");
    sim.put("crm/Contacts", { ID: CLERK, Account: A, FullName: "Clerk", Mobile: "+31633333333" });
    clock.t += 31 * 60_000;
    assert.equal(await to(cache), "+31633333333", "the clerk moved to Acme");
    assert.equal(await to(cache, B), "other@beta.example", "and is gone from Beta");
  });

  it("a check Exact refuses drops the cache (the next alert reloads) instead of using stale contacts; an unknown account is undefined", async () => {
    const cache = new PartyCache({ now: () => clock.t });
    assert.equal(await to(cache), "+31611111111");
    sim.put("crm/Contacts", { ID: MAIN, Account: A, FullName: "Main", Mobile: "+31644444444" });
    const realList = client.list.bind(client);
    let fail = true;
    client.list = ((path, q, division) => {
      if (fail && q.filter?.startsWith("Modified gt")) {
        fail = false;
        throw new Error("listing refused");
      }
      return realList(path, q, division);
    }) as typeof client.list;
    clock.t += 31 * 60_000;
    assert.equal(await to(cache), "+31644444444", "reloaded after the failed check");
    assert.equal(await to(cache, "9f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"), "missing");
  });

  it("a mass change (more changed rows than maxCheckRows) drops the cache after one page instead of paging through it", async () => {
    const cache = new PartyCache({ now: () => clock.t, maxCheckRows: 50 });
    assert.equal(await to(cache), "+31611111111");
    clock.t += 60_000;
    for (let i = 0; i < 130; i++) sim.put("crm/Accounts", { ID: `5${String(i).padStart(7, "0")}-0000-4000-8000-000000000000`, Name: `Imported ${i}` });
    sim.put("crm/Contacts", { ID: MAIN, Account: A, FullName: "Main", Mobile: "+31677777777" });
    clock.t += 30 * 60_000;
    const before = calls();
    assert.equal(await to(cache), "+31677777777");
    assert.equal(calls() - before, 1 + 2, "one page of the Accounts listing, then the reload");
  });

  it("an entry older than maxAgeMs is reloaded (deleted contacts have no Modified)", async () => {
    const cache = new PartyCache({ now: () => clock.t, checkMs: 86_400_000 * 10, maxAgeMs: 3_600_000 });
    assert.equal(await to(cache), "+31611111111");
    sim.data.get("crm/Contacts")?.delete(MAIN);
    sim.put("crm/Contacts", { ID: CLERK, Account: A, FullName: "Clerk", Email: "clerk@acme.example", Modified: exactDate(clock.t - 86_400_000) });
    clock.t += 3_600_000;
    assert.equal(await to(cache), "clerk@acme.example");
  });
});
