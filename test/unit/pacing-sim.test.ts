/**
 * The Twilio simulator's strict rate limits, which the pacing tests and benchmark rely on: a per-sender limit
 * (`senderRatePerSecond`), its interplay with the account limit, and the ledger helpers (`createStarts`,
 * `maxInWindow`). Driven over HTTP with an injected clock, so every instant is exact.
 */
import assert from "node:assert/strict";
import { MAGIC_VALID_SENDER, TwilioSim, maxInWindow } from "../sims/twilio";
import { basic, call, form, useSim } from "../harness/sim-http";
import { TwilioClient } from "../../nodes/lib/twilio/client";
import { messageSegments } from "../../nodes/lib/twilio/segments";
import { SegmentedMessage } from "sms-segments-calculator";

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

describe("TwilioSim senderRatePerSecond counts segments (twilio.md §6.4: a long code delivers about 1 segment/s)", () => {
  let clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  const sim = useSim(new TwilioSim({ senders: [MAGIC_VALID_SENDER, "whatsapp:+14155550199"], senderRatePerSecond: 2, now: () => clock }));
  const ac = sim.defaultAccount.accountSid;
  const auth = basic(ac, sim.defaultAccount.authToken);
  const send = (Body: string, extra: Record<string, string> = {}) =>
    call(`${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`, { auth, body: form({ To: "+447700900123", From: MAGIC_VALID_SENDER, Body, ...extra }) });
  const GSM_300 = "A".repeat(300); // 2 segments of 153
  const UCS_140 = "Ж".repeat(140); // 3 segments of 67

  it("a 2-segment body fills a 2/s sender's second: the next message within it → 429; one second later it goes", async () => {
    assert.equal((await send(GSM_300)).status, 201);
    assert.equal((await send("x")).status, 429, "2 segments already in the window (it admitted 2 messages before)");
    clock += 1000;
    assert.equal((await send("x")).status, 201);
    assert.equal(sim.rejected429, 1);
  });

  it("a body longer than the sender's rate is admitted, and its segments keep the sender busy for as long as Twilio needs to deliver them", async () => {
    assert.equal((await send(UCS_140)).status, 201, "3 segments at 0, 500, 1000 ms");
    clock += 1000;
    assert.equal((await send("x")).status, 429, "t=1000: segments at 500 and 1000 are in the window");
    clock += 499;
    assert.equal((await send("x")).status, 429, "t=1499");
    clock += 1;
    assert.equal((await send("x")).status, 201, "t=1500: only the segment at 1000 is in the window");
  });

  it("media and WhatsApp messages count one per message", async () => {
    assert.equal((await send(GSM_300, { MediaUrl: "https://example.com/a.png" })).status, 201);
    assert.equal((await send("x")).status, 201, "the MMS counted 1");
    clock += 1000;
    const wa = (Body: string) => call(`${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`, { auth, body: form({ To: "whatsapp:+447700900123", From: "whatsapp:+14155550199", Body }) });
    assert.equal((await wa(GSM_300)).status, 201);
    assert.equal((await wa(GSM_300)).status, 201, "WhatsApp is paced per message");
    assert.equal((await wa("x")).status, 429);
  });
});

describe("TwilioClient spends a message's segments from its sender's rate (real client, real timers)", function () {
  this.timeout(60000);
  const sim = useSim(new TwilioSim({ senderRatePerSecond: 10 }));

  it("12 messages of 300 GSM-7 characters at 10 segments/s: all sent, 0 × 429, never more than 10 segments in a second", async () => {
    const client = new TwilioClient({
      credentials: { accountSid: sim.defaultAccount.accountSid, authToken: sim.defaultAccount.authToken },
      apiHost: sim.url,
      pacing: { ratePerSec: 100, maxConcurrent: 5, senderRates: { longCode: 10 } },
    });
    try {
      const body = "A".repeat(300);
      assert.equal(messageSegments(body), 2);
      const sent = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => client.sendMessage({ to: `+1415555${String(1000 + i)}`, from: MAGIC_VALID_SENDER, body })));
      assert.deepEqual(sent.map((o) => o.status), Array(12).fill("fulfilled"));
      assert.equal(sim.rejected429, 0, "no create refused: the budget counted 2 segments per message");
      assert.equal(client.budget.stats.requeued, 0);
      assert.equal(sim.messages.length, 12);
    } finally {
      await client.close();
    }
  });

  it("messageSegments follows Twilio's rules: GSM-7 160/153, UCS-2 70/67, MMS and WhatsApp one", () => {
    assert.equal(messageSegments("A".repeat(160)), 1);
    assert.equal(messageSegments("A".repeat(161)), 2);
    assert.equal(messageSegments("A".repeat(306)), 2);
    assert.equal(messageSegments("A".repeat(307)), 3);
    assert.equal(messageSegments("Ж".repeat(70)), 1);
    assert.equal(messageSegments("Ж".repeat(71)), 2);
    assert.equal(messageSegments("Ж".repeat(135)), 3);
    assert.equal(messageSegments("€".repeat(80)), 1, "extension characters count two septets");
    assert.equal(messageSegments("€".repeat(81)), 2);
    assert.equal(messageSegments("A".repeat(300), { media: true }), 1);
    assert.equal(messageSegments("A".repeat(300), { from: "whatsapp:+14155550100" }), 1);
    assert.equal(messageSegments(""), 1);
    assert.equal(messageSegments(undefined), 1);
  });

  it("messageSegments agrees with Twilio's calculator for every printable ASCII character and for mixed bodies of 1-1600 characters", () => {
    const oracle = (body: string): number => Math.max(1, new SegmentedMessage(body, "auto").segmentsCount);
    // each character alone, at lengths around the one-segment and concatenated limits (an extension or non-GSM-7
    // character taken for a basic one would count too few segments here)
    for (let c = 0x20; c <= 0x7e; c++) {
      for (const n of [70, 71, 80, 81, 153, 160, 161, 306, 307, 1600]) {
        const body = String.fromCharCode(c).repeat(n);
        assert.equal(messageSegments(body), oracle(body), `${JSON.stringify(String.fromCharCode(c))} × ${n}`);
      }
    }
    // seeded mixed bodies: letters, digits, punctuation, with now and then a character outside the basic set
    let seed = 42;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const pool = "Approval needed: bill 0042 from O'Brien & Sons, $1,250.00 (USD) #7 @home _x_ ?!;=<>%*+-/";
    const rare = "[]{}^~|\\`€éЖ\r\n😀";
    for (let i = 0; i < 400; i++) {
      const n = 1 + rnd(1600);
      let body = "";
      for (let j = 0; j < n; j++) body += rnd(50) === 0 ? rare[rnd(rare.length)] : pool[rnd(pool.length)];
      assert.equal(messageSegments(body), oracle(body), `body ${i} (${body.length} characters)`);
    }
  });
});
