/**
 * Keeps the README's quick start true: the built `npm run demo` (dist/scripts/demo.js) run as a user runs it, as a
 * child process, once for every family (no argument, `--exit`), on a free port and a temporary user dir. Checked: exit
 * code 0, no step marked "(!)" (a story that did not see what it expected), and for each family the lines that tell
 * its story: the SMS and calls Twilio received, the forged deliveries refused, the write-back (every example's status
 * callbacks are served by its own status node: a 404 would be a "(!)" step). An unknown family gets
 * the usage and exit code 2, with no Node-RED started. No secret of the simulators appears in what the demo prints.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT, tempDir } from "../harness/nodered";

const DEMO = path.join(REPO_ROOT, "dist", "scripts", "demo.js");

/** Run the built demo with `args`; resolves with its exit code and everything it printed. */
function runDemo(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** What each family's story must show (README "Quick start"). */
const STORY: Record<string, RegExp[]> = {
  acumatica: [/to \+14155550132 {2}"Approval needed: bill 000123 from Contoso Freight LLC/, /"Payment 000313 from customer C000017 failed/, /a forged callback claiming 'failed' → HTTP 403/, /bill 000123: ml-connector: SMS delivered/],
  intacct: [/to \+14155550123 {2}"Approval needed: bill INV-88231 from Blue Ridge Paper for 1250\.00 USD/, /SMS about INV-88231 so far: 1 /, /presses 1 → keypress webhook HTTP 200/, /1 getAPISession/, /to \+14155550143 {2}"Harbor Supply: payment CHK-5001 of 1250\.00 USD from us has cleared/, /SMS about CHK-5001 1, about CHK-5002 0/],
  exact: [/validation calls answered: 200, 200/, /to \+31612345678 {2}"Anna de Vries, invoice 25000201/, /reminders for 25000201: 1 /, /e-mail through SendGrid to bram@beta\.example/, /→ HTTP 401, 401, 401; reminders for 25000203: 0/, /to \+31687654321 {2}"Bas Bakker, thank you for your order 7001 of 250 EUR/, /e-mail through SendGrid to sales@parts\.example: "Purchase order 8001"/, /to \+31687654321 {2}"Bas Bakker, your delivery 9001 is on its way with PostNL, tracking number 3SABCD1234567/, /nothing sent \(SMS about 7101: 0\); audit: SalesOrders \S+ {2}none .*skipped\(opted-out\)/],
  bc: [/validationToken=… → HTTP 200, token echoed/, /"Purchase invoice PI-2001 from Contoso Freight posted/, /→ HTTP 401; nothing read, nothing sent/, /to \+14155550101 {2}"Lakeside Bikes Ltd\.: invoice PS-INV1001/, /pressed again the same day: reminders 2 /, /to \+14155550111 {2}"Trey Research: thank you, we received your payment for invoice PS-INV3001/, /receipts for PS-INV3001: 1 /, /to \+14155550199 {2}"Credit limit: Lakeside Bikes Ltd\. \(C00042\) owes 5820\.75 USD/, /a wrong code → HTTP 200 \{"result":"pending","released":false\}; PATCHes to the vendor: 0/, /the right code → HTTP 200 \{"result":"approved","released":true,"vendor":"V00010"\}/, /If-Match W\/"[^"]+": blocked is now "_x0020_"/],
  sapb1: [/to \+14155550142 {2}"Reorder A00001 \(Helmet\)/, /Invoice 7 0 0 7 for Lakeside Bikes/, /"New purchase invoice 9001 from Acme Supplies/, /U_NotifyStatus = "SMS \w+ SM[0-9a-f]{32}"/, /reorder SMS 1, overdue calls 1, AP SMS 1/],
};

describe("end to end: npm run demo (the README quick start)", function () {
  this.timeout(420000);
  let root: string;

  before(function () {
    if (!fs.existsSync(DEMO)) throw new Error(`${DEMO} missing: build first`);
    root = tempDir("mlc-e2e-demo-");
  });
  after(function () {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it("an unknown family: the usage and exit code 2", async function () {
    const r = await runDemo(["netsuite", "--exit"], { MLC_DEMO_PORT: "0", MLC_DEMO_DIR: path.join(root, "unknown") });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown family "netsuite"/);
    assert.match(r.stderr, /usage: npm run demo \[-- <family>\.\.\.\] \[--exit\]/);
    assert.match(r.stderr, /acumatica, intacct, exact, bc, sapb1/);
    assert.equal(r.stdout, "", "no Node-RED started");
  });

  it("every family's story, one after the other in one Node-RED, exit code 0", async function () {
    const r = await runDemo(["--exit"], { MLC_DEMO_PORT: "0", MLC_DEMO_DIR: path.join(root, "all"), CI: "1" });
    if (r.code !== 0) process.stderr.write(r.stdout.slice(-4000) + r.stderr.slice(-4000));
    assert.equal(r.code, 0);
    assert.deepEqual(r.stdout.split("\n").filter((l) => l.includes("(!)")), [], "every step went as expected");
    const blocks = r.stdout.split(/\n== /).slice(1);
    assert.deepEqual(blocks.map((b) => b.slice(0, b.indexOf(":"))), Object.keys(STORY), "one story per family, in order");
    for (const [i, [family, lines]] of Object.entries(STORY).entries()) {
      for (const re of lines) assert.match(blocks[i], re, `${family}: ${re}`);
    }
    assert.match(r.stdout, /Done: 5 stories told\./);
    for (const secret of ["P@ss-w0rd", "s3cr3t~value", "senderPw!", "userPw!", "sim-client-secret", "sim-webhook-secret-123", "k7Qp9v-shared-secret"]) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), "no secret printed");
    }
  });
});
