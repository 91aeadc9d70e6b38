/**
 * Unit tests for nodes/lib/twilio/speech.ts (amounts, dates and references read naturally by a voice, and the
 * Mustache helpers) and for the TwiML that nodes/lib/twilio/calls.ts builds with twilio's VoiceResponse.
 */
import assert from "node:assert/strict";
import { renderTemplate } from "../../nodes/lib/template";
import { currencyName, safeLocale, speakAmount, speakDate, speechView, spellReference } from "../../nodes/lib/twilio/speech";
import { goodbyeTwiml, isMachine, retryTwiml, speechTwiml, thanksTwiml } from "../../nodes/lib/twilio/calls";

describe("lib/twilio/speech", () => {
  describe("speakAmount", () => {
    it("reads dollars and cents in English", () => {
      assert.equal(speakAmount(1250.5, "USD", "en-US"), "1,250 dollars and 50 cents");
      assert.equal(speakAmount(1, "USD", "en-US"), "1 dollar");
      assert.equal(speakAmount(0.01, "USD", "en-US"), "0 dollars and 1 cent");
      assert.equal(speakAmount(12, "usd", "en-US"), "12 dollars");
      assert.equal(speakAmount(1000000.999, "USD", "en-US"), "1,000,001 dollars");
    });

    it("takes numeric text as ERPs deliver it", () => {
      assert.equal(speakAmount("1250.50", "USD", "en-US"), "1,250 dollars and 50 cents");
      assert.equal(speakAmount("1,250.50", "USD", "en-US"), "1,250 dollars and 50 cents");
      assert.equal(speakAmount(" 99.9 ", "EUR", "en-US"), "99 euros and 90 cents");
    });

    it("uses the currency's own minor unit names and digits", () => {
      assert.equal(speakAmount(2.01, "GBP", "en-GB"), "2 pounds and 1 penny");
      assert.equal(speakAmount(3.5, "GBP", "en-GB"), "3 pounds and 50 pence");
      assert.equal(speakAmount(1250.5, "JPY", "en-US"), "1,251 yen", "yen has no minor unit: rounded");
      assert.equal(speakAmount(-5, "EUR", "en-US"), "minus 5 euros");
    });

    it("falls back to Intl's long form for other locales and currencies", () => {
      assert.equal(speakAmount(1250.5, "EUR", "de-DE"), "1.250,50 Euro");
      assert.equal(speakAmount(1250.5, "SEK", "en-US"), "1,250.50 Swedish kronor");
    });

    it("falls back to '<amount> <code>' when the code is not a currency, and to the text when the amount is not a number", () => {
      assert.equal(speakAmount(1250.5, "US$", "en-US"), "1,250.5 US$");
      assert.equal(speakAmount(1250.5, undefined, "en-US"), "1,250.5");
      assert.equal(speakAmount("n/a", "USD", "en-US"), "n/a USD");
      assert.equal(speakAmount(12, "USD", "not a locale!"), "12 dollars", "invalid locale → en-US");
    });

    it("names currencies with Intl.DisplayNames", () => {
      assert.equal(currencyName("USD", "en-US"), "US Dollar");
      assert.equal(currencyName("EUR", "de-DE"), "Euro");
      assert.equal(currencyName("$$", "en-US"), "$$");
      assert.equal(safeLocale("EN-us"), "en-US");
    });
  });

  describe("speakDate", () => {
    it("reads a date-only value in full, in UTC (no day shift)", () => {
      assert.equal(speakDate("2025-04-09", "en-US"), "Wednesday, April 9, 2025");
      assert.equal(speakDate("2025-04-09", "en-US", "Pacific/Honolulu"), "Wednesday, April 9, 2025", "zone ignored for calendar dates");
      assert.equal(speakDate("2025-04-09T00:00:00", "en-US"), "Wednesday, April 9, 2025", "ERP midnight without offset");
      assert.equal(speakDate("2025-04-09", "en-GB"), "Wednesday, 9 April 2025");
      assert.equal(speakDate("2025-04-09", "de-DE"), "Mittwoch, 9. April 2025");
    });

    it("formats timestamps in the given zone", () => {
      assert.equal(speakDate("2025-04-09T02:30:00Z", "en-US"), "Wednesday, April 9, 2025");
      assert.equal(speakDate("2025-04-09T02:30:00Z", "en-US", "America/New_York"), "Tuesday, April 8, 2025");
      assert.equal(speakDate(Date.UTC(2025, 0, 1, 12), "en-US"), "Wednesday, January 1, 2025");
      assert.equal(speakDate(new Date(Date.UTC(2024, 1, 29)), "en-US"), "Thursday, February 29, 2024");
    });

    it("returns anything else unchanged", () => {
      assert.equal(speakDate("next Tuesday", "en-US"), "next Tuesday");
      assert.equal(speakDate("2025-02-30", "en-US"), "2025-02-30");
      assert.equal(speakDate(undefined, "en-US"), "");
    });
  });

  describe("spellReference", () => {
    it("reads references character by character, groups separated by a pause", () => {
      assert.equal(spellReference("INV-1042"), "I N V, 1 0 4 2");
      assert.equal(spellReference("INV1042"), "I N V, 1 0 4 2");
      assert.equal(spellReference("po 77/b"), "P O, 7 7, B");
      assert.equal(spellReference(1042), "1 0 4 2");
      assert.equal(spellReference("--"), "");
      assert.equal(spellReference(null), "");
    });
  });

  describe("speechView (Mustache helpers)", () => {
    const msg = { payload: { Amount: 1250.5, CurrencyID: "USD", DueDate: "2025-04-09", ReferenceNbr: "INV-1042", Vendor: "Acme & Sons" } };

    it("renders amount, date and spell sections", () => {
      const text = renderTemplate(
        "Bill {{#spell}}{{payload.ReferenceNbr}}{{/spell}} from {{payload.Vendor}} for {{#amount}}{{payload.Amount}} {{payload.CurrencyID}}{{/amount}} is due {{#date}}{{payload.DueDate}}{{/date}}.",
        speechView(msg, "en-US"),
      );
      assert.equal(text, "Bill I N V, 1 0 4 2 from Acme & Sons for 1,250 dollars and 50 cents is due Wednesday, April 9, 2025.");
    });

    it("accepts the code first, no code, and literal text inside sections", () => {
      const view = speechView(msg, "en-US");
      assert.equal(renderTemplate("{{#amount}}{{payload.CurrencyID}} {{payload.Amount}}{{/amount}}", view), "1,250 dollars and 50 cents");
      assert.equal(renderTemplate("{{#amount}}{{payload.Amount}}{{/amount}}", view), "1,250.5");
      assert.equal(renderTemplate("{{#amount}}7.25 EUR{{/amount}}", view), "7 euros and 25 cents");
      assert.equal(renderTemplate("{{#spell}}A-{{payload.Amount}}{{/spell}}", view), "A, 1 2 5 0, 5");
    });

    it("leaves the msg untouched and follows the voice's language", () => {
      const view = speechView(msg, "de-DE");
      assert.equal(renderTemplate("{{#date}}{{payload.DueDate}}{{/date}}", view), "Mittwoch, 9. April 2025");
      assert.deepEqual(Object.keys(msg), ["payload"]);
    });
  });
});

describe("lib/twilio/calls TwiML", () => {
  const voice = { voice: "Polly.Joanna", language: "en-US" };

  it("speaks the message with voice and language, twice with a pause when repeat is on", () => {
    assert.equal(
      speechTwiml({ ...voice, message: "Hello", repeat: true }),
      '<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="Polly.Joanna" language="en-US">Hello</Say><Pause length="1"/><Say voice="Polly.Joanna" language="en-US">Hello</Say></Response>',
    );
    assert.equal(speechTwiml({ message: "Hi" }), '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Hi</Say></Response>');
  });

  it("escapes ERP text (no markup can be injected)", () => {
    const xml = speechTwiml({ ...voice, message: 'Acme & <Sons> "Ltd"</Say><Hangup/>' });
    assert.ok(xml.includes("Acme &amp; &lt;Sons&gt;"), xml);
    assert.ok(!xml.includes("<Hangup/>"), xml);
  });

  it("wraps message and confirm prompt in a Gather with an absolute action and actionOnEmptyResult", () => {
    const xml = speechTwiml({ ...voice, message: "Invoice due", gather: { action: "https://nr.example.test/mlc/twilio/call/gather?c=c1&x=2", timeoutSec: 8, digit: "1" } });
    assert.equal(
      xml,
      '<?xml version="1.0" encoding="UTF-8"?><Response>' +
        '<Gather input="dtmf" numDigits="1" timeout="8" finishOnKey="" action="https://nr.example.test/mlc/twilio/call/gather?c=c1&amp;x=2" method="POST" actionOnEmptyResult="true">' +
        '<Say voice="Polly.Joanna" language="en-US">Invoice due</Say><Say voice="Polly.Joanna" language="en-US">Press 1 to confirm.</Say></Gather>' +
        '<Say voice="Polly.Joanna" language="en-US">No input received. Goodbye.</Say></Response>',
    );
  });

  it("answers the Gather action with thanks, a retry prompt or goodbye", () => {
    assert.match(thanksTwiml(voice), /<Response><Say voice="Polly.Joanna" language="en-US">Thank you\. .*<\/Say><\/Response>$/);
    const retry = retryTwiml(voice, { action: "https://h/g?c=1", timeoutSec: 5, digit: "*", prompts: { retry: "Wrong key." } });
    assert.match(retry, /<Gather [^>]*action="https:\/\/h\/g\?c=1"[^>]*><Say [^>]*>Wrong key\. Press star to confirm\.<\/Say><\/Gather>/);
    assert.match(goodbyeTwiml(voice), /<Say [^>]*>No input received\. Goodbye\.<\/Say><Hangup\/><\/Response>$/);
  });

  it("tells machines from people", () => {
    for (const m of ["machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"]) assert.equal(isMachine(m), true, m);
    for (const h of ["human", "unknown", "", null, undefined]) assert.equal(isMachine(h), false, String(h));
  });
});
