/**
 * An Acumatica connection as a config node describes it (`mlc-acumatica-config` properties and credentials):
 * building its {@link AcumaticaClient} (OAuth 2.0 password/refresh grant, or a cookie session), the identity a
 * persisted refresh token is bound to, and the Test connection check. Pure (no Node-RED).
 * Vendor: MYOB-IDG IntegrationDev_RESTExample_Basic_Login, OAuthOIDC_ResourceOwner_AccessToken.
 */
import { configString } from "../config-value";
import { encodeParts } from "../ids";
import type { TokenFile } from "../auth/token-file";
import { AcumaticaClient, AcumaticaClientOptions } from "./client";

/** Properties of an Acumatica config node (strings as the editor stores them; `${ENV}` allowed; timeout in s). */
export interface AcumaticaConnectionProps extends Record<string, unknown> {
  name?: string;
  instanceUrl?: string;
  tenant?: string;
  endpointName?: string;
  endpointVersion?: string;
  authMode?: "oauth" | "cookie";
  scope?: string;
  branch?: string;
  timeout?: string | number;
}

/** Runtime hooks of a config node's client (tests and Test connection build clients without them). */
export type ClientHooks = Pick<AcumaticaClientOptions, "refreshToken" | "onTokens" | "onSignedOut" | "onAuthState" | "sharedGrant">;

/** What a persisted refresh token is bound to: a token saved for another instance, client or user is not used. */
export function connectionIdentity(config: AcumaticaConnectionProps, c: Record<string, string | undefined>): string {
  return encodeParts(["acumatica", String(config.instanceUrl ?? "").trim(), String(c.clientId ?? "").trim(), String(c.username ?? "").trim().toLowerCase()]);
}

export function buildAcumaticaClient(config: AcumaticaConnectionProps, c: Record<string, string | undefined>, hooks: ClientHooks = {}): AcumaticaClient {
  const mode = config.authMode === "cookie" ? "cookie" : "oauth";
  const username = configString(c.username, "Username");
  const password = configString(c.password, "Password");
  const auth: AcumaticaClientOptions["auth"] =
    mode === "oauth"
      ? { mode, clientId: configString(c.clientId, "Client ID"), clientSecret: configString(c.clientSecret, "Client secret"), username, password, scope: configString(config.scope, "Scope") || undefined }
      : { mode, username, password, branch: configString(config.branch, "Branch") || undefined };
  const timeout = Number(config.timeout);
  return new AcumaticaClient({
    instanceUrl: configString(config.instanceUrl, "Instance URL"),
    tenant: configString(config.tenant, "Tenant"),
    endpointName: configString(config.endpointName, "Endpoint name") || undefined,
    endpointVersion: configString(config.endpointVersion, "Endpoint version") || undefined,
    auth,
    http: Number.isFinite(timeout) && timeout > 0 ? { timeoutMs: timeout * 1000 } : undefined,
    ...hooks,
  });
}

/**
 * Test connection: sign in, read the endpoint, sign out.
 * @returns the message for the editor
 * @throws the client's errors (AuthError, HttpError, ErpError…) when the instance refuses
 */
export async function testAcumaticaConnection(config: AcumaticaConnectionProps, credentials: Record<string, string | undefined>): Promise<string> {
  const client = buildAcumaticaClient(config, credentials);
  try {
    const r = await client.testConnection();
    return `Signed in; endpoint ${r.endpoint}/${r.version} answers`;
  } finally {
    await client.close();
  }
}

/**
 * Client hooks that keep the OAuth refresh token in `tokens`: the saved one is used at start, every rotated one is
 * saved before the new access token is used, and it is cleared on sign-out. A failed save is told to `warn` (the
 * session then lives in memory only) and never fails the refresh.
 */
export function persistedTokenHooks(tokens: TokenFile, warn: (text: string) => void): Pick<ClientHooks, "refreshToken" | "onTokens" | "onSignedOut"> {
  return {
    refreshToken: tokens.read(),
    onTokens: async ({ refreshToken }) => {
      try {
        await tokens.write(refreshToken);
      } catch (err) {
        warn(`Could not save the Acumatica refresh token (${(err as NodeJS.ErrnoException)?.code ?? "write failed"}): after a crash the next start opens a new session`);
      }
    },
    onSignedOut: () => tokens.clear(),
  };
}
