/**
 * `mlc-acumatica-config`: one Acumatica instance, tenant and contract-based endpoint (name + version,
 * pinned in every URL), signed in with OAuth 2.0 (password grant, refresh grant) or, as a fallback, a
 * cookie session that is always signed out when the node closes. Owns the single AcumaticaClient that
 * every trigger and fetch node using it shares.
 *
 * Sessions survive crashes: the OAuth refresh token, which the server rotates on every refresh, is saved to an
 * encrypted file in Node-RED's user directory (see lib/auth/token-file.ts for why not the credentials store) before
 * the new access token is used, and a restart (even after `kill -9`) refreshes that grant instead of opening
 * another one. A refused sign-in pauses signing in (client `authCooldownMs`) and is shown on this node and on every
 * node using it. Closing signs out within the client's bound (10 s < Node-RED's 15 s) and never signs in again.
 * Vendor: MYOB-IDG IntegrationDev_RESTExample_Basic_Login, OAuthOIDC_ResourceOwner_AccessToken,
 * OAuthOIDC_GettingStarted_RefreshToken, IS__con_License_Restrictions_API_Users.
 */
import { AcumaticaClient, AcumaticaClientOptions, AuthState } from "../lib/acumatica/client";
import type { TokenFile } from "../lib/auth/token-file";
import { encodeParts } from "../lib/ids";
import { registerTestEndpoint } from "../shared/admin";
import { ConfigUsers, OwnedClient, configApi, configString, tokenFileFor } from "../shared/config";
import { Status, registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const ACUMATICA_CONFIG_TYPE = "mlc-acumatica-config";

export interface AcumaticaConfigProps extends Record<string, unknown> {
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

export interface AcumaticaConfigApi {
  /** @throws the configuration error; ErpError "client_closed" after the config node closed */
  client(): AcumaticaClient;
  readonly tenant: string;
  /** Register a node that uses this connection: it is shown the connection's sign-in problems (idempotent). */
  use(user: RedNode): void;
}

interface AcumaticaConfigNode extends RedNode {
  mlc: AcumaticaConfigApi;
}

/** Runtime hooks of a config node's client (tests and Test connection build clients without them). */
type ClientHooks = Pick<AcumaticaClientOptions, "refreshToken" | "onTokens" | "onSignedOut" | "onAuthState">;

/** What a persisted refresh token is bound to: a token saved for another instance, client or user is not used. */
function connectionIdentity(config: AcumaticaConfigProps, c: Record<string, string | undefined>): string {
  return encodeParts(["acumatica", String(config.instanceUrl ?? "").trim(), String(c.clientId ?? "").trim(), String(c.username ?? "").trim().toLowerCase()]);
}

function buildClient(config: AcumaticaConfigProps, c: Record<string, string | undefined>, hooks: ClientHooks = {}): AcumaticaClient {
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

export function registerAcumaticaConfig(RED: RedAPI): void {
  registerNode<AcumaticaConfigProps>(
    RED,
    ACUMATICA_CONFIG_TYPE,
    (node, config) => {
      const users = new ConfigUsers();
      let warnedPersist = false;
      const warnPersist = (text: string): void => {
        if (warnedPersist) return;
        warnedPersist = true;
        node.warn(text);
      };
      let built = false;
      let tokenFile: TokenFile | undefined;
      const owned = new OwnedClient(node, () => {
        built = true;
        const hooks: ClientHooks = {
          onAuthState: (s: AuthState) => {
            if (s.blocked) {
              const status = Status.error("errors.auth_cooldown");
              node.status(status);
              users.show(status);
              node.warn(`${s.error?.message ?? "Acumatica refused the sign-in"}`);
            } else {
              users.clear();
              node.status(Status.ok("mlc-acumatica-config.status.signedIn"));
            }
          },
        };
        if (config.authMode !== "cookie") {
          const file = tokenFileFor(RED, node, "acumatica", connectionIdentity(config, node.credentials));
          if ("reason" in file) {
            warnPersist(`The Acumatica refresh token is kept in memory only (${file.reason}): after a crash the next start opens a new session`);
          } else {
            const tokens: TokenFile = file;
            tokenFile = tokens;
            hooks.refreshToken = tokens.read();
            hooks.onTokens = async ({ refreshToken }) => {
              try {
                await tokens.write(refreshToken);
              } catch (err) {
                warnPersist(`Could not save the Acumatica refresh token (${(err as NodeJS.ErrnoException)?.code ?? "write failed"}): after a crash the next start opens a new session`);
              }
            };
            hooks.onSignedOut = () => tokens.clear();
          }
        }
        return buildClient(config, node.credentials, hooks);
      }, async (removed) => {
        if (!removed) return; // redeployed or stopped: a saved token is reused by the next start
        if (!built && config.authMode !== "cookie") {
          // deleted before it was used since a crash: end the grant the saved token still holds (else it keeps a
          // licensed API user until the refresh token expires), within the client's close bound
          const file = tokenFileFor(RED, node, "acumatica", connectionIdentity(config, node.credentials));
          const saved = "reason" in file ? undefined : file.read();
          if (saved && !("reason" in file)) {
            tokenFile = file;
            try {
              await buildClient(config, node.credentials, { refreshToken: saved }).close();
            } catch {
              // bad configuration: nothing can be signed out
            }
          }
        }
        // a deleted config node's token can never be reused: drop it even if the sign-out failed
        await tokenFile?.clear();
      });
      (node as AcumaticaConfigNode).mlc = {
        client: () => owned.get(),
        get tenant() {
          return configString(config.tenant, "Tenant");
        },
        use: (user: RedNode) => users.add(user),
      };
    },
    {
      clientId: { type: "text" },
      clientSecret: { type: "password" },
      username: { type: "text" },
      password: { type: "password" },
    },
  );

  registerTestEndpoint(RED, ACUMATICA_CONFIG_TYPE, async ({ config, credentials }) => {
    const client = buildClient(config as AcumaticaConfigProps, credentials);
    try {
      const r = await client.testConnection();
      return { ok: true, message: `Signed in; endpoint ${r.endpoint}/${r.version} answers` };
    } finally {
      await client.close();
    }
  });
}

/**
 * Find the Acumatica config node a dependent node references; `user` (the dependent) is registered with it so it is
 * shown the connection's sign-in problems.
 * @throws ValidationError code "no_config"
 */
export function acumaticaConfig(RED: RedAPI, id: unknown, user?: RedNode): AcumaticaConfigApi {
  const api = configApi<AcumaticaConfigApi>(RED, id, ACUMATICA_CONFIG_TYPE, "Acumatica connection");
  if (user) api.use(user);
  return api;
}
