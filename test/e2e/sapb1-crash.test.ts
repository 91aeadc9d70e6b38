/**
 * SAP Business One under `kill -9`, as a palette user runs it: the packed package installed into a fresh Node-RED user
 * dir with the README's store settings, the three shipped examples (examples/sapb1/) deployed unchanged against the
 * strict HTTPS Service Layer simulator (self-signed, trusted through SAPB1_CA) and the Twilio simulator. Thirty
 * purchase invoices arrive in one minute; the "purchase invoice SMS" example polls them and Node-RED is killed with
 * SIGKILL at three points, restarted after each:
 *
 * 1. between poll and journal: the moment the Service Layer has answered the poll that carries the invoices (nothing
 *    of that poll journaled, the watermark not moved);
 * 2. between journal and send: Twilio receives the k2-th create and Node-RED dies before it is processed (the event
 *    journaled and the send claimed, Twilio has nothing);
 * 3. between send and record: the k3-th create is processed, Node-RED dies before the answer reaches it (Twilio has
 *    the message, the ledger no sid: looked up, not re-sent).
 *
 * At the end every invoice has exactly one SMS (0 lost, 0 double), and the Service Layer saw one Login for the whole
 * run: the session kept on disk (encrypted) is reused after each crash, so no session is left behind to time out
 * (reference sap-business-one.md §2: a new Login while the previous session lives is a client bug). The figures are
 * printed. MLC_NODE_RED / MLC_NODE_BIN select another Node-RED line (CI runs Node-RED 5 on Node 22).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Stack, startStack } from "../harness/stack";
import { tempDir, waitFor, waitProgress } from "../harness/nodered";

const INVOICES = 30;
const pad = (n: number): string => String(n).padStart(2, "0");

describe("end to end: SAP Business One polling under kill -9 (poll/journal, journal/send, send/record)", function () {
  this.timeout(600000);
  let stack: Stack;
  let root: string;

  before(async function () {
    root = tempDir("mlc-e2e-sapb1-crash-");
    const logFile = process.env.MLC_E2E_LOG;
    stack = await startStack({ userDir: path.join(root, "user"), install: "pack", families: ["sapb1"], pollIntervalSec: 1, onLog: logFile ? (l) => fs.appendFileSync(logFile, l + "\n") : undefined });
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && stack) process.stderr.write(stack.nodeRed.log.slice(-40).join("\n") + "\n");
  });

  after(async function () {
    if (stack) {
      stack.twilio.onFault = undefined;
      stack.sapb1.onAnswered = undefined;
    }
    await stack?.stop();
    if (root && !process.env.MLC_KEEP_E2E) fs.rmSync(root, { recursive: true, force: true });
  });

  it("thirty invoices, three kills: each texted exactly once, one Login for the whole run", async function () {
    const sim = stack.sapb1;
    const twilio = stack.twilio;
    const started = Date.now();
    const log: string[] = [];
    let crashes: Promise<void> = Promise.resolve();
    const crash = (why: string): void => {
      const t0 = Date.now();
      const killed = stack.nodeRed.kill(); // SIGKILL is sent synchronously
      crashes = crashes
        .then(() => killed)
        .then(() => stack.nodeRed.start(120000))
        .then(() => void log.push(`${why}: restarted in ${Date.now() - t0} ms`));
    };
    const invoicePolls = (): number => sim.dataRequests.filter((r) => r.path.endsWith("/PurchaseInvoices") && r.status === 200).length;
    await waitFor(() => invoicePolls() >= 2, 60000, "the purchase invoice poll running (its start watermark saved)");

    // Kill 1: the poll that carries the invoices has just been answered.
    let kill1 = false;
    sim.onAnswered = (r) => {
      if (kill1 || !r.path.endsWith("/PurchaseInvoices") || !r.rows) return;
      kill1 = true;
      sim.onAnswered = undefined;
      crash(`kill 1 (poll answered with ${r.rows} invoices, nothing journaled yet)`);
    };
    const at = Date.now() + 1000;
    for (let i = 1; i <= INVOICES; i++) {
      const d = new Date(at + i * 100);
      const stamp = { UpdateDate: d.toISOString().slice(0, 10), UpdateTime: `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` };
      sim.put("PurchaseInvoices", { DocEntry: 500 + i, DocNum: 9500 + i, CardCode: "V1", CardName: "Crash Supplies", DocDate: stamp.UpdateDate, DocDueDate: stamp.UpdateDate, DocTotal: 100 + i, DocCurrency: "USD", PaidToDate: 0, DocumentStatus: "bost_Open", Cancelled: "tNO", CreationDate: stamp.UpdateDate, ...stamp });
    }
    // (the invoices are read once their minute has passed)
    await waitFor(() => kill1, 150000, "kill 1 at the poll that reads the invoices");
    await crashes;

    const texted = (): Map<number, number> => {
      const m = new Map<number, number>();
      for (const msg of twilio.messages) {
        const n = Number(/^New purchase invoice (\d+) from Crash Supplies/.exec(msg.body)?.[1]);
        if (n) m.set(n, (m.get(n) ?? 0) + 1);
      }
      return m;
    };
    // Kills 2 and 3, armed on the Twilio simulator once the k-th create has arrived.
    const armAt = async (count: number, fault: { discard?: boolean; dropConnection?: boolean }, why: string): Promise<void> => {
      if (!(await waitProgress(() => twilio.messages.length, count, 90000))) {
        log.push(`${why}: not reached (SMS stopped at ${twilio.messages.length})`);
        return;
      }
      await new Promise<void>((resolve) => {
        twilio.onFault = () => {
          twilio.onFault = undefined;
          crash(why);
          resolve();
        };
        twilio.injectFault(fault);
      });
      await crashes;
    };
    await armAt(4, { discard: true }, "kill 2 (create 5 received, not processed: journaled and claimed, not sent)");
    await armAt(14, { dropConnection: true }, "kill 3 (create 15 processed, answer lost: sent, not recorded)");

    // unknown outcomes are looked up after their 30 s window; then more polls give any double a chance to show up
    await waitProgress(() => texted().size, INVOICES, 90000);
    const polled = invoicePolls();
    await waitFor(() => invoicePolls() >= polled + 5, 60000, "more polls after the last send");
    const counts = texted();
    const lost = Array.from({ length: INVOICES }, (_, i) => 9501 + i).filter((n) => !counts.has(n));
    const doubles = [...counts].filter(([, n]) => n > 1).map(([d]) => d);
    const okLogins = sim.logins.filter((l) => l.ok);
    process.stdout.write(
      [
        ...log.map((l) => `      ${l}`),
        `      SMS ${[...counts.values()].reduce((a, b) => a + b, 0)} for ${counts.size}/${INVOICES} invoices; lost ${lost.length}, double ${doubles.length}`,
        `      Service Layer Logins ${okLogins.length}, live sessions ${sim.liveSessions()}, logouts ${sim.logouts.length}`,
        `      took ${Math.round((Date.now() - started) / 1000)} s`,
      ].join("\n") + "\n",
    );
    assert.equal(log.filter((l) => l.startsWith("kill")).length, 3, `three kills: ${log.join("; ")}`);
    assert.deepEqual(lost, [], "invoices never texted (lost)");
    assert.deepEqual(doubles, [], "invoices texted twice");
    assert.equal(okLogins.length, 1, "one Login for the whole run: the kept session is reused after each kill -9");
    assert.equal(sim.liveSessions(), 1, "no session left behind to time out");
    assert.deepEqual(sim.violations, []);
    const out = stack.nodeRed.log.join("\n");
    assert.doesNotMatch(out, new RegExp(`${sim.password}|B1SESSION=`));
    for (const id of sim.sessions.keys()) assert.ok(!out.includes(id), "session id in the log");
  });
});
