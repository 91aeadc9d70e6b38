import assert from "node:assert/strict";
import { isTimeZone, nextSendTime, offsetMinutes, parseDays, timeZoneForNumber } from "../../nodes/lib/quiet-hours";
import { classifyKeyword, OptOutList } from "../../nodes/lib/twilio/optout";
import { MapBackend } from "../../nodes/lib/store";
import { RateBudget, senderType } from "../../nodes/lib/twilio/pacing";

describe("quiet hours", () => {
  const hours = { start: "08:00", end: "20:00", days: [1, 2, 3, 4, 5] };

  it("parses weekday lists and ranges", () => {
    assert.deepEqual(parseDays("1-5"), [1, 2, 3, 4, 5]);
    assert.deepEqual(parseDays("mon-fri"), [1, 2, 3, 4, 5]);
    assert.deepEqual(parseDays("sat,sun"), [6, 7]);
    assert.deepEqual(parseDays("5-1"), [1, 5, 6, 7]);
    assert.throws(() => parseDays("8"), /not a weekday/);
  });

  it("knows zone offsets including DST", () => {
    assert.equal(offsetMinutes(new Date("2025-01-15T12:00:00Z"), "America/New_York"), -300);
    assert.equal(offsetMinutes(new Date("2025-07-15T12:00:00Z"), "America/New_York"), -240);
    assert.equal(offsetMinutes(new Date("2025-07-15T12:00:00Z"), "Asia/Kolkata"), 330);
    assert.equal(isTimeZone("Europe/London"), true);
    assert.equal(isTimeZone("Mars/Olympus"), false);
  });

  it("sends at once inside business hours", () => {
    const now = new Date("2025-03-12T15:00:00Z"); // Wed 10:00 in New York (EDT from 9 March)
    assert.equal(nextSendTime(now, "America/New_York", hours).toISOString(), now.toISOString());
  });

  it("waits for the next window: late evening → next morning; Friday night → Monday 08:00 local", () => {
    assert.equal(nextSendTime(new Date("2025-03-13T01:30:00Z"), "America/New_York", hours).toISOString(), "2025-03-13T12:00:00.000Z");
    assert.equal(nextSendTime(new Date("2025-03-15T02:00:00Z"), "America/New_York", hours).toISOString(), "2025-03-17T12:00:00.000Z");
    assert.equal(nextSendTime(new Date("2025-03-12T06:00:00Z"), "Europe/London", hours).toISOString(), "2025-03-12T08:00:00.000Z");
  });

  it("handles the DST change: the window opens at 08:00 local on both sides", () => {
    // New York springs forward on Sunday 2025-03-09; Friday 7 March 21:00 local → Monday 10 March 08:00 EDT = 12:00Z
    assert.equal(nextSendTime(new Date("2025-03-08T02:00:00Z"), "America/New_York", hours).toISOString(), "2025-03-10T12:00:00.000Z");
  });

  it("finds a zone from the number only when the country has one offset", () => {
    assert.equal(timeZoneForNumber("+447911123456"), "Europe/London");
    assert.equal(timeZoneForNumber("whatsapp:+33612345678"), "Europe/Paris");
    assert.equal(timeZoneForNumber("+14155550132"), undefined);
  });

  it("rejects an unknown zone and malformed hours", () => {
    assert.throws(() => nextSendTime(new Date(), "Nowhere/City", hours), /IANA/);
    assert.throws(() => nextSendTime(new Date(), "UTC", { ...hours, start: "25:00" }), /time of day/);
  });
});

describe("opt-out keywords and list", () => {
  it("classifies Twilio's default single-word keywords, case-insensitively", () => {
    assert.equal(classifyKeyword("stop"), "stop");
    assert.equal(classifyKeyword(" Unsubscribe! "), "stop");
    assert.equal(classifyKeyword("START"), "start");
    assert.equal(classifyKeyword("help"), "help");
    assert.equal(classifyKeyword("please stop texting me"), undefined);
    assert.equal(classifyKeyword("arrête", "STOP"), "stop", "Advanced Opt-Out's OptOutType wins");
  });

  it("keeps opt-outs per account with hashed keys", async () => {
    const backend = new MapBackend();
    const a = new OptOutList(backend, "AC1");
    const b = new OptOutList(backend, "AC2");
    await a.optOut("+14155550132", "keyword");
    assert.equal(await a.isOptedOut("+14155550132"), true);
    assert.equal(await a.isOptedOut("whatsapp:+14155550132"), true, "same person on WhatsApp");
    assert.equal(await b.isOptedOut("+14155550132"), false);
    assert.ok([...backend.map.keys()].every((k) => !k.includes("4155550132")), "no number in a key");
    assert.equal(await a.optIn("+14155550132"), true);
    assert.equal(await a.isOptedOut("+14155550132"), false);
  });
});

describe("pacing budget", () => {
  it("classifies senders", () => {
    assert.equal(senderType("MG" + "a".repeat(32)), "messagingService");
    assert.equal(senderType("whatsapp:+14155550132"), "whatsapp");
    assert.equal(senderType("12345"), "shortCode");
    assert.equal(senderType("+18005550100"), "tollFree");
    assert.equal(senderType("+14155550132"), "longCode");
  });

  it("never runs more than maxConcurrent at once and keeps FIFO order", async () => {
    const budget = new RateBudget({ ratePerSec: 0, maxConcurrent: 3 });
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        budget.create(undefined, async () => {
          running++;
          peak = Math.max(peak, running);
          order.push(i);
          await new Promise((r) => setTimeout(r, 5));
          running--;
        }),
      ),
    );
    assert.equal(peak, 3);
    assert.deepEqual(order, [...order].sort((a, b) => a - b));
  });
});
