/**
 * Calls shared among instances (a store on Redis): the instance that places a call writes what a keypress needs into
 * the store, so the Gather action answered by another instance (behind a load balancer) finds the call, answers it and
 * emits its outcome; and each call's outcome is claimed once in the store (`SET NX`), so the instance that placed the
 * call does not also emit "no input" when its own tracker later sees the call complete.
 *
 * On a store of one process nothing is written: {@link SharedCalls.active} is false, every outcome is this instance's.
 * Vendor: `<Gather>` action parameters https://www.twilio.com/docs/voice/twiml/gather#action
 */
import { isSharedKv, type SharedKvStore } from "../shared-store";
import type { KvBackend } from "../store";
import { isMachine } from "./calls";
import { MAX_GATHER_ATTEMPTS, type CallResult, type GatherReply, type TrackedCall } from "./call-tracker";

/** What the store keeps per placed call (`T`: the call node's data: the msg to emit, voice, prompts). */
export interface SharedCall<T> {
  sid: string;
  jobId: string;
  data: T;
  /** Keypresses received so far (any instance). */
  attempts: number;
}

/** A keypress handled from the store: the reply to give and, when the call ends with it, its result. */
export type SharedGather<T> = { kind: "unknown" } | { kind: "thanks" | "retry" | "goodbye"; call: TrackedCall<T>; result?: CallResult; digits?: string };

export class SharedCalls<T> {
  private readonly kv?: SharedKvStore;

  /** @param backend the call node's store; @param ttlMs how long a call's state is kept (≥ its give-up time), ms */
  constructor(
    backend: KvBackend,
    private readonly opts: { ttlMs: number; ackDigit: string },
  ) {
    this.kv = isSharedKv(backend) ? backend : undefined;
  }

  /** True when the store is shared (other instances may answer this node's calls). */
  get active(): boolean {
    return this.kv !== undefined;
  }

  /**
   * Record a placed call for the other instances (no-op on a local store).
   * @throws what the store throws; TypeError when `data` is not JSON-serialisable
   */
  async put(corr: string, call: Omit<SharedCall<T>, "attempts">): Promise<void> {
    await this.kv?.set(`mc_${corr}`, { ...call, attempts: 0 } satisfies SharedCall<T>, this.opts.ttlMs);
  }

  /**
   * Claim the one outcome of call `corr`: true when this instance emits it (always, on a local store).
   * @throws what the store throws
   */
  async claimOutcome(corr: string): Promise<boolean> {
    return this.kv ? this.kv.claim(`mcx_${corr}`, 1, this.opts.ttlMs) : true;
  }

  /**
   * A keypress for a call this instance's tracker does not know: decided from the store, as the tracker would
   * (the confirming key acknowledges; another key gets one retry prompt; no key or a second wrong one ends the call).
   * @throws what the store throws
   */
  async gather(corr: string, callSid: string | undefined, digits: string, answeredBy?: string): Promise<SharedGather<T>> {
    const kv = this.kv;
    if (!kv) return { kind: "unknown" };
    const rec = (await kv.get(`mc_${corr}`)) as SharedCall<T> | undefined;
    if (!rec || (callSid && callSid !== rec.sid)) return { kind: "unknown" };
    const attempts = rec.attempts + 1;
    await kv.set(`mc_${corr}`, { ...rec, attempts }, this.opts.ttlMs);
    const call: TrackedCall<T> = { corr, sid: rec.sid, jobId: rec.jobId, status: "in-progress", ack: true, poll: false, data: rec.data, ...(answeredBy ? { answeredBy } : {}) };
    if (digits === this.opts.ackDigit) return { kind: "thanks", call, result: "acknowledged", digits };
    if (digits !== "" && attempts < MAX_GATHER_ATTEMPTS) return { kind: "retry", call };
    return { kind: "goodbye", call, result: isMachine(answeredBy) ? "machine" : "no-input", ...(digits ? { digits } : {}) };
  }

  /**
   * Run `emit` (a call's outcome) once across instances: at once on a local store; else when this instance wins the
   * claim, or when the store cannot be reached (an outcome is never dropped). Never throws.
   */
  once(corr: string, emit: () => void): void {
    if (!this.kv) return emit();
    this.claimOutcome(corr).then((mine) => (mine ? emit() : undefined), emit);
  }

  /**
   * The reply to a keypress: `local` (the tracker's) unless it does not know the call and the store does (placed by
   * another instance); then `onEnd` is told when the keypress ends the call. Never rejects (`onError`, then "unknown").
   */
  async reply(local: GatherReply<T>, corr: string, callSid: string | undefined, digits: string, answeredBy: string | undefined, onEnd: (call: TrackedCall<T>, result: CallResult, digits?: string) => void, onError: (err: unknown) => void): Promise<GatherReply<T>> {
    if (local.kind !== "unknown" || !this.kv) return local;
    let s: SharedGather<T>;
    try {
      s = await this.gather(corr, callSid, digits, answeredBy);
    } catch (err) {
      onError(err);
      return local;
    }
    if (s.kind === "unknown") return s;
    if (s.result) onEnd(s.call, s.result, s.digits);
    return { kind: s.kind, call: s.call };
  }
}
