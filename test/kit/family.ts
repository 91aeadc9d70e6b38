/**
 * A test-only ERP "family" built from the kit alone, to show what a new family costs: a client (an OAuth token
 * source with single-flight renewal, OData next-link paging) and a poll trigger (the generic watermark poller with
 * OData v4 time literals and the zoned-ISO normaliser). It talks to test/sims/kit-odata.ts.
 * Its Node-RED node type (push with an HMAC check, poll, subscription) is in nodes.ts, on the trigger skeleton.
 */
import { ClientCredentialsSource, PasswordGrantSource } from "../../nodes/lib/auth/oauth";
import { AuthManager } from "../../nodes/lib/auth/renewal";
import { ErpEventMsg, ErpSystem, eventTopic } from "../../nodes/lib/envelope";
import { ErpError, ValidationError } from "../../nodes/lib/errors";
import { HttpClient, HttpClientOptions } from "../../nodes/lib/http";
import { deriveJobId } from "../../nodes/lib/ids";
import { odataV4Time } from "../../nodes/lib/poll/conditions";
import { zonedIso } from "../../nodes/lib/poll/modified-time";
import { nextLinkPages } from "../../nodes/lib/poll/pages";
import { PollSliceResult, Poller } from "../../nodes/lib/poll/poller";
import { PollState, WatermarkWindow } from "../../nodes/lib/poll/window";

/** Options of {@link KitClient}. */
export interface KitClientOptions {
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** With a user: password + refresh grant (rotating refresh token persisted by `onRefreshToken`); else client credentials. */
  user?: { username: string; password: string; refreshToken?: string; onRefreshToken?: (rt: string) => unknown };
  http?: HttpClientOptions;
}

/** The family's client: one token, shared by every call. */
export class KitClient {
  readonly http: HttpClient;
  readonly auth: AuthManager;
  private readonly baseUrl: string;

  constructor(o: KitClientOptions) {
    this.baseUrl = o.baseUrl.replace(/\/+$/, "");
    this.http = new HttpClient(o.http);
    const common = { http: this.http, tokenUrl: `${this.baseUrl}/oauth/token`, clientId: o.clientId, clientSecret: o.clientSecret };
    const source = o.user
      ? new PasswordGrantSource({ ...common, username: o.user.username, password: o.user.password, refreshToken: o.user.refreshToken, onRefreshToken: o.user.onRefreshToken })
      : new ClientCredentialsSource(common);
    this.auth = new AuthManager(source);
  }

  /** Every row of `GET /odata/Items?$filter=…`, following next links. */
  items(filter: string): AsyncGenerator<unknown> {
    const first = `${this.baseUrl}/odata/Items${filter ? `?$filter=${encodeURIComponent(filter)}` : ""}`;
    return nextLinkPages(first, async (url) => {
      const { res } = await this.auth.call(() => this.http.request({ method: "GET", url, headers: { Accept: "application/json", ...this.auth.headers(url) } }));
      if (res.status !== 200) throw new ErpError(`Kit answered HTTP ${res.status}`, { code: `http_${res.status}`, status: res.status });
      return JSON.parse(res.body) as unknown;
    });
  }

  /**
   * Register a webhook subscription for `notificationUrl` (the ERP first sends it a validation handshake).
   * @returns the subscription id and its expiry (ISO)
   * @throws ErpError when the ERP refuses (e.g. the handshake failed)
   */
  async subscribe(notificationUrl: string): Promise<{ id: string; expirationDateTime: string }> {
    const url = `${this.baseUrl}/subscriptions`;
    const { res } = await this.auth.call(() =>
      this.http.request({ method: "POST", url, headers: { "Content-Type": "application/json", Accept: "application/json", ...this.auth.headers(url) }, body: JSON.stringify({ notificationUrl }) }),
    );
    if (res.status !== 201) throw new ErpError(`Kit refused the subscription: HTTP ${res.status}`, { code: `http_${res.status}`, status: res.status });
    return JSON.parse(res.body) as { id: string; expirationDateTime: string };
  }

  /** Delete a webhook subscription (404, already gone, counts as done). @throws ErpError otherwise */
  async unsubscribe(id: string): Promise<void> {
    const url = `${this.baseUrl}/subscriptions/${encodeURIComponent(id)}`;
    const { res } = await this.auth.call(() => this.http.request({ method: "DELETE", url, headers: this.auth.headers(url) }));
    if (res.status !== 204 && res.status !== 404) throw new ErpError(`Kit refused to delete the subscription: HTTP ${res.status}`, { code: `http_${res.status}`, status: res.status });
  }

  async close(): Promise<void> {
    this.auth.close();
    await this.http.close();
  }
}

/** One row → the envelope every trigger emits. @throws ValidationError without id or a zoned modifiedAt */
export function kitEvent(row: unknown): ErpEventMsg {
  const r = row as Record<string, unknown>;
  const modifiedAt = zonedIso(r.modifiedAt);
  if (typeof r.id !== "string" || !modifiedAt) throw new ValidationError("Kit row without id or modifiedAt", { recordId: typeof r.id === "string" ? r.id : undefined });
  const system = "kit" as ErpSystem; // a test-only family, not one of the five
  const erp = { system, tenant: "kit", entity: "Item", id: r.id, action: "updated" as const, modifiedAt };
  const full = { ...erp, jobId: deriveJobId({ ...erp, version: modifiedAt }) };
  return { topic: eventTopic(full), payload: r, erp: full };
}

/** Options of {@link kitPollTrigger}. */
export interface KitPollOptions {
  client: KitClient;
  intervalMs: number;
  overlapMs: number;
  startFrom: string;
  sliceMs?: number;
  state: Map<string, PollState>;
  emit: (e: ErpEventMsg) => void;
  onError: (err: unknown) => void;
  onSlice?: (r: PollSliceResult) => void;
  now?: () => number;
}

/** The family's poll trigger: the generic poller with the family's pieces. */
export function kitPollTrigger(o: KitPollOptions): Poller {
  const window = new WatermarkWindow({ overlapMs: o.overlapMs, modifiedField: "modifiedAt", timeCondition: odataV4Time });
  return new Poller({
    window,
    intervalMs: o.intervalMs,
    startFrom: o.startFrom,
    sliceMs: o.sliceMs,
    load: async () => o.state.get("poll"),
    save: async (s) => void o.state.set("poll", s),
    read: async function* ({ filter }) {
      for await (const row of o.client.items(filter)) yield kitEvent(row);
    },
    deliver: (events) => events.forEach(o.emit),
    onError: o.onError,
    onSlice: o.onSlice,
    now: o.now,
  });
}
