/**
 * Proves the TwilioSim extensions behave like Twilio as described in /work/shared/reference/twilio.md §4, §6, §7 and the
 * OpenAPI documents (CreateCall, Verify v2): Calls (create/fetch/list, validation codes, signed call-progress callbacks,
 * TwiML fetch and <Gather> action requests), Verify v2 (send/re-send limits, check, TTL, 404 after approval/expiry),
 * signed incoming-message webhooks with opt-out keywords, the create-rate limit, scheduled / WhatsApp / Content
 * messages and the DateSent list filters. Every webhook is received over real HTTP and validated with
 * `twilio.validateRequest`; the official twilio-node client is pointed at the simulator for calls and Verify.
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import {
  TwilioSim,
  DEFAULT_MESSAGING_SERVICE_SID,
  DEFAULT_VERIFY_SERVICE_SID,
  VERIFY_TTL_MS,
  type CallbackResult,
  type SimCall,
} from "../sims/twilio";
import { RFC2822, basic, call, form, simTwilio, useReceiver, useSim } from "../harness/sim-http";

// ---------------------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------------------

/** Validates a webhook the simulator sent with the official validator (POST: URL + params; GET: the URL alone). */
function assertSigned(token: string, r: CallbackResult): void {
  assert.ok(r.signature.length === 28, "28-char signature");
  const params = r.method === "GET" ? {} : r.params;
  assert.equal(twilio.validateRequest(token, r.signature, r.signedUrl, params), true, `${r.kind} signature validates`);
  assert.equal(twilio.validateRequest(token, r.signature, r.signedUrl, { ...params, Extra: "x" }), false, "any change breaks it");
}

const ISO8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

// ---------------------------------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim Calls", () => {
  const sim = useSim(new TwilioSim());
  const rx = useReceiver();
  const ac = sim.defaultAccount.accountSid;
  const token = sim.defaultAccount.authToken;
  const auth = basic(ac, token);
  let callsUrl: string;

  before(() => {
    callsUrl = `${sim.url}/2010-04-01/Accounts/${ac}/Calls.json`;
  });

  async function createCall(extra: Record<string, string | string[]> = {}): Promise<SimCall> {
    const r = await call(callsUrl, { auth, body: form({ To: "+447700900123", From: "+15005550006", ...extra }) });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    return sim.getCall(r.json.sid as string) as SimCall;
  }

  it("creates a call (201) in the Call resource shape: CA sid, queued, outbound-api, string/null fields; fetch and list", async () => {
    const r = await call(callsUrl, {
      auth,
      body: form({ To: "+14158675309", From: "+15005550006", Twiml: "<Response><Say>Hi</Say></Response>", StatusCallback: rx.base + "/cb" }),
    });
    assert.equal(r.status, 201);
    const c = r.json;
    assert.match(c.sid, /^CA[0-9a-f]{32}$/);
    assert.equal(c.account_sid, ac);
    assert.equal(c.status, "queued");
    assert.equal(c.direction, "outbound-api");
    assert.equal(c.to, "+14158675309");
    assert.equal(c.to_formatted, "(415) 867-5309");
    assert.equal(c.from, "+15005550006");
    assert.equal(c.duration, null);
    assert.equal(c.answered_by, null);
    assert.equal(c.start_time, null);
    assert.equal(c.price, null);
    assert.equal(c.api_version, "2010-04-01");
    assert.equal(c.queue_time, "0");
    assert.match(c.date_created, RFC2822);
    assert.equal(c.uri, `/2010-04-01/Accounts/${ac}/Calls/${c.sid}.json`);
    assert.equal(c.subresource_uris.recordings, `/2010-04-01/Accounts/${ac}/Calls/${c.sid}/Recordings.json`);
    assert.equal(sim.requests.at(-1)!.callSid, c.sid);
    assert.equal(sim.calls.length, 1);
    assert.equal(sim.calls[0].twiml, "<Response><Say>Hi</Say></Response>");

    const f = await call(`${callsUrl.replace(".json", "")}/${c.sid}.json`, { auth });
    assert.equal(f.status, 200);
    assert.equal(f.json.sid, c.sid);
    const missing = await call(`${callsUrl.replace(".json", "")}/CA${"0".repeat(32)}.json`, { auth });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 20404);
    await createCall({ To: "+15558675310", Url: "https://x.test/twiml" });
    const list = await call(`${callsUrl}?To=${encodeURIComponent("+14158675309")}&PageSize=5`, { auth });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.calls.map((x: { sid: string }) => x.sid), [c.sid]);
    assert.equal(list.json.page_size, 5);
  });

  it("Url wins over Twiml when both are given; Timeout is capped at 600", async () => {
    const c = await createCall({ Url: "https://x.test/twiml", Twiml: "<Response/>", Timeout: "900" });
    assert.equal(c.url, "https://x.test/twiml");
    assert.equal(c.twiml, null);
    assert.equal(c.timeout, 600);
  });

  const cases: [string, Record<string, string | string[]>, number][] = [
    ["missing To", { To: "" }, 21201],
    ["missing From", { From: "" }, 21213],
    ["invalid To", { To: "0044 7700" }, 21211],
    ["magic invalid To", { To: "+15005550001" }, 21211],
    ["invalid From", { From: "12345" }, 21212],
    ["From not owned/verified", { From: "+14155550100" }, 21210],
    ["no Url, Twiml or ApplicationSid", { Url: "" }, 21205],
    ["relative Url", { Url: "/twiml" }, 21205],
    ["Twiml over 4000 characters", { Url: "", Twiml: "<Response><Say>" + "a".repeat(4000) + "</Say></Response>" }, 32018],
    ["malformed ApplicationSid", { Url: "", ApplicationSid: "AP123" }, 21218],
    ["Method PUT", { Method: "PUT" }, 21209],
    ["StatusCallbackMethod DELETE", { StatusCallbackMethod: "DELETE" }, 21209],
    ["StatusCallback with underscore host", { StatusCallback: "https://my_host.test/cb" }, 21609],
    ["unknown StatusCallbackEvent", { StatusCallbackEvent: ["initiated", "bridged"] }, 21626],
    ["Timeout not an integer", { Timeout: "ten" }, 21208],
    ["Timeout zero", { Timeout: "0" }, 21208],
    ["MachineDetection value", { MachineDetection: "Maybe" }, 21234],
    ["geo permission (magic +15005550003)", { To: "+15005550003" }, 21215],
  ];
  for (const [name, extra, code] of cases) {
    it(`validation: ${name} → 400 / ${code}, nothing created`, async () => {
      const r = await call(callsUrl, { auth, body: form({ To: "+447700900123", From: "+15005550006", Url: "https://x.test/twiml", ...extra }) });
      assert.equal(r.status, 400);
      assert.equal(r.json.code, code);
      assert.equal(r.json.status, 400);
      assert.equal(r.json.more_info, `https://www.twilio.com/docs/errors/${code}`);
      assert.equal(sim.calls.length, 0);
    });
  }

  it("401 / 20003 without credentials; nothing created", async () => {
    const r = await call(callsUrl, { body: form({ To: "+447700900123", From: "+15005550006", Url: "https://x.test/t" }) });
    assert.equal(r.status, 401);
    assert.equal(r.json.code, 20003);
    assert.equal(sim.calls.length, 0);
  });

  it("progressCall completed: one signed callback per subscribed event with Twilio's call-progress fields", async () => {
    const cbUrl = rx.base + "/mlc/twilio/call-status?node=n1&job=J1";
    const c = await createCall({
      Url: "https://x.test/twiml",
      StatusCallback: cbUrl,
      StatusCallbackEvent: ["initiated", "ringing", "answered", "completed"],
      MachineDetection: "Enable",
    });
    assert.deepEqual(c.statusCallbackEvents, ["initiated", "ringing", "answered", "completed"], "repeated keys read as a list");
    const results = await sim.progressCall(c.sid, "completed", { durationSec: 75, answeredBy: "machine_end_beep" });
    assert.equal(results.length, 4);
    assert.equal(rx.received.length, 4);
    assert.deepEqual(rx.received.map((r) => r.params.CallStatus), ["initiated", "ringing", "in-progress", "completed"]);
    assert.deepEqual(rx.received.map((r) => r.params.SequenceNumber), ["0", "1", "2", "3"]);
    for (const [i, r] of results.entries()) {
      assertSigned(token, r);
      assert.equal(r.kind, "call-status");
      assert.equal(r.method, "POST");
      assert.equal(r.url, cbUrl);
      const got = rx.received[i];
      assert.equal(got.url, "/mlc/twilio/call-status?node=n1&job=J1");
      assert.equal(got.headers["x-twilio-signature"], r.signature);
      assert.equal(got.params.CallSid, c.sid);
      assert.equal(got.params.AccountSid, ac);
      assert.equal(got.params.CallbackSource, "call-progress-events");
      assert.equal(got.params.Direction, "outbound-api");
      assert.equal(got.params.ApiVersion, "2010-04-01");
      assert.equal(got.params.To, "+447700900123");
      assert.equal(got.params.Called, "+447700900123");
      assert.equal(got.params.From, "+15005550006");
      assert.equal(got.params.Caller, "+15005550006");
      assert.match(got.params.Timestamp, RFC2822);
    }
    assert.equal(rx.received[0].params.AnsweredBy, undefined, "no AnsweredBy before the answer");
    assert.equal(rx.received[2].params.AnsweredBy, "machine_end_beep");
    const done = rx.received[3].params;
    assert.equal(done.CallDuration, "75");
    assert.equal(done.Duration, "2", "minutes rounded up");
    assert.equal(done.AnsweredBy, "machine_end_beep");
    assert.equal(done.SipResponseCode, "200");
    assert.equal(rx.received[0].params.CallDuration, undefined, "CallDuration only on completed");

    assert.equal(c.status, "completed");
    assert.deepEqual(c.history, ["queued", "initiated", "ringing", "in-progress", "completed"]);
    const f = await call(`${callsUrl.replace(".json", "")}/${c.sid}.json`, { auth });
    assert.equal(f.json.status, "completed");
    assert.equal(f.json.duration, "75");
    assert.equal(f.json.answered_by, "machine_end_beep");
    assert.match(f.json.start_time, RFC2822);
    assert.match(f.json.end_time, RFC2822);
    assert.equal(f.json.price, "-0.02800");
    await assert.rejects(sim.progressCall(c.sid, "completed"), /already ended/);
    await assert.rejects(sim.progressCall("CA" + "0".repeat(32), "completed"), /unknown call/);
  });

  it("without StatusCallbackEvent only `completed` is sent; busy ends with CallDuration 0 and no AnsweredBy", async () => {
    const c = await createCall({ Url: "https://x.test/twiml", StatusCallback: rx.base + "/cb", MachineDetection: "Enable" });
    const results = await sim.progressCall(c.sid, "busy");
    assert.equal(results.length, 1);
    assertSigned(token, results[0]);
    const p = rx.received[0].params;
    assert.equal(p.CallStatus, "busy");
    assert.equal(p.SequenceNumber, "0");
    assert.equal(p.CallDuration, "0");
    assert.equal(p.SipResponseCode, "486");
    assert.equal(p.AnsweredBy, undefined);
    assert.equal(c.status, "busy");
    assert.deepEqual(c.history, ["queued", "initiated", "busy"]);
    assert.equal(c.durationSec, 0);
    assert.equal(c.price, null);
  });

  it("no-answer with a subset of events, and no callbacks at all without a StatusCallback", async () => {
    const c = await createCall({ Url: "https://x.test/twiml", StatusCallback: rx.base + "/cb", StatusCallbackEvent: ["ringing", "completed"] });
    const results = await sim.progressCall(c.sid, "no-answer");
    assert.deepEqual(results.map((r) => r.params.CallStatus), ["ringing", "no-answer"]);
    assert.deepEqual(results.map((r) => r.params.SequenceNumber), ["0", "1"]);
    const silent = await createCall({ Url: "https://x.test/twiml" });
    assert.deepEqual(await sim.progressCall(silent.sid, "failed"), []);
    assert.equal(silent.status, "failed");
  });

  it("StatusCallbackMethod=GET sends the parameters in the query, signed over the full URL", async () => {
    const c = await createCall({ Url: "https://x.test/twiml", StatusCallback: rx.base + "/cb?node=n1", StatusCallbackMethod: "GET" });
    const [r] = await sim.progressCall(c.sid, "completed");
    assert.equal(r.method, "GET");
    assert.equal(rx.received[0].method, "GET");
    assert.ok(rx.received[0].url.startsWith("/cb?node=n1&"), rx.received[0].url);
    const q = new URLSearchParams(rx.received[0].url.split("?")[1]);
    assert.equal(q.get("CallStatus"), "completed");
    assert.equal(twilio.validateRequest(token, r.signature, rx.base + rx.received[0].url, {}), true);
  });

  it("answerCall fetches the Url with a signed POST, plays <Say>, posts the signed Gather action with Digits", async () => {
    rx.routes.set(
      "/twiml",
      {
        body: `<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Gather input="dtmf" numDigits="1" timeout="8" action="${rx.base}/mlc/twilio/ack?event=A17&amp;node=n1" method="POST">
    <Say>Invoice I N V 1042 for R&amp;D is overdue. Press 1 to acknowledge.</Say>
  </Gather>
  <Say>No input received. Goodbye.</Say>
</Response>`,
      },
    );
    rx.routes.set("/mlc/twilio/ack", { body: "<Response><Say>Thank you.</Say><Hangup/></Response>" });
    const c = await createCall({
      Url: rx.base + "/twiml?job=J1",
      StatusCallback: rx.base + "/cb",
      StatusCallbackEvent: ["answered", "completed"],
    });
    const res = await sim.answerCall(c.sid, { digits: "1" });
    assert.equal(res.error, undefined);
    // answered callback first, then the TwiML fetch, then the action
    assert.deepEqual(rx.received.map((r) => r.url.split("?")[0]), ["/cb", "/twiml", "/mlc/twilio/ack"]);
    assert.equal(rx.received[0].params.CallStatus, "in-progress");
    assert.ok(res.twimlFetch);
    assert.equal(res.twimlFetch.kind, "twiml");
    assert.equal(res.twimlFetch.method, "POST");
    assertSigned(token, res.twimlFetch);
    assert.equal(rx.received[1].params.CallStatus, "in-progress");
    assert.equal(rx.received[1].params.CallSid, c.sid);
    assert.equal(rx.received[1].params.Direction, "outbound-api");

    assert.ok(res.gather);
    assert.equal(res.gather.numDigits, 1);
    assert.equal(res.gather.timeout, 8);
    assert.equal(res.gather.action, `${rx.base}/mlc/twilio/ack?event=A17&node=n1`, "attribute entities decoded");
    assert.ok(res.action);
    assert.equal(res.action.kind, "gather-action");
    assert.equal(res.action.url, `${rx.base}/mlc/twilio/ack?event=A17&node=n1`);
    assertSigned(token, res.action);
    assert.equal(res.status, 200);
    const posted = rx.received[2].params;
    assert.deepEqual(posted, res.posted);
    assert.equal(posted.Digits, "1");
    assert.equal(posted.FinishedOnKey, "");
    assert.equal(posted.msg, "Gather End");
    assert.equal(posted.CallStatus, "in-progress");
    assert.equal(posted.CallSid, c.sid);
    assert.equal(rx.received[2].headers["x-twilio-signature"], res.action.signature);

    assert.deepEqual(res.said, ["Invoice I N V 1042 for R&D is overdue. Press 1 to acknowledge.", "Thank you."]);
    assert.equal(c.spokenText, "Invoice I N V 1042 for R&D is overdue. Press 1 to acknowledge. Thank you.");
    assert.equal(c.digits, "1");
    assert.equal(c.status, "in-progress");
    assert.equal(c.documents.length, 2);

    const end = await sim.progressCall(c.sid, "completed", { durationSec: 20 });
    assert.deepEqual(end.map((r) => r.params.CallStatus), ["completed"], "only the events not reached yet");
    assert.equal(end[0].params.SequenceNumber, "1");
    assert.equal(end[0].params.CallDuration, "20");
    await assert.rejects(sim.answerCall(c.sid, { digits: "1" }), /already ended/);
  });

  it("answerCall with inline Twiml and no input: no action request, execution falls through to the next <Say>", async () => {
    const twiml = `<Response><Gather numDigits="1" action="${rx.base}/ack"><Say>Press 1.</Say></Gather><Say>No input received. Goodbye.</Say></Response>`;
    const c = await createCall({ Twiml: twiml });
    const res = await sim.answerCall(c.sid, { noInput: true });
    assert.equal(res.error, undefined);
    assert.equal(res.twimlFetch, null);
    assert.equal(res.twiml, twiml);
    assert.equal(res.action, null);
    assert.equal(res.status, 0);
    assert.deepEqual(res.posted, {});
    assert.equal(rx.received.length, 0);
    assert.deepEqual(c.said, ["Press 1.", "No input received. Goodbye."]);
    assert.equal(c.digits, null);
  });

  it("actionOnEmptyResult=true posts the action without Digits on no input", async () => {
    const c = await createCall({ Twiml: `<Response><Gather actionOnEmptyResult="true" action="${rx.base}/ack"><Say>Press 1.</Say></Gather></Response>` });
    const res = await sim.answerCall(c.sid, { noInput: true });
    assert.ok(res.action);
    assertSigned(token, res.action);
    assert.equal(rx.received[0].params.Digits, undefined);
    assert.equal(rx.received[0].params.msg, "Gather End");
    assert.equal(rx.received[0].params.FinishedOnKey, "");
  });

  it("finishOnKey ends the input (FinishedOnKey='#'), numDigits cuts it, relative actions resolve against the Url, GET actions sign the query", async () => {
    rx.routes.set("/voice/twiml", { body: `<Response><Gather action="ack?x=1" method="GET"><Say>Enter the code.</Say></Gather></Response>` });
    const c = await createCall({ Url: rx.base + "/voice/twiml" });
    const res = await sim.answerCall(c.sid, { digits: "1234#9" });
    assert.ok(res.action);
    assert.equal(res.action.method, "GET");
    assert.equal(res.posted.Digits, "1234");
    assert.equal(res.posted.FinishedOnKey, "#");
    const got = rx.received.find((r) => r.url.startsWith("/voice/ack?x=1&"));
    assert.ok(got, "relative action resolved against the document URL");
    assert.equal(new URLSearchParams(got.url.split("?")[1]).get("Digits"), "1234");
    assert.equal(twilio.validateRequest(token, res.action.signature, rx.base + got.url, {}), true);

    const c2 = await createCall({ Twiml: `<Response><Gather numDigits="2" finishOnKey="" action="${rx.base}/ack"/></Response>` });
    const res2 = await sim.answerCall(c2.sid, { digits: "987" });
    assert.equal(res2.posted.Digits, "98");
    assert.equal(res2.posted.FinishedOnKey, "");
  });

  it("reports TwiML problems the way a callee experiences them: 12100 parse failure, 11200 fetch failure, no action URL", async () => {
    const bad = await createCall({ Twiml: "<Response><Say>R&D is overdue</Say></Response>" });
    const r1 = await sim.answerCall(bad.sid, { digits: "1" });
    assert.match(r1.error ?? "", /^12100 /);
    assert.equal(r1.action, null);

    rx.routes.set("/broken", { status: 500, body: "oops" });
    const c2 = await createCall({ Url: rx.base + "/broken" });
    const r2 = await sim.answerCall(c2.sid, { digits: "1" });
    assert.match(r2.error ?? "", /^11200 /);
    assert.equal(r2.twimlFetch?.status, 500);

    const c3 = await createCall({ Twiml: `<Response><Gather action="/relative"><Say>x</Say></Gather></Response>` });
    const r3 = await sim.answerCall(c3.sid, { digits: "1" });
    assert.match(r3.error ?? "", /action/);
    assert.equal(rx.received.filter((r) => r.url.startsWith("/relative")).length, 0);
  });

  it("synchronous AMD adds AnsweredBy to the TwiML fetch; AsyncAmd posts it to AsyncAmdStatusCallback instead", async () => {
    rx.routes.set("/twiml", { body: "<Response><Say>Hello</Say></Response>" });
    const c = await createCall({ Url: rx.base + "/twiml", MachineDetection: "DetectMessageEnd" });
    const r = await sim.answerCall(c.sid, { noInput: true }, { answeredBy: "machine_end_silence" });
    assert.equal(r.twimlFetch?.params.AnsweredBy, "machine_end_silence");
    assert.equal(c.answeredBy, "machine_end_silence");

    rx.received.length = 0;
    const a = await createCall({ Url: rx.base + "/twiml", MachineDetection: "Enable", AsyncAmd: "true", AsyncAmdStatusCallback: rx.base + "/amd" });
    await sim.answerCall(a.sid, { noInput: true });
    const fetchReq = rx.received.find((x) => x.url === "/twiml")!;
    assert.equal(fetchReq.params.AnsweredBy, undefined);
    const amd = sim.callbacks.find((x) => x.kind === "amd-status")!;
    assertSigned(token, amd);
    assert.equal(amd.params.AnsweredBy, "human");
    assert.equal(amd.params.CallSid, a.sid);
  });

  it("fault injection can target calls (`on: \"calls\"`) without touching Messages faults", async () => {
    sim.injectFault({ status: 500, on: "calls", createMessage: true });
    const r = await call(callsUrl, { auth, body: form({ To: "+447700900123", From: "+15005550006", Url: "https://x.test/t" }) });
    assert.equal(r.status, 500);
    assert.equal(r.json.code, 20500);
    assert.equal(sim.calls.length, 1, "an unknown outcome that did create the call");
    assert.equal(sim.pendingFaults, 0);
  });

  it("works with the official twilio-node client: calls.create (repeated StatusCallbackEvent), fetch, list", async () => {
    const client = simTwilio(sim.url, ac, token);
    const created = await client.calls.create({
      to: "+447700900123",
      from: "+15005550006",
      twiml: "<Response><Say>Hi</Say></Response>",
      statusCallback: rx.base + "/cb",
      statusCallbackEvent: ["initiated", "answered", "completed"],
      statusCallbackMethod: "POST",
      machineDetection: "Enable",
      timeout: 30,
    });
    assert.match(created.sid, /^CA[0-9a-f]{32}$/);
    assert.equal(created.status, "queued");
    assert.equal(created.direction, "outbound-api");
    assert.ok(created.dateCreated instanceof Date && !Number.isNaN(created.dateCreated.getTime()));
    assert.deepEqual(sim.requests.at(-1)!.form!.StatusCallbackEvent, ["initiated", "answered", "completed"]);
    const c = sim.getCall(created.sid)!;
    assert.equal(c.timeout, 30);
    assert.equal(c.machineDetection, "Enable");
    await sim.progressCall(c.sid, "completed", { durationSec: 7 });
    assert.deepEqual(rx.received.map((r) => r.params.CallStatus), ["initiated", "in-progress", "completed"]);
    const fetched = await client.calls(created.sid).fetch();
    assert.equal(fetched.status, "completed");
    assert.equal(fetched.duration, "7");
    assert.equal(fetched.answeredBy, "human");
    const list = await client.calls.list({ to: "+447700900123", limit: 5 });
    assert.deepEqual(list.map((x) => x.sid), [created.sid]);
    await assert.rejects(
      client.calls.create({ to: "+447700900123", from: "+14155550100", url: "https://x.test/t" }),
      (e: { code?: number; status?: number }) => e.code === 21210 && e.status === 400,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Verify v2
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim Verify v2", () => {
  let clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  const sim = useSim(new TwilioSim({ now: () => clock }));
  const auth = basic(sim.defaultAccount.accountSid, sim.defaultAccount.authToken);
  const svc = DEFAULT_VERIFY_SERVICE_SID;
  let base: string;

  before(() => {
    base = sim.url;
  });
  beforeEach(() => {
    clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  });

  const start = (fields: Record<string, string>, service = svc) => call(`${base}/v2/Services/${service}/Verifications`, { auth, body: form(fields) });
  const check = (fields: Record<string, string>) => call(`${base}/v2/Services/${svc}/VerificationCheck`, { auth, body: form(fields) });

  it("starts a verification: 201 resource (VE sid, pending, valid false, ISO 8601 dates, send_code_attempts); the code is in the ledger", async () => {
    const r = await start({ To: "+447700900123", Channel: "sms" });
    assert.equal(r.status, 201);
    const v = r.json;
    assert.match(v.sid, /^VE[0-9a-f]{32}$/);
    assert.equal(v.service_sid, svc);
    assert.equal(v.account_sid, sim.defaultAccount.accountSid);
    assert.equal(v.to, "+447700900123");
    assert.equal(v.channel, "sms");
    assert.equal(v.status, "pending");
    assert.equal(v.valid, false);
    assert.equal(v.date_created, "2026-03-02T10:00:00Z");
    assert.match(v.date_updated, ISO8601);
    assert.equal(v.send_code_attempts.length, 1);
    assert.match(v.send_code_attempts[0].attempt_sid, /^VL[0-9a-f]{32}$/);
    assert.equal(v.send_code_attempts[0].channel, "sms");
    assert.equal(v.send_code_attempts[0].time, "2026-03-02T10:00:00Z");
    assert.equal(v.url, `${base}/v2/Services/${svc}/Verifications/${v.sid}`);
    assert.deepEqual(v.lookup, {});
    assert.equal(v.amount, null);
    const entry = sim.verifications[0];
    assert.equal(entry.sid, v.sid);
    assert.match(entry.code, /^\d{6}$/);
    assert.equal(entry.expiresAt, clock + VERIFY_TTL_MS);
    assert.equal(sim.getVerification("+447700900123"), entry);
    assert.equal(sim.requests.at(-1)!.verificationSid, v.sid);

    const fetched = await call(`${base}/v2/Services/${svc}/Verifications/${v.sid}`, { auth });
    assert.equal(fetched.status, 200);
    assert.equal(fetched.json.sid, v.sid);
  });

  it("a re-send within the window keeps the SID and code and adds an attempt; the 6th send answers 429 / 60203", async () => {
    const first = await start({ To: "+447700900123", Channel: "sms" });
    const code = sim.verifications[0].code;
    clock += 30_000;
    const again = await start({ To: "+447700900123", Channel: "call" });
    assert.equal(again.status, 201);
    assert.equal(again.json.sid, first.json.sid);
    assert.equal(again.json.channel, "call");
    assert.deepEqual(again.json.send_code_attempts.map((a: { channel: string }) => a.channel), ["sms", "call"]);
    assert.equal(sim.verifications.length, 1);
    assert.equal(sim.verifications[0].code, code, "same code re-sent");
    for (let i = 0; i < 3; i++) assert.equal((await start({ To: "+447700900123", Channel: "sms" })).status, 201);
    const sixth = await start({ To: "+447700900123", Channel: "sms" });
    assert.equal(sixth.status, 429);
    assert.deepEqual(sixth.json, { code: 60203, message: "Max send attempts reached", more_info: "https://www.twilio.com/docs/errors/60203", status: 429 });
    assert.ok(Number(sixth.headers.get("retry-after")) > 0);
    assert.equal(sim.verifications[0].sendCodeAttempts.length, 5);
    assert.equal(sim.rejected429, 1);
  });

  it("check: the right code approves (valid true), then the verification is gone (404 / 20404)", async () => {
    await start({ To: "+447700900123", Channel: "sms" });
    const v = sim.verifications[0];
    const ok = await check({ To: "+447700900123", Code: v.code });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.status, "approved");
    assert.equal(ok.json.valid, true);
    assert.equal(ok.json.sid, v.sid);
    assert.deepEqual(ok.json.sna_attempts_error_codes, []);
    assert.match(ok.json.date_updated, ISO8601);
    assert.equal(v.deleted, true);
    const again = await check({ To: "+447700900123", Code: v.code });
    assert.equal(again.status, 404);
    assert.equal(again.json.code, 20404);
    const bySid = await check({ VerificationSid: v.sid, Code: v.code });
    assert.equal(bySid.status, 404);
    assert.equal((await call(`${base}/v2/Services/${svc}/Verifications/${v.sid}`, { auth })).status, 404);
  });

  it("check: a wrong code answers 200 pending/valid false; after 5 wrong codes the next check is 429 / 60202 and the verification is gone", async () => {
    await start({ To: "+447700900123", Channel: "sms" });
    const v = sim.verifications[0];
    const wrong = v.code === "000000" ? "111111" : "000000";
    for (let i = 0; i < 5; i++) {
      const r = await check({ VerificationSid: v.sid, Code: wrong });
      assert.equal(r.status, 200);
      assert.equal(r.json.status, "pending");
      assert.equal(r.json.valid, false);
    }
    const sixth = await check({ VerificationSid: v.sid, Code: v.code });
    assert.equal(sixth.status, 429);
    assert.equal(sixth.json.code, 60202);
    assert.equal(v.status, "max_attempts_reached");
    assert.equal(v.deleted, true);
    assert.equal((await check({ VerificationSid: v.sid, Code: v.code })).status, 404);
    // a new send starts a new verification with a new SID
    const fresh = await start({ To: "+447700900123", Channel: "sms" });
    assert.notEqual(fresh.json.sid, v.sid);
  });

  it("codes live 10 minutes on the simulator clock; expireVerification() ends one early", async () => {
    await start({ To: "+447700900123", Channel: "sms" });
    const v = sim.verifications[0];
    clock += VERIFY_TTL_MS - 1000;
    assert.equal((await call(`${base}/v2/Services/${svc}/Verifications/${v.sid}`, { auth })).status, 200, "still alive at 9:59");
    sim.advanceClock(1000);
    const late = await check({ To: "+447700900123", Code: v.code });
    assert.equal(late.status, 404);
    assert.equal(late.json.code, 20404);
    assert.equal(v.status, "expired");

    await start({ To: "+447700900124", Channel: "whatsapp" });
    const w = sim.getVerification("+447700900124")!;
    assert.equal(sim.expireVerification("+447700900124"), w);
    assert.equal((await check({ To: "+447700900124", Code: w.code })).status, 404);
    assert.throws(() => sim.expireVerification("+447700900124"), /no live verification/);
    const next = await start({ To: "+447700900124", Channel: "whatsapp" });
    assert.notEqual(next.json.sid, w.sid);
  });

  it("update Status=canceled answers 200 canceled, then 404; email channel and CustomCode", async () => {
    const r = await start({ To: "ops@example.test", Channel: "email", CustomCode: "A1B2C3" });
    assert.equal(r.status, 201);
    assert.equal(sim.verifications[0].code, "A1B2C3");
    const cancel = await call(`${base}/v2/Services/${svc}/Verifications/${r.json.sid}`, { auth, body: form({ Status: "canceled" }) });
    assert.equal(cancel.status, 200);
    assert.equal(cancel.json.status, "canceled");
    assert.equal((await check({ To: "ops@example.test", Code: "A1B2C3" })).status, 404);
    const bad = await call(`${base}/v2/Services/${svc}/Verifications/${r.json.sid}`, { auth, body: form({ Status: "pending" }) });
    assert.equal(bad.json.code, 60200);
  });

  const invalid: [string, Record<string, string>, number, number][] = [
    ["missing To", { Channel: "sms" }, 400, 60200],
    ["unknown channel", { To: "+447700900123", Channel: "pigeon" }, 400, 60200],
    ["To not E.164 for sms", { To: "07700900123", Channel: "sms" }, 400, 60200],
    ["To not an e-mail for email", { To: "+447700900123", Channel: "email" }, 400, 60200],
    ["CustomCode too short", { To: "+447700900123", Channel: "sms", CustomCode: "12" }, 400, 60200],
  ];
  for (const [name, fields, status, code] of invalid) {
    it(`start validation: ${name} → ${status} / ${code}`, async () => {
      const r = await start(fields);
      assert.equal(r.status, status);
      assert.equal(r.json.code, code);
      assert.equal(sim.verifications.length, 0);
    });
  }

  it("unknown service → 404, no credentials → 401 / 20003, check without To/VerificationSid → 400 / 60221", async () => {
    const r = await start({ To: "+447700900123", Channel: "sms" }, "VA" + "9".repeat(32));
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 20404);
    const anon = await call(`${base}/v2/Services/${svc}/Verifications`, { body: form({ To: "+447700900123", Channel: "sms" }) });
    assert.equal(anon.status, 401);
    assert.equal(anon.json.code, 20003);
    assert.equal((await check({ Code: "123456" })).json.code, 60221);
    assert.equal(sim.verifications.length, 0);
  });

  it("works with the official twilio-node client (verify.twilio.com rewritten): create, wrong check, right check, 404", async () => {
    const client = simTwilio(sim.url, sim.defaultAccount.accountSid, sim.defaultAccount.authToken);
    const service = client.verify.v2.services(svc);
    const v = await service.verifications.create({ to: "+447700900123", channel: "sms" });
    assert.match(v.sid, /^VE/);
    assert.equal(v.status, "pending");
    assert.ok(v.dateCreated instanceof Date && v.dateCreated.getTime() === clock, "ISO 8601 parsed by the SDK");
    assert.equal(sim.requests.at(-1)!.path, `/v2/Services/${svc}/Verifications`);
    const code = sim.getVerification(v.sid)!.code;
    const wrong = await service.verificationChecks.create({ to: "+447700900123", code: code === "000000" ? "111111" : "000000" });
    assert.equal(wrong.status, "pending");
    assert.equal(wrong.valid, false);
    const right = await service.verificationChecks.create({ verificationSid: v.sid, code });
    assert.equal(right.status, "approved");
    assert.equal(right.valid, true);
    await assert.rejects(
      service.verificationChecks.create({ to: "+447700900123", code }),
      (e: { code?: number; status?: number }) => e.code === 20404 && e.status === 404,
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Incoming messages, opt-out keywords
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim incoming messages (sendInbound)", () => {
  const other = { accountSid: "AC" + "5".repeat(32), authToken: "5".repeat(32) };
  const sim = useSim(new TwilioSim({ accounts: [{ accountSid: "AC" + "1".repeat(32), authToken: "0f1e2d3c4b5a69788796a5b4c3d2e1f0" }, other] }));
  const rx = useReceiver();
  const token = sim.defaultAccount.authToken;
  let messagesUrl: string;

  before(() => {
    messagesUrl = `${sim.url}/2010-04-01/Accounts/${sim.defaultAccount.accountSid}/Messages.json`;
  });

  const send = (accountSid: string, tokenFor: string, to: string) =>
    call(`${sim.url}/2010-04-01/Accounts/${accountSid}/Messages.json`, {
      auth: basic(accountSid, tokenFor),
      body: form({ To: to, From: "+15005550006", Body: "Invoice overdue" }),
    });

  it("posts Twilio's signed incoming-message webhook (no OptOutType for ordinary text) and records the message", async () => {
    const url = rx.base + "/mlc/twilio/inbound?node=n1";
    const r = await sim.sendInbound(url, { from: "+447700900123", to: "+15005550006", body: "Paid yesterday, thanks" });
    assert.equal(r.status, 200);
    assert.equal(r.kind, "incoming-message");
    assertSigned(token, r);
    const p = rx.received[0].params;
    assert.match(p.MessageSid, /^SM[0-9a-f]{32}$/);
    assert.equal(p.SmsSid, p.MessageSid);
    assert.equal(p.SmsMessageSid, p.MessageSid);
    assert.equal(p.AccountSid, sim.defaultAccount.accountSid);
    assert.equal(p.From, "+447700900123");
    assert.equal(p.To, "+15005550006");
    assert.equal(p.Body, "Paid yesterday, thanks");
    assert.equal(p.NumMedia, "0");
    assert.equal(p.NumSegments, "1");
    assert.equal(p.SmsStatus, "received");
    assert.equal(p.ApiVersion, "2010-04-01");
    assert.equal(p.OptOutType, undefined);
    assert.equal(p.MessagingServiceSid, undefined);
    assert.equal(rx.received[0].headers["x-twilio-signature"], r.signature);
    assert.equal(rx.received[0].url, "/mlc/twilio/inbound?node=n1");
    assert.equal(sim.inboundMessages.length, 1);
    assert.equal(sim.messages.length, 0, "outbound ledger untouched");
    const fetched = await call(`${messagesUrl.replace(".json", "")}/${p.MessageSid}.json`, { auth: basic(sim.defaultAccount.accountSid, token) });
    assert.equal(fetched.json.direction, "inbound");
    assert.equal(fetched.json.status, "received");
  });

  it("a single STOP keyword (any case) adds OptOutType=STOP and blocks later sends from that account only (21610); START lifts it", async () => {
    const r = await sim.sendInbound(rx.base + "/in", {
      from: "+447700900123",
      to: "+15005550006",
      body: "  unsubscribe ",
      messagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID,
    });
    assertSigned(token, r);
    assert.equal(rx.received[0].params.OptOutType, "STOP");
    assert.equal(rx.received[0].params.MessagingServiceSid, DEFAULT_MESSAGING_SERVICE_SID);
    assert.equal(sim.isOptedOut("+447700900123"), true);
    const blocked = await send(sim.defaultAccount.accountSid, token, "+447700900123");
    assert.equal(blocked.status, 400);
    assert.equal(blocked.json.code, 21610);
    const otherAccount = await send(other.accountSid, other.authToken, "+447700900123");
    assert.equal(otherAccount.status, 201, "opt-out is per account");

    await sim.sendInbound(rx.base + "/in", { from: "+447700900123", to: "+15005550006", body: "Start" });
    assert.equal(rx.received[1].params.OptOutType, "START");
    assert.equal((await send(sim.defaultAccount.accountSid, token, "+447700900123")).status, 201);
  });

  it("HELP/INFO → OptOutType=HELP without blocking; multi-word bodies are not keywords; optOutType can be forced; other account signs with its token", async () => {
    await sim.sendInbound(rx.base + "/in", { from: "+447700900123", to: "+15005550006", body: "info" });
    assert.equal(rx.received[0].params.OptOutType, "HELP");
    await sim.sendInbound(rx.base + "/in", { from: "+447700900123", to: "+15005550006", body: "stop sending me these" });
    assert.equal(rx.received[1].params.OptOutType, undefined);
    assert.equal(sim.isOptedOut("+447700900123"), false);
    const forced = await sim.sendInbound(rx.base + "/in", { from: "+447700900125", to: "+15005550006", body: "ARRET", optOutType: "STOP", accountSid: other.accountSid });
    assert.equal(rx.received[2].params.OptOutType, "STOP");
    assert.equal(rx.received[2].params.AccountSid, other.accountSid);
    assertSigned(other.authToken, forced);
    assert.equal(twilio.validateRequest(token, forced.signature, forced.signedUrl, forced.params), false, "not the first account's token");
    assert.equal(sim.isOptedOut("+447700900125", other.accountSid), true);
    assert.equal(sim.isOptedOut("+447700900125"), false);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// rate limit
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim ratePerSecond", () => {
  let clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  const sim = useSim(new TwilioSim({ ratePerSecond: 2, now: () => clock }));
  const ac = sim.defaultAccount.accountSid;
  const auth = basic(ac, sim.defaultAccount.authToken);

  const msg = () => call(`${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`, { auth, body: form({ To: "+447700900123", From: "+15005550006", Body: "x" }) });
  const callCreate = () =>
    call(`${sim.url}/2010-04-01/Accounts/${ac}/Calls.json`, { auth, body: form({ To: "+447700900123", From: "+15005550006", Url: "https://x.test/t" }) });
  const verify = () =>
    call(`${sim.url}/v2/Services/${DEFAULT_VERIFY_SERVICE_SID}/Verifications`, { auth, body: form({ To: "+447700900123", Channel: "sms" }) });

  it("more than N creates (Messages, Calls, Verifications together) in a sliding 1000 ms window → 429 / 20429, nothing created", async () => {
    assert.equal((await msg()).status, 201);
    assert.equal((await callCreate()).status, 201);
    const m3 = await msg();
    assert.equal(m3.status, 429);
    assert.deepEqual(m3.json, { code: 20429, message: "Too Many Requests", more_info: "https://www.twilio.com/docs/errors/20429", status: 429 });
    assert.equal(m3.headers.get("retry-after"), null, "the 2010 API promises no Retry-After");
    assert.equal((await callCreate()).status, 429);
    const v = await verify();
    assert.equal(v.status, 429);
    assert.equal(v.json.code, 20429);
    assert.equal(v.headers.get("retry-after"), "1");
    assert.equal(sim.messages.length, 1);
    assert.equal(sim.calls.length, 1);
    assert.equal(sim.verifications.length, 0);
    assert.equal(sim.rejected429, 3);
    // reads are not limited
    assert.equal((await call(`${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`, { auth })).status, 200);
  });

  it("the window slides: creates older than 1000 ms no longer count", async () => {
    assert.equal((await msg()).status, 201); // t=0
    clock += 600;
    assert.equal((await msg()).status, 201); // t=600
    clock += 399;
    assert.equal((await msg()).status, 429); // t=999: 0 and 600 in window
    clock += 1;
    assert.equal((await verify()).status, 201); // t=1000: 0 left the window
    clock += 100;
    assert.equal((await callCreate()).status, 429); // t=1100: 600 and 1000 in window
    sim.advanceClock(1000);
    assert.equal((await callCreate()).status, 201);
    assert.equal(sim.rejected429, 2);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Messages extras: scheduling, WhatsApp/Content, DateSent filters
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim Messages extras", () => {
  let clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  const sim = useSim(new TwilioSim({ now: () => clock, senders: ["+15005550006", "whatsapp:+15005550006"] }));
  const ac = sim.defaultAccount.accountSid;
  const auth = basic(ac, sim.defaultAccount.authToken);
  let messagesUrl: string;

  before(() => {
    messagesUrl = `${sim.url}/2010-04-01/Accounts/${ac}/Messages.json`;
  });
  beforeEach(() => {
    clock = Date.UTC(2026, 2, 2, 10, 0, 0);
  });

  const create = (fields: Record<string, string>) => call(messagesUrl, { auth, body: form({ To: "+447700900123", Body: "Reminder", ...fields }) });
  const at = (seconds: number) => new Date(clock + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

  it("SendAt + ScheduleType=fixed with a Messaging Service → 201 scheduled; deliver() then queues, sends, delivers", async () => {
    const r = await create({ MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed", SendAt: at(3600) });
    assert.equal(r.status, 201);
    assert.equal(r.json.status, "scheduled");
    const m = sim.messages[0];
    assert.equal(m.sendAt, "2026-03-02T11:00:00Z");
    await sim.deliver(m.sid);
    assert.deepEqual(m.history, ["scheduled", "queued", "sent", "delivered"]);
  });

  const scheduleErrors: [string, Record<string, string>, number][] = [
    ["no Messaging Service", { From: "+15005550006", ScheduleType: "fixed", SendAt: "+3600" }, 35118],
    ["SendAt missing", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed" }, 35111],
    ["SendAt exactly 300 s ahead", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed", SendAt: "+300" }, 35114],
    ["SendAt 301 s ahead is fine", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed", SendAt: "+301" }, 0],
    ["SendAt 35 days ahead is fine", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed", SendAt: "+3024000" }, 0],
    ["SendAt more than 35 days ahead", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed", SendAt: "+3024001" }, 35115],
    ["SendAt not ISO 8601", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "fixed", SendAt: "tomorrow" }, 35115],
    ["ScheduleType other than fixed", { MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, ScheduleType: "later", SendAt: "+3600" }, 35126],
  ];
  for (const [name, fields, code] of scheduleErrors) {
    it(`scheduling: ${name} → ${code === 0 ? "201 scheduled" : "400 / " + code}`, async () => {
      const f = { ...fields };
      if (f.SendAt?.startsWith("+")) f.SendAt = at(Number(f.SendAt.slice(1)));
      const r = await create(f);
      if (code === 0) {
        assert.equal(r.status, 201);
        assert.equal(r.json.status, "scheduled");
      } else {
        assert.equal(r.status, 400);
        assert.equal(r.json.code, code);
        assert.equal(sim.messages.length, 0);
      }
    });
  }

  it("WhatsApp with ContentSid + ContentVariables; invalid JSON → 21656, variables without ContentSid → 21654, mixed channels → 21910", async () => {
    const contentSid = "HX" + "a".repeat(32);
    const ok = await create({ To: "whatsapp:+447700900123", From: "whatsapp:+15005550006", Body: "", ContentSid: contentSid, ContentVariables: '{"1":"INV-1042","2":"people\'s"}' });
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
    assert.equal(ok.json.to, "whatsapp:+447700900123");
    assert.equal(ok.json.from, "whatsapp:+15005550006");
    assert.equal(sim.messages[0].contentSid, contentSid);
    assert.equal(sim.messages[0].contentVariables, '{"1":"INV-1042","2":"people\'s"}');
    const bad = await create({ To: "whatsapp:+447700900123", From: "whatsapp:+15005550006", ContentSid: contentSid, ContentVariables: "{1: INV}" });
    assert.equal(bad.json.code, 21656);
    const arr = await create({ To: "whatsapp:+447700900123", From: "whatsapp:+15005550006", ContentSid: contentSid, ContentVariables: "[1]" });
    assert.equal(arr.json.code, 21656);
    const noSid = await create({ From: "+15005550006", ContentVariables: '{"1":"x"}' });
    assert.equal(noSid.json.code, 21654);
    const mixed = await create({ To: "whatsapp:+447700900123", From: "+15005550006" });
    assert.equal(mixed.json.code, 21910);
    assert.equal(sim.messages.length, 1);
  });

  it("lists with To/From and DateSent filters (day and instant, inclusive) and pages through results", async () => {
    const day1 = (await create({ From: "+15005550006" })).json.sid as string; // 2026-03-02 10:00
    await sim.deliver(day1);
    clock += 3600_000; // 11:00
    const day1b = (await create({ From: "+15005550006", To: "+447700900124" })).json.sid as string;
    await sim.deliver(day1b);
    clock = Date.UTC(2026, 2, 3, 9, 0, 0);
    const day2 = (await create({ From: "+15005550006" })).json.sid as string; // not sent yet: matched on creation
    const list = async (q: string) => ((await call(`${messagesUrl}?${q}`, { auth })).json.messages as { sid: string }[]).map((m) => m.sid);

    assert.deepEqual(await list(""), [day2, day1b, day1], "newest first");
    assert.deepEqual(await list("DateSent=2026-03-02"), [day1b, day1]);
    assert.deepEqual(await list(`${encodeURIComponent("DateSent>")}=2026-03-03`), [day2]);
    assert.deepEqual(await list(`${encodeURIComponent("DateSent<")}=2026-03-02`), [day1b, day1]);
    assert.deepEqual(await list(`${encodeURIComponent("DateSent>")}=${encodeURIComponent("2026-03-02T11:00:00Z")}`), [day2, day1b], "inclusive instant");
    assert.deepEqual(await list(`${encodeURIComponent("DateSent<")}=${encodeURIComponent("2026-03-02T10:59:59Z")}`), [day1]);
    assert.deepEqual(await list(`To=${encodeURIComponent("+447700900124")}`), [day1b]);
    assert.deepEqual(await list(`From=${encodeURIComponent("+15005550007")}`), []);

    const p0 = await call(`${messagesUrl}?PageSize=2`, { auth });
    assert.equal(p0.json.messages.length, 2);
    assert.equal(p0.json.page, 0);
    assert.ok(p0.json.next_page_uri);
    const p1 = await call(`${sim.url}${p0.json.next_page_uri}`, { auth });
    assert.deepEqual(p1.json.messages.map((m: { sid: string }) => m.sid), [day1]);
    assert.equal(p1.json.next_page_uri, null);

    const client = simTwilio(sim.url, ac, sim.defaultAccount.authToken);
    const viaSdk = await client.messages.list({ dateSentAfter: new Date(Date.UTC(2026, 2, 2, 10, 30)), pageSize: 1 });
    assert.deepEqual(viaSdk.map((m) => m.sid), [day2, day1b], "SDK sends DateSent> as a date-time and follows next_page_uri");
  });
});
