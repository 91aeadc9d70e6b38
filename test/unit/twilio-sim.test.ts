/**
 * Proves that test/sims/twilio.ts behaves like Twilio as described in /work/shared/reference/twilio.md:
 * signature algorithm (Twilio's worked examples), Messages create/fetch/list, errors and magic numbers,
 * signed status callbacks (validated with the official `twilio` package), fault injection and concurrency limits.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import twilio from "twilio";
import {
  TwilioSim,
  signTwilioRequest,
  checkTwilioSignature,
  countSegments,
  DEFAULT_MESSAGING_SERVICE_SID,
  type CallbackResult,
} from "../sims/twilio";
import { RFC2822, basic, call, form, simTwilio, useReceiver, useSim } from "../harness/sim-http";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------------------------------
// signature
// ---------------------------------------------------------------------------------------------------------------------

describe("signTwilioRequest (Twilio webhook signature, reference §5)", () => {
  const token = "12345";
  const url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  const vector1 = { CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212" };
  const vector2 = { CallSid: "CA1234567890ABCDE", Caller: "+14158675309", Digits: "1234", From: "+14158675309", To: "+18005551212" };

  it("reproduces Twilio's worked example (0/KCTR6DLpKmkAf8muzZqo1nDgQ=)", () => {
    assert.equal(signTwilioRequest(token, url, vector1), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert.equal(twilio.validateRequest(token, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, vector1), true);
  });

  it("reproduces the SDK test-suite vector (RSOYDt4T1cUTdK1PDd93/VVr8B8=)", () => {
    assert.equal(signTwilioRequest(token, url, vector2), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    assert.equal(twilio.validateRequest(token, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", url, vector2), true);
  });

  it("does not mix the two parameter sets", () => {
    assert.notEqual(signTwilioRequest(token, url, vector2), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    assert.equal(checkTwilioSignature(token, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, vector2), false);
  });

  it("fails when any character of token, URL, a name, a value or the signature changes", () => {
    const good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    assert.equal(checkTwilioSignature(token, good, url, vector1), true);
    assert.equal(checkTwilioSignature("12346", good, url, vector1), false, "token");
    assert.equal(checkTwilioSignature(token, good, url.replace("foo=1", "foo=2"), vector1), false, "url query");
    assert.equal(checkTwilioSignature(token, good, url.replace("https", "http"), vector1), false, "url scheme");
    const { Digits, ...rest } = vector1;
    assert.equal(checkTwilioSignature(token, good, url, { ...rest, digits: Digits }), false, "param name case");
    assert.equal(checkTwilioSignature(token, good, url, { ...vector1, Digits: "1235" }), false, "param value");
    assert.equal(checkTwilioSignature(token, "1/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, vector1), false, "signature char");
    assert.equal(checkTwilioSignature(token, undefined, url, vector1), false, "missing header");
    assert.equal(twilio.validateRequest(token, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url, { ...vector1, To: "+18005551213" }), false);
  });

  it("sorts names case-sensitively and de-duplicates/sorts repeated values like the SDKs", () => {
    // twilio-php testValidateWithArrayAndDuplicates, reference §5.1
    const params = { Sid: "CA123", SidAccount: "AC123", Digits: ["5678", "1234", "1234"] };
    assert.equal(signTwilioRequest(token, url, params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    assert.equal(twilio.validateRequest(token, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", url, params), true);
    // "CallStatus" < "CallbackSource" (upper case before lower case): compare against the twilio package on a set that depends on it
    const p = { CallbackSource: "call-progress-events", CallStatus: "completed", msg: "Gather End", FinishedOnKey: "" };
    assert.equal(signTwilioRequest(token, url, p), twilio.getExpectedTwilioSignature(token, url, p));
    const manual = url + "CallStatuscompletedCallbackSourcecall-progress-eventsFinishedOnKeymsgGather End";
    assert.equal(signTwilioRequest(token, url, p), crypto.createHmac("sha1", token).update(manual).digest("base64"));
  });
});

describe("countSegments", () => {
  it("counts GSM-7 and UCS-2 segments like Twilio", () => {
    assert.equal(countSegments("a".repeat(160)), 1);
    assert.equal(countSegments("a".repeat(161)), 2);
    assert.equal(countSegments("a".repeat(306)), 2);
    assert.equal(countSegments("a".repeat(307)), 3);
    assert.equal(countSegments("€".repeat(80)), 1, "extension chars count double: 160 septets");
    assert.equal(countSegments("€".repeat(81)), 2);
    assert.equal(countSegments("ü".repeat(70)), 1, "ü is GSM-7");
    assert.equal(countSegments("ł".repeat(70)), 1, "ł is UCS-2: 70 in one segment");
    assert.equal(countSegments("ł".repeat(71)), 2);
    assert.equal(countSegments(""), 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// REST API
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim REST API", () => {
  const sim = useSim(new TwilioSim());
  const ac = sim.defaultAccount.accountSid;
  const token = sim.defaultAccount.authToken;
  const auth = basic(ac, token);
  let base: string;
  let messagesUrl: string;

  before(async () => {
    base = await sim.start();
    messagesUrl = `${base}/2010-04-01/Accounts/${ac}/Messages.json`;
  });

  it("listens on 127.0.0.1 with an ephemeral port and has sane defaults", () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(base, "http://127.0.0.1:0");
    assert.equal(sim.url, base);
    assert.match(sim.defaultAccount.accountSid, /^AC1{32}$/);
    assert.match(sim.defaultAccount.authToken, /^[0-9a-f]{32}$/);
    assert.match(sim.defaultApiKey.sid, /^SK[0-9a-f]{32}$/);
    assert.equal(sim.defaultApiKey.accountSid, ac);
  });

  it("creates a message (201) in Twilio's exact shape with Account SID + Auth Token", async () => {
    const r = await call(messagesUrl, { auth, body: form({ To: "+447700900123", From: "+15005550006", Body: "Invoice INV-1042 is overdue" }) });
    assert.equal(r.status, 201);
    assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
    const m = r.json;
    assert.match(m.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(m.account_sid, ac);
    assert.equal(m.to, "+447700900123");
    assert.equal(m.from, "+15005550006");
    assert.equal(m.body, "Invoice INV-1042 is overdue");
    assert.equal(m.status, "queued");
    assert.equal(m.direction, "outbound-api");
    assert.equal(m.num_segments, "1");
    assert.equal(m.num_media, "0");
    assert.equal(typeof m.num_segments, "string");
    assert.equal(m.error_code, null);
    assert.equal(m.error_message, null);
    assert.equal(m.price, null);
    assert.equal(m.api_version, "2010-04-01");
    assert.match(m.date_created, RFC2822);
    assert.match(m.date_updated, RFC2822);
    assert.equal(m.date_sent, null);
    assert.equal(m.messaging_service_sid, null);
    assert.equal(m.uri, `/2010-04-01/Accounts/${ac}/Messages/${m.sid}.json`);
    assert.equal(m.subresource_uris.media, `/2010-04-01/Accounts/${ac}/Messages/${m.sid}/Media.json`);

    assert.equal(sim.messages.length, 1);
    assert.equal(sim.messages[0].sid, m.sid);
    assert.deepEqual(sim.messages[0].history, ["queued"]);
    const req = sim.requests.at(-1)!;
    assert.equal(req.auth, "account");
    assert.equal(req.status, 201);
    assert.equal(req.method, "POST");
    assert.equal(req.path, `/2010-04-01/Accounts/${ac}/Messages.json`);
    assert.deepEqual(req.form, { To: "+447700900123", From: "+15005550006", Body: "Invoice INV-1042 is overdue" });
    assert.equal(req.headers.authorization, "[redacted]");
  });

  it("accepts an API key of the account in the path (auth=apikey)", async () => {
    const k = sim.defaultApiKey;
    const r = await call(messagesUrl, { auth: basic(k.sid, k.secret), body: form({ To: "+15558675310", From: "+15005550006", Body: "hi" }) });
    assert.equal(r.status, 201);
    assert.equal(sim.requests.at(-1)!.auth, "apikey");
    assert.equal(sim.requests.at(-1)!.credentialSid, k.sid);
  });

  it("answers 401 / 20003 with Twilio's exact body for bad, missing and foreign credentials; nothing is created", async () => {
    const expected = { code: 20003, message: "Authenticate", more_info: "https://www.twilio.com/docs/errors/20003", status: 401 };
    const body = form({ To: "+15558675310", From: "+15005550006", Body: "hi" });

    const bad = await call(messagesUrl, { auth: basic(ac, "0".repeat(32)), body });
    assert.equal(bad.status, 401);
    assert.deepEqual(bad.json, expected);
    assert.equal(sim.requests.at(-1)!.auth, "bad");

    const none = await call(messagesUrl, { body });
    assert.equal(none.status, 401);
    assert.deepEqual(none.json, expected);
    assert.equal(sim.requests.at(-1)!.auth, "none");

    const badKey = await call(messagesUrl, { auth: basic(sim.defaultApiKey.sid, "wrong"), body });
    assert.equal(badKey.status, 401);

    assert.equal(sim.messages.length, 0);
  });

  it("rejects credentials that do not belong to the account in the path (401 / 20003)", async () => {
    const other = { accountSid: "AC" + "a".repeat(32), authToken: "b".repeat(32) };
    const sim2 = new TwilioSim({
      accounts: [sim.defaultAccount, other],
      apiKeys: [{ sid: "SK" + "c".repeat(32), secret: "s3cret", accountSid: other.accountSid }],
    });
    const base2 = await sim2.start();
    try {
      const body = form({ To: "+15558675310", From: "+15005550006", Body: "hi" });
      const path = `${base2}/2010-04-01/Accounts/${ac}/Messages.json`;
      const viaToken = await call(path, { auth: basic(other.accountSid, other.authToken), body });
      assert.equal(viaToken.status, 401);
      assert.equal(viaToken.json.code, 20003);
      const viaKey = await call(path, { auth: basic("SK" + "c".repeat(32), "s3cret"), body });
      assert.equal(viaKey.status, 401);
      assert.equal(viaKey.json.code, 20003);
      assert.equal(sim2.messages.length, 0);
      const ok = await call(`${base2}/2010-04-01/Accounts/${other.accountSid}/Messages.json`, { auth: basic("SK" + "c".repeat(32), "s3cret"), body });
      assert.equal(ok.status, 201);
      assert.equal(ok.json.account_sid, other.accountSid);
    } finally {
      await sim2.stop();
    }
  });

  it("treats a JSON body as no parameters: 400 in Twilio's error shape, nothing created", async () => {
    const r = await call(messagesUrl, {
      auth,
      body: JSON.stringify({ To: "+15558675310", From: "+15005550006", Body: "hi" }),
      contentType: "application/json",
    });
    assert.equal(r.status, 400);
    assert.deepEqual(Object.keys(r.json).sort(), ["code", "message", "more_info", "status"]);
    assert.equal(r.json.code, 21604);
    assert.equal(r.json.status, 400);
    assert.equal(r.json.more_info, "https://www.twilio.com/docs/errors/21604");
    assert.equal(sim.messages.length, 0);
    assert.equal(sim.requests.at(-1)!.form, undefined);
  });

  it("answers 404 / 20404 without the .json suffix and for unknown paths", async () => {
    const r = await call(`${base}/2010-04-01/Accounts/${ac}/Messages`, { auth, body: form({ To: "+15558675310", From: "+15005550006", Body: "hi" }) });
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 20404);
    assert.equal(r.json.status, 404);
    assert.equal(sim.messages.length, 0);
    const r2 = await call(`${base}/2010-04-01/Nope.json`, { auth });
    assert.equal(r2.status, 404);
  });

  describe("validation (Twilio error codes, HTTP 400)", () => {
    const cases: Array<[string, Record<string, string | string[]>, number]> = [
      ["To missing", { From: "+15005550006", Body: "x" }, 21604],
      ["To not E.164", { To: "0044 7700 900123", From: "+15005550006", Body: "x" }, 21211],
      ["To with leading zero", { To: "+0447700900123", From: "+15005550006", Body: "x" }, 21211],
      ["From and MessagingServiceSid missing", { To: "+15558675310", Body: "x" }, 21603],
      ["From not owned", { To: "+15558675310", From: "+15551230000", Body: "x" }, 21606],
      ["MessagingServiceSid malformed", { To: "+15558675310", MessagingServiceSid: "MG123", Body: "x" }, 21705],
      ["MessagingServiceSid unknown", { To: "+15558675310", MessagingServiceSid: "MG" + "9".repeat(32), Body: "x" }, 21701],
      ["Body/MediaUrl/ContentSid missing", { To: "+15558675310", From: "+15005550006" }, 21602],
      ["Body empty", { To: "+15558675310", From: "+15005550006", Body: "" }, 21602],
      ["Body over 1600 chars", { To: "+15558675310", From: "+15005550006", Body: "a".repeat(1601) }, 21617],
      ["11 media URLs", { To: "+15558675310", From: "+15005550006", MediaUrl: Array.from({ length: 11 }, (_, i) => `https://x.test/${i}.png`) }, 21623],
      ["ContentSid malformed", { To: "+15558675310", From: "+15005550006", ContentSid: "HX1" }, 21655],
      ["StatusCallback hostname with underscore", { To: "+15558675310", From: "+15005550006", Body: "x", StatusCallback: "https://my_host.example.com/cb" }, 21609],
      ["StatusCallback not a URL", { To: "+15558675310", From: "+15005550006", Body: "x", StatusCallback: "not a url" }, 21609],
      ["StatusCallback ftp", { To: "+15558675310", From: "+15005550006", Body: "x", StatusCallback: "ftp://host.example.com/cb" }, 21609],
      ["magic To +15005550001 (invalid)", { To: "+15005550001", From: "+15005550006", Body: "x" }, 21211],
      ["magic To +15005550002 (cannot route)", { To: "+15005550002", From: "+15005550006", Body: "x" }, 21612],
      ["magic To +15005550003 (no international permission)", { To: "+15005550003", From: "+15005550006", Body: "x" }, 21408],
      ["magic To +15005550004 (blocked / opted out)", { To: "+15005550004", From: "+15005550006", Body: "x" }, 21610],
      ["magic To +15005550009 (not SMS-capable)", { To: "+15005550009", From: "+15005550006", Body: "x" }, 21614],
      ["magic From +15005550001 (invalid)", { To: "+15558675310", From: "+15005550001", Body: "x" }, 21212],
      ["magic From +15005550007 (not owned)", { To: "+15558675310", From: "+15005550007", Body: "x" }, 21606],
      ["magic From +15005550008 (queue full)", { To: "+15558675310", From: "+15005550008", Body: "x" }, 21611],
      ["To checked before From", { To: "bad", Body: "x" }, 21211],
    ];
    for (const [name, fields, code] of cases) {
      it(`${name} → ${code}`, async () => {
        const r = await call(messagesUrl, { auth, body: form(fields) });
        assert.equal(r.status, 400);
        assert.equal(r.json.code, code);
        assert.equal(r.json.status, 400);
        assert.equal(r.json.more_info, `https://www.twilio.com/docs/errors/${code}`);
        assert.equal(typeof r.json.message, "string");
        assert.ok(r.json.message.length > 0);
        assert.equal(sim.messages.length, 0);
        assert.equal(sim.requests.at(-1)!.code, code);
      });
    }

    it("opt-out list → 21610 until optIn", async () => {
      sim.optOut("+15558675310");
      const body = form({ To: "+15558675310", From: "+15005550006", Body: "x" });
      const r = await call(messagesUrl, { auth, body });
      assert.equal(r.status, 400);
      assert.equal(r.json.code, 21610);
      sim.optIn("+15558675310");
      assert.equal((await call(messagesUrl, { auth, body })).status, 201);
    });

    it("accepts exactly 1600 characters (11 segments), whatsapp: addresses and segment counts as strings", async () => {
      const long = await call(messagesUrl, { auth, body: form({ To: "+15558675310", From: "+15005550006", Body: "a".repeat(1600) }) });
      assert.equal(long.status, 201);
      assert.equal(long.json.num_segments, "11");
      const uni = await call(messagesUrl, { auth, body: form({ To: "+15558675310", From: "+15005550006", Body: "Zażółć gęślą jaźń ".repeat(4) }) });
      assert.equal(uni.status, 201);
      assert.equal(uni.json.num_segments, "2");
      const wa = await call(messagesUrl, { auth, body: form({ To: "whatsapp:+447700900123", From: "whatsapp:+15005550006", Body: "hi" }) });
      assert.equal(wa.status, 201);
      assert.equal(wa.json.to, "whatsapp:+447700900123");
    });

    it("parses repeated MediaUrl keys as an array (MM sid, num_media string)", async () => {
      const r = await call(messagesUrl, { auth, body: form({ To: "+15558675310", From: "+15005550006", MediaUrl: ["https://x.test/a.png", "https://x.test/b.png"] }) });
      assert.equal(r.status, 201);
      assert.match(r.json.sid, /^MM[0-9a-f]{32}$/);
      assert.equal(r.json.num_media, "2");
      assert.equal(r.json.body, "");
      assert.deepEqual(sim.messages[0].mediaUrl, ["https://x.test/a.png", "https://x.test/b.png"]);
      assert.deepEqual(sim.requests.at(-1)!.form!.MediaUrl, ["https://x.test/a.png", "https://x.test/b.png"]);
    });

    it("Messaging Service send: status accepted, from null, num_segments \"0\"", async () => {
      const r = await call(messagesUrl, { auth, body: form({ To: "+15558675310", MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, Body: "hi" }) });
      assert.equal(r.status, 201);
      assert.equal(r.json.status, "accepted");
      assert.equal(r.json.from, null);
      assert.equal(r.json.messaging_service_sid, DEFAULT_MESSAGING_SERVICE_SID);
      assert.equal(r.json.num_segments, "0");
    });
  });

  it("fetches a message (200) and answers 404 / 20404 for an unknown SID", async () => {
    const created = await call(messagesUrl, { auth, body: form({ To: "+15558675310", From: "+15005550006", Body: "hi" }) });
    const sid = created.json.sid as string;
    const got = await call(`${base}/2010-04-01/Accounts/${ac}/Messages/${sid}.json`, { auth });
    assert.equal(got.status, 200);
    assert.deepEqual(got.json, created.json);
    const missing = await call(`${base}/2010-04-01/Accounts/${ac}/Messages/SM${"0".repeat(32)}.json`, { auth });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, 20404);
    const noAuth = await call(`${base}/2010-04-01/Accounts/${ac}/Messages/${sid}.json`);
    assert.equal(noAuth.status, 401);
  });

  it("lists messages newest first with Twilio's paging envelope and To filter", async () => {
    for (let i = 0; i < 3; i++) await call(messagesUrl, { auth, body: form({ To: "+15558675310", From: "+15005550006", Body: `m${i}` }) });
    await call(messagesUrl, { auth, body: form({ To: "+15558675311", From: "+15005550006", Body: "other" }) });

    const p0 = await call(`${messagesUrl}?To=%2B15558675310&PageSize=2`, { auth });
    assert.equal(p0.status, 200);
    assert.deepEqual(p0.json.messages.map((m: { body: string }) => m.body), ["m2", "m1"]);
    assert.equal(p0.json.page, 0);
    assert.equal(p0.json.page_size, 2);
    assert.equal(p0.json.start, 0);
    assert.equal(p0.json.end, 1);
    assert.equal(p0.json.previous_page_uri, null);
    assert.match(p0.json.first_page_uri, /^\/2010-04-01\/Accounts\/AC1{32}\/Messages\.json\?To=%2B15558675310&PageSize=2&Page=0$/);
    assert.match(p0.json.next_page_uri, /Page=1&PageToken=PASM[0-9a-f]{32}$/);

    const p1 = await call(base + p0.json.next_page_uri, { auth });
    assert.deepEqual(p1.json.messages.map((m: { body: string }) => m.body), ["m0"]);
    assert.equal(p1.json.next_page_uri, null);
    assert.equal(p1.json.start, 2);
    assert.notEqual(p1.json.previous_page_uri, null);
  });

  it("fetches the account for Test connection: 200 with account creds or a main key, 401 with a standard key", async () => {
    const accUrl = `${base}/2010-04-01/Accounts/${ac}.json`;
    const r = await call(accUrl, { auth });
    assert.equal(r.status, 200);
    assert.equal(r.json.sid, ac);
    assert.equal(r.json.status, "active");
    assert.equal(r.json.type, "Full");
    assert.equal(typeof r.json.friendly_name, "string");
    assert.match(r.json.date_created, RFC2822);
    assert.equal((await call(accUrl, { auth: basic(ac, "nope") })).status, 401);
    const std = await call(accUrl, { auth: basic(sim.defaultApiKey.sid, sim.defaultApiKey.secret) });
    assert.equal(std.status, 401);
    assert.equal(std.json.code, 20003);

    const mainKey = { sid: "SK" + "d".repeat(32), secret: "mainsecret", accountSid: ac, keyType: "main" as const };
    const sim2 = new TwilioSim({ apiKeys: [mainKey] });
    const b2 = await sim2.start();
    try {
      const ok = await call(`${b2}/2010-04-01/Accounts/${ac}.json`, { auth: basic(mainKey.sid, mainKey.secret) });
      assert.equal(ok.status, 200);
      assert.equal(ok.json.sid, ac);
    } finally {
      await sim2.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// cross-check with the official SDK (twilio-node talks to the sim through its supported httpClient hook)
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim with the official twilio-node client", () => {
  const sim = useSim(new TwilioSim());
  let client: ReturnType<typeof twilio>;

  before(() => {
    client = simTwilio(sim.url, sim.defaultAccount.accountSid, sim.defaultAccount.authToken);
  });

  it("creates, fetches and lists through the SDK, which parses the sim's JSON", async () => {
    const m = await client.messages.create({
      to: "+447700900123",
      from: "+15005550006",
      body: "Invoice INV-1042 is overdue",
      mediaUrl: ["https://x.test/a.png", "https://x.test/b.png"],
      statusCallback: "https://nr.example.test/mlc/twilio/status?node=abc",
    });
    assert.match(m.sid, /^MM[0-9a-f]{32}$/);
    assert.equal(m.status, "queued");
    assert.equal(m.numMedia, "2");
    assert.ok(m.dateCreated instanceof Date && !Number.isNaN(m.dateCreated.getTime()), "RFC 2822 date parsed by the SDK");
    const req = sim.requests.at(-1)!;
    assert.equal(req.headers["content-type"], "application/x-www-form-urlencoded");
    assert.deepEqual(req.form!.MediaUrl, ["https://x.test/a.png", "https://x.test/b.png"], "SDK repeats keys; sim parses arrays");
    assert.deepEqual(sim.messages[0].mediaUrl, ["https://x.test/a.png", "https://x.test/b.png"]);

    const fetched = await client.messages(m.sid).fetch();
    assert.equal(fetched.sid, m.sid);
    const list = await client.messages.list({ to: "+447700900123", limit: 5 });
    assert.deepEqual(list.map((x) => x.sid), [m.sid]);
    const account = await client.api.v2010.accounts(sim.defaultAccount.accountSid).fetch();
    assert.equal(account.status, "active");
  });

  it("surfaces sim errors as RestException with Twilio's code and status", async () => {
    await assert.rejects(
      client.messages.create({ to: "+15005550004", from: "+15005550006", body: "x" }),
      (e: { code?: number; status?: number; moreInfo?: string }) =>
        e.code === 21610 && e.status === 400 && e.moreInfo === "https://www.twilio.com/docs/errors/21610",
    );
    sim.injectFault({ status: 429, code: 20429 });
    await assert.rejects(client.messages.create({ to: "+15558675310", from: "+15005550006", body: "x" }), (e: { code?: number; status?: number }) => e.code === 20429 && e.status === 429);
    const bad = simTwilio(sim.url, sim.defaultAccount.accountSid, "wrong");
    await assert.rejects(bad.messages.create({ to: "+15558675310", from: "+15005550006", body: "x" }), (e: { code?: number; status?: number }) => e.code === 20003 && e.status === 401);
  });

  it("accepts the SDK's API-key mode (key sid/secret + accountSid option)", async () => {
    const k = sim.defaultApiKey;
    const viaKey = simTwilio(sim.url, k.sid, k.secret, { accountSid: k.accountSid });
    const m = await viaKey.messages.create({ to: "+15558675310", from: "+15005550006", body: "key" });
    assert.match(m.sid, /^SM/);
    assert.equal(sim.requests.at(-1)!.auth, "apikey");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// status callbacks
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim status callbacks", () => {
  const sim = useSim(new TwilioSim());
  const receiver = useReceiver();
  const token = sim.defaultAccount.authToken;
  const auth = basic(sim.defaultAccount.accountSid, token);
  let messagesUrl: string;

  before(() => {
    messagesUrl = `${sim.url}/2010-04-01/Accounts/${sim.defaultAccount.accountSid}/Messages.json`;
  });

  async function create(extra: Record<string, string> = {}, cbPath = "/mlc/twilio/status?node=abc&send=1"): Promise<string> {
    const r = await call(messagesUrl, {
      auth,
      body: form({ To: "+447700900123", From: "+15005550006", Body: "Invoice INV-1042 is overdue", StatusCallback: receiver.base + cbPath, ...extra }),
    });
    assert.equal(r.status, 201);
    return r.json.sid as string;
  }

  it("deliver(): sent then delivered, signed, no callback for the initial status, validated by twilio.validateRequest", async () => {
    const sid = await create();
    const cbUrl = receiver.base + "/mlc/twilio/status?node=abc&send=1";
    assert.equal(receiver.received.length, 0, "no callback for queued");

    const results = await sim.deliver(sid);
    assert.deepEqual(results.map((r) => r.params.MessageStatus), ["sent", "delivered"]);
    assert.deepEqual(results.map((r) => r.status), [200, 200]);
    assert.equal(receiver.received.length, 2);

    for (const [i, got] of receiver.received.entries()) {
      const status = ["sent", "delivered"][i];
      assert.equal(got.method, "POST");
      assert.equal(got.url, "/mlc/twilio/status?node=abc&send=1");
      assert.equal(got.headers["content-type"], "application/x-www-form-urlencoded");
      assert.equal(got.headers["user-agent"], "TwilioProxy/1.1");
      assert.equal(got.headers["x-home-region"], "us1");
      assert.match(String(got.headers["i-twilio-idempotency-token"]), UUID_V4);
      const sig = String(got.headers["x-twilio-signature"]);
      assert.equal(sig.length, 28);
      assert.equal(twilio.validateRequest(token, sig, cbUrl, got.params), true, "official validator accepts it");
      assert.equal(sig, signTwilioRequest(token, cbUrl, got.params));
      assert.equal(sig, results[i].signature);
      for (const k of ["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "AccountSid", "From", "To", "ApiVersion"]) {
        assert.ok(k in got.params, `${k} present`);
      }
      assert.equal(got.params.MessageSid, sid);
      assert.equal(got.params.SmsSid, sid);
      assert.equal(got.params.MessageStatus, status);
      assert.equal(got.params.SmsStatus, status);
      assert.equal(got.params.AccountSid, sim.defaultAccount.accountSid);
      assert.equal(got.params.From, "+15005550006");
      assert.equal(got.params.To, "+447700900123");
      assert.equal(got.params.ApiVersion, "2010-04-01");
      assert.equal("ErrorCode" in got.params, false);
    }
    assert.equal("RawDlrDoneDate" in receiver.received[0].params, false);
    assert.match(receiver.received[1].params.RawDlrDoneDate, /^\d{10}$/);
    assert.notEqual(receiver.received[0].headers["i-twilio-idempotency-token"], receiver.received[1].headers["i-twilio-idempotency-token"]);

    const msg = sim.getMessage(sid)!;
    assert.equal(msg.status, "delivered");
    assert.deepEqual(msg.history, ["queued", "sent", "delivered"]);
    const fetched = await call(`${sim.url}/2010-04-01/Accounts/${msg.accountSid}/Messages/${sid}.json`, { auth });
    assert.equal(fetched.json.status, "delivered");
    assert.match(fetched.json.date_sent, RFC2822);
  });

  it("keeps the most advanced status when callbacks arrive out of order", async () => {
    const sid = await create();
    await sim.sendStatusCallbacks(sid, ["delivered", "sent"]);
    assert.deepEqual(receiver.received.map((r) => r.params.MessageStatus), ["delivered", "sent"]);
    const msg = sim.getMessage(sid)!;
    assert.equal(msg.status, "delivered");
    assert.deepEqual(msg.history, ["queued", "delivered", "sent"]);
    // a failure after delivered does not win either, and undelivered stays final
    const sid2 = await create();
    await sim.sendStatusCallbacks(sid2, ["undelivered", "sent", "delivered"]);
    assert.equal(sim.getMessage(sid2)!.status, "undelivered");
  });

  it("adds ErrorCode for undelivered/failed and reflects it as error_code", async () => {
    const sid = await create();
    await sim.deliver(sid, "undelivered", { errorCode: 30007 });
    const last = receiver.received.at(-1)!;
    assert.equal(last.params.MessageStatus, "undelivered");
    assert.equal(last.params.ErrorCode, "30007");
    assert.match(last.params.RawDlrDoneDate, /^\d{10}$/);
    assert.equal(sim.getMessage(sid)!.errorCode, 30007);
    const fetched = await call(`${sim.url}/2010-04-01/Accounts/${sim.defaultAccount.accountSid}/Messages/${sid}.json`, { auth });
    assert.equal(fetched.json.error_code, 30007);
    assert.equal(fetched.json.status, "undelivered");

    const sid2 = await create();
    const res = await sim.deliver(sid2, "failed");
    assert.deepEqual(res.map((r) => r.params.MessageStatus), ["failed"]);
    assert.equal(res[0].params.ErrorCode, "30001");
    assert.equal("RawDlrDoneDate" in res[0].params, false);
  });

  it("duplicate re-sends each callback with the same idempotency token and signature", async () => {
    const sid = await create();
    const res = await sim.sendStatusCallbacks(sid, ["sent", "delivered"], { duplicate: true });
    assert.equal(res.length, 4);
    assert.equal(receiver.received.length, 4);
    const tokens = receiver.received.map((r) => String(r.headers["i-twilio-idempotency-token"]));
    assert.equal(tokens[0], tokens[1]);
    assert.equal(tokens[2], tokens[3]);
    assert.notEqual(tokens[0], tokens[2]);
    assert.equal(receiver.received[0].rawBody, receiver.received[1].rawBody);
    assert.equal(receiver.received[0].headers["x-twilio-signature"], receiver.received[1].headers["x-twilio-signature"]);
    assert.deepEqual(res.map((r) => r.duplicate), [false, true, false, true]);
    assert.deepEqual(sim.getMessage(sid)!.history, ["queued", "sent", "delivered"]);
  });

  it("tamper and signWithToken produce forged signatures that the official validator rejects", async () => {
    const sid = await create();
    const cbUrl = receiver.base + "/mlc/twilio/status?node=abc&send=1";
    const [forged] = await sim.sendStatusCallbacks(sid, ["sent"], { tamper: true });
    assert.equal(forged.signature.length, 28);
    assert.equal(twilio.validateRequest(token, forged.signature, cbUrl, receiver.received[0].params), false);

    const [other] = await sim.sendStatusCallbacks(sid, ["delivered"], { signWithToken: sim.defaultApiKey.secret });
    const got = receiver.received[1];
    assert.equal(twilio.validateRequest(token, String(got.headers["x-twilio-signature"]), cbUrl, got.params), false);
    assert.equal(twilio.validateRequest(sim.defaultApiKey.secret, other.signature, cbUrl, got.params), true);

    await sim.sendStatusCallbacks(sid, ["read"], { omitSignature: true });
    assert.equal(receiver.received[2].headers["x-twilio-signature"], undefined);
  });

  it("Messaging Service message: queued callback first, sender picked from the pool, MessagingServiceSid sent", async () => {
    const r = await call(messagesUrl, {
      auth,
      body: form({ To: "+447700900123", MessagingServiceSid: DEFAULT_MESSAGING_SERVICE_SID, Body: "hi", StatusCallback: receiver.base + "/cb" }),
    });
    const res = await sim.deliver(r.json.sid);
    assert.deepEqual(res.map((x) => x.params.MessageStatus), ["queued", "sent", "delivered"]);
    for (const x of res) {
      assert.equal(x.params.MessagingServiceSid, DEFAULT_MESSAGING_SERVICE_SID);
      assert.equal(x.params.From, "+15005550006");
      assert.equal(twilio.validateRequest(token, x.signature, receiver.base + "/cb", x.params), true);
    }
    assert.equal(sim.getMessage(r.json.sid)!.numSegments, "1");
  });

  it("signs extra parameters and URL basic-auth credentials, and reports receiver failures without throwing", async () => {
    const sid = await create({}, "/cb");
    const [x] = await sim.sendStatusCallbacks(sid, ["sent"], { extraParams: { ToCountry: "GB", ChannelPrefix: "sms" } });
    assert.equal(receiver.received[0].params.ToCountry, "GB");
    assert.equal(twilio.validateRequest(token, x.signature, receiver.base + "/cb", receiver.received[0].params), true);

    const withCreds = receiver.base.replace("http://", "http://user:p%40ss@") + "/cb?x=1#rc=2";
    const [y] = await sim.sendStatusCallbacks(sid, ["delivered"], { url: withCreds });
    const got = receiver.received[1];
    assert.equal(got.url, "/cb?x=1");
    assert.equal(got.headers.authorization, "Basic " + Buffer.from("user:p@ss").toString("base64"));
    assert.equal(y.signedUrl, withCreds.split("#")[0]);
    assert.equal(twilio.validateRequest(token, y.signature, withCreds.split("#")[0], got.params), true);

    receiver.setStatus(500);
    const [z] = await sim.sendStatusCallbacks(sid, ["read"]);
    assert.equal(z.status, 500);
    const [dead] = await sim.sendStatusCallbacks(sid, ["read"], { url: "http://127.0.0.1:1/cb" });
    assert.equal(dead.status, 0);
    assert.ok(dead.error);
  });

  it("applies statuses without sending when the message has no StatusCallback", async () => {
    const r = await call(messagesUrl, { auth, body: form({ To: "+447700900123", From: "+15005550006", Body: "hi" }) });
    const res: CallbackResult[] = await sim.deliver(r.json.sid);
    assert.deepEqual(res, []);
    assert.equal(receiver.received.length, 0);
    assert.equal(sim.getMessage(r.json.sid)!.status, "delivered");
    await assert.rejects(sim.deliver("SM" + "0".repeat(32)), /unknown message/);
    await assert.rejects(sim.sendStatusCallbacks(r.json.sid, ["bogus"]), /unknown message status/);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// faults and limits
// ---------------------------------------------------------------------------------------------------------------------

describe("TwilioSim fault injection and rate limiting", () => {
  const sim = useSim(new TwilioSim());
  const auth = basic(sim.defaultAccount.accountSid, sim.defaultAccount.authToken);
  const body = form({ To: "+15558675310", From: "+15005550006", Body: "hi" });
  let messagesUrl: string;

  before(() => {
    messagesUrl = `${sim.url}/2010-04-01/Accounts/${sim.defaultAccount.accountSid}/Messages.json`;
  });

  it("429 / 20429 with Retry-After for the next n creates, then normal service; nothing created by the 429s", async () => {
    sim.injectFault({ status: 429, code: 20429, retryAfter: 2 }, 2);
    assert.equal(sim.pendingFaults, 2);
    for (let i = 0; i < 2; i++) {
      const r = await call(messagesUrl, { auth, body });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get("retry-after"), "2");
      assert.deepEqual(r.json, { code: 20429, message: "Too Many Requests", more_info: "https://www.twilio.com/docs/errors/20429", status: 429 });
    }
    assert.equal(sim.messages.length, 0);
    const ok = await call(messagesUrl, { auth, body });
    assert.equal(ok.status, 201);
    assert.equal(sim.messages.length, 1);
    assert.equal(sim.pendingFaults, 0);
  });

  it("faults only hit Messages creates that authenticated (GETs and 401s do not consume them)", async () => {
    sim.injectFault({ status: 500 });
    assert.equal((await call(messagesUrl, { auth })).status, 200);
    assert.equal((await call(messagesUrl, { auth: basic(sim.defaultAccount.accountSid, "x"), body })).status, 401);
    const r = await call(messagesUrl, { auth, body });
    assert.equal(r.status, 500);
    assert.equal(r.json.code, 20500);
    assert.equal(r.headers.get("retry-after"), null);
    assert.equal(sim.messages.length, 0);
  });

  it("500 with createMessage models an unknown outcome that did create the message", async () => {
    sim.injectFault({ status: 500, createMessage: true });
    const r = await call(messagesUrl, { auth, body });
    assert.equal(r.status, 500);
    assert.equal(sim.messages.length, 1);
    assert.equal(sim.requests.at(-1)!.messageSid, sim.messages[0].sid);
  });

  it("dropConnection destroys the socket without an answer, but the message IS created", async () => {
    sim.injectFault({ dropConnection: true });
    await assert.rejects(call(messagesUrl, { auth, body }));
    assert.equal(sim.messages.length, 1);
    assert.equal(sim.messages[0].to, "+15558675310");
    const req = sim.requests.at(-1)!;
    assert.equal(req.status, 0);
    assert.equal(req.messageSid, sim.messages[0].sid);
    // the next request is served normally
    assert.equal((await call(messagesUrl, { auth, body })).status, 201);
  });

  it("delayMs answers late; a client timing out leaves a created message behind", async () => {
    sim.injectFault({ delayMs: 300 });
    const t0 = Date.now();
    const slow = await call(messagesUrl, { auth, body });
    assert.equal(slow.status, 201);
    assert.ok(Date.now() - t0 >= 280, `answered after ${Date.now() - t0} ms`);

    sim.injectFault({ delayMs: 400 });
    await assert.rejects(call(messagesUrl, { auth, body, signal: AbortSignal.timeout(100) }));
    assert.equal(sim.messages.length, 2);
    // let the late answer go out before the next test
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(sim.requests.at(-1)!.status, 201);
  });

  it("concurrencyLimit: requests above N in flight get 429 / 20429 without Retry-After and create nothing", async () => {
    const limited = new TwilioSim({ concurrencyLimit: 2, latencyMs: 200 });
    const base = await limited.start();
    try {
      const url = `${base}/2010-04-01/Accounts/${limited.defaultAccount.accountSid}/Messages.json`;
      const a = basic(limited.defaultAccount.accountSid, limited.defaultAccount.authToken);
      const results = await Promise.all(Array.from({ length: 5 }, () => call(url, { auth: a, body })));
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 201, 429, 429, 429]);
      for (const r of results.filter((x) => x.status === 429)) {
        assert.equal(r.json.code, 20429);
        assert.equal(r.headers.get("retry-after"), null);
      }
      assert.equal(limited.messages.length, 2);
      // capacity is released once requests finish
      assert.equal((await call(url, { auth: a, body })).status, 201);
    } finally {
      await limited.stop();
    }
  });

  it("reset() clears ledger, requests and pending faults; stop() closes the port", async () => {
    await call(messagesUrl, { auth, body });
    sim.injectFault({ status: 500 }, 3);
    sim.reset();
    assert.equal(sim.messages.length, 0);
    assert.equal(sim.requests.length, 0);
    assert.equal(sim.pendingFaults, 0);

    const s = new TwilioSim();
    const b = await s.start();
    await s.stop();
    await assert.rejects(fetch(`${b}/2010-04-01/Accounts/${s.defaultAccount.accountSid}.json`));
    assert.throws(() => s.url, /not started/);
  });
});
