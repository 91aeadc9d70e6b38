/**
 * The Twilio simulator's strict rate limits, which the pacing tests and benchmark rely on: a per-sender limit
 * (`senderRatePerSecond`), its interplay with the account limit, and the ledger helpers (`createStarts`,
 * `maxInWindow`). Driven over HTTP with an injected clock, so every instant is exact.
 */
import assert from "node:assert/strict";
import { MAGIC_VALID_SENDER, TwilioSim, maxInWindow } from "../sims/twilio";
import { basic, call, form, useSim } from "../harness/sim-http";

describe("TwilioSim senderRatePerSecond", () => {
  let clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  const other = "+14155550100";
  const sim = useSim(new TwilioSim({ senders: [MAGIC_VALID_SENDER, other], senderRatePerSecond: 2, now: () => clock }));
  const ac = sim.defaultAccount.accountSid;
  const auth = basic(ac, sim.defaultAccount.authToken);
  const msg = (from: string) => call(`${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`, { auth, body: form({ To: "+447700900123", From: from, Body: "x" }) });

  it("the (N+1)th create of one sender within a sliding second → 429 / 20429, nothing created; another sender is not affected", async () => {
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 201);
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 201);
    const refused = await msg(MAGIC_VALID_SENDER);
    assert.equal(refused.status, 429);
    assert.equal(refused.json.code, 20429);
    assert.equal(refused.headers.get("retry-after"), null);
    assert.equal((await msg(other)).status, 201, "another sender has its own window");
    assert.equal(sim.messages.length, 3);
    assert.equal(sim.rejected429, 1);
  });

  it("the window slides on the arrival instant, and refused creates do not count", async () => {
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 201); // t=0
    clock += 500;
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 201); // t=500
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 429); // t=500, refused: not counted
    clock += 500;
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 201, "t=1000: the t=0 create has left the window");
    clock += 499;
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 429, "t=1499: 500 and 1000 are in the window");
    clock += 1;
    assert.equal((await msg(MAGIC_VALID_SENDER)).status, 201, "t=1500");
    assert.deepEqual(
      sim.createStarts({ admittedOnly: true }).map((t) => t - sim.createStarts()[0]),
      [0, 500, 1000, 1500],
    );
    assert.equal(sim.createStarts().length, 6, "every create request, refused ones included");
    assert.equal(maxInWindow(sim.createStarts({ admittedOnly: true })), 2);
    assert.equal(sim.createStarts({ from: other }).length, 0);
  });
});

describe("TwilioSim per-sender and account limits together", () => {
  const clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  const senders = ["+14155550101", "+14155550102"];
  const sim = useSim(new TwilioSim({ senders, senderRatePerSecond: { "+14155550101": 1 }, ratePerSecond: 2, now: () => clock }));
  const ac = sim.defaultAccount.accountSid;
  const auth = basic(ac, sim.defaultAccount.authToken);
  const msg = (from: string) => call(`${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`, { auth, body: form({ To: "+447700900123", From: from, Body: "x" }) });

  it("a record limits only the senders it names; a create refused by one limit is counted by neither", async () => {
    assert.equal((await msg(senders[0])).status, 201);
    assert.equal((await msg(senders[0])).status, 429, "sender limit 1/s");
    assert.equal((await msg(senders[1])).status, 201, "no sender limit, account 2/s: the refused create did not use the account budget");
    assert.equal((await msg(senders[1])).status, 429, "account limit 2/s");
    assert.equal(sim.messages.length, 2);
  });
});

describe("maxInWindow", () => {
  it("counts the busiest half-open window [t, t + w)", () => {
    assert.equal(maxInWindow([]), 0);
    assert.equal(maxInWindow([0, 999.9, 1000]), 2);
    assert.equal(maxInWindow([5, 0, 1000, 1004, 1999]), 3);
    assert.equal(maxInWindow([0, 10, 20, 30], 15), 2);
  });
});
