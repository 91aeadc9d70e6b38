/**
 * `mlc-twilio-status` has no input message, so a failure it meets while answering Twilio must reach Catch through
 * node.error(err, msg) (node-red-runtime.md §2: node.error(err) without a msg only logs). Here the audit trail cannot
 * be written (the store behind global context fails): each callback is answered 503 (Twilio retries it), and the
 * failure reaches Catch once, not once per retry.
 */
import assert from "node:assert/strict";
import type { TestFlowNode } from "node-red-node-test-helper";
import { Testbed, settle, until } from "../harness/red-testbed";
import { TwilioSim } from "../sims/twilio";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const twilioNodes = require("../../nodes/twilio") as (RED: unknown) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const flowNodes = require("../../nodes/flow") as (RED: unknown) => void;

type Cb = (err?: Error | null, ...values: unknown[]) => void;

/** A context store (Node-RED's plugin contract) that keeps everything in memory and fails global scope on demand. */
const failing = { global: false };
function flakyStore(): unknown {
  const data = new Map<string, Map<string, string>>();
  const scopeOf = (s: string): Map<string, string> => data.get(s) ?? (data.set(s, new Map()), data.get(s) as Map<string, string>);
  const down = (scope: string): Error | undefined => (failing.global && scope === "global" ? new Error("global context store unavailable") : undefined);
  return {
    open: () => Promise.resolve(),
    close: () => Promise.resolve(),
    get(scope: string, key: string | string[], cb: Cb) {
      const err = down(scope);
      if (err) return cb(err);
      const read = (k: string): unknown => {
        const v = scopeOf(scope).get(k);
        return v === undefined ? undefined : JSON.parse(v);
      };
      return Array.isArray(key) ? cb(null, ...key.map(read)) : cb(null, read(key));
    },
    set(scope: string, key: string, value: unknown, cb?: Cb) {
      const err = down(scope);
      if (err) return cb?.(err);
      if (value === undefined) scopeOf(scope).delete(key);
      else scopeOf(scope).set(key, JSON.stringify(value));
      return cb?.(null);
    },
    keys(scope: string, cb: (err: Error | null, keys?: string[]) => void) {
      const err = down(scope);
      return err ? cb(err) : cb(null, [...scopeOf(scope).keys()]);
    },
    delete: (scope: string) => Promise.resolve(void data.delete(scope)),
    clean: () => Promise.resolve(),
  };
}

const sim = new TwilioSim();
const ACCOUNT = sim.defaultAccount;
const bed = new Testbed([twilioNodes, flowNodes], { contextStorage: { default: { module: flakyStore } } }, { credentials: { cfg: { accountSid: ACCOUNT.accountSid, authToken: ACCOUNT.authToken } }, loadContextStores: true });

function flow(): TestFlowNode[] {
  return [
    { id: "t1", type: "tab", label: "twilio" },
    { id: "cfg", type: "mlc-twilio-config", name: "sim", from: "+15005550006", defaultRegion: "US", publicBaseUrl: bed.url, apiHost: sim.url, timeout: "5" },
    { id: "sms", z: "t1", type: "mlc-twilio-sms", twilio: "cfg", to: "payload.phone", toType: "msg", body: "Invoice {{payload.invoice}}", callback: "status", wires: [["out"]] },
    { id: "out", z: "t1", type: "helper" },
    { id: "st", z: "t1", type: "mlc-twilio-status", twilio: "cfg", endpoint: "status", wires: [["stOut"]] },
    { id: "stOut", z: "t1", type: "helper" },
    // the status endpoint audits into the trail an mlc-audit node keeps (trail "default", global context)
    { id: "aud", z: "t1", type: "mlc-audit", trail: "default", wires: [[]] },
    { id: "c1", z: "t1", type: "catch", name: "", scope: ["st"], uncaught: false, wires: [["caught"]] },
    { id: "caught", z: "t1", type: "helper" },
  ];
}

describe("mlc-twilio-status: the audit trail cannot be written", function () {
  this.timeout(20000);
  bed.hooks({ sims: [sim], afterEach: () => void (failing.global = false) });

  it("answers 503 (Twilio retries), emits nothing, and tells Catch once with msg.errorDetails", async () => {
    await bed.load(flow());
    bed.node("sms").receive({ payload: { phone: "+14155550132", invoice: "INV-9" }, erp: { jobId: "jaudit1" } });
    await until(() => (bed.received.out ?? []).length === 1, "sms sent");
    const sid = String(bed.received.out[0].twilio.sid);
    failing.global = true;
    const results = await sim.deliver(sid);
    assert.ok(results.length >= 2);
    assert.deepEqual(
      results.map((r) => r.status),
      results.map(() => 503),
    );
    await until(() => (bed.received.caught ?? []).length >= 1, "the failure reached Catch");
    await settle();
    assert.equal(bed.received.caught.length, 1, "reported once for the refused callbacks, not per retry");
    const caught = bed.received.caught[0];
    assert.ok(caught.errorDetails && typeof caught.errorDetails.message === "string", "msg.errorDetails set");
    assert.equal((bed.received.stOut ?? []).length, 0, "nothing emitted for a callback that was not audited");
  });
});
