/**
 * The redeploy hand-off store of the Twilio send nodes (nodes/twilio/handoff.ts): what it takes, what it gives back
 * and what it refuses; the Node-RED side is test/node/twilio-handoff.test.ts.
 */
import assert from "node:assert/strict";
import { ErpError, MlcError, RateLimitedError } from "../../nodes/lib/errors";
import { HANDOFF_MAX, closedBeforeSend, park, parkOutput, takeParked, withHandoff } from "../../nodes/twilio/handoff";

describe("Twilio send-node hand-off (handoff.ts)", () => {
  it("gives a node's parked inputs and outputs back once, in order, without what the failed attempt added", () => {
    assert.ok(park("n1", { payload: 1, twilio: { sid: "" }, error: "x", errorDetails: {} }));
    assert.ok(parkOutput("n1", [{ payload: 2 }, null]));
    assert.ok(park("n2", { payload: 3 }));
    const got = takeParked("n1");
    assert.deepEqual(got.map((p) => p.msg ?? p.output), [{ payload: 1 }, [{ payload: 2 }, null]]);
    assert.deepEqual(takeParked("n1"), [], "taken once");
    assert.equal(takeParked("n2").length, 1, "per node id");
  });

  it("parks only refusals of a closed client while the node is closing, up to HANDOFF_MAX", async () => {
    assert.ok(closedBeforeSend(new MlcError("closed", { code: "closed", retryable: true })));
    assert.ok(closedBeforeSend(new ErpError("closed", { code: "client_closed" })));
    assert.ok(!closedBeforeSend(new RateLimitedError("429")));
    let closing = false;
    const closed = new MlcError("closed", { code: "closed", retryable: true });
    const wrapped = withHandoff({ id: "n3" }, () => closing, () => Promise.reject(closed));
    await assert.rejects(wrapped({ payload: "open" }, undefined), (e) => e === closed, "not closing: the error stands");
    closing = true;
    await wrapped({ payload: "closing" }, undefined);
    assert.deepEqual(takeParked("n3").map((p) => p.msg), [{ payload: "closing" }]);
    for (let i = 0; i < HANDOFF_MAX; i++) park("n4", { i });
    assert.equal(park("n4", { i: -1 }), false, "full");
    assert.equal(takeParked("n4").length, HANDOFF_MAX);
  });
});
