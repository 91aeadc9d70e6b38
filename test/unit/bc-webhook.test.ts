/**
 * nodes/lib/bc/webhook.ts against BcSim: the handshake answer BC accepts (create and renew), clientState checked per
 * item of a mixed POST (a forged POST refused with 401, a malformed one 400, never a 5xx), the subscription lifecycle
 * (create per webhook-enabled entity set and poll fallback for the rest, renewal a day before expiry across simulated
 * days and a restart, re-creation after expiry or deletion, adoption after a crash before save, removal), and the
 * catch-up of what BC could not deliver while a set had no subscription.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { BcClient } from "../../nodes/lib/bc/client";
import { BcSubscriptionState, BcSubscriptions, handshakeAnswer, notificationKey, readNotifications } from "../../nodes/lib/bc/webhook";
import { BcSim } from "../sims/bc";

const SECRET = "k7Qp9v-shared-secret";

/** A receiver built from the library's answers, like the trigger adapter will be. */
class Receiver {
  readonly batches: ReturnType<typeof readNotifications>[] = [];
  url = "";
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const hs = handshakeAnswer(new URL(req.url ?? "/", "http://x").searchParams);
      const a = hs ?? this.take(Buffer.concat(chunks));
      res.writeHead(a.status, a.headers).end(a.body);
    });
  });

  private take(body: Buffer): { status: number; headers: Record<string, string>; body: string } {
    const b = readNotifications(body, SECRET);
    this.batches.push(b);
    return b.answer;
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/bc/hooks?flow=1`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe("bc: webhook lifecycle (nodes/lib/bc/webhook)", function () {
  this.timeout(30000);
  let sim: BcSim;
  let client: BcClient;
  let rx: Receiver;
  let saved: BcSubscriptionState | undefined;
  let saves = 0;

  const manager = (): BcSubscriptions =>
    new BcSubscriptions({
      client,
      notificationUrl: rx.url,
      clientState: SECRET,
      load: async () => (saved ? (JSON.parse(JSON.stringify(saved)) as BcSubscriptionState) : undefined),
      save: async (s) => {
        saves++;
        saved = JSON.parse(JSON.stringify(s)) as BcSubscriptionState;
      },
      now: () => sim.now(),
    });

  beforeEach(async () => {
    sim = new BcSim();
    await sim.start();
    rx = new Receiver();
    await rx.start();
    client = new BcClient({ tenant: sim.tenant, environment: sim.environment, companyId: sim.companyId, clientId: sim.clientId, clientSecret: sim.clientSecret, authorityHost: sim.authorityHost, apiHost: sim.apiHost, tls: { ca: BcSim.caPem } });
    saved = undefined;
    saves = 0;
  });

  afterEach(async () => {
    await client.close();
    await rx.stop();
    await sim.stop();
  });

  it("answers the handshake with exactly 200 and the token (create goes through; the URL's own query is kept)", async () => {
    const r = await manager().ensure(["salesInvoices"]);
    assert.deepEqual(r.subscribed, ["salesInvoices"]);
    const hs = sim.log.filter((l) => l.kind === "handshake");
    assert.deepEqual(hs.map((h) => h.kind === "handshake" && h.ok), [true]);
    assert.equal(handshakeAnswer("a=1")?.status, undefined);
    assert.deepEqual(handshakeAnswer("validationToken=abc%2Bdef"), { status: 200, headers: { "Content-Type": "text/plain; charset=utf-8" }, body: "abc+def" });
  });

  it("subscribes webhook-enabled sets and leaves purchaseOrders / customerPayments to polling", async () => {
    const r = await manager().ensure(["salesInvoices", "purchaseInvoices", "customers", "purchaseOrders", "customerPayments"]);
    assert.deepEqual(r.subscribed, ["salesInvoices", "purchaseInvoices", "customers"]);
    assert.deepEqual(r.pollFallback, ["purchaseOrders", "customerPayments"]);
    assert.equal(sim.subs.size, 3);
    assert.ok(r.nextRenewalAt && r.nextRenewalAt > sim.now() + 47 * 3600_000 && r.nextRenewalAt <= sim.now() + 48 * 3600_000);
  });

  it("renews a day before expiry across simulated days and a restart, never letting a subscription lapse", async () => {
    await manager().ensure(["salesInvoices"]);
    const id = Object.values(saved?.subs ?? {})[0].subscriptionId;
    for (let day = 1; day <= 7; day++) {
      sim.advance(86_400_000 + 60_000);
      // a fresh manager each day: only the persisted state carries the schedule (a restart)
      await manager().renewDue();
      assert.ok(sim.subs.has(id), `subscription alive on day ${day}`);
    }
    assert.ok(sim.log.filter((l) => l.kind === "handshake" && l.ok).length >= 4, "each renewal repeated the handshake");
    assert.equal(sim.log.filter((l) => l.kind === "sub-deleted").length, 0);
  });

  it("re-creates a subscription that expired while Node-RED was down, or that BC deleted", async () => {
    await manager().ensure(["customers"]);
    sim.advance(4 * 86_400_000);
    assert.equal(sim.subs.size, 0);
    await manager().renewDue();
    assert.equal(sim.subs.size, 1);
    sim.subs.clear();
    const r = await manager().ensure(["customers"]);
    assert.deepEqual(r.subscribed, ["customers"]);
    assert.equal(sim.subs.size, 1);
    assert.equal(Object.values(saved?.subs ?? {})[0].subscriptionId, [...sim.subs.keys()][0]);
  });

  it("catches up what a lost subscription missed: one collection notification from last seen alive minus 36 h, every change since read once", async () => {
    const DAY = 86_400_000;
    await manager().ensure(["salesInvoices"]);
    assert.deepEqual(await manager().catchUp(), [], "nothing lost yet");
    const seenAt = Date.parse(saved?.seenAt?.salesInvoices ?? "");
    const old = sim.upsert("salesInvoices", { number: "OLD" }, seenAt - 40 * 3600_000); // before the horizon
    sim.advance(DAY);
    const missed = [sim.upsert("salesInvoices", { number: "M1" }), sim.upsert("purchaseInvoices", { number: "OTHER" })];
    sim.advance(3 * DAY); // Node-RED down: the subscription expires and BC deletes it
    missed.push(sim.upsert("salesInvoices", { number: "M2" }));
    assert.equal(sim.subs.size, 0);
    // restart: made again, and one catch-up for the time it was gone (persisted: a second start hands out the same one)
    await manager().ensure(["salesInvoices"]);
    const [n, ...more] = await manager().catchUp();
    assert.deepEqual(more, []);
    assert.deepEqual(await manager().catchUp(), [n], "the same catch-up until it is marked done");
    assert.equal(n.changeType, "collection");
    assert.equal(n.subscriptionId, [...sim.subs.keys()][0]);
    assert.equal(n.lastModifiedDateTime, new Date(seenAt - 36 * 3600_000).toISOString());
    assert.equal(notificationKey(n), notificationKey((await manager().catchUp())[0]));
    const read: string[] = [];
    for await (const ev of client.changes(n)) read.push(String((ev.payload as { number?: string }).number));
    assert.deepEqual(read.sort(), ["M1", "M2"], "the missed changes of this set, not the older one or another set");
    assert.ok(!read.includes(String(old.number)));
    await manager().caughtUp([n]);
    assert.deepEqual(await manager().catchUp(), []);
  });

  it("a subscription BC deleted between renewals (not_found on renew) is made again and caught up from its last renewal", async () => {
    await manager().ensure(["customers"]);
    sim.advance(2 * 86_400_000 + 60_000); // a day before the 3-day expiry: renewed
    await manager().renewDue();
    const renewedAt = Date.parse(saved?.seenAt?.customers ?? "");
    assert.ok(renewedAt >= sim.now() - 5000, "renewal recorded as seen");
    sim.subs.clear(); // deleted after failed deliveries
    sim.advance(2 * 86_400_000 + 60_000);
    await manager().renewDue();
    assert.equal(sim.subs.size, 1);
    const [n] = await manager().catchUp();
    assert.equal(n.lastModifiedDateTime, new Date(renewedAt - 36 * 3600_000).toISOString());
    assert.match(n.resource, /\/customers\?\$filter=lastModifiedDateTime%20gt%20\d{4}-/);
  });

  it("deliverCatchUp forgets a catch-up only once each of its notifications was journaled (a failed or refused journal keeps it due)", async () => {
    await manager().ensure(["customers"]);
    sim.advance(4 * 86_400_000); // the subscription expires
    await manager().ensure(["customers"]);
    const due = await manager().catchUp();
    assert.equal(due.length, 1);
    await assert.rejects(manager().deliverCatchUp(() => Promise.reject(new Error("journal cannot commit"))), /journal cannot commit/);
    assert.deepEqual(await manager().catchUp(), due, "still due after a journal failure");
    assert.equal(await manager().deliverCatchUp(() => Promise.resolve(false)), 0, "closing: not journaled");
    assert.deepEqual(await manager().catchUp(), due, "still due after a refused journal");
    const journaled: string[] = [];
    assert.equal(await manager().deliverCatchUp((n) => Promise.resolve(journaled.push(notificationKey(n)) > 0)), 1);
    assert.deepEqual(journaled, due.map(notificationKey), "the same notification (same dedupe key) each time");
    assert.deepEqual(await manager().catchUp(), []);
    assert.equal(await manager().deliverCatchUp(() => Promise.reject(new Error("not called"))), 0, "nothing due: nothing journaled");
  });

  it("adopts a subscription created just before a crash (not saved) instead of making a second", async () => {
    const first = await client.subscribe("vendors", rx.url, SECRET);
    await manager().ensure(["vendors"]);
    assert.equal(sim.subs.size, 1);
    assert.equal(Object.values(saved?.subs ?? {})[0].subscriptionId, first.subscriptionId);
  });

  it("removes every subscription when the node is removed", async () => {
    await manager().ensure(["salesInvoices", "customers"]);
    assert.equal(await manager().removeAll(), 2);
    assert.equal(sim.subs.size, 0);
    assert.deepEqual(saved?.subs, {});
    assert.ok(saves > 0);
  });

  it("checks clientState per item: genuine items of a mixed POST kept; a forged POST 401; a malformed one 400; the subscriptions survive", async () => {
    await manager().ensure(["salesInvoices"]);
    const inv = sim.upsert("salesInvoices", { number: "S1" });
    await sim.flush();
    assert.equal(rx.batches[0].answer.status, 202);
    assert.equal(rx.batches[0].genuine.length, 1);
    const item = rx.batches[0].genuine[0];
    assert.match(item.resource, new RegExp(inv.id));
    const forged = readNotifications(JSON.stringify({ value: [{ ...item, clientState: "guess" }] }), SECRET);
    assert.equal(forged.answer.status, 401);
    assert.equal(forged.forged, 1);
    const mixed = readNotifications(JSON.stringify({ value: [item, { ...item, clientState: "guess" }] }), SECRET);
    assert.deepEqual([mixed.answer.status, mixed.genuine.length, mixed.forged], [202, 1, 1]);
    // our clientState on an item we cannot act on (a change type BC adds later): acknowledged, never a 4xx (§8.5)
    const unknown = readNotifications(JSON.stringify({ value: [{ ...item, changeType: "archived" }] }), SECRET);
    assert.deepEqual([unknown.answer.status, unknown.genuine.length, unknown.unusable, unknown.forged], [202, 0, 1, 0]);
    assert.equal(readNotifications(JSON.stringify({ value: [null, { ...item, clientState: "guess", changeType: "archived" }] }), SECRET).answer.status, 401);
    assert.equal(readNotifications("<xml/>", SECRET).answer.status, 400);
    assert.equal(readNotifications("\uFEFF" + JSON.stringify({ value: [item] }), SECRET).genuine.length, 1);
    assert.equal(notificationKey(item), notificationKey({ ...item }));
    assert.equal(sim.subs.size, 1);
  });
});
