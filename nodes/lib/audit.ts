/**
 * Audit trail of notifications: one record per send attempt, updated by Twilio status callbacks.
 *
 * Records live in a {@link BoundedStore} (a Node-RED context store through nodes/shared/context.ts, or
 * a {@link MapBackend} in tests), so they are bounded (`maxRecords`, oldest evicted first) and expire
 * (`ttlMs` after creation). Two secondary indexes (sid → recordId, jobId → recordIds) are kept in
 * memory only and rebuilt from the stored entries when the trail is loaded.
 *
 * Personal data: the recipient is stored masked (lib/phone.ts maskRecipient), never raw. Error
 * messages are stored truncated; they come from typed library errors, which carry no secrets.
 *
 * Status ordering follows lib/twilio/status.ts: duplicates and late callbacks (a `sent` after
 * `delivered`) leave a record unchanged.
 * (Twilio: https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks)
 */
import { BoundedStore, KvBackend } from "./store";
import { ValidationError } from "./errors";
import { jsonCopy, shallowCopy } from "./json-copy";
import { maskRecipient } from "./phone";
import { FAILED_STATUSES, isStatusAdvance, statusRank } from "./twilio/status";

/** Audit status of a record written before its create left (claim before send); becomes the Twilio status. */
export const AUDIT_PENDING = "pending";
/** Audit status of a send whose outcome is not known yet (timeout, crash); settled by a lookup. */
export const AUDIT_OUTCOME_UNKNOWN = "outcome_unknown";
/** Our own statuses, below every vendor status. */
const LOCAL_RANK: Record<string, number> = { [AUDIT_PENDING]: -3, [AUDIT_OUTCOME_UNKNOWN]: -2 };

/** Whether `status` is one of the audit's own statuses (pending, outcome_unknown), not a vendor status. */
export function isLocalStatus(status: string | undefined): boolean {
  return status !== undefined && status in LOCAL_RANK;
}

/** isStatusAdvance extended with the local statuses (pending → outcome_unknown → any vendor status). */
function advances(current: string | undefined, next: string, kind: "message" | "call"): boolean {
  if (current !== undefined && (isLocalStatus(current) || isLocalStatus(next))) {
    return (LOCAL_RANK[next] ?? statusRank(next, kind)) > (LOCAL_RANK[current] ?? statusRank(current, kind));
  }
  return isStatusAdvance(current, next, kind);
}

/** Reference to the ERP record a notification was about (a subset of `msg.erp`). */
export interface AuditErpRef {
  system: string;
  tenant: string;
  entity: string;
  id: string;
  number?: string;
}

/** One entry of a record's status history. */
export interface AuditHistoryEntry {
  status: string;
  /** ISO 8601 time the status was reported (callback time when known, else the time it was recorded). */
  at: string;
  /** Vendor error code reported with the status (Twilio `ErrorCode`, or an MlcError code). */
  errorCode?: number | string;
}

/** What went wrong with a send, JSON-safe and free of secrets. */
export interface AuditError {
  /** Stable code ("twilio_21610", "invalid_phone", "timeout"…). */
  code: string;
  /** Short human text (truncated to {@link MAX_ERROR_MESSAGE} characters). */
  message: string;
}

/** One notification: what was sent, to whom (masked), and every status it went through. */
export interface AuditRecord {
  /** The Twilio sid when the send returned one, else `${jobId}/${n}`. */
  recordId: string;
  /** ISO 8601 creation time. */
  createdAt: string;
  /** ISO 8601 time of the last change. */
  updatedAt: string;
  /** `msg.erp.jobId` of the event that caused the send ("" when a status callback carried none). */
  jobId: string;
  erp?: AuditErpRef;
  /** Twilio channel ("sms", "whatsapp", "voice", "email"…), or "unknown". */
  channel: string;
  /** Recipient, masked ("+1•••••••32", "a•@example.com"). Never the raw address. */
  to: string;
  /** Twilio resource sid (SM…/MM…/CA…), when known. */
  sid?: string;
  /** Most advanced status seen. */
  status: string;
  /** Status history, oldest first, at most {@link MAX_HISTORY} entries (oldest dropped). */
  history: AuditHistoryEntry[];
  error?: AuditError;
}

/** Input of {@link AuditTrail.recordSend}. */
export interface SendInput {
  /** Required unless `sid` is given. */
  jobId?: string;
  /** Any object with the {@link AuditErpRef} fields (extra fields such as `action` are dropped). */
  erp?: Partial<AuditErpRef> & Record<string, unknown>;
  channel?: string;
  /** Raw recipient; masked before it is stored. */
  to?: string;
  sid?: string;
  status: string;
  error?: { code?: string | number; message?: string };
  /** Time of the send (ISO 8601 string, ms since epoch or Date); default now. */
  at?: string | number | Date;
}

/** Input of {@link AuditTrail.applyStatus}. `sid` is preferred; `jobId` finds the most recent record. */
export interface StatusInput {
  sid?: string;
  jobId?: string;
  status: string;
  errorCode?: number | string;
  errorMessage?: string;
  /** Time of the status (ISO 8601 string, ms since epoch or Date); default now. */
  at?: string | number | Date;
  /** Fills `erp` on a record that has none (a callback recorded before its send). */
  erp?: Partial<AuditErpRef> & Record<string, unknown>;
}

/** Result of {@link AuditTrail.applyStatus}: `changed` is false for duplicates, late statuses and unknown records. */
export interface StatusResult {
  record: AuditRecord | undefined;
  changed: boolean;
}

export interface AuditTrailOptions {
  /** Trail name, [A-Za-z0-9_]{1,32}; separates several trails in one context scope. Default "default". */
  name?: string;
  /** Maximum number of records; the oldest are evicted first. Default 10000. */
  maxRecords?: number;
  /** Lifetime of a record after its creation, ms; 0 = no expiry. Default 30 days. */
  ttlMs?: number;
  /** Clock, ms since epoch (tests). */
  now?: () => number;
}

/** Maximum number of history entries per record. */
export const MAX_HISTORY = 20;
/** Maximum length of a stored error message. */
export const MAX_ERROR_MESSAGE = 300;
/** Default bound on the number of records. */
export const DEFAULT_MAX_RECORDS = 10000;
/** Default record lifetime: 30 days, in ms. */
export const DEFAULT_AUDIT_TTL_MS = 30 * 24 * 3600 * 1000;

const TRAIL_NAME = /^[A-Za-z0-9_]{1,32}$/;

/** True when `name` is a valid trail name ([A-Za-z0-9_], 1–32 characters). */
export function isValidTrailName(name: string): boolean {
  return TRAIL_NAME.test(name);
}

/**
 * Store key prefix of a trail: "audit" + hex of the name (alphanumeric, unambiguous even for names with "_").
 * @throws ValidationError code "invalid_trail" for a name outside [A-Za-z0-9_]{1,32}
 */
export function trailPrefix(name: string): string {
  if (!isValidTrailName(name)) throw new ValidationError(`Audit trail name must match [A-Za-z0-9_]{1,32}: "${name.slice(0, 40)}"`, { code: "invalid_trail" });
  return "audit" + Buffer.from(name, "utf8").toString("hex");
}

/** Calls follow the call-status order (queued → initiated → ringing → in-progress → completed/busy/…). */
function statusKind(channel: string | undefined): "message" | "call" {
  return channel === "voice" ? "call" : "message";
}

/** Whether a record counts as failed: a status in FAILED_STATUSES, or an error recorded. */
export function isFailedRecord(r: AuditRecord): boolean {
  return FAILED_STATUSES.has(r.status) || r.error !== undefined;
}

/** A short, display-safe form of a sid: "SM…1234". */
export function shortSid(sid: string): string {
  return sid.length <= 8 ? sid : `${sid.slice(0, 2)}…${sid.slice(-4)}`;
}

function isoOf(at: string | number | Date | undefined, now: number): string {
  if (at instanceof Date && !Number.isNaN(at.getTime())) return at.toISOString();
  if (typeof at === "number" && Number.isFinite(at)) return new Date(at).toISOString();
  if (typeof at === "string") {
    const t = Date.parse(at);
    if (!Number.isNaN(t)) return new Date(t).toISOString();
  }
  return new Date(now).toISOString();
}

function str(v: unknown): string | undefined {
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

function erpRef(erp: SendInput["erp"]): AuditErpRef | undefined {
  if (!erp || typeof erp !== "object") return undefined;
  const system = str(erp.system);
  const id = str(erp.id);
  if (!system || !id) return undefined;
  const ref: AuditErpRef = { system, tenant: str(erp.tenant) ?? "", entity: str(erp.entity) ?? "", id };
  const number = str(erp.number);
  if (number) ref.number = number;
  return ref;
}

function maskTo(to: string | undefined): string {
  if (!to) return "";
  // Already masked upstream: masking again would drop the mask characters.
  return to.includes("•") ? to : maskRecipient(to);
}

function auditError(e: SendInput["error"]): AuditError | undefined {
  if (!e) return undefined;
  const code = str(e.code) ?? "error";
  const message = (typeof e.message === "string" ? e.message : "").slice(0, MAX_ERROR_MESSAGE);
  return { code, message };
}

/** Records handed out are copies: a flow that edits `msg.audit` must not edit the trail. */
function copy<T extends AuditRecord | undefined>(r: T): T {
  return r === undefined ? r : jsonCopy(r);
}

function pushHistory(history: AuditHistoryEntry[], entry: AuditHistoryEntry): AuditHistoryEntry[] {
  const next = [...history, entry];
  return next.length > MAX_HISTORY ? next.slice(next.length - MAX_HISTORY) : next;
}

/** What a recorded send brings to the record it continues (see {@link AuditTrail.recordSend}). */
interface SendFields {
  jobId: string;
  erp?: AuditRecord["erp"];
  channel?: string;
  sid?: string;
  /** Raw recipient (masked when stored). */
  to?: string;
  error?: AuditRecord["error"];
  status: string;
  /** ISO time of the status. */
  at: string;
}

/**
 * `existing` completed by a later record of the same send: missing jobId, erp, channel, sid, recipient and error
 * filled in, the status applied when it is an advance (history grows).
 * @returns a new record, or undefined when nothing changed
 */
function completeRecord(existing: AuditRecord, f: SendFields): AuditRecord | undefined {
  const merged: AuditRecord = shallowCopy(existing);
  let changed = false;
  if (!merged.jobId && f.jobId) {
    merged.jobId = f.jobId;
    changed = true;
  }
  if (!merged.erp && f.erp) {
    merged.erp = f.erp;
    changed = true;
  }
  if (merged.channel === "unknown" && f.channel) {
    merged.channel = f.channel;
    changed = true;
  }
  if (!merged.sid && f.sid) {
    merged.sid = f.sid;
    changed = true;
  }
  if (!merged.to && f.to) {
    merged.to = maskTo(f.to);
    changed = true;
  }
  if (!merged.error && f.error) {
    merged.error = f.error;
    changed = true;
  }
  if (advances(merged.status, f.status, statusKind(merged.channel))) {
    merged.status = f.status;
    merged.history = pushHistory(merged.history, f.error ? { status: f.status, at: f.at, errorCode: f.error.code } : { status: f.status, at: f.at });
    changed = true;
  }
  return changed ? merged : undefined;
}

/**
 * The audit trail. All operations are serialised (one at a time, in call order), so concurrent
 * callbacks for the same sid cannot overwrite each other's history.
 */
export class AuditTrail {
  private readonly store: BoundedStore<AuditRecord>;
  private readonly now: () => number;
  private readonly bySid = new Map<string, string>();
  private readonly byJob = new Map<string, string[]>();
  /** On a store shared by several instances: the sid and jobId indexes in the store too (a callback may reach any instance). */
  private readonly sharedIndex?: { sids: BoundedStore<string>; jobs: BoundedStore<string[]> };
  private queue: Promise<unknown>;
  /** Writes of the operation being decided (see {@link run}). */
  private opCommits: Promise<unknown>[] | undefined;
  /** Writes issued and not yet committed (see {@link idle}). */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Resolves when stored records have been read and the indexes rebuilt; rejects if the backend fails. */
  readonly ready: Promise<void>;
  /** Trail name. */
  readonly name: string;

  /**
   * @param backend key/value backend (context store scope, or MapBackend)
   * @throws ValidationError code "invalid_trail" for a bad trail name
   */
  constructor(backend: KvBackend, opts: AuditTrailOptions = {}) {
    this.name = opts.name ?? "default";
    this.now = opts.now ?? Date.now;
    this.store = new BoundedStore<AuditRecord>(backend, {
      prefix: trailPrefix(this.name),
      ttlMs: Math.max(0, opts.ttlMs ?? DEFAULT_AUDIT_TTL_MS),
      maxEntries: Math.max(1, Math.floor(opts.maxRecords ?? DEFAULT_MAX_RECORDS)),
      now: this.now,
      // An evicted or expired record leaves the sid and jobId indexes at once (no rescan of the trail).
      onDrop: (e) => this.unindex(e.v),
    });
    if (this.store.isShared) {
      const o = { ttlMs: Math.max(0, opts.ttlMs ?? DEFAULT_AUDIT_TTL_MS), maxEntries: Math.max(1, Math.floor(opts.maxRecords ?? DEFAULT_MAX_RECORDS)), now: this.now };
      const hex = trailPrefix(this.name).slice("audit".length); // "auditX"/"auditJ" never prefix "audit<hex>_"
      this.sharedIndex = { sids: new BoundedStore<string>(backend, { ...o, prefix: "auditX" + hex }), jobs: new BoundedStore<string[]>(backend, { ...o, prefix: "auditJ" + hex }) };
    }
    this.ready = this.store.ready.then(() => this.rebuildIndexes());
    this.queue = this.ready.catch(() => undefined);
  }

  /** Number of live records (expired ones may be counted until next access). */
  get size(): number {
    return this.store.size;
  }

  /** Resolves when every operation queued so far has finished and its writes are committed. */
  async idle(): Promise<void> {
    await this.queue.then(
      () => undefined,
      () => undefined,
    );
    await Promise.all([...this.inflight].map((p) => p.catch(() => undefined)));
  }

  /**
   * Run `op` after every earlier operation has been decided: reads and the in-memory decision of one operation never
   * interleave with another's. The operation's writes are issued in the order decided; the next operation does not
   * wait for them to be committed (so concurrent sends share commits instead of queueing behind each other's disk
   * flush), but this operation's promise resolves only once they are.
   */
  private run<T>(op: () => Promise<T>): Promise<T> {
    const decided = this.queue.then(async () => {
      await this.ready;
      const commits: Promise<unknown>[] = [];
      this.opCommits = commits;
      try {
        const value = await op();
        // On a shared store the next operation decides from the store itself (another instance may write it), so it
        // waits for this one's writes; on a local store the in-memory index already holds them.
        if (this.sharedIndex) await Promise.all(commits);
        return { value, commits };
      } finally {
        this.opCommits = undefined;
      }
    });
    this.queue = decided.catch(() => undefined);
    return decided.then(async ({ value, commits }) => {
      await Promise.all(commits);
      return value;
    });
  }

  private async rebuildIndexes(): Promise<void> {
    this.bySid.clear();
    this.byJob.clear();
    for (const e of await this.store.entries()) this.index(e.v);
  }

  private index(r: AuditRecord): void {
    if (r.sid) this.bySid.set(r.sid, r.recordId);
    if (r.jobId) {
      const ids = this.byJob.get(r.jobId);
      if (!ids) this.byJob.set(r.jobId, [r.recordId]);
      else if (!ids.includes(r.recordId)) ids.push(r.recordId);
    }
  }

  /** Remove a record that left the store (evicted or expired) from the sid and jobId indexes. */
  private unindex(r: AuditRecord): void {
    if (r.sid && this.bySid.get(r.sid) === r.recordId) this.bySid.delete(r.sid);
    const ids = r.jobId ? this.byJob.get(r.jobId) : undefined;
    if (!ids) return;
    const i = ids.indexOf(r.recordId);
    if (i === -1) return;
    if (ids.length === 1) this.byJob.delete(r.jobId);
    else ids.splice(i, 1);
  }

  private async recordBySid(sid: string): Promise<AuditRecord | undefined> {
    const id = (await this.sharedIndex?.sids.get(sid)) ?? this.bySid.get(sid);
    if (id === undefined) return undefined;
    const r = await this.store.get(id);
    if (!r) this.bySid.delete(sid);
    return r;
  }

  private async recordsByJob(jobId: string): Promise<AuditRecord[]> {
    const ids = this.sharedIndex ? await this.sharedIndex.jobs.get(jobId) : this.byJob.get(jobId);
    if (!ids) return [];
    const out: AuditRecord[] = [];
    const live: string[] = [];
    for (const id of ids.slice()) {
      const r = await this.store.get(id);
      if (r) {
        out.push(r);
        live.push(id);
      }
    }
    if (live.length === 0) this.byJob.delete(jobId);
    else if (live.length !== ids.length) this.byJob.set(jobId, live);
    return out;
  }

  /**
   * The open record of a send: same jobId, recipient (masked) and channel, no sid yet, written before the create
   * (status pending / outcome_unknown); or, for a failure without sid, the record that already holds the same
   * status and error code (the sender recorded it, then a Catch → mlc-audit records it again).
   */
  private async openRecordOf(jobId: string, input: SendInput, status: string): Promise<AuditRecord | undefined> {
    const to = maskTo(input.to);
    const channel = str(input.channel);
    const all = await this.recordsByJob(jobId);
    for (let i = all.length - 1; i >= 0; i--) {
      const r = all[i];
      if (r.sid || r.to !== to || (channel && r.channel !== channel && r.channel !== "unknown")) continue;
      if (isLocalStatus(r.status)) return r;
      // The same failure recorded twice (the sender, then a Catch → mlc-audit): one record.
      const code = auditError(input.error)?.code;
      if (!str(input.sid) && code !== undefined && r.error?.code === code && r.status === status) return r;
      return undefined;
    }
    return undefined;
  }

  /** Issue the write of `r` now; the running operation resolves once it is committed (see {@link run}). */
  private save(r: AuditRecord): void {
    const committed = this.sharedIndex ? this.saveShared(r) : this.store.setNow(r.recordId, r);
    this.opCommits?.push(committed);
    this.inflight.add(committed);
    const done = (): void => {
      this.inflight.delete(committed);
    };
    committed.then(done, done);
    this.index(r);
  }

  /** On a store shared by several instances: the record, then the sid and jobId indexes the other instances read. */
  private async saveShared(r: AuditRecord): Promise<void> {
    await this.store.set(r.recordId, r);
    if (!this.sharedIndex) return;
    if (r.sid) await this.sharedIndex.sids.set(r.sid, r.recordId);
    if (r.jobId) await this.sharedIndex.jobs.update(r.jobId, (ids) => (ids?.includes(r.recordId) ? undefined : [...(ids ?? []), r.recordId]));
  }

  /**
   * Record a send attempt. When `sid` names an existing record (its status callback was recorded
   * first, or the same send is recorded twice), that record is completed instead: missing jobId, erp,
   * channel and recipient are filled in and the status applied if it is an advance.
   * @returns the new (or completed) record
   * @throws ValidationError code "invalid_input" when status is empty, or when neither jobId nor sid is given
   */
  recordSend(input: SendInput): Promise<AuditRecord> {
    return this.run(() => this.recordOp(input)).then(copy);
  }

  /**
   * {@link recordSend} for a caller that does not read the record (a send node's before/after records): no copy.
   * @throws as recordSend
   */
  record(input: SendInput): Promise<void> {
    return this.run(() => this.recordOp(input)).then(() => undefined);
  }

  /** The operation of {@link recordSend}, run inside {@link run}. */
  private async recordOp(input: SendInput): Promise<AuditRecord> {
    const status = str(input.status);
    if (!status) throw new ValidationError("Audit record needs a status", { code: "invalid_input" });
    const sid = str(input.sid);
    const jobId = str(input.jobId) ?? "";
    if (!sid && !jobId) throw new ValidationError("Audit record needs a jobId or a sid", { code: "invalid_input" });
    const at = isoOf(input.at, this.now());
    const error = auditError(input.error);
    const erp = erpRef(input.erp);

    // The record this send continues: the one of its sid, else (claim before send) the record the sender wrote
    // before the create for the same jobId, recipient and channel, which has no sid yet.
    let existing = sid ? await this.recordBySid(sid) : undefined;
    if (!existing && jobId) existing = await this.openRecordOf(jobId, input, status);
    if (existing) {
      const merged = completeRecord(existing, { jobId, erp, channel: str(input.channel), sid, to: input.to, error, status, at });
      if (!merged) return existing;
      merged.updatedAt = isoOf(undefined, this.now());
      this.save(merged);
      return merged;
    }

    let recordId = sid;
    if (!recordId) {
      let n = (this.byJob.get(jobId)?.length ?? 0) + 1;
      while (await this.store.has(`${jobId}/${n}`)) n++;
      recordId = `${jobId}/${n}`;
    }
    const created = isoOf(undefined, this.now());
    const record: AuditRecord = {
      recordId,
      createdAt: created,
      updatedAt: created,
      jobId,
      channel: str(input.channel) ?? "unknown",
      to: maskTo(input.to),
      status,
      history: [error ? { status, at, errorCode: error.code } : { status, at }],
    };
    if (erp) record.erp = erp;
    if (sid) record.sid = sid;
    if (error) record.error = error;
    this.save(record);
    return record;
  }

  /**
   * Apply a status (callback) to the record found by `sid` (preferred) or the most recent record of
   * `jobId`. History grows only when the status is an advance (lib/twilio/status.ts isStatusAdvance);
   * duplicates and late statuses return the record unchanged. A failed status with an error code also
   * sets `error` ({code: "twilio_<code>"}) when the record has none.
   * @returns `{record, changed}`; `{record: undefined, changed: false}` for an unknown sid/jobId
   * @throws ValidationError code "invalid_input" when status is empty or neither sid nor jobId is given
   */
  applyStatus(input: StatusInput): Promise<StatusResult> {
    return this.run(async () => {
      const status = str(input.status);
      if (!status) throw new ValidationError("Status update needs a status", { code: "invalid_input" });
      const sid = str(input.sid);
      const jobId = str(input.jobId);
      if (!sid && !jobId) throw new ValidationError("Status update needs a sid or a jobId", { code: "invalid_input" });
      let record: AuditRecord | undefined;
      if (sid) record = await this.recordBySid(sid);
      if (!record && jobId) {
        const all = await this.recordsByJob(jobId);
        record = all[all.length - 1];
      }
      if (!record) return { record: undefined, changed: false };

      const next: AuditRecord = shallowCopy(record);
      let changed = false;
      const erp = !next.erp ? erpRef(input.erp) : undefined;
      if (erp) {
        next.erp = erp;
        changed = true;
      }
      if (advances(record.status, status, statusKind(record.channel))) {
        const errorCode = input.errorCode !== undefined && input.errorCode !== "" ? input.errorCode : undefined;
        const at = isoOf(input.at, this.now());
        next.status = status;
        next.history = pushHistory(record.history, errorCode !== undefined ? { status, at, errorCode } : { status, at });
        if (!next.error && errorCode !== undefined && FAILED_STATUSES.has(status)) {
          const code = typeof errorCode === "number" || /^\d+$/.test(String(errorCode)) ? `twilio_${errorCode}` : String(errorCode);
          next.error = { code, message: (input.errorMessage ?? `Twilio error ${errorCode}`).slice(0, MAX_ERROR_MESSAGE) };
        }
        changed = true;
      }
      if (!changed) return { record, changed: false };
      next.updatedAt = isoOf(undefined, this.now());
      this.save(next);
      return { record: next, changed: true };
    }).then((r) => ({ record: copy(r.record), changed: r.changed }));
  }

  /** The record with this recordId, if live. */
  get(recordId: string): Promise<AuditRecord | undefined> {
    return this.run(() => this.store.get(recordId)).then(copy);
  }

  /** The record of this Twilio sid, if live. */
  findBySid(sid: string): Promise<AuditRecord | undefined> {
    return this.run(() => this.recordBySid(sid)).then(copy);
  }

  /** Whether a live record has this Twilio sid ({@link findBySid} without the copy). */
  hasSid(sid: string): Promise<boolean> {
    return this.run(() => this.recordBySid(sid)).then((r) => r !== undefined);
  }

  /** Every live record of a jobId, oldest first (a job may have been sent several times). */
  findByJobId(jobId: string): Promise<AuditRecord[]> {
    return this.run(() => this.recordsByJob(jobId)).then((rs) => rs.map(copy));
  }

  /**
   * Records whose status is in FAILED_STATUSES or that carry an error, oldest first. Each has its
   * `jobId` and `erp` reference, so a flow can re-fetch the ERP record and replay the send.
   */
  listFailed(): Promise<AuditRecord[]> {
    return this.run(async () => (await this.store.entries()).map((e) => copy(e.v)).filter(isFailedRecord));
  }

  /** Every live record, oldest first. */
  list(): Promise<AuditRecord[]> {
    return this.run(async () => (await this.store.entries()).map((e) => copy(e.v)));
  }
}
