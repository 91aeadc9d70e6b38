/**
 * End to end, as a palette user runs it: the packed package installed into a fresh Node-RED user dir with the
 * README's store settings (test/harness/nodered.ts), the shipped example examples/intacct/payments-cleared.json
 * deployed unchanged with its `${VAR}` environment and credentials, against the strict Intacct simulator, the Twilio
 * simulator (status by polling: no public URL) and the SendGrid simulator. An AP payment that cleared → exactly one
 * notice to the vendor: SMS to a mobile (E.164 from free text), e-mail when the vendor has only an address, audited
 * either way; a payment not cleared → none; the same payment read again (poll overlap, saved again) → none; a vendor
 * nobody can reach → an audit record `no-contact-found`; a create Twilio answers 503 → looked up, sent again, texted
 * once; `kill -9` the moment the first notice of a burst reaches Twilio → after the restart every payment noticed
 * exactly once. One getAPISession for the whole run, no trap of the reference hit, no secret in the log.
 * MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { deriveJobId } from "../../nodes/lib/ids";
import { IntacctSim } from "../sims/intacct";
import { DEFAULT_SENDGRID_KEY, SendGridSim } from "../sims/sendgrid";
import { TwilioSim } from "../sims/twilio";
import { AUDIT_PROBE, FlowNode, auditOf } from "../harness/stack";
import { NodeRed, freePort, installInto, packRepo, tempDir, waitFor } from "../harness/nodered";

const EXAMPLE = path.resolve(__dirname, "..", "..", "..", "examples", "intacct", "payments-cleared.json");
/** Credentials as a user types them into the config nodes: `${VAR}` references. */
const REFS: Record<string, Record<string, string>> = {
  "mlc-intacct-config": { senderId: "${INTACCT_SENDER_ID}", senderPassword: "${INTACCT_SENDER_PASSWORD}", userId: "${INTACCT_USER_ID}", userPassword: "${INTACCT_USER_PASSWORD}" },
  "mlc-twilio-config": { accountSid: "${TWILIO_ACCOUNT_SID}", authToken: "${TWILIO_AUTH_TOKEN}", sendgridApiKey: "${SENDGRID_API_KEY}" },
};

describe("end to end: the Intacct payments-cleared example (packed and installed)", function () {
  this.timeout(300000);
  let intacct: IntacctSim;
  let twilio: TwilioSim;
  let sendgrid: SendGridSim;
  let nodeRed: NodeRed;
  let root: string;
  let recordNo = 900;

  before(async function () {
    intacct = new IntacctSim();
    twilio = new TwilioSim();
    sendgrid = new SendGridSim();
    await intacct.start();
    await twilio.start();
    await sendgrid.start();
    intacct.upsert("VENDOR", { RECORDNO: "1", VENDORID: "V1007", NAME: "Blue Ridge Paper", "DISPLAYCONTACT.CELLPHONE": "(415) 555-0142", "DISPLAYCONTACT.EMAIL1": "ar@blueridge.example", WHENMODIFIED: "01/01/2025 00:00:00" });
    intacct.upsert("VENDOR", { RECORDNO: "2", VENDORID: "V2000", NAME: "Harbor Supply", "DISPLAYCONTACT.EMAIL1": "billing@harbor.example", WHENMODIFIED: "01/01/2025 00:00:00" });
    intacct.upsert("VENDOR", { RECORDNO: "3", VENDORID: "V3000", NAME: "Nobody Ltd", WHENMODIFIED: "01/01/2025 00:00:00" });
    root = tempDir("mlc-e2e-intacct-pay-");
    const userDir = path.join(root, "user");
    installInto(userDir, packRepo(path.join(root, "pack")));
    const port = await freePort();
    nodeRed = new NodeRed({
      userDir,
      port,
      env: {
        INTACCT_URL: intacct.endpoint,
        INTACCT_COMPANY_ID: intacct.companyId,
        INTACCT_TIMEZONE: intacct.timeZone,
        INTACCT_SENDER_ID: intacct.senderId,
        INTACCT_SENDER_PASSWORD: intacct.senderPassword,
        INTACCT_USER_ID: intacct.userId,
        INTACCT_USER_PASSWORD: intacct.userPassword,
        TWILIO_API_URL: twilio.url,
        TWILIO_ACCOUNT_SID: twilio.defaultAccount.accountSid,
        TWILIO_AUTH_TOKEN: twilio.defaultAccount.authToken,
        TWILIO_FROM: "+15005550006",
        TWILIO_SENDER_RATE: "100",
        MAIL_FROM: "Acme Accounts Payable <ap@acme.example>",
        SENDGRID_API_URL: sendgrid.url,
        SENDGRID_API_KEY: DEFAULT_SENDGRID_KEY,
        // set but empty, as the example's comment says when SendGrid's Event Webhook is not used (the Twilio account
        // refuses to send e-mail while an unset ${SENDGRID_VERIFICATION_KEY} reference is in its SendGrid tab)
        SENDGRID_VERIFICATION_KEY: "",
        POLL_INTERVAL: "2",
      },
    });
    await nodeRed.start();
    const flows = (JSON.parse(fs.readFileSync(EXAMPLE, "utf8")) as FlowNode[]).map((n): FlowNode => (REFS[n.type] ? { ...n, credentials: { ...REFS[n.type] } } : n));
    await nodeRed.deploy([...flows, ...AUDIT_PROBE]);
    // the trigger polls from "now": wait until it has polled (its start watermark saved) before changing payments
    await waitFor(() => polls() >= 2, 60000, "the APPYMT poll running");
  });

  afterEach(async function () {
    if (this.currentTest?.state !== "failed" || !nodeRed) return;
    process.stderr.write(nodeRed.log.slice(-40).join("\n") + "\n");
    // failures go to the audit trail (Catch → mlc-audit), not to the log: show them
    process.stderr.write(`failed sends: ${JSON.stringify(await auditOf(nodeRed.url).catch((e: unknown) => String(e)))}\n`);
  });

  after(async function () {
    if (twilio) twilio.onFault = undefined;
    await nodeRed?.stop();
    await sendgrid?.stop();
    await twilio?.stop();
    await intacct?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  function polls(): number {
    return intacct.log.filter((l) => l.functions.includes("readByQuery") && l.objects?.includes("APPYMT") && l.outcome === "ok").length;
  }
  function vendorLookups(): number {
    return intacct.log.filter((l) => l.functions.includes("query") && l.objects?.includes("VENDOR") && l.outcome === "ok").length;
  }
  /** A payment as Intacct stores it (values as text), modified now in the company's time. */
  function pay(doc: string, vendor: string, cleared: "T" | "F", no = String(recordNo++)): string {
    intacct.upsert("APPYMT", { RECORDNO: no, VENDORID: vendor, DOCNUMBER: doc, STATE: "C", CLEARED: cleared, CLRDATE: cleared === "T" ? "03/12/2025" : "", TOTALENTERED: "1250.00", CURRENCY: "USD", WHENMODIFIED: intacct.timeText() });
    return no;
  }
  function jobIdOf(no: string): string {
    return deriveJobId({ system: "intacct", tenant: intacct.companyId, entity: "APPYMT", id: `APPYMT/${no}`, version: "C|T" });
  }
  function texts(doc: string): number {
    return twilio.messages.filter((m) => m.body.includes(`payment ${doc} `)).length;
  }
  async function morePolls(n: number): Promise<void> {
    const from = polls();
    await waitFor(() => polls() >= from + n, 60000, `${n} more polls`);
  }

  it("a cleared payment texts the vendor's mobile once (E.164, audited with its sid); one not cleared texts nobody", async function () {
    const no = pay("CHK-5001", "V1007", "T");
    pay("CHK-5002", "V1007", "F");
    await waitFor(() => texts("CHK-5001") === 1, 60000, "the payment notice");
    const sms = twilio.messages.find((m) => m.body.includes("payment CHK-5001 "));
    assert.equal(sms?.to, "+14155550142");
    assert.match(sms?.body ?? "", /^Blue Ridge Paper: payment CHK-5001 of 1250(\.00)? USD from us has cleared \(2025-03-12/);
    const record = await waitFor(async () => (await auditOf(nodeRed.url, jobIdOf(no))).find((r) => r.sid === sms?.sid), 20000, "the audit record");
    assert.equal(record.channel, "sms");
    // status by polling: Twilio reports delivery, the node's poll carries it into the record
    await twilio.deliver(String(sms?.sid), "delivered");
    await waitFor(async () => (await auditOf(nodeRed.url, jobIdOf(no)))[0]?.status === "delivered", 60000, "delivered, by status polling");
    await morePolls(2);
    assert.equal(texts("CHK-5001"), 1);
    assert.equal(texts("CHK-5002"), 0, "not cleared: no notice");
    assert.equal(vendorLookups(), 1);
  });

  it("the same payment again (saved again, re-read by the overlap) notices nobody", async function () {
    const before = twilio.messages.length;
    const no = pay("CHK-5003", "V1007", "T");
    await waitFor(() => texts("CHK-5003") === 1, 60000, "the notice of CHK-5003");
    pay("CHK-5003", "V1007", "T", no); // saved again: a newer WHENMODIFIED, still cleared
    await morePolls(3);
    assert.equal(twilio.messages.length, before + 1, "one notice, not two");
  });

  it("a vendor with only an e-mail address gets an e-mail; one nobody can reach is audited as no-contact-found", async function () {
    pay("CHK-6001", "V2000", "T");
    const mail = await waitFor(() => sendgrid.mails.find((m) => m.subject.includes("CHK-6001")), 60000, "the e-mail notice");
    assert.deepEqual(mail.to, ["billing@harbor.example"]);
    const none = pay("CHK-7001", "V3000", "T");
    const rec = await waitFor(async () => (await auditOf(nodeRed.url)).find((r) => r.jobId === jobIdOf(none)), 60000, "the no-contact-found record");
    assert.equal(rec.status, "no-contact-found");
    await morePolls(2);
    assert.equal((await auditOf(nodeRed.url)).filter((r) => r.jobId === jobIdOf(none)).length, 1, "recorded once across polls");
    assert.equal(texts("CHK-7001"), 0);
  });

  it("a create Twilio answers 503 is sent again once a lookup shows Twilio has no such message (Retries): the vendor is texted once", async function () {
    twilio.injectFault({ status: 503 });
    pay("CHK-8001", "V1007", "T");
    await waitFor(() => texts("CHK-8001") === 1, 60000, "the notice after the retry");
    assert.equal(twilio.pendingFaults, 0, "the 503 was answered");
    await morePolls(2);
    assert.equal(texts("CHK-8001"), 1);
  });

  it("kill -9 as the first notice of a burst reaches Twilio: after the restart every payment is noticed exactly once", async function () {
    const docs = ["K-1", "K-2", "K-3"];
    let restarted: Promise<void> | undefined;
    let killed = false;
    twilio.onFault = () => {
      twilio.onFault = undefined;
      killed = true;
      restarted = nodeRed.kill().then(() => nodeRed.start(120000));
    };
    twilio.injectFault({ discard: true });
    for (const d of docs) pay(d, "V1007", "T");
    await waitFor(() => killed, 60000, "the kill at the first notice");
    await restarted;
    await waitFor(() => docs.every((d) => texts(d) >= 1), 120000, "a notice for every payment").catch(() => undefined);
    await morePolls(2);
    assert.deepEqual(docs.filter((d) => texts(d) === 0), [], "payments never noticed (lost)");
    assert.deepEqual(docs.filter((d) => texts(d) > 1), [], "payments noticed twice");
    assert.equal(texts("CHK-5001"), 1, "nothing earlier texted again after the restart");
    assert.equal(intacct.logins, 1, "one getAPISession for the whole run, kill -9 included");
    assert.deepEqual(intacct.violations, []);
    for (const secret of [intacct.senderPassword, intacct.userPassword, twilio.defaultAccount.authToken, DEFAULT_SENDGRID_KEY, ...intacct.sessions.keys()]) {
      assert.ok(!nodeRed.log.some((l) => l.includes(secret)), "no secret or session id in the log");
    }
  });
});
