/**
 * `mlc-twilio-sms`: sends one SMS/MMS/WhatsApp message per recipient through the Messages API.
 * - To, From / Messaging Service, Body (Mustache over msg), MediaUrl, WhatsApp Content templates and
 *   scheduled sends (SendAt) come from the editor or msg; several recipients → one message each.
 * - Recipients are normalised to E.164; a bad number, an opted-out recipient or a Twilio error fails that
 *   recipient only (Catch), the others go through.
 * - The account's opt-out list is consulted before sending; 21610 adds the recipient to it.
 * - Quiet hours: outside the recipient's local business hours a send is scheduled with Twilio (SendAt,
 *   needs a Messaging Service) or held durably in the context store and sent when the window opens;
 *   urgent messages (msg.urgent = true) go at once.
 * - Status: a StatusCallback to the chosen mlc-twilio-status endpoint (with the jobId), or polling of the
 *   message resource until a final status for Node-RED that Twilio cannot reach (second output).
 * - A send whose outcome is unknown (timeout after the request left) is reconciled by looking the message
 *   up; it is re-sent only when Twilio has no such message and retries are allowed.
 * Vendor: https://www.twilio.com/docs/messaging/api/message-resource ;
 * https://www.twilio.com/docs/messaging/features/message-scheduling
 */
import { AUDIT_OUTCOME_UNKNOWN, AUDIT_PENDING, AuditTrail } from "../lib/audit";
import type { TwilioChannel, TwilioMeta } from "../lib/envelope";
import { jobSettled } from "../lib/journal";
import { SendLedger, ledgerKey, reconcileSend } from "../lib/twilio/ledger";
import { MlcError, RateLimitedError, TimeoutError, TwilioError, ValidationError } from "../lib/errors";
import { maskPhone, toE164 } from "../lib/phone";
import { BusinessHours, isTimeZone, nextSendTime, parseDays, timeZoneForNumber } from "../lib/quiet-hours";
import { backoffDelay, DEFAULT_RETRY_POLICY, sleep } from "../lib/retry";
import { BoundedStore } from "../lib/store";
import { isTemplate, renderTemplate } from "../lib/template";
import { publishStatus } from "../lib/twilio/bus";
import type { SendMessageParams, TwilioMessage } from "../lib/twilio/client";
import { isFinalStatus, isStatusAdvance } from "../lib/twilio/status";
import { contextBackend, resolveStore, warnIfLossy } from "../shared/context";
import { Status, evaluate, firstSet, messageJobId, num, onClose, onInput, registerNode, reportError, t } from "../shared/node";
import type { NodeMessage, NodeStatus, RedAPI, RedNode } from "../shared/types";
import { sharedAuditTrail } from "../flow/audit";
import { TwilioConfigApi, twilioConfig } from "./config";
import { configString } from "../shared/config";

export interface SmsProps extends Record<string, unknown> {
  name?: string;
  twilio?: string;
  to?: string;
  toType?: string;
  from?: string;
  fromType?: string;
  body?: string;
  mediaUrl?: string;
  mediaUrlType?: string;
  /** Name of the mlc-twilio-status endpoint ("" = no status callback). */
  callback?: string;
  /** WhatsApp/RCS Content template SID (HX…) and its variables (JSON object or string). */
  contentSid?: string;
  contentVariables?: string;
  contentVariablesType?: string;
  /** Scheduled send time (ISO 8601); needs a Messaging Service sender. */
  sendAt?: string;
  sendAtType?: string;
  /** Quiet hours. */
  quiet?: boolean;
  hoursStart?: string;
  hoursEnd?: string;
  hoursDays?: string;
  /** Recipient time zone (IANA), e.g. msg.contact.TimeZone; empty → from the number, else defaultTimezone. */
  timezone?: string;
  timezoneType?: string;
  defaultTimezone?: string;
  /** "schedule" (Twilio SendAt when possible, else hold) or "hold". */
  quietMode?: "schedule" | "hold";
  /** Poll the message until a final status (s between polls, s until giving up). */
  poll?: boolean;
  pollInterval?: string | number;
  pollTimeout?: string | number;
  /** Extra attempts for retryable failures (rate limit after the client's retries, unreachable, unknown outcome confirmed absent). */
  retries?: string | number;
  /** Context store for held messages and the send ledger ("" = default). */
  store?: string;
  /**
   * Audit trail written before each create (claim before send), so every send has a record with its ERP link even
   * when Node-RED dies mid-send; written only when an mlc-audit node uses a trail of that name. Default "default".
   */
  auditTrail?: string;
  /** How long a create whose outcome is unknown is looked up before it counts as absent, s (default 30). */
  reconcileWindow?: string | number;
}

/** Twilio refuses a body longer than 1,600 characters (error 21617); refused here before any request. */
export const MAX_BODY_CHARS = 1600;

/** When this module was loaded (≈ process start): a create claimed before it may have left before a crash. */
const LOADED_AT = Date.now();

/** Sends in flight in this process, by ledger key (a replay while the first attempt is still running waits for it). */
const inFlight = new Map<string, Promise<unknown>>();

const MG_SID = /^MG[0-9a-fA-F]{32}$/;
/** Twilio accepts SendAt more than 300 s and at most 35 days ahead (errors 35114, 35115). */
const SEND_AT_MIN_MS = 15 * 60 * 1000;
const SEND_AT_MAX_MS = 35 * 24 * 3600 * 1000;
const HOLD_CHECK_MS = 15000;

/** A message held for quiet hours (context store; contains the recipient because it must be sent later). */
interface HeldMessage {
  due: number;
  params: SendMessageParams;
  jobId: string;
  channel: TwilioChannel;
  msg: NodeMessage;
}

/** Whether a failed send may still go out later (a replay retries it): unknown outcome, or a retryable error. */
function mayRetry(err: unknown): boolean {
  return (err instanceof TimeoutError && err.outcomeUnknown) || (err instanceof MlcError && err.retryable);
}

function channelOf(to: string, media: string[]): TwilioChannel {
  if (to.startsWith("whatsapp:")) return "whatsapp";
  return media.length ? "mms" : "sms";
}

function asStringList(v: unknown, separators = /[\s,]+/): string[] {
  if (v === undefined || v === null || v === "") return [];
  if (Array.isArray(v)) return v.flatMap((x) => asStringList(x, separators));
  return String(v)
    .split(separators)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}


export function registerSms(RED: RedAPI): void {
  registerNode<SmsProps>(RED, "mlc-twilio-sms", (node: RedNode, config) => {
    let sent = 0;
    let failed = 0;
    let held = 0;
    const polls = new Map<string, NodeJS.Timeout>();
    let holdTimer: NodeJS.Timeout | undefined;
    let closed = false;
    const retries = num(config.retries, 0, 0, 10);
    const counts = (): string =>
      held > 0
        ? t(RED, "mlc-twilio-sms.status.countsHeld", { sent, failed, held }, `sent ${sent}, failed ${failed}, held ${held}`)
        : t(RED, "mlc-twilio-sms.status.counts", { sent, failed }, `sent ${sent}, failed ${failed}`);
    const showCounts = (): void => node.status(failed ? Status.warn(counts()) : Status.ok(counts()));

    let hours: BusinessHours | undefined;
    let holdStore: BoundedStore<HeldMessage> | undefined;
    let warnLossy = false; // set when the start-up checks pass on a store that can lose acknowledged work
    try {
      if (config.quiet) {
        hours = { start: config.hoursStart || "08:00", end: config.hoursEnd || "20:00", days: parseDays(config.hoursDays || "1-5") };
        configString(config.defaultTimezone, "Default zone"); // an unset ${VAR} is named, not called a bad zone
        nextSendTime(new Date(), config.defaultTimezone || "UTC", hours); // validates the hours at deploy
        if (config.defaultTimezone && !isTimeZone(config.defaultTimezone)) throw new ValidationError(`"${config.defaultTimezone}" is not an IANA time zone`, { code: "bad_config" });
        holdStore = new BoundedStore<HeldMessage>(contextBackend(node, "node", resolveStore(RED, config.store).name), { prefix: "held", ttlMs: SEND_AT_MAX_MS, maxEntries: 10000 });
      }
      twilioConfig(RED, config.twilio); // a missing or failed account shows here at deploy, not as "ready"
      // A store that can lose the send ledger keeps its yellow warning (set below) instead of "ready".
      if (!resolveStore(RED, config.store).lossy) node.status(Status.idle(t(RED, "mlc-twilio-sms.status.ready", undefined, "ready")));
      else warnLossy = true;
    } catch (err) {
      reportError(RED, node, err, { topic: "mlc-twilio-sms/start" });
    }

    /** Poll a message resource until a final status, emitting each advance on output 2. */
    const startPolling = (cfg: TwilioConfigApi, sid: string, jobId: string, to: string, channel: TwilioChannel, first: string): void => {
      const intervalMs = num(config.pollInterval, 10, 1, 3600) * 1000;
      const deadline = Date.now() + num(config.pollTimeout, 3600, 10, 7 * 86400) * 1000;
      let last = first;
      const tick = (): void => {
        polls.delete(sid);
        if (closed) return;
        cfg
          .client()
          .fetchMessage(sid)
          .then((m) => {
            if (isStatusAdvance(last, m.status)) {
              last = m.status;
              const twilio: TwilioMeta = { sid, status: m.status, to, channel, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}) };
              node.send([null, { topic: `twilio/status/${m.status}`, payload: { MessageSid: sid, MessageStatus: m.status, ErrorCode: m.errorCode ?? undefined }, twilio }]);
              publishStatus({ kind: "message", sid, status: m.status, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}), fields: { MessageSid: sid, MessageStatus: m.status } });
            }
            if (!isFinalStatus(last) && Date.now() < deadline && !closed) polls.set(sid, setTimeout(tick, intervalMs));
          })
          .catch((err: unknown) => {
            reportError(RED, node, err, { topic: "mlc-twilio-sms/poll", sid });
            if (Date.now() < deadline && !closed) polls.set(sid, setTimeout(tick, intervalMs));
          });
      };
      polls.set(sid, setTimeout(tick, intervalMs));
    };

    const windowMs = num(config.reconcileWindow, 30, 1, 3600) * 1000;
    let ledger: SendLedger | undefined;
    try {
      const info = resolveStore(RED, config.store);
      ledger = new SendLedger(contextBackend(node, "node", info.name));
      if (warnLossy) warnIfLossy(RED, node, info); // the ledger is what stops a double after a crash; an error status set above stays
      ledger.ready.catch((err: unknown) => reportError(RED, node, err, { topic: "mlc-twilio-sms/ledger" }));
    } catch (err) {
      reportError(RED, node, err, { topic: "mlc-twilio-sms/start" });
    }

    /** The audit trail this node writes before each create, if any (see SmsProps.auditTrail). */
    const auditTrail = (): Promise<AuditTrail> | undefined => {
      const name = String(config.auditTrail ?? "").trim() || "default";
      return sharedAuditTrail(node, name);
    };

    /** Look a message up until Twilio has had `windowMs` to finish it (lib/twilio/ledger.ts reconcileSend). */
    const reconcile = (cfg: TwilioConfigApi, params: SendMessageParams, since: number, windowFrom: number) =>
      reconcileSend(
        async () => cfg.client().findRecentMessage({ to: params.to, body: params.body, from: params.from ?? params.messagingServiceSid, since: new Date(since), skip: (sid) => ledger?.knows(sid) === true }),
        { since: windowFrom, windowMs, aborted: () => closed },
      );

    /**
     * One create with the retry policy: an unknown outcome (timeout after the request left, 5xx) is looked up with
     * back-off for the reconcile window; only a lookup that proves the message absent after the window lets a retry
     * send again.
     * @throws the last error; a TimeoutError with outcomeUnknown when the outcome could not be settled
     */
    const createWithPolicy = async (cfg: TwilioConfigApi, params: SendMessageParams): Promise<TwilioMessage & { reconciled?: boolean }> => {
      let provenAbsent = false;
      for (let attempt = 0; ; attempt++) {
        const startedAt = Date.now();
        provenAbsent = false;
        try {
          return await cfg.client().sendMessage(params);
        } catch (err) {
          if (err instanceof TwilioError && err.optedOut) {
            await cfg.optOuts(node).optOut(params.to, "21610");
            throw err;
          }
          let retryable = err instanceof RateLimitedError || (err instanceof MlcError && err.code === "connect_failed");
          // A timeout after the request left, or a 5xx answer to a create: Twilio may have created the message.
          const unknownOutcome = (err instanceof TimeoutError && err.outcomeUnknown) || (err instanceof MlcError && (err.status ?? 0) >= 500);
          if (unknownOutcome) {
            const r = await reconcile(cfg, params, startedAt, Date.now());
            if (r.outcome === "found") return { ...r.message, reconciled: true };
            if (r.outcome === "unsettled") throw new TimeoutError("Outcome of the create is unknown (not settled before the node closed)", { outcomeUnknown: true });
            retryable = true; // proven absent after the window: a new attempt cannot double-send
            provenAbsent = true;
          }
          if (!retryable || attempt >= retries) {
            if (provenAbsent) {
              throw new MlcError(`The create failed (${err instanceof Error ? err.message : String(err)}) and Twilio has no such message after ${windowMs / 1000} s: not sent`, { code: "not_sent", retryable: true, status: err instanceof MlcError ? err.status : undefined, cause: err });
            }
            throw err;
          }
          await sleep(backoffDelay(attempt, DEFAULT_RETRY_POLICY, err instanceof RateLimitedError ? err.retryAfterMs : undefined));
        }
      }
    };

    /**
     * Send one prepared message at most once per idempotency key (jobId|to|channel) and emit it:
     * claim in the ledger → audit record (pending, with the ERP link) → create → ledger sid → audit sid → emit.
     * A key already sent is not sent again (emitted with `twilio.duplicate`); a key claimed by an attempt that never
     * settled (crash, timeout) is reconciled by lookup first and re-sent only when proven absent.
     */
    const deliver = async (cfg: TwilioConfigApi, base: NodeMessage, params: SendMessageParams, jobId: string, channel: TwilioChannel): Promise<void> => {
      const key = ledgerKey(jobId, params.to, channel);
      const flightKey = `${node.id}|${key}`;
      const running = inFlight.get(flightKey);
      if (running) await running.catch(() => undefined);
      const work = deliverOnce(cfg, base, params, jobId, channel, key);
      inFlight.set(flightKey, work);
      try {
        await work;
      } finally {
        if (inFlight.get(flightKey) === work) inFlight.delete(flightKey);
      }
    };

    const deliverOnce = async (cfg: TwilioConfigApi, base: NodeMessage, params: SendMessageParams, jobId: string, channel: TwilioChannel, key: string): Promise<void> => {
      if (!ledger) throw new ValidationError("Send ledger not available", { code: "unknown_store" });
      const trail = await auditTrail();
      const erp = base.erp as Record<string, unknown> | undefined;
      const audit = (status: string, extra: { sid?: string; error?: { code: string; message: string } } = {}) =>
        trail?.recordSend({ jobId, erp, channel, to: params.to, status, ...extra });
      const emit = (m: { sid: string; status: string; to: string; errorCode?: number | null }, flags: Record<string, unknown> = {}): void => {
        sent++;
        const twilio: TwilioMeta & Record<string, unknown> = { sid: m.sid, status: m.status, to: m.to, channel, jobId, ...(m.errorCode ? { errorCode: m.errorCode } : {}), ...flags };
        node.send([{ ...base, twilio, ...(flags.reconciled ? { reconciled: true } : {}) }, null]);
        if (config.poll && !flags.duplicate) startPolling(cfg, m.sid, jobId, m.to, channel, m.status);
      };

      const claim = await ledger.claim(key);
      if (claim.outcome === "sent" && claim.entry.sid) {
        await audit(claim.entry.status ?? "queued", { sid: claim.entry.sid });
        emit({ sid: claim.entry.sid, status: claim.entry.status ?? "queued", to: params.to }, { duplicate: true });
        return;
      }
      if (claim.outcome === "unknown") {
        // A previous attempt claimed this send and never recorded an answer (crash, or a create that timed out).
        await audit(AUDIT_OUTCOME_UNKNOWN);
        const r = await reconcile(cfg, params, claim.entry.at, Math.max(claim.entry.at, LOADED_AT));
        if (r.outcome === "found") {
          await ledger.settle(key, r.message.sid, r.message.status);
          await audit(r.message.status, { sid: r.message.sid });
          emit({ sid: r.message.sid, status: r.message.status, to: params.to }, { reconciled: true });
          return;
        }
        if (r.outcome === "unsettled") throw new TimeoutError("Outcome of an earlier send is unknown (not settled before the node closed)", { outcomeUnknown: true });
        await ledger.reclaim(key); // proven absent: this attempt owns the send
      }
      await audit(AUDIT_PENDING);
      let m: TwilioMessage & { reconciled?: boolean };
      try {
        m = await createWithPolicy(cfg, params);
      } catch (err) {
        const unknown = err instanceof TimeoutError && err.outcomeUnknown;
        if (unknown) {
          await audit(AUDIT_OUTCOME_UNKNOWN); // stays claimed: the next attempt (replay) reconciles first
        } else {
          // Twilio created nothing: release the claim so a later attempt may send; final refusals finish the job.
          await ledger.release(key);
          // Same code and text as a Catch → mlc-audit would record, so both land on one record.
          const code = err instanceof MlcError ? err.code : "error";
          await audit("failed", { error: { code, message: err instanceof Error ? err.message : String(err) } });
        }
        throw err;
      }
      await ledger.settle(key, m.sid, m.status);
      await audit(m.status, { sid: m.sid });
      emit(m, m.reconciled ? { reconciled: true } : {});
    };

    /** Send the held messages that are due (each removed before it is sent, so it goes at most once). */
    const releaseHeld = async (): Promise<void> => {
      if (!holdStore || closed) return;
      const now = Date.now();
      const entries = await holdStore.entries();
      held = entries.length;
      for (const e of entries) {
        const h = e.v;
        if (h.due > now) continue;
        const key = `${h.jobId}|${h.params.to}`;
        if (!(await holdStore.delete(key))) continue;
        held--;
        try {
          await deliver(twilioConfig(RED, config.twilio), h.msg, h.params, h.jobId, h.channel);
        } catch (err) {
          failed++;
          node.error(err, { ...h.msg, twilio: { sid: "", status: "failed", to: h.params.to, channel: h.channel, jobId: h.jobId }, errorDetails: err instanceof MlcError ? err.toDetails() : { message: String(err) } });
        }
      }
      showCounts();
    };
    if (holdStore) {
      const loop = (): void => {
        if (closed) return;
        holdTimer = setTimeout(() => void releaseHeld().catch((err: unknown) => reportError(RED, node, err, { topic: "mlc-twilio-sms/held" })).finally(loop), HOLD_CHECK_MS);
      };
      void releaseHeld().catch((err: unknown) => reportError(RED, node, err, { topic: "mlc-twilio-sms/held" }));
      loop();
    }

    /** Recipient failures already counted in the journal decision of their input. */
    const accounted = new WeakSet<object>();
    onInput(RED, node, async (msg, ctx) => {
      try {
        await handleInput(msg, ctx.status);
      } catch (err) {
        // A refusal no retry can fix (bad number, body too long…) also finishes the event for the push journal.
        const erpJob = (msg.erp as { jobId?: unknown } | undefined)?.jobId;
        if (typeof erpJob === "string" && !mayRetry(err) && !(err instanceof Object && accounted.has(err))) jobSettled(erpJob);
        throw err;
      }
    });

    const handleInput = async (msg: NodeMessage, status: (s: NodeStatus) => void): Promise<void> => {
      const cfg = twilioConfig(RED, config.twilio);
      const jobId = messageJobId(msg);
      const recipients = asStringList(firstSet(config.to ? await evaluate(RED, node, config.to, config.toType, msg) : undefined, msg.to), /[,;\n]+/);
      if (recipients.length === 0) throw new ValidationError("No recipient: To is empty", { code: "invalid_phone" });
      const fromValue = String(firstSet(config.from ? await evaluate(RED, node, config.from, config.fromType, msg) : undefined, msg.from as string, msg.messagingServiceSid as string, cfg.messagingServiceSid, cfg.from) ?? "");
      const bodyTemplate = firstSet(config.body, typeof msg.body === "string" ? msg.body : undefined, typeof msg.payload === "string" ? msg.payload : undefined);
      const body = bodyTemplate === undefined ? undefined : isTemplate(bodyTemplate) ? renderTemplate(bodyTemplate, msg) : bodyTemplate;
      const media = asStringList(firstSet(config.mediaUrl ? await evaluate(RED, node, config.mediaUrl, config.mediaUrlType, msg) : undefined, msg.mediaUrl));
      const contentSid = String(firstSet(config.contentSid, msg.contentSid as string) ?? "");
      const rawVars = firstSet(config.contentVariables ? await evaluate(RED, node, config.contentVariables, config.contentVariablesType, msg) : undefined, msg.contentVariables);
      const contentVariables = rawVars === undefined ? undefined : typeof rawVars === "string" ? rawVars : JSON.stringify(rawVars);
      const rawSendAt = firstSet(config.sendAt ? await evaluate(RED, node, config.sendAt, config.sendAtType, msg) : undefined, msg.sendAt as string);
      if (body !== undefined && Array.from(body).length > MAX_BODY_CHARS) {
        throw new ValidationError(`Body is ${Array.from(body).length} characters; Twilio accepts at most ${MAX_BODY_CHARS} (error 21617). Nothing was sent`, { code: "body_too_long" });
      }
      if (!fromValue) throw new ValidationError("No sender: set From or a Messaging Service SID here, in msg.from, or in the Twilio account", { code: "no_sender" });
      if ((body === undefined || body.trim() === "") && media.length === 0 && !contentSid) throw new ValidationError("Nothing to send: Body, MediaUrl and Content SID are empty", { code: "empty_body" });
      if (contentSid && !/^HX[0-9a-fA-F]{32}$/.test(contentSid)) throw new ValidationError("Content SID must be HX followed by 32 hex characters", { code: "bad_content" });
      let sendAt: Date | undefined;
      if (rawSendAt !== undefined) {
        sendAt = rawSendAt instanceof Date ? rawSendAt : new Date(String(rawSendAt));
        if (Number.isNaN(sendAt.getTime())) throw new ValidationError("SendAt is not a date-time", { code: "bad_send_at" });
        if (!MG_SID.test(fromValue)) throw new ValidationError("Scheduled sends (SendAt) need a Messaging Service SID as sender", { code: "bad_send_at" });
      }
      const endpoint = (config.callback ?? "").trim();
      const statusCallback = endpoint && !config.poll ? cfg.endpointUrl(`/twilio/${endpoint}`, { j: jobId }) : undefined;
      const urgent = msg.urgent === true || msg.priority === "urgent";
      const tzProp = config.quiet && config.timezone ? await evaluate(RED, node, config.timezone, config.timezoneType, msg) : undefined;

      status(Status.busy(t(RED, "mlc-twilio-sms.status.sending", undefined, "sending")));
      const failures: { err: unknown; out: NodeMessage }[] = [];
      for (const raw of recipients) {
        const out: NodeMessage = recipients.length > 1 ? RED.util.cloneMessage(msg) : msg;
        let to = "";
        let channel: TwilioChannel = "sms";
        try {
          to = toE164(raw, cfg.defaultRegion);
          channel = channelOf(to, media);
          let from = fromValue;
          if (!MG_SID.test(fromValue) && channel === "whatsapp" && !fromValue.startsWith("whatsapp:")) from = `whatsapp:${fromValue}`;
          if (await cfg.optOuts(node).isOptedOut(to)) {
            const e = new ValidationError(`${maskPhone(to)} opted out (replied STOP); not sent`, { code: "opted_out" });
            throw e;
          }
          const extra: Record<string, unknown> = {};
          if (contentSid) extra.contentSid = contentSid;
          if (contentVariables !== undefined) extra.contentVariables = contentVariables;
          let when = sendAt;
          if (hours && !urgent && !when) {
            const tz = (typeof tzProp === "string" && tzProp.trim()) || timeZoneForNumber(to) || config.defaultTimezone || Intl.DateTimeFormat().resolvedOptions().timeZone;
            const at = nextSendTime(new Date(), tz, hours);
            const delay = at.getTime() - Date.now();
            if (delay > 0) {
              if (config.quietMode !== "hold" && MG_SID.test(fromValue) && delay >= SEND_AT_MIN_MS && delay <= SEND_AT_MAX_MS) when = at;
              else {
                const params: SendMessageParams = { to, ...(MG_SID.test(fromValue) ? { messagingServiceSid: fromValue } : { from }), body, mediaUrl: media, statusCallback, extra };
                const stored: NodeMessage = { ...out };
                delete stored.req;
                delete stored.res;
                await holdStore?.set(`${jobId}|${to}`, { due: at.getTime(), params, jobId, channel, msg: JSON.parse(JSON.stringify(stored)) as NodeMessage });
                held++;
                continue;
              }
            }
          }
          if (when) {
            extra.sendAt = when;
            extra.scheduleType = "fixed";
          }
          await deliver(cfg, out, { to, ...(MG_SID.test(fromValue) ? { messagingServiceSid: fromValue } : { from }), body, mediaUrl: media, statusCallback, extra }, jobId, channel);
        } catch (err) {
          failed++;
          const code = err instanceof TwilioError ? err.twilioCode : err instanceof ValidationError && err.code === "opted_out" ? 21610 : undefined;
          out.twilio = { sid: "", status: err instanceof TimeoutError && err.outcomeUnknown ? "unknown" : "failed", to: to || (typeof raw === "string" ? maskPhone(raw) : ""), channel, jobId, ...(code ? { errorCode: code } : {}) } satisfies TwilioMeta;
          if (err instanceof MlcError) err.recordId = (msg.erp as { id?: string } | undefined)?.id;
          failures.push({ err, out });
        }
      }
      showCounts();
      // The event is finished for the push journal (lib/journal.ts) once no recipient is left to a retry or a replay:
      // sent, held durably, or refused for good. An unknown outcome or a retryable failure leaves it to the replay.
      if (!failures.some((f) => mayRetry(f.err))) jobSettled(jobId);
      for (const f of failures) if (f.err instanceof Object) accounted.add(f.err);
      if (recipients.length === 1 && failures.length === 1) throw failures[0].err;
      // Several recipients: each failure reaches Catch on its own; the others were sent.
      for (const f of failures) {
        f.out.errorDetails = f.err instanceof MlcError ? f.err.toDetails() : { message: String(f.err) };
        node.error(f.err, f.out);
      }
    };

    onClose(node, () => {
      closed = true;
      if (holdTimer) clearTimeout(holdTimer);
      for (const timer of polls.values()) clearTimeout(timer);
      polls.clear();
    });
  });
}
