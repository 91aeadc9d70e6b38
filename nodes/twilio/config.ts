/**
 * `mlc-twilio-config`: one Twilio account (credentials, region/edge, API host override, default sender,
 * default phone region, public base URL for status callbacks). Owns the single TwilioClient that every
 * Twilio node using it shares.
 */
import { MlcError, ValidationError } from "../lib/errors";
import { isValidRegion } from "../lib/phone";
import { TwilioClient, TwilioCredentials } from "../lib/twilio/client";
import { checkSendGridKey, createMailService, DEFAULT_EVENT_TIMESTAMP_TOLERANCE_S, MailService } from "../lib/twilio/sendgrid";
import { OptOutList } from "../lib/twilio/optout";
import { registerTestEndpoint } from "../shared/admin";
import { contextBackend, resolveStore } from "../shared/context";
import { OwnedClient, configApi, configString } from "../shared/config";
import { publicEndpointUrl } from "../shared/dispatcher";
import { num, registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const TWILIO_CONFIG_TYPE = "mlc-twilio-config";

export interface TwilioConfigProps extends Record<string, unknown> {
  name?: string;
  from?: string;
  messagingServiceSid?: string;
  defaultRegion?: string;
  publicBaseUrl?: string;
  region?: string;
  edge?: string;
  apiHost?: string;
  timeout?: string | number;
  /** Context store for the account's opt-out list ("" = default store). */
  store?: string;
  /** Account-wide creates per second (default 10) and concurrent requests (default 5). */
  rate?: string | number;
  concurrency?: string | number;
  /** Per sender type, creates per second ("" = Twilio's default for the type, see DEFAULT_SENDER_RATES; 0 = account rate only). */
  rateLongCode?: string | number;
  rateTollFree?: string | number;
  rateShortCode?: string | number;
  rateMessagingService?: string | number;
  rateWhatsapp?: string | number;
  /** SendGrid (e-mail): default sender address, API host override, Event Webhook verification key (base64, not secret). */
  sendgridFrom?: string;
  sendgridApiHost?: string;
  sendgridVerificationKey?: string;
  /** SendGrid Event Webhook: largest age of a signed request's timestamp, s (default 300; 0 = not checked). */
  sendgridTolerance?: string | number;
}

/**
 * The account's SendGrid (e-mail) side. `mail` is created on first read, one MailService per config node;
 * reading it throws ValidationError "no_api_key" / "bad_api_key" / "missing_env" / "bad_config" when the API
 * key or host is unusable, so the Event Webhook endpoint (which needs only the verification key) works without one.
 */
export interface SendGridApi {
  readonly mail: MailService;
  /** Default sender ("ap@example.com" or "Name <ap@example.com>"), "" when not set. */
  readonly from: string;
  /** Event Webhook verification key (base64 SPKI), "" when not set. */
  readonly verificationKey: string;
  /** Event Webhook timestamp tolerance, s (0 = not checked). */
  readonly timestampToleranceSec: number;
}

/** What dependent nodes use. The auth token is reachable only through `validationToken()`. */
export interface TwilioConfigApi {
  readonly accountSid: string;
  client(): TwilioClient;
  /** Default sender: E.164 number, or "" when a Messaging Service is the default. */
  readonly from: string;
  readonly messagingServiceSid: string;
  /** ISO 3166-1 alpha-2 region for numbers without a country code ("" = none). */
  readonly defaultRegion: string;
  /** Auth Token used to validate webhook signatures. @throws ValidationError when not configured */
  validationToken(): string;
  /**
   * Public URL of a package endpoint, e.g. callbackUrl("/twilio/status", {j: jobId}).
   * @throws ValidationError code "no_public_url" when the public base URL is not configured
   */
  endpointUrl(path: string, query?: Record<string, string>): string;
  /** Public URL of the HTTP root (with httpNodeRoot), for signature validation. */
  publicRoot(): string;
  /**
   * The account's opt-out list (global context, the account's store), shared by every node and every config node
   * of the same Account SID and store.
   * @param requester any node of the flow (global context is reached through it)
   * @throws ValidationError code "unknown_store"
   */
  optOuts(requester: RedNode): OptOutList;
  /** SendGrid e-mail. @throws ValidationError code "missing_env" for an unset ${VAR} in From / verification key */
  sendgrid(): SendGridApi;
}

export interface TwilioConfigNode extends RedNode {
  mlc: TwilioConfigApi;
}

function credsFrom(c: Record<string, string | undefined>): TwilioCredentials {
  return {
    accountSid: configString(c.accountSid, "Account SID"),
    authToken: configString(c.authToken, "Auth Token") || undefined,
    apiKeySid: configString(c.apiKeySid, "API key SID") || undefined,
    apiKeySecret: configString(c.apiKeySecret, "API key secret") || undefined,
  };
}

/** A per-sender rate field: "" (or unset) = undefined, Twilio's default for the type; else 0–1000 per second (0 = no per-sender limit). */
function senderRateProp(v: unknown): number | undefined {
  const n = num(v, NaN, 0, 1000);
  return Number.isNaN(n) ? undefined : n;
}

function buildClient(config: TwilioConfigProps, credentials: Record<string, string | undefined>): TwilioClient {
  const timeout = Number(config.timeout);
  return new TwilioClient({
    credentials: credsFrom(credentials),
    region: configString(config.region, "Region") || undefined,
    edge: configString(config.edge, "Edge") || undefined,
    apiHost: configString(config.apiHost, "API host") || undefined,
    http: Number.isFinite(timeout) && timeout > 0 ? { timeoutMs: timeout * 1000 } : undefined,
    pacing: {
      ratePerSec: num(config.rate, 10, 0, 1000),
      maxConcurrent: num(config.concurrency, 5, 1, 100),
      senderRates: {
        longCode: senderRateProp(config.rateLongCode),
        tollFree: senderRateProp(config.rateTollFree),
        shortCode: senderRateProp(config.rateShortCode),
        messagingService: senderRateProp(config.rateMessagingService),
        whatsapp: senderRateProp(config.rateWhatsapp),
      },
    },
  });
}

export function registerTwilioConfig(RED: RedAPI): void {
  registerNode<TwilioConfigProps>(
    RED,
    TWILIO_CONFIG_TYPE,
    (node, config) => {
      const owned = new OwnedClient(node, () => buildClient(config, node.credentials));
      const defaultRegion = (config.defaultRegion ?? "").trim().toUpperCase();
      if (defaultRegion && !isValidRegion(defaultRegion)) node.warn(`Default phone region "${defaultRegion}" is not an ISO 3166-1 alpha-2 code`);
      const publicBase = (): string => {
        const base = configString(config.publicBaseUrl, "Public base URL");
        if (!base) throw new ValidationError("Public base URL is not set: Twilio cannot reach the status callback endpoint", { code: "no_public_url" });
        let u: URL;
        try {
          u = new URL(base);
        } catch {
          throw new ValidationError("Public base URL is not a valid URL", { code: "no_public_url" });
        }
        if (u.hostname.includes("_")) throw new ValidationError("Public base URL host must not contain underscores (Twilio rejects such callback URLs)", { code: "no_public_url" });
        return base;
      };
      let mail: MailService | undefined;
      const timeout = Number(config.timeout);
      const sendgrid = (): SendGridApi => ({
        get mail() {
          return (mail ??= createMailService({
            apiKey: configString(node.credentials.sendgridApiKey, "SendGrid API key"),
            apiHost: configString(config.sendgridApiHost, "SendGrid API host") || undefined,
            timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout * 1000 : undefined,
          }));
        },
        from: configString(config.sendgridFrom, "SendGrid From"),
        verificationKey: configString(config.sendgridVerificationKey, "SendGrid verification key"),
        timestampToleranceSec: num(config.sendgridTolerance, DEFAULT_EVENT_TIMESTAMP_TOLERANCE_S, 0, 86400),
      });
      const api: TwilioConfigApi = {
        get accountSid() {
          return (node.credentials.accountSid ?? "").trim();
        },
        client: () => owned.get(),
        from: configString(config.from ?? "", "From"),
        messagingServiceSid: configString(config.messagingServiceSid ?? "", "Messaging Service SID"),
        defaultRegion,
        validationToken: () => {
          const tok = configString(node.credentials.authToken, "Auth Token");
          if (!tok) throw new ValidationError("The Auth Token is needed to validate Twilio's signatures (API key secrets cannot)", { code: "no_auth_token" });
          return tok;
        },
        endpointUrl: (path, query) => {
          const url = publicEndpointUrl(publicBase(), RED.settings.httpNodeRoot, path);
          const qs = query ? new URLSearchParams(query).toString() : "";
          return qs ? `${url}?${qs}` : url;
        },
        publicRoot: () => publicEndpointUrl(publicBase(), RED.settings.httpNodeRoot, "").replace(/\/mlc$/, ""),
        optOuts: (requester) => {
          // One list per account and store, shared by every config node of that account (lib/twilio/optout.ts).
          const store = resolveStore(RED, config.store).name;
          return OptOutList.shared(requester.context().global, store ?? "", api.accountSid, () => contextBackend(requester, "global", store));
        },
        sendgrid,
      };
      (node as TwilioConfigNode).mlc = api;
    },
    {
      accountSid: { type: "text" },
      authToken: { type: "password" },
      apiKeySid: { type: "text" },
      apiKeySecret: { type: "password" },
      sendgridApiKey: { type: "password" },
    },
  );

  registerTestEndpoint(RED, TWILIO_CONFIG_TYPE, async ({ config, credentials }) => {
    const client = buildClient(config as TwilioConfigProps, credentials);
    let message: string;
    try {
      const acct = await client.testConnection();
      message = `Connected to ${acct.friendlyName || acct.sid} (${acct.status})`;
    } finally {
      await client.close();
    }
    // Every credential the account holds is checked: the SendGrid key too, when one is set (nothing is sent).
    const sgKey = (credentials.sendgridApiKey ?? "").trim();
    if (!sgKey) return { ok: true, message };
    const cfg = config as TwilioConfigProps;
    try {
      const mail = createMailService({ apiKey: sgKey, apiHost: configString(cfg.sendgridApiHost, "SendGrid API host") || undefined, timeoutMs: 15000 });
      const scopes = await checkSendGridKey(mail);
      if (!scopes.includes("mail.send")) return { ok: false, message: `${message}; the SendGrid API key may not send mail (no mail.send scope)`, code: "sendgrid_scope" };
      return { ok: true, message: `${message}; SendGrid API key accepted` };
    } catch (err) {
      const code = err instanceof MlcError ? err.code : "internal";
      return { ok: false, message: `${message}; SendGrid refused the API key: ${(err as Error).message}`, code: code === "auth_failed" ? "sendgrid_auth_failed" : code };
    }
  });
}

/**
 * Find the config node a dependent node references.
 * @throws ValidationError code "no_config" when missing or of the wrong type
 */
export function twilioConfig(RED: RedAPI, id: unknown): TwilioConfigApi {
  return configApi<TwilioConfigApi>(RED, id, TWILIO_CONFIG_TYPE, "Twilio account");
}
