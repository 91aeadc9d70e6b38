/**
 * X-Twilio-Signature rules of twilio.md §5 that the worked examples in core.test.ts do not reach: repeated keys
 * (twilio-php's duplicate-value vector), the case-sensitive parameter sort, and the URL forms a receiver must accept
 * or refuse (§5.4).
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { parseForm, validateTwilioWebhook } from "../../nodes/lib/twilio/signature";

const FORM = "application/x-www-form-urlencoded";
const TOKEN = "12345";

/** Twilio's algorithm (§5.1) over a flat parameter object, written out here so the validator is checked against it. */
function sign(url: string, params: Record<string, string>): string {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, k) => acc + k + params[k], url);
  return createHmac("sha1", TOKEN).update(Buffer.from(data, "utf-8")).digest("base64");
}

function check(signature: string, url: string, raw: string): boolean {
  const rawBody = Buffer.from(raw);
  return validateTwilioWebhook({ authToken: TOKEN, signature, url, contentType: FORM, rawBody, params: parseForm(rawBody) });
}

describe("lib/twilio/signature: repeated keys, sort order and URL forms (twilio.md §5)", () => {
  const url = "https://mycompany.com/myapp.php?foo=1&bar=2";

  it("accepts twilio-php's duplicate-value vector (Digits=5678,1234,1234: de-duplicated, sorted)", () => {
    const raw = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234";
    assert.equal(check("IK+Dwps556ElfBT0I3Rgjkr1wJU=", url, raw), true);
    assert.equal(check("IK+Dwps556ElfBT0I3Rgjkr1wJU=", url, "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1235"), false);
  });

  it("sorts names case-sensitively (CallStatus before CallbackSource, FinishedOnKey before msg)", () => {
    const p = { CallbackSource: "call-progress-events", CallStatus: "completed", msg: "Gather End", FinishedOnKey: "" };
    const raw = new URLSearchParams(p).toString();
    assert.equal(check(sign(url, p), url, raw), true);
    const caseless = `${url}CallbackSourcecall-progress-eventsCallStatuscompletedFinishedOnKeymsgGather End`;
    assert.equal(check(createHmac("sha1", TOKEN).update(caseless).digest("base64"), url, raw), false);
  });

  it("accepts the received URL with or without the default port, and a signature without the port at a non-default one", () => {
    const p = { MessageSid: "SM1", MessageStatus: "delivered" };
    const raw = new URLSearchParams(p).toString();
    assert.equal(check(sign("https://h.example/mlc/twilio/status?j=1", p), "https://h.example:443/mlc/twilio/status?j=1", raw), true);
    assert.equal(check(sign("https://h.example:443/mlc/twilio/status?j=1", p), "https://h.example/mlc/twilio/status?j=1", raw), true);
    assert.equal(check(sign("https://h.example/mlc/twilio/status?j=1", p), "https://h.example:8443/mlc/twilio/status?j=1", raw), true);
    assert.equal(check(sign("https://u:p@h.example/mlc/twilio/status", p), "https://u:p@h.example/mlc/twilio/status", raw), true, "Basic credentials are part of the URL");
  });

  it("refuses the reverse cases: a non-default port signed but not received, '+' signed and '%20' received, another query", () => {
    const p = { MessageSid: "SM1", MessageStatus: "delivered" };
    const raw = new URLSearchParams(p).toString();
    assert.equal(check(sign("https://h.example:8443/mlc/twilio/status", p), "https://h.example/mlc/twilio/status", raw), false);
    assert.equal(check(sign("https://h.example/s?x=a+b", p), "https://h.example/s?x=a%20b", raw), false);
    assert.equal(check(sign("https://h.example/s?j=1", p), "https://h.example/s?j=2", raw), false);
  });
});
