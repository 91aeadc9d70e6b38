/**
 * `mlc-acumatica-config`: one Acumatica instance, tenant and contract-based endpoint (name + version,
 * pinned in every URL), signed in with OAuth 2.0 (password grant, refresh grant) or, as a fallback, a
 * cookie session that is always signed out when the node closes. Owns the single AcumaticaClient that
 * every trigger and fetch node using it shares.
 *
 * Sessions survive crashes: the OAuth refresh token, which the server rotates on every refresh, is saved to an
 * encrypted file in Node-RED's user directory (see lib/auth/token-file.ts for why not the credentials store) before
 * the new access token is used, and a restart (even after `kill -9`) refreshes that grant instead of opening
 * another one; instances on one Redis store share one grant (lib/auth/oauth.ts). A refused sign-in pauses signing in (client `authCooldownMs`) and is shown on this node and on every
 * node using it. Closing signs out within the client's bound (10 s < Node-RED's 15 s) and never signs in again.
 * Vendor: MYOB-IDG IntegrationDev_RESTExample_Basic_Login, OAuthOIDC_ResourceOwner_AccessToken,
 * OAuthOIDC_GettingStarted_RefreshToken, IS__con_License_Restrictions_API_Users.
 */
import type { AcumaticaClient, AuthState } from "../lib/acumatica/client";
import { AcumaticaConnectionProps, ClientHooks, buildAcumaticaClient, connectionIdentity, persistedTokenHooks, testAcumaticaConnection } from "../lib/acumatica/connection";
import type { TokenFile } from "../lib/auth/token-file";
import { registerTestEndpoint } from "../shared/admin";
import { ConfigUsers, OwnedClient, configApi, configString, tokenFileFor } from "../shared/config";
import { Status, registerNode } from "../shared/node";
import { sharedSecretFor } from "../shared/shared-secret";
import type { RedAPI, RedNode } from "../shared/types";

export const ACUMATICA_CONFIG_TYPE = "mlc-acumatica-config";

/** Editor properties of `mlc-acumatica-config` (lib/acumatica/connection.ts). */
export type AcumaticaConfigProps = AcumaticaConnectionProps;

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

/**
 * The client of one config node, with its refresh token persisted (lib/auth/token-file.ts) and its sign-in state shown
 * on the node and on every node using it.
 */
class Connection {
  readonly users = new ConfigUsers();
  readonly owned: OwnedClient<AcumaticaClient>;
  private warnedPersist = false;
  private built = false;
  private tokenFile: TokenFile | undefined;

  constructor(
    private readonly RED: RedAPI,
    private readonly node: RedNode,
    private readonly config: AcumaticaConfigProps,
  ) {
    this.owned = new OwnedClient(node, () => this.build(), (removed) => this.closed(removed));
  }

  private warnPersist(text: string): void {
    if (!this.warnedPersist) this.node.warn(text);
    this.warnedPersist = true;
  }

  private file = (): TokenFile | { reason: string } => tokenFileFor(this.RED, this.node, "acumatica", connectionIdentity(this.config, this.node.credentials));

  private authState(s: AuthState): void {
    if (s.blocked) {
      const status = Status.error("errors.auth_cooldown");
      this.node.status(status);
      this.users.show(status);
      this.node.warn(`${s.error?.message ?? "Acumatica refused the sign-in"}`);
    } else {
      this.users.clear();
      this.node.status(Status.ok("mlc-acumatica-config.status.signedIn"));
    }
  }

  private build(): AcumaticaClient {
    this.built = true;
    const hooks: ClientHooks = { onAuthState: (s: AuthState) => this.authState(s) };
    if (this.config.authMode !== "cookie") {
      const file = this.file();
      if ("reason" in file) {
        this.warnPersist(`The Acumatica refresh token is kept in memory only (${file.reason}): after a crash the next start opens a new session`);
      } else {
        this.tokenFile = file;
        Object.assign(hooks, persistedTokenHooks(file, (text) => this.warnPersist(text)));
      }
      hooks.sharedGrant = sharedSecretFor(this.RED, `${connectionIdentity(this.config, this.node.credentials)}\u0000${String(this.config.tenant ?? "")}`);
    }
    return buildAcumaticaClient(this.config, this.node.credentials, hooks);
  }

  private async closed(removed: boolean): Promise<void> {
    if (!removed) return; // redeployed or stopped: a saved token is reused by the next start
    if (!this.built && this.config.authMode !== "cookie") {
      // deleted before it was used since a crash: end the grant the saved token still holds (else it keeps a
      // licensed API user until the refresh token expires), within the client's close bound
      const file = this.file();
      const saved = "reason" in file ? undefined : file.read();
      if (saved && !("reason" in file)) {
        this.tokenFile = file;
        try {
          await buildAcumaticaClient(this.config, this.node.credentials, { refreshToken: saved }).close();
        } catch {
          // bad configuration: nothing can be signed out
        }
      }
    }
    // a deleted config node's token can never be reused: drop it even if the sign-out failed
    await this.tokenFile?.clear();
  }
}

/** Register `mlc-acumatica-config` and its Test connection (lib/acumatica/connection.ts). */
export function registerAcumaticaConfig(RED: RedAPI): void {
  registerNode<AcumaticaConfigProps>(
    RED,
    ACUMATICA_CONFIG_TYPE,
    (node, config) => {
      const conn = new Connection(RED, node, config);
      (node as AcumaticaConfigNode).mlc = {
        client: () => conn.owned.get(),
        get tenant() {
          return configString(config.tenant, "Tenant");
        },
        use: (user: RedNode) => conn.users.add(user),
      };
    },
    {
      clientId: { type: "text" },
      clientSecret: { type: "password" },
      username: { type: "text" },
      password: { type: "password" },
    },
  );

  registerTestEndpoint(RED, ACUMATICA_CONFIG_TYPE, async ({ config, credentials }) => ({ ok: true, message: await testAcumaticaConnection(config as AcumaticaConfigProps, credentials) }));
}

/**
 * The Acumatica config node a dependent node references; `user` is registered with it (shown sign-in problems).
 * @throws ValidationError code "no_config"
 */
export function acumaticaConfig(RED: RedAPI, id: unknown, user?: RedNode): AcumaticaConfigApi {
  const api = configApi<AcumaticaConfigApi>(RED, id, ACUMATICA_CONFIG_TYPE, "Acumatica connection");
  if (user) api.use(user);
  return api;
}
