/**
 * `mlc-exact-config`: one Exact Online connection (regional host or base URL override, app client id/secret, division)
 * owning the single ExactClient its trigger and fetch nodes share (one token chain, one X-RateLimit budget).
 *
 * Tokens: Exact rotates the single-use refresh token on every refresh (reference exact-online.md §2), so the token
 * state (refresh token, current access token and when it was issued) is saved to an encrypted token file in the
 * user directory (nodes/lib/auth/token-file.ts; Node-RED writes credentials only on deploy) BEFORE the new access
 * token is used; a restart, even after kill -9, continues the chain and does not ask Exact for a token before 570 s.
 * Several instances on one Redis store share the token set (encrypted, keyed by the connection) and refresh it
 * single-flight under a Redis lock (nodes/lib/exact/tokens.ts). First authorisation: paste a refresh token into the credentials, or use "Authorise" in the dialog (authorization
 * code redirect through the admin server: `<httpAdminRoot>/mlc/mlc-exact-config/oauth` is the redirect URI to register).
 */
import { createHash } from "node:crypto";
import { ExactClient } from "../lib/exact/client";
import { PartyCache } from "../lib/exact/parties";
import { ExactTokens } from "../lib/exact/tokens";
import type { TokenFile } from "../lib/auth/token-file";
import { sharedSecretFor } from "../shared/shared-secret";
import { encodeParts } from "../lib/ids";
import { registerTestEndpoint } from "../shared/admin";
import { registerAuthorize } from "./authorize";
import { ConfigUsers, OwnedClient, configApi, configString, tokenFileFor } from "../shared/config";
import { showAuthState } from "../shared/auth-status";
import { Status, registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const EXACT_CONFIG_TYPE = "mlc-exact-config";

export interface ExactConfigProps extends Record<string, unknown> {
  name?: string;
  region?: string;
  baseUrl?: string;
  division?: string | number;
  redirectUri?: string;
}

/** What dependent nodes get from the config node. */
export interface ExactConfigApi {
  /** @throws the configuration error; ErpError "client_closed" after the config node closed */
  client(): ExactClient;
  /** Accounts and contacts cached for enrichment (one per connection). */
  readonly parties: PartyCache;
  /** Register a node that uses this connection (shown sign-in problems). */
  use(user: RedNode): void;
  /** Exchange an authorization code (editor "Authorise" flow). @throws as ExactTokenSource.exchangeCode */
  exchange(code: string): Promise<void>;
  /** Where the user authorises the app (`state` is echoed to the redirect). */
  authorizeUrl(state: string): string;
}

function parseTokens(text: string | undefined): ExactTokens | undefined {
  if (!text) return undefined;
  try {
    const t = JSON.parse(text) as ExactTokens;
    return typeof t.refreshToken === "string" && t.refreshToken ? t : undefined;
  } catch {
    return undefined;
  }
}

function build(config: ExactConfigProps, c: Record<string, string | undefined>, hooks: Partial<ConstructorParameters<typeof ExactClient>[0]> = {}): ExactClient {
  const division = Number(configString(config.division, "Division"));
  return new ExactClient({
    region: configString(config.region, "Region") || "nl",
    baseUrl: configString(config.baseUrl, "Base URL") || undefined,
    clientId: configString(c.clientId, "Client ID"),
    clientSecret: configString(c.clientSecret, "Client secret"),
    redirectUri: configString(config.redirectUri, "Redirect URI") || undefined,
    division: Number.isInteger(division) && division > 0 ? division : undefined,
    ...hooks,
  });
}

/** The token file's binding: host, client, and the pasted refresh token (a newly pasted one starts over). */
function identity(config: ExactConfigProps, c: Record<string, string | undefined>): string {
  const pasted = c.refreshToken ? createHash("sha256").update(c.refreshToken).digest("hex") : "";
  return encodeParts(["exact", String(config.region ?? ""), String(config.baseUrl ?? "").trim(), String(c.clientId ?? "").trim(), pasted]);
}

function setup(RED: RedAPI, node: RedNode, config: ExactConfigProps): void {
  const users = new ConfigUsers();
  let tokenFile: TokenFile | undefined;
  const owned = new OwnedClient(node, () => {
    const file = tokenFileFor(RED, node, "exact", identity(config, node.credentials));
    if ("reason" in file) node.warn(`The Exact tokens are kept in memory only (${file.reason}): after a crash the connection must be authorised again`);
    else tokenFile = file;
    const saved = parseTokens(tokenFile?.read());
    const pasted = node.credentials.refreshToken ? { refreshToken: node.credentials.refreshToken } : undefined;
    return build(config, node.credentials, {
      tokens: saved ?? pasted,
      onTokens: async (tk) => tokenFile?.write(JSON.stringify(tk)),
      shared: sharedSecretFor<ExactTokens>(RED, identity(config, node.credentials)),
      onSaveError: (err) => node.warn(`Could not save the Exact tokens (${(err as NodeJS.ErrnoException)?.code ?? "write failed"}): after a crash the connection must be authorised again`),
      onAuthState: showAuthState(node, users, EXACT_CONFIG_TYPE, "Exact refused the sign-in", (err) => (err?.code === "reauthorize" ? "mlc-exact-config.status.reauthorize" : undefined)),
    });
  }, async (removed) => {
    if (removed) await tokenFile?.clear(); // a deleted connection's chain is never reused
  });
  const api: ExactConfigApi = {
    client: () => owned.get(),
    parties: new PartyCache(),
    use: (user) => users.add(user),
    exchange: async (code) => {
      await owned.get().tokens.exchangeCode(code);
      users.clear();
      node.status(Status.ok("mlc-exact-config.status.signedIn"));
    },
    authorizeUrl: (state) => owned.get().tokens.authorizeUrl(configString(config.redirectUri, "Redirect URI"), state),
  };
  (node as RedNode & { mlc: ExactConfigApi }).mlc = api;
}

export function registerExactConfig(RED: RedAPI): void {
  registerNode<ExactConfigProps>(RED, EXACT_CONFIG_TYPE, (node, config) => setup(RED, node, config), {
    clientId: { type: "text" },
    clientSecret: { type: "password" },
    refreshToken: { type: "password" },
    webhookSecret: { type: "password" },
  });
  registerAuthorize(RED, EXACT_CONFIG_TYPE);
  registerTestEndpoint(RED, EXACT_CONFIG_TYPE, async ({ id }) => {
    // a copy of the connection would use up the single-use refresh token of the deployed one: test the deployed one
    const api = configApi<ExactConfigApi>(RED, id, EXACT_CONFIG_TYPE, "deployed Exact Online connection (deploy first, then test)");
    const client = api.client();
    const me = await client.me();
    const division = await client.currentDivision();
    const left = client.rateRemaining(division).daily;
    return { ok: true, message: `Signed in as ${String(me.UserName ?? me.FullName ?? "?")}; division ${division}${left !== undefined ? `; ${left} calls left today` : ""}` };
  });
}

/** The Exact config node a dependent node references; `user` is registered with it. @throws ValidationError "no_config" */
export function exactConfig(RED: RedAPI, id: unknown, user?: RedNode): ExactConfigApi {
  const api = configApi<ExactConfigApi>(RED, id, EXACT_CONFIG_TYPE, "Exact Online connection");
  if (user) api.use(user);
  return api;
}
