/**
 * `mlc-twilio-config`: one Twilio account (credentials, region/edge, API host override, default sender,
 * default phone region, public base URL for status callbacks). Owns the single TwilioClient that every
 * Twilio node using it shares.
 */
import { ValidationError } from "../lib/errors";
import { isValidRegion } from "../lib/phone";
import { TwilioAccountProps, buildMailService, buildTwilioClient, publicBaseUrl, testTwilioAccount } from "../lib/twilio/account";
import { TwilioClient } from "../lib/twilio/client";
import { DEFAULT_EVENT_TIMESTAMP_TOLERANCE_S, MailService } from "../lib/twilio/sendgrid";
import { OptOutList } from "../lib/twilio/optout";
import { registerTestEndpoint } from "../shared/admin";
import { contextBackend, resolveStore, sharedRates } from "../shared/context";
import { OwnedClient, configApi, configString } from "../shared/config";
import { publicEndpointUrl } from "../shared/dispatcher";
import { num, registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const TWILIO_CONFIG_TYPE = "mlc-twilio-config";

/** Editor properties of `mlc-twilio-config` (lib/twilio/account.ts). */
export type TwilioConfigProps = TwilioAccountProps;

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
  /** SendGrid e-mail; each field is read when used, so an unset ${VAR} in one (ValidationError "missing_env") only fails its own reader. */
  sendgrid(): SendGridApi;
}

export interface TwilioConfigNode extends RedNode {
  mlc: TwilioConfigApi;
}

/** The API of one config node: its owned client, senders, callback URLs, opt-out list and SendGrid side. */
function accountApi(RED: RedAPI, node: RedNode, config: TwilioConfigProps): TwilioConfigApi {
  const owned = new OwnedClient(node, () => buildTwilioClient(config, node.credentials, sharedRates(RED, config.store)));
  const defaultRegion = (config.defaultRegion ?? "").trim().toUpperCase();
  if (defaultRegion && !isValidRegion(defaultRegion)) node.warn(`Default phone region "${defaultRegion}" is not an ISO 3166-1 alpha-2 code`);
  let mail: MailService | undefined;
  const sendgrid = (): SendGridApi => ({
    get mail() {
      return (mail ??= buildMailService(config, node.credentials));
    },
    get from() {
      return configString(config.sendgridFrom, "SendGrid From");
    },
    // Read only by the Event Webhook: an unset ${VAR} here disables that endpoint, never sending (issue 6).
    get verificationKey() {
      return configString(config.sendgridVerificationKey, "SendGrid verification key");
    },
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
      const url = publicEndpointUrl(publicBaseUrl(config), RED.settings.httpNodeRoot, path);
      const qs = query ? new URLSearchParams(query).toString() : "";
      return qs ? `${url}?${qs}` : url;
    },
    publicRoot: () => publicEndpointUrl(publicBaseUrl(config), RED.settings.httpNodeRoot, "").replace(/\/mlc$/, ""),
    optOuts: (requester) => {
      // One list per account and store, shared by every config node of that account (lib/twilio/optout.ts).
      const store = resolveStore(RED, config.store).name;
      return OptOutList.shared(requester.context().global, store ?? "", api.accountSid, () => contextBackend(requester, "global", store));
    },
    sendgrid,
  };
  return api;
}

/** Register `mlc-twilio-config` and its Test connection (lib/twilio/account.ts testTwilioAccount). */
export function registerTwilioConfig(RED: RedAPI): void {
  registerNode<TwilioConfigProps>(
    RED,
    TWILIO_CONFIG_TYPE,
    (node, config) => {
      (node as TwilioConfigNode).mlc = accountApi(RED, node, config);
    },
    {
      accountSid: { type: "text" },
      authToken: { type: "password" },
      apiKeySid: { type: "text" },
      apiKeySecret: { type: "password" },
      sendgridApiKey: { type: "password" },
    },
  );
  registerTestEndpoint(RED, TWILIO_CONFIG_TYPE, ({ config, credentials }) => testTwilioAccount(config as TwilioConfigProps, credentials));
}

/**
 * Find the config node a dependent node references.
 * @throws ValidationError code "no_config" when missing or of the wrong type
 */
export function twilioConfig(RED: RedAPI, id: unknown): TwilioConfigApi {
  return configApi<TwilioConfigApi>(RED, id, TWILIO_CONFIG_TYPE, "Twilio account");
}
