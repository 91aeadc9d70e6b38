/**
 * `mlc-bc-config`: one Business Central environment and company, signed in as an Entra ID app (client credentials
 * through `@azure/msal-node`, secret or certificate). Owns the single BcClient (one token, one rate budget) that every
 * Business Central node using it shares. Test connection signs in, lists the companies (the editor offers them as the
 * company choice) and checks the chosen one answers.
 * Vendor: BCDOCS administration/automation-apis-using-s2s-authentication, webservices/api-endpoint-structure;
 * Entra identity-platform/v2-oauth2-client-creds-grant-flow.
 */
import type { AuthState } from "../lib/auth/source";
import { BcClient } from "../lib/bc/client";
import { registerTestEndpoint } from "../shared/admin";
import { showAuthState } from "../shared/auth-status";
import { ConfigUsers, OwnedClient, configApi, configString } from "../shared/config";
import { registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const BC_CONFIG_TYPE = "mlc-bc-config";

export interface BcConfigProps extends Record<string, unknown> {
  name?: string;
  tenant?: string;
  environment?: string;
  companyId?: string;
  authorityHost?: string;
  apiHost?: string;
  timeout?: string | number;
}

export interface BcConfigApi {
  /** @throws the configuration error; ErpError "client_closed" after the config node closed */
  client(): BcClient;
  /** Register a node that uses this connection: it is shown the connection's sign-in problems (idempotent). */
  use(user: RedNode): void;
  /**
   * A new client of the same connection, owned (and closed) by the caller: for clean-up that must outlive the shared
   * client, e.g. deleting a removed trigger's subscriptions while a full deploy restarts this config node too.
   */
  detached(): BcClient;
}

/** An optional field: empty when blank or an unset `${VAR}` reference (then the public cloud's default applies). */
function optional(value: unknown, field: string): string | undefined {
  const s = typeof value === "string" ? value.trim() : "";
  if (/^\$\{\S+\}$/.test(s)) return undefined;
  return configString(s, field) || undefined;
}

/** A client from the editor's fields and credentials. @throws ValidationError `bad_config` / `missing_env` */
export function buildBcClient(config: BcConfigProps, c: Record<string, string | undefined>, onAuthState?: (s: AuthState) => void): BcClient {
  const timeout = Number(config.timeout);
  const privateKey = configString(c.certificateKey, "Certificate private key");
  const thumbprint = configString(c.certificateThumbprint, "Certificate thumbprint").replace(/[:\s]/g, "");
  return new BcClient({
    tenant: configString(config.tenant, "Tenant"),
    environment: configString(config.environment, "Environment"),
    companyId: configString(config.companyId, "Company") || undefined,
    clientId: configString(c.clientId, "Client ID"),
    clientSecret: privateKey ? undefined : configString(c.clientSecret, "Client secret"),
    certificate: privateKey ? { privateKey, thumbprintSha256: thumbprint } : undefined,
    authorityHost: optional(config.authorityHost, "Authority host"),
    apiHost: optional(config.apiHost, "API host"),
    tls: optional(c.caPem, "CA") ? { ca: String(c.caPem) } : undefined,
    http: Number.isFinite(timeout) && timeout > 0 ? { timeoutMs: timeout * 1000 } : undefined,
    onAuthState,
  });
}

export function registerBcConfig(RED: RedAPI): void {
  registerNode<BcConfigProps>(
    RED,
    BC_CONFIG_TYPE,
    (node, config) => {
      const users = new ConfigUsers();
      const owned = new OwnedClient(node, () => buildBcClient(config, node.credentials, showAuthState(node, users, BC_CONFIG_TYPE, "Entra ID refused the sign-in")));
      (node as RedNode & { mlc: BcConfigApi }).mlc = { client: () => owned.get(), use: (user: RedNode) => users.add(user), detached: () => buildBcClient(config, node.credentials) };
    },
    {
      clientId: { type: "text" },
      clientSecret: { type: "password" },
      certificateThumbprint: { type: "text" },
      certificateKey: { type: "password" },
      caPem: { type: "text" },
    },
  );

  registerTestEndpoint(RED, BC_CONFIG_TYPE, async ({ config, credentials }) => {
    const client = buildBcClient({ ...(config as BcConfigProps), companyId: undefined }, credentials);
    try {
      const companies = await client.companies();
      const chosen = String((config as BcConfigProps).companyId ?? "").trim();
      const list = companies.map((c) => ({ id: String(c.id), name: String(c.displayName || c.name) }));
      const found = list.find((c) => c.id === chosen);
      const message = chosen && !found ? `Signed in, but company ${chosen} is not in this environment (${list.length} companies)` : `Signed in; ${list.length} companies${found ? `; using ${found.name}` : ""}`;
      const result = { ok: !chosen || !!found, message, companies: list };
      return result;
    } finally {
      await client.close();
    }
  });
}

/**
 * The BC config node a dependent node references; `user` is registered with it to be shown sign-in problems.
 * @throws ValidationError code "no_config"
 */
export function bcConfig(RED: RedAPI, id: unknown, user?: RedNode): BcConfigApi {
  const api = configApi<BcConfigApi>(RED, id, BC_CONFIG_TYPE, "Business Central connection");
  if (user) api.use(user);
  return api;
}
