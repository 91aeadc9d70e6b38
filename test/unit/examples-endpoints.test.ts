/**
 * The example flows (examples/<family>/*.json) are self-contained and can all be deployed together:
 * - every status-callback endpoint a send node asks Twilio to call (`mlc-twilio-sms` / `mlc-twilio-call`
 *   with a Status endpoint and no status polling) is served by an `mlc-twilio-status` node in the same file,
 *   so an example imported alone does not get 404 from its own callbacks (and its audit does not stay
 *   "queued"); the one exception is a pair named in COMPANIONS, whose status side is its own example;
 * - no HTTP path is served twice across all examples (the package dispatcher refuses the second node on a
 *   path: twilio-status `<endpoint>`, `<endpoint>/inbound`, `<endpoint>/sendgrid`; twilio-call
 *   `<endpoint>/gather`; ERP trigger push paths; core `http in` method + URL).
 * Reads the JSON files only; the e2e suites deploy them for real.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(__dirname, "..", "..", "..");
const dir = path.join(root, "examples");

interface FlowNode {
  id: string;
  type: string;
  z?: string;
  disabled?: boolean;
  [k: string]: unknown;
}

/**
 * Examples whose send nodes rely on a status endpoint in a named companion example of the same family,
 * by design: Acumatica's delivery-status-audit example is the status side of its bill approvals (it writes
 * the final status into the bill's note; its e2e test and the Redis suite pin both files).
 */
const COMPANIONS: Record<string, string> = {
  "acumatica/bill-approval-sms.json": "acumatica/delivery-status-audit.json",
};

function examples(): Map<string, FlowNode[]> {
  const out = new Map<string, FlowNode[]>();
  for (const family of fs.readdirSync(dir).sort()) {
    for (const f of fs.readdirSync(path.join(dir, family)).filter((n) => n.endsWith(".json")).sort()) {
      out.set(`${family}/${f}`, JSON.parse(fs.readFileSync(path.join(dir, family, f), "utf8")) as FlowNode[]);
    }
  }
  return out;
}

const str = (v: unknown, dflt: string): string => (typeof v === "string" ? v.trim() : dflt);
const truthy = (v: unknown): boolean => v === true || v === "true";

/** The status endpoints a file's send nodes ask Twilio to call back (the node defaults of sms-input.ts / call-settings.ts). */
export function callbackEndpoints(nodes: FlowNode[]): string[] {
  const out = new Set<string>();
  for (const n of nodes) {
    if (n.type === "mlc-twilio-sms" && !truthy(n.poll) && str(n.callback, "") !== "") out.add(str(n.callback, ""));
    if (n.type === "mlc-twilio-call" && !truthy(n.poll) && str(n.callback, "status") !== "") out.add(str(n.callback, "status"));
  }
  return [...out];
}

/** The status endpoints a file serves (status.ts: "status" when empty). */
export function servedEndpoints(nodes: FlowNode[]): string[] {
  return nodes.filter((n) => n.type === "mlc-twilio-status" && !n.disabled).map((n) => str(n.endpoint, "") || "status");
}

/** Every HTTP path a file's nodes mount on Node-RED's HTTP server, as "METHOD path" or "path". */
export function mountedPaths(nodes: FlowNode[]): string[] {
  const out: string[] = [];
  for (const n of nodes) {
    if (n.type === "mlc-twilio-status") {
      const ep = str(n.endpoint, "") || "status";
      out.push(`/mlc/twilio/${ep}`, `/mlc/twilio/${ep}/inbound`, `/mlc/twilio/${ep}/sendgrid`);
    } else if (n.type === "mlc-twilio-call" && truthy(n.ack)) {
      out.push(`/mlc/twilio/${str(n.endpoint, "")}/gather`);
    } else if (/^mlc-[a-z0-9]+-trigger$/.test(n.type) && "endpoint" in n && str(n.mode, "") !== "poll") {
      out.push(`${n.type} ${str(n.endpoint, "") || "(default)"}`);
    } else if (n.type === "http in") {
      out.push(`${str(n.method, "get").toUpperCase()} ${str(n.url, "")}`);
    }
  }
  return out;
}

describe("example flows: status endpoints and HTTP paths", function () {
  const all = examples();

  it("finds the examples of every family", function () {
    const families = new Set([...all.keys()].map((k) => k.split("/")[0]));
    for (const f of ["acumatica", "bc", "exact", "intacct", "sapb1", "twilio"]) assert.ok(families.has(f), `examples/${f}/ missing`);
  });

  it("every callback endpoint a send node uses is served in the same file (or its named companion)", function () {
    const missing: string[] = [];
    for (const [file, nodes] of all) {
      const served = new Set(servedEndpoints(nodes));
      const companion = COMPANIONS[file];
      if (companion) for (const ep of servedEndpoints(all.get(companion) ?? [])) served.add(ep);
      for (const ep of callbackEndpoints(nodes)) if (!served.has(ep)) missing.push(`${file}: callback "${ep}" served by no mlc-twilio-status node`);
    }
    assert.deepEqual(missing, []);
  });

  it("every companion pair is still needed and still holds", function () {
    for (const [file, companion] of Object.entries(COMPANIONS)) {
      const nodes = all.get(file);
      assert.ok(nodes && all.has(companion), `${file} or ${companion} is gone: drop the COMPANIONS entry`);
      const own = new Set(servedEndpoints(nodes));
      assert.ok(callbackEndpoints(nodes).some((ep) => !own.has(ep)), `${file} is self-contained now: drop its COMPANIONS entry`);
    }
  });

  it("no HTTP path is mounted twice across all examples deployed together", function () {
    const seen = new Map<string, string>();
    const dupes: string[] = [];
    for (const [file, nodes] of all) {
      for (const p of mountedPaths(nodes)) {
        const first = seen.get(p);
        if (first) dupes.push(`${p}: ${first} and ${file}`);
        else seen.set(p, file);
      }
    }
    assert.deepEqual(dupes, []);
  });

  it("the check sees a missing endpoint and a duplicate (self-test on made-up flows)", function () {
    const sms: FlowNode = { id: "a", type: "mlc-twilio-sms", callback: "x-status", poll: false };
    assert.deepEqual(callbackEndpoints([sms]), ["x-status"]);
    assert.deepEqual(callbackEndpoints([{ ...sms, poll: true }]), []);
    assert.deepEqual(callbackEndpoints([{ id: "c", type: "mlc-twilio-call" }]), ["status"]);
    assert.deepEqual(servedEndpoints([{ id: "s", type: "mlc-twilio-status", endpoint: "" }]), ["status"]);
    const st: FlowNode = { id: "s", type: "mlc-twilio-status", endpoint: "x-status" };
    assert.equal(mountedPaths([st, st]).length, 6);
  });
});
