/**
 * `mlc-acumatica-config`: one Acumatica instance, tenant and contract-based endpoint (name + version,
 * pinned in every URL), signed in with OAuth 2.0 (password grant, refresh grant) or, as a fallback, a
 * cookie session that is always signed out when the node closes. Owns the single AcumaticaClient that
 * every trigger and fetch node using it shares.
 * Vendor: MYOB-IDG IntegrationDev_RESTExample_Basic_Login, OAuthOIDC_ResourceOwner_AccessToken.
 */
import { AcumaticaClient, AcumaticaClientOptions } from "../lib/acumatica/client";
import { registerTestEndpoint } from "../shared/admin";
import { OwnedClient, configApi, configString } from "../shared/config";
import { registerNode } from "../shared/node";
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
  client(): AcumaticaClient;
  readonly tenant: string;
}

interface AcumaticaConfigNode extends RedNode {
  mlc: AcumaticaConfigApi;
}

function buildClient(config: AcumaticaConfigProps, c: Record<string, string | undefined>): AcumaticaClient {
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
  });
}

export function registerAcumaticaConfig(RED: RedAPI): void {
  registerNode<AcumaticaConfigProps>(
    RED,
    ACUMATICA_CONFIG_TYPE,
    (node, config) => {
      const owned = new OwnedClient(node, () => buildClient(config, node.credentials));
      (node as AcumaticaConfigNode).mlc = {
        client: () => owned.get(),
        get tenant() {
          return configString(config.tenant, "Tenant");
        },
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
 * Find the Acumatica config node a dependent node references.
 * @throws ValidationError code "no_config"
 */
export function acumaticaConfig(RED: RedAPI, id: unknown): AcumaticaConfigApi {
  return configApi<AcumaticaConfigApi>(RED, id, ACUMATICA_CONFIG_TYPE, "Acumatica connection");
}
