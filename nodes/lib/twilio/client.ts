/**
 * Twilio REST client wrapper: the official `twilio` package (request building, resource classes) with
 * our {@link HttpClient} underneath as its `httpClient`, so every call gets the package's keep-alive
 * pool, timeouts and safe-retry rules, and so the API host can be overridden (simulators, egress
 * proxies). Twilio errors become typed errors with Twilio's numeric code.
 *
 * Vendor documents: Messages resource https://www.twilio.com/docs/messaging/api/message-resource ;
 * errors https://www.twilio.com/docs/api/errors ; regions/edges
 * https://www.twilio.com/docs/global-infrastructure/api-domain-migration-guide
 */
import twilio from "twilio";
import { AuthError, RateLimitedError, TwilioError, ValidationError } from "../errors";
import { HttpClient, HttpClientOptions, HttpMethod } from "../http";
import { parseRetryAfter } from "../retry";
import { PacingOptions, RateBudget } from "./pacing";
import { messageSegments } from "./segments";

/** REST credentials: Account SID with its Auth Token, or an API key (SK…) and secret. */
export interface TwilioCredentials {
  accountSid: string;
  authToken?: string;
  apiKeySid?: string;
  apiKeySecret?: string;
}

export interface TwilioClientOptions {
  credentials: TwilioCredentials;
  /** Processing region: "us1" (default), "ie1" or "au1". */
  region?: string;
  /** Edge location ("dublin", "sydney", "ashburn"…). Required form for non-US1 regions; defaults from the region. */
  edge?: string;
  /**
   * Replaces scheme+host of every request, e.g. "http://127.0.0.1:4010" (simulators, egress proxies). A Twilio host
   * (`*.twilio.com`, e.g. "https://api.twilio.com") is no override: each product keeps its own host (Verify calls
   * verify.twilio.com, not api.twilio.com), chosen by `region` and `edge`.
   */
  apiHost?: string;
  http?: HttpClientOptions;
  /** The account's rate budget (shared by every node using this client). */
  pacing?: PacingOptions;
}

/** Legacy region → edge pairs (Twilio: edge-locations/legacy-regions); only IE1 and AU1 process outside US1. */
export const REGION_EDGES: Record<string, string> = { ie1: "dublin", au1: "sydney" };

/** Message as our nodes use it (subset of Twilio's Message resource, camelCase). */
export interface TwilioMessage {
  sid: string;
  status: string;
  to: string;
  from: string | null;
  messagingServiceSid: string | null;
  numSegments: number | null;
  errorCode: number | null;
  errorMessage: string | null;
  dateCreated: string | null;
}

export interface SendMessageParams {
  /** E.164 (or `whatsapp:+…`). */
  to: string;
  from?: string;
  messagingServiceSid?: string;
  body?: string;
  mediaUrl?: string[];
  statusCallback?: string;
  /** Further Message create parameters in twilio-node's camelCase (sendAt, scheduleType, contentSid, contentVariables, validityPeriod…). */
  extra?: Record<string, unknown>;
}

/** Result of the harmless "Test connection" call. */
export interface TwilioAccountInfo {
  sid: string;
  friendlyName: string;
  status: string;
}

/** The shape `twilio` expects from an httpClient (its RequestClient contract). */
interface TwilioRequestOpts {
  method: string;
  uri: string;
  username?: string;
  password?: string;
  headers?: Record<string, string>;
  params?: Record<string, unknown>;
  data?: Record<string, unknown>;
  timeout?: number;
}

function formEncode(data: Record<string, unknown>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(data)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const item of v) sp.append(k, String(item));
    else sp.append(k, String(v));
  }
  return sp.toString();
}

export class TwilioClient {
  readonly accountSid: string;
  readonly http: HttpClient;
  /** REST calls authenticate with an API key (SK…) rather than the Auth Token. */
  readonly usesApiKey: boolean;
  private readonly sdk: ReturnType<typeof twilio>;
  /** The account's rate budget: every create goes through `budget.create(sender, …)`. */
  readonly budget: RateBudget;
  private readonly apiHost?: URL;

  /** @throws ValidationError when credentials are incomplete or the API host is not a URL */
  constructor(opts: TwilioClientOptions) {
    const c = opts.credentials;
    if (!/^AC[0-9a-fA-F]{32}$/.test(c.accountSid ?? "")) throw new ValidationError("Account SID must be AC followed by 32 hex characters", { code: "bad_config" });
    const useKey = Boolean(c.apiKeySid && c.apiKeySecret);
    if (!useKey && !c.authToken) throw new ValidationError("An Auth Token or an API key SID and secret is required", { code: "bad_config" });
    if (c.apiKeySid && !/^SK[0-9a-fA-F]{32}$/.test(c.apiKeySid)) throw new ValidationError("API key SID must be SK followed by 32 hex characters", { code: "bad_config" });
    if (opts.apiHost) {
      let host: URL;
      try {
        host = new URL(opts.apiHost);
      } catch {
        throw new ValidationError("API host override is not a valid URL", { code: "bad_config" });
      }
      if (!/(^|\.)twilio\.com$/i.test(host.hostname)) this.apiHost = host;
    }
    this.accountSid = c.accountSid;
    this.usesApiKey = useKey;
    this.budget = new RateBudget(opts.pacing);
    // At least one socket per concurrency slot: a create granted by the budget must leave at once, not wait in
    // undici's queue for a socket (the instant the budget counts is the instant the request leaves).
    const connections = Math.max(8, Math.floor(opts.pacing?.maxConcurrent ?? 5));
    this.http = new HttpClient({ timeoutMs: 15000, connections, ...(opts.http ?? {}) });
    const region = opts.region && opts.region !== "us1" ? opts.region : undefined;
    const edge = opts.edge || (region ? REGION_EDGES[region] : undefined);
    if (region && !edge) throw new ValidationError(`Region ${region} needs an edge location (the api.${region}.twilio.com form no longer works)`, { code: "bad_config" });
    this.sdk = twilio(useKey ? c.apiKeySid : c.accountSid, useKey ? c.apiKeySecret : c.authToken, {
      accountSid: c.accountSid,
      region,
      edge,
      httpClient: { request: (o: TwilioRequestOpts) => this.transport(o) } as never,
    });
  }

  /** Adapter from twilio's RequestClient contract to our HttpClient. */
  private async transport(o: TwilioRequestOpts): Promise<{ statusCode: number; body: string; headers: Record<string, unknown> }> {
    const url = new URL(o.uri);
    if (this.apiHost) {
      url.protocol = this.apiHost.protocol;
      url.host = this.apiHost.host;
      if (this.apiHost.pathname !== "/") url.pathname = this.apiHost.pathname.replace(/\/$/, "") + url.pathname;
    }
    if (o.params && Object.keys(o.params).length) url.search = formEncode(o.params);
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.username !== undefined) headers.Authorization = "Basic " + Buffer.from(`${o.username}:${o.password ?? ""}`).toString("base64");
    const method = o.method.toUpperCase() as HttpMethod;
    const body = o.data && Object.keys(o.data).length ? formEncode(o.data) : undefined;
    // Creates (POST) are not idempotent: the HttpClient never repeats one whose outcome is unknown. Every POST runs
    // inside `budget.create`, so its 429 is not repeated here either: it is thrown at once and the budget re-queues
    // the create, so the retry is counted against the account's and the sender's rate like the first attempt.
    const post = method === "POST";
    const isFinal = post ? (r: { status: number; body: string }) => r.status === 429 || isAttemptLimit(r) : isAttemptLimit;
    const attempt = post ? this.budget.currentAttempt() : undefined; // read synchronously, before the first await
    const res = await this.http.request({ method, url: url.toString(), headers, body, idempotent: !post, isFinal });
    // How long Twilio spent on it tells the budget how late the request can have reached Twilio (see pacing.ts).
    this.budget.noteServerTime(attempt, Number(res.headers["twilio-request-duration"]) * 1000);
    if (res.status === 429 && !isAttemptLimit(res)) {
      throw new RateLimitedError(post ? "Twilio rate limit (429), not processed" : "Twilio rate limit (too many concurrent requests); retries exhausted", {
        vendorCode: parseTwilioCode(res.body) ?? 20429,
        retryAfterMs: parseRetryAfter(res.headers["retry-after"]),
      });
    }
    return { statusCode: res.status, body: res.body, headers: res.headers };
  }

  /**
   * Create a Message (POST /2010-04-01/Accounts/{AccountSid}/Messages.json).
   * Paced by the account's budget ({@link RateBudget.create}, sender = the Messaging Service or `from`); a 429
   * re-queues the create (honouring `Retry-After`) instead of failing it.
   * @throws TwilioError (21211 invalid To, 21610 opted out, …), AuthError (20003), RateLimitedError (429s for longer
   *   than the budget's `maxRequeueMs`), TimeoutError (outcomeUnknown: the message may exist; never resent blindly),
   *   MlcError "closed" when the client closed before the create could leave
   */
  async sendMessage(p: SendMessageParams): Promise<TwilioMessage> {
    try {
      const m = await this.budget.create(p.messagingServiceSid ?? p.from, () => this.sdk.messages.create({
        to: p.to,
        ...(p.from ? { from: p.from } : {}),
        ...(p.messagingServiceSid ? { messagingServiceSid: p.messagingServiceSid } : {}),
        ...(p.body !== undefined ? { body: p.body } : {}),
        ...(p.mediaUrl && p.mediaUrl.length ? { mediaUrl: p.mediaUrl } : {}),
        ...(p.statusCallback ? { statusCallback: p.statusCallback } : {}),
        ...(p.extra ?? {}),
      } as never).catch((err: unknown) => {
        throw mapTwilioError(err);
      }), messageSegments(p.body, { media: Boolean(p.mediaUrl?.length), from: p.from }));
      return toMessage(m as unknown as Record<string, unknown>);
    } catch (err) {
      throw mapTwilioError(err);
    }
  }

  /** Fetch a Message by SID (GET …/Messages/{Sid}.json). @throws as sendMessage (404 → TwilioError 20404) */
  async fetchMessage(sid: string): Promise<TwilioMessage> {
    try {
      const m = await this.budget.other(() => this.sdk.messages(sid).fetch());
      return toMessage(m as unknown as Record<string, unknown>);
    } catch (err) {
      throw mapTwilioError(err);
    }
  }

  /**
   * Find a message created to `to` since `since` with this body and sender, for reconciling a create whose outcome
   * is unknown (a timeout after the request left, a crash between the ledger claim and the answer). Lists the
   * recipient's messages newest first (filters `To`, and `From` when the sender is a number; 100 per page) and
   * stops at the first message created before `since` − `skewMs`. No `DateSent` filter: a message still queued has
   * no DateSent yet. Vendor: https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources
   * @param q.skewMs allowed clock difference between us and Twilio, ms (default 60000)
   * @param q.maxPages pages read at most (default 10)
   * @param q.skip sids to pass over (messages already recorded for other sends with the same To, From and body)
   * @returns the message, or null when Twilio has none (now)
   * @throws AuthError, RateLimitedError, TwilioError, TimeoutError as every read
   */
  async findRecentMessage(q: { to: string; body?: string; from?: string; since: Date; skewMs?: number; maxPages?: number; skip?: (sid: string) => boolean }): Promise<TwilioMessage | null> {
    try {
      const after = q.since.getTime() - (q.skewMs ?? 60000);
      const byNumber = q.from && !/^MG/.test(q.from) ? q.from : undefined;
      type Page = { instances: Record<string, unknown>[]; nextPage(): Promise<Page | undefined> };
      let page: Page | undefined = (await this.budget.other(() => this.sdk.messages.page({ to: q.to, ...(byNumber ? { from: byNumber } : {}), pageSize: 100 }))) as unknown as Page;
      for (let n = 0; page && n < (q.maxPages ?? 10); n++) {
        for (const raw of page.instances) {
          const m = toMessage(raw);
          const created = m.dateCreated ? Date.parse(m.dateCreated) : NaN;
          if (Number.isFinite(created) && created < after) return null; // newest first: nothing older can match
          if (q.body !== undefined && String(raw.body ?? "") !== q.body) continue;
          if (q.from && m.from && m.from !== q.from && m.messagingServiceSid !== q.from) continue;
          if (q.skip?.(m.sid)) continue; // already accounted for by another send with the same text
          return m;
        }
        const current: Page = page;
        page = await this.budget.other(() => current.nextPage());
      }
      return null;
    } catch (err) {
      throw mapTwilioError(err);
    }
  }

  /**
   * The harmless call behind "Test connection". With the Auth Token: fetch the Account resource. With an
   * API key: list one Message instead, because standard API keys may not read the Account resource
   * (Twilio answers 401/20003 to them).
   * @throws AuthError on bad credentials
   */
  async testConnection(): Promise<TwilioAccountInfo> {
    try {
      if (this.usesApiKey) {
        await this.sdk.messages.list({ limit: 1 });
        return { sid: this.accountSid, friendlyName: "", status: "api key accepted" };
      }
      const a = await this.sdk.api.v2010.accounts(this.accountSid).fetch();
      return { sid: a.sid, friendlyName: a.friendlyName, status: a.status };
    } catch (err) {
      throw mapTwilioError(err);
    }
  }

  /**
   * The twilio SDK instance bound to this client's transport (host override, pool, safe retries). For
   * resources this wrapper does not cover (Calls, Verify); wrap creates in `budget.create` and errors in
   * {@link mapTwilioError}.
   */
  get rest(): ReturnType<typeof twilio> {
    return this.sdk;
  }

  /** Reject the creates still queued in the budget (MlcError "closed"), then close the HTTP pool. */
  async close(): Promise<void> {
    this.budget.close();
    await this.http.close();
  }
}

function toMessage(m: Record<string, unknown>): TwilioMessage {
  const seg = m.numSegments ?? m.num_segments;
  return {
    sid: String(m.sid),
    status: String(m.status),
    to: String(m.to),
    from: (m.from as string) ?? null,
    messagingServiceSid: ((m.messagingServiceSid ?? m.messaging_service_sid) as string) ?? null,
    numSegments: seg === undefined || seg === null ? null : Number(seg),
    errorCode: ((m.errorCode ?? m.error_code) as number) ?? null,
    errorMessage: ((m.errorMessage ?? m.error_message) as string) ?? null,
    dateCreated: m.dateCreated instanceof Date ? m.dateCreated.toISOString() : ((m.dateCreated as string) ?? null),
  };
}

/**
 * Twilio Verify's 429 with 60202 (max check attempts) or 60203 (max send attempts): a limit of one verification, not
 * load. Never repeated (a repeat would meet a deleted verification, 404); the SDK raises Twilio's own error for it.
 */
function isAttemptLimit(res: { status: number; body: string }): boolean {
  const code = res.status === 429 ? parseTwilioCode(res.body) : undefined;
  return code === 60202 || code === 60203;
}

function parseTwilioCode(body: string): number | undefined {
  try {
    const j = JSON.parse(body) as { code?: unknown };
    return typeof j.code === "number" ? j.code : undefined;
  } catch {
    return undefined;
  }
}

/** Map whatever the twilio package threw (RestException, TwilioServiceException, our errors) to typed errors. */
export function mapTwilioError(err: unknown): Error {
  const e = err as { status?: unknown; code?: unknown; message?: unknown; moreInfo?: unknown; title?: unknown; detail?: unknown };
  if (err instanceof Error && "retryable" in err) return err; // already one of ours
  if (typeof e?.status === "number") {
    const status = e.status;
    const code = typeof e.code === "number" ? e.code : undefined;
    const text = String(e.message || e.detail || e.title || `Twilio answered HTTP ${status}`);
    if (status === 401 || code === 20003) return new AuthError(`Twilio refused the credentials (${code ?? status}): ${text}`, { status, vendorCode: code ?? 20003 });
    if (status === 429 || code === 20429) return new RateLimitedError(`Twilio rate limit: ${text}`, { vendorCode: code ?? 20429 });
    return new TwilioError(text, { status, twilioCode: code, moreInfo: typeof e.moreInfo === "string" ? e.moreInfo : undefined });
  }
  return err instanceof Error ? err : new Error(String(err));
}
