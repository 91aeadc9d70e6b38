/**
 * `mlc-twilio-call`: places one voice call per input message and reports, later, whether the person
 * acknowledged it. The message is a Mustache template spoken with `<Say>` (with `amount`, `date` and `spell`
 * helpers for IVR-friendly amounts, dates and reference numbers); optionally a `<Gather>` asks for one key
 * ("Press 1 to confirm") and posts the result, signed, to this node's endpoint
 * `<httpNodeRoot>/mlc/twilio/<endpoint>/gather`. Call progress comes from the mlc-twilio-status node of the same
 * Twilio account (lib/twilio/bus.ts, one channel per Account SID) or, in poll mode, from fetching the Call resource;
 * lib/twilio/call-tracker.ts turns it into one outcome per call.
 * Each call is claimed in a send ledger (jobId + callee) before the create and recorded after it, so a replayed or
 * re-delivered event never calls twice; a create whose outcome is unknown is looked up (Calls by To and From, created
 * since the claim) before anything is placed again.
 *
 * Outputs: [1] placed, [2] acknowledged (msg.ack.result "acknowledged"; "answered" without acknowledgement),
 * [3] not acknowledged (msg.ack.result "no-answer" | "busy" | "failed" | "canceled" | "no-input" | "machine").
 * Pending outcomes live in memory only: they do not survive a restart or redeploy (the ledger does).
 *
 * Vendor: https://www.twilio.com/docs/voice/api/call-resource#create-a-call-resource ;
 * https://www.twilio.com/docs/voice/twiml/gather ; https://www.twilio.com/docs/voice/answering-machine-detection
 */
import type { TwilioMeta } from "../lib/envelope";
import { MlcError, TwilioError, ValidationError } from "../lib/errors";
import { hashedKey } from "../lib/ids";
import { maskPhone, toE164 } from "../lib/phone";
import { onStatus, publishStatus } from "../lib/twilio/bus";
import { CallResult, CallTracker, TrackedCall } from "../lib/twilio/call-tracker";
import { AckPrompts, GatherSpec, SayVoice, createCall, fetchCall, findRecentCall, goodbyeTwiml, retryTwiml, thanksTwiml } from "../lib/twilio/calls";
import { SendLedger, ledgerKey, sendOnce } from "../lib/twilio/ledger";
import { contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { InboundRequest, InboundResponse, mountDispatcher, registerEndpoint } from "../shared/dispatcher";
import { Status, evaluate, firstSet, messageJobId, onClose, onInput, registerNode, reportError, t } from "../shared/node";
import type { NodeMessage, RedAPI } from "../shared/types";
import { CallAck, CallProps, callSettings, callTwiml } from "./call-twiml";
import { twilioConfig } from "./config";
import { checkTwilioWebhook, one } from "./webhook";

export type { CallAck, CallProps } from "./call-twiml";

/** When this module was loaded (≈ process start): a call claimed before it may have been placed before a crash. */
const LOADED_AT = Date.now();
const TWIML = { "Content-Type": "text/xml; charset=utf-8" };

/** What the tracker keeps per call: the placed msg (emitted later with msg.ack), voice and prompts. */
interface CallData {
  msg: NodeMessage;
  voice: SayVoice;
  gather?: GatherSpec;
  prompts?: AckPrompts;
}

/**
 * Register `mlc-twilio-call` (properties: {@link CallProps}; outputs: placed, acknowledged, not acknowledged with
 * msg.ack as {@link CallAck}). Serves `/mlc/twilio/<endpoint>/gather` while acknowledgement is on.
 */
export function registerCall(RED: RedAPI): void {
  mountDispatcher(RED.httpNode, RED);
  registerNode<CallProps>(RED, "mlc-twilio-call", (node, config) => {
    const s = callSettings(config);
    const n = { placed: 0, acked: 0, nacked: 0 };
    const counts = (): string =>
      t(RED, "mlc-twilio-call.status.counts", { placed: n.placed, ack: n.acked, nack: n.nacked }, `placed ${n.placed}, ack ${n.acked}, no ${n.nacked}`);
    const showCounts = (): void => node.status((n.nacked > 0 ? Status.warn : n.placed > 0 ? Status.ok : Status.idle)(counts()));
    let closed = false;
    let accountSid = "";
    let startError: unknown;

    const onOutcome = (c: TrackedCall<CallData>, result: CallResult, digits?: string): void => {
      const out = c.data.msg;
      out.twilio = { ...(out.twilio as TwilioMeta), status: c.status } satisfies TwilioMeta;
      out.ack = { result, at: new Date().toISOString(), ...(digits ? { digits } : {}), ...(c.answeredBy ? { answeredBy: c.answeredBy } : {}) } satisfies CallAck;
      const positive = result === "acknowledged" || result === "answered";
      n[positive ? "acked" : "nacked"]++;
      showCounts();
      node.send(positive ? [null, out, null] : [null, null, out]);
    };
    const tracker = new CallTracker<CallData>({
      giveUpMs: s.giveUpMs,
      pollIntervalMs: s.pollIntervalMs,
      ackDigit: s.ackDigit,
      fetch: (sid) => fetchCall(twilioConfig(RED, config.twilio).client(), sid),
      publish: (st) => publishStatus(accountSid, st),
      onOutcome,
      onPollError: (err, c) => reportError(RED, node, err, { topic: "mlc-twilio-call/poll", ...(c ? { sid: c.sid, jobId: c.jobId } : {}) }),
    });

    let ledger: SendLedger | undefined;
    let unsubscribe: (() => void) | undefined;
    let release: (() => void) | undefined;
    try {
      accountSid = twilioConfig(RED, config.twilio).accountSid;
    } catch {
      /* no usable config node: every input fails with that error (Catch), as before */
    }
    try {
      unsubscribe = onStatus(accountSid, (st) => tracker.onStatus(st));
      const info = resolveStore(RED, config.store);
      ledger = new SendLedger(contextBackend(node, "node", info.name), { scope: node.id });
      ledger.ready.catch((err: unknown) => reportError(RED, node, err, { topic: "mlc-twilio-call/ledger" }));
      if (s.ack) release = registerEndpoint(RED.httpNode, `/twilio/${s.endpoint}/gather`, node.id, (req) => gatherHandler(req));
      node.status(Status.idle(t(RED, "mlc-twilio-call.status.ready", undefined, "ready")));
      warnIfLossy(RED, node, info); // the ledger is what stops a second call after a crash
    } catch (err) {
      startError = err;
      reportError(RED, node, err, { topic: "mlc-twilio-call/start", endpoint: s.endpoint });
    }

    /** Gather action: Twilio posts the key pressed (or nothing, after the timeout). Answered with TwiML. */
    const gatherHandler = async (req: InboundRequest): Promise<InboundResponse> => {
      const check = checkTwilioWebhook(RED, node, config.twilio, req);
      if (!check.ok) return check.response;
      const f = check.fields;
      const corr = new URLSearchParams(req.rawQuery).get("c") ?? "";
      const r = tracker.gather(corr, one(f.CallSid), (one(f.Digits) ?? "").trim(), one(f.AnsweredBy));
      if (r.kind === "unknown") return { status: 200, headers: TWIML, body: goodbyeTwiml(s.voice) }; // restarted, expired or resolved
      const d = r.call.data;
      if (r.kind === "thanks") return { status: 200, headers: TWIML, body: thanksTwiml(d.voice, d.prompts) };
      if (r.kind === "retry" && d.gather) return { status: 200, headers: TWIML, body: retryTwiml(d.voice, d.gather) };
      return { status: 200, headers: TWIML, body: goodbyeTwiml(d.voice, d.prompts) };
    };

    onInput(RED, node, async (msg, { send, status }) => {
      if (startError) throw startError;
      if (s.ack && !/^[0-9*#]$/.test(s.ackDigit)) throw new ValidationError(`Acknowledgement key "${s.ackDigit}" must be one of 0-9, * or #`, { code: "bad_config" });
      const cfg = twilioConfig(RED, config.twilio);
      const jobId = messageJobId(msg);
      let to = "";
      try {
        const rawTo = firstSet(config.to ? await evaluate(RED, node, config.to, config.toType ?? "msg", msg) : undefined, msg.to);
        to = typeof rawTo === "string" ? maskPhone(rawTo) : "";
        to = toE164(rawTo as string, cfg.defaultRegion);
        if (to.includes(":")) throw new ValidationError(`"${maskPhone(to)}" is not a phone number a call can reach`, { code: "invalid_phone" });
        const from = String(firstSet(config.from ? await evaluate(RED, node, config.from, config.fromType, msg) : undefined, msg.from as string, cfg.from) ?? "").trim();
        if (!from || /^MG/i.test(from)) throw new ValidationError("No caller id: set From here, in msg.from or in the Twilio account (a Messaging Service cannot place calls)", { code: "no_sender" });
        const key = ledgerKey(jobId, to, "voice");
        // One call per key: the Gather correlation is derived from it, so a replay after a crash still matches.
        const corr = hashedKey("c", `${node.id}|${key}`);
        const content = await callTwiml(RED, node, config, s, msg, () => cfg.endpointUrl(`/twilio/${s.endpoint}/gather`, { c: corr }));
        const statusCallback = s.poll ? undefined : cfg.endpointUrl(`/twilio/${s.callback}`, { j: jobId });
        status(Status.busy(t(RED, "mlc-twilio-call.status.calling", undefined, "calling")));
        const book = ledger as SendLedger;
        const client = cfg.client();
        const r = await book.serial(key, () =>
          sendOnce({
            ledger: book,
            key,
            create: () => createCall(client, { to, from, ...(content.twiml !== undefined ? { twiml: content.twiml } : { url: content.url }), statusCallback, machineDetection: s.amd ? "Enable" : undefined }),
            lookup: (since) => findRecentCall(client, { to, from, since: new Date(since), skip: (sid) => book.knows(sid) }),
            windowMs: s.reconcileWindowMs,
            loadedAt: LOADED_AT,
            aborted: () => closed,
          }),
        );
        const duplicate = r.outcome === "duplicate";
        msg.twilio = { sid: r.sid, status: r.status, to: (r.message as { to?: string } | undefined)?.to || to, channel: "voice", jobId, ...(duplicate ? { duplicate: true } : {}) } satisfies TwilioMeta & Record<string, unknown>;
        if (r.outcome === "reconciled") msg.reconciled = true;
        if (!duplicate) {
          n.placed++;
          tracker.track({ corr, sid: r.sid, jobId, status: r.status, ack: s.ack, poll: s.poll, data: { msg: RED.util.cloneMessage(msg), voice: s.voice, gather: content.gather, prompts: content.prompts } });
        }
      } catch (err) {
        const code = err instanceof TwilioError ? err.twilioCode : undefined;
        const unknown = (err as { outcomeUnknown?: boolean }).outcomeUnknown;
        msg.twilio = { sid: "", status: unknown ? "unknown" : "failed", to, channel: "voice", jobId, ...(code ? { errorCode: code } : {}) } satisfies TwilioMeta;
        if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
        status(Status.error(counts()));
        throw err;
      }
      showCounts();
      send([msg, null, null]);
    });

    onClose(node, () => {
      closed = true;
      unsubscribe?.();
      tracker.close();
      release?.();
    });
  });
}
