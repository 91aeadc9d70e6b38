/**
 * A Twilio account as a config node describes it (`mlc-twilio-config` properties and credentials): building its
 * {@link TwilioClient} and SendGrid {@link MailService}, checking the public base URL Twilio calls back on, and the
 * Test connection check (one harmless read per credential: Twilio's Account resource, SendGrid's `GET /v3/scopes`).
 * Pure (no Node-RED). Vendor: Twilio "Accounts" resource, "Regional API" (region/edge), SendGrid "API Keys" scopes.
 */
import { SharedRateGate, type SharedRateStore } from "../budget/gate";
import { configString, num } from "../config-value";
import { MlcError, ValidationError } from "../errors";
import { TwilioClient, TwilioCredentials } from "./client";
import { checkSendGridKey, createMailService, MailService } from "./sendgrid";

/** Properties of a Twilio account config node (strings as the editor stores them; `${ENV}` allowed). */
export interface TwilioAccountProps extends Record<string, unknown> {
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

/** Credentials of a Twilio account config node (Auth Token, or API key SID + secret; SendGrid API key). */
export type TwilioAccountCredentials = Record<string, string | undefined>;

function credsFrom(c: TwilioAccountCredentials): TwilioCredentials {
  return {
    accountSid: configString(c.accountSid, "Account SID"),
    authToken: configString(c.authToken, "Auth Token") || undefined,
    apiKeySid: configString(c.apiKeySid, "API key SID") || undefined,
    apiKeySecret: configString(c.apiKeySecret, "API key secret") || undefined,
  };
}

/** An optional host field: undefined when blank or an unset `${VAR}` reference (then the vendor's own hosts apply). */
function optionalHost(value: unknown, field: string): string | undefined {
  if (typeof value === "string" && /^\$\{\S+\}$/.test(value.trim())) return undefined;
  return configString(value, field) || undefined;
}

/** A per-sender rate field: "" (or unset) = undefined, Twilio's default for the type; else 0–1000 per second (0 = no per-sender limit). */
function senderRateProp(v: unknown): number | undefined {
  const n = num(v, NaN, 0, 1000);
  return Number.isNaN(n) ? undefined : n;
}

/** The request timeout the config node sets, ms (`timeout` is in s), or undefined for the client's default. */
export function accountTimeoutMs(config: TwilioAccountProps): number | undefined {
  const timeout = Number(config.timeout);
  return Number.isFinite(timeout) && timeout > 0 ? timeout * 1000 : undefined;
}

/**
 * The account's client: credentials, region/edge/API host (blank or an unset `${VAR}`: Twilio's own hosts), timeout, account rate (default 10/s), concurrency
 * (default 5) and per-sender rates.
 * @throws ValidationError code "missing_env" for an unset ${VAR}; the client's own configuration errors
 */
export function buildTwilioClient(config: TwilioAccountProps, credentials: TwilioAccountCredentials, sharedRates?: SharedRateStore): TwilioClient {
  const timeoutMs = accountTimeoutMs(config);
  const creds = credsFrom(credentials);
  // instances sharing a store share the account's budget (lib/budget/gate.ts), one per Account SID
  const shared = sharedRates ? new SharedRateGate(sharedRates, { prefix: creds.accountSid }) : undefined;
  return new TwilioClient({
    credentials: creds,
    region: configString(config.region, "Region") || undefined,
    edge: configString(config.edge, "Edge") || undefined,
    apiHost: optionalHost(config.apiHost, "API host"),
    http: timeoutMs !== undefined ? { timeoutMs } : undefined,
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
      shared,
    },
  });
}

/**
 * The public base URL status callbacks are built on.
 * @throws ValidationError code "no_public_url" when unset, not a URL, or its host has an underscore (Twilio rejects it);
 *   "missing_env" for an unset ${VAR}
 */
export function publicBaseUrl(config: TwilioAccountProps): string {
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
}

/**
 * The account's SendGrid mail service.
 * @throws ValidationError code "no_api_key" / "bad_api_key" / "missing_env" / "bad_config" (lib/twilio/sendgrid.ts)
 */
export function buildMailService(config: TwilioAccountProps, credentials: TwilioAccountCredentials): MailService {
  return createMailService({
    apiKey: configString(credentials.sendgridApiKey, "SendGrid API key"),
    apiHost: optionalHost(config.sendgridApiHost, "SendGrid API host"),
    timeoutMs: accountTimeoutMs(config),
  });
}

/** Outcome of {@link testTwilioAccount}: a message for the editor, and a stable code when a credential is refused. */
export interface AccountTestResult {
  ok: boolean;
  message: string;
  code?: string;
}

/**
 * Test connection: read the Account resource; when a SendGrid key is set, read its scopes too (nothing is sent).
 * @throws the Twilio client's errors (AuthError, HttpError…) when the Twilio credentials are refused
 */
export async function testTwilioAccount(config: TwilioAccountProps, credentials: TwilioAccountCredentials): Promise<AccountTestResult> {
  const client = buildTwilioClient(config, credentials);
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
  try {
    const mail = createMailService({ apiKey: sgKey, apiHost: optionalHost(config.sendgridApiHost, "SendGrid API host"), timeoutMs: 15000 });
    const scopes = await checkSendGridKey(mail);
    if (!scopes.includes("mail.send")) return { ok: false, message: `${message}; the SendGrid API key may not send mail (no mail.send scope)`, code: "sendgrid_scope" };
    return { ok: true, message: `${message}; SendGrid API key accepted` };
  } catch (err) {
    const code = err instanceof MlcError ? err.code : "internal";
    return { ok: false, message: `${message}; SendGrid refused the API key: ${(err as Error).message}`, code: code === "auth_failed" ? "sendgrid_auth_failed" : code };
  }
}
