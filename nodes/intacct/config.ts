/**
 * `mlc-intacct-config`: one Sage Intacct company reached through the XML gateway with a Web Services sender and a
 * company user. Owns the single IntacctClient every Intacct node using it shares: one API session per config node
 * (getAPISession once, reused while its sliding timeout has more than 5 minutes left), one concurrency budget.
 * A refused sign-in pauses signing in (5 min) and is shown on this node and on every node using it.
 * Secrets (sender password, user password) are credentials; sender id and user id too, so an exported flow names
 * no account. The session survives a restart (even `kill -9`): its id, endpoint and expiry are kept in
 * `<userDir>/.mlc-tokens/intacct-<node id>.json`, encrypted with Node-RED's credential secret (lib/auth/token-file.ts),
 * and reused while valid instead of opening a second session; the file is deleted with the node (shared/kept-session.ts).
 * Vendor: developer.intacct.com api/company-console/api-sessions; web-services/queries.
 */
import { encodeParts } from "../lib/ids";
import { INTACCT_ENDPOINT, IntacctClient, IntacctClientOptions } from "../lib/intacct/client";
import type { IntacctSession } from "../lib/intacct/session";
import { registerTestEndpoint, testOnConnection } from "../shared/admin";
import { showAuthState } from "../shared/auth-status";
import { ConfigUsers, OwnedClient, configApi, configString } from "../shared/config";
import { KeptSession } from "../shared/kept-session";
import { sharedSecretFor } from "../shared/shared-secret";
import { registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const INTACCT_CONFIG_TYPE = "mlc-intacct-config";

export interface IntacctConfigProps extends Record<string, unknown> {
  name?: string;
  /** Gateway URL; empty = https://api.intacct.com/ia/xml/xmlgw.phtml. May be `${INTACCT_URL}`. */
  endpoint?: string;
  companyId?: string;
  /** Entity (location) id for an entity-level session; empty = top level. */
  locationId?: string;
  /** The company's IANA time zone (WHENMODIFIED and dates have no offset). */
  timeZone?: string;
  /** Requests in flight at once (the company's performance tier). */
  maxConcurrent?: string | number;
  timeout?: string | number;
}

export interface IntacctConfigApi {
  /** @throws the configuration error; ErpError "client_closed" after the config node closed */
  client(): IntacctClient;
  readonly tenant: string;
  /** Register a node that uses this connection: it is shown the connection's sign-in problems (idempotent). */
  use(user: RedNode): void;
  /** Whether a Test connection form names this connection (endpoint, company, entity, both credential pairs). */
  sameConnection(config: Record<string, unknown>, credentials: Record<string, string | undefined>): boolean;
}

function positive(v: unknown): number | undefined {
  const n = Number(v);
  return v !== "" && v !== undefined && Number.isFinite(n) && n > 0 ? n : undefined;
}

type Hooks = Pick<IntacctClientOptions, "onAuthState" | "session" | "onSession" | "sharedSession">;

/** What a kept session is bound to: one saved for another endpoint, sender, company, user or entity is not used. */
function connectionIdentity(config: IntacctConfigProps, c: Record<string, string | undefined>): string {
  return encodeParts(["intacct", String(config.endpoint ?? "").trim(), String(c.senderId ?? "").trim(), String(config.companyId ?? "").trim(), String(c.userId ?? "").trim(), String(config.locationId ?? "").trim()]);
}

/** What decides the session: the identity plus both passwords (a Test connection form with the same uses the deployed client). */
function connectionSettings(config: IntacctConfigProps, c: Record<string, string | undefined>): string {
  return encodeParts([connectionIdentity(config, c), String(c.senderPassword ?? ""), String(c.userPassword ?? "")]);
}

/** @throws ValidationError "missing_env" for an unset `${VAR}`; ErpError "bad_config" for a missing credential */
function buildClient(config: IntacctConfigProps, c: Record<string, string | undefined>, hooks: Hooks = {}): IntacctClient {
  const timeout = positive(config.timeout);
  return new IntacctClient({
    endpoint: configString(config.endpoint, "Endpoint") || INTACCT_ENDPOINT,
    companyId: configString(config.companyId, "Company ID"),
    locationId: configString(config.locationId, "Entity") || undefined,
    timeZone: configString(config.timeZone, "Time zone") || "UTC",
    senderId: configString(c.senderId, "Sender ID"),
    senderPassword: configString(c.senderPassword, "Sender password"),
    userId: configString(c.userId, "User ID"),
    userPassword: configString(c.userPassword, "User password"),
    maxConcurrent: positive(config.maxConcurrent),
    http: timeout ? { timeoutMs: timeout * 1000 } : undefined,
    ...hooks,
  });
}

export function registerIntacctConfig(RED: RedAPI): void {
  registerNode<IntacctConfigProps>(
    RED,
    INTACCT_CONFIG_TYPE,
    (node, config) => {
      const users = new ConfigUsers();
      const kept = new KeptSession<IntacctSession>(RED, node, "intacct", () => connectionIdentity(config, node.credentials), "The Intacct session");
      const onAuthState = showAuthState(node, users, INTACCT_CONFIG_TYPE, "Intacct refused the sign-in");
      // redeployed or stopped: the next start reuses the kept session; deleted: it is forgotten
      // several instances on one Redis: one session per connection (lib/intacct/session.ts)
      const sharedSession = () => sharedSecretFor<IntacctSession>(RED, connectionIdentity(config, node.credentials));
      const owned = new OwnedClient(node, () => buildClient(config, node.credentials, { onAuthState, ...kept.hooks(), sharedSession: sharedSession() }), (removed) => kept.forget(removed));
      (node as RedNode & { mlc: IntacctConfigApi }).mlc = {
        client: () => owned.get(),
        get tenant() {
          return configString(config.companyId, "Company ID");
        },
        use: (user: RedNode) => users.add(user),
        sameConnection: (form, creds) => connectionSettings(form as IntacctConfigProps, creds) === connectionSettings(config, node.credentials),
      };
    },
    {
      senderId: { type: "text" },
      senderPassword: { type: "password" },
      userId: { type: "text" },
      userPassword: { type: "password" },
    },
  );

  // Test connection on the deployed connection, unchanged, uses its client: a second client would call getAPISession
  // while the deployed session has more than 5 minutes left (reference §3: a second session, avoided)
  registerTestEndpoint(RED, INTACCT_CONFIG_TYPE, (req) =>
    testOnConnection(RED, INTACCT_CONFIG_TYPE, req, () => buildClient(req.config as IntacctConfigProps, req.credentials), async (client) => {
      const r = await client.testConnection();
      return { ok: true, message: `Signed in to ${r.companyId}${r.locationId ? ` / ${r.locationId}` : ""} as ${r.userId}; session endpoint ${r.endpointHost}` };
    }),
  );
}

/**
 * The Intacct config node a dependent node references; `user` is registered with it (sign-in problems shown).
 * @throws ValidationError code "no_config"
 */
export function intacctConfig(RED: RedAPI, id: unknown, user?: RedNode): IntacctConfigApi {
  const api = configApi<IntacctConfigApi>(RED, id, INTACCT_CONFIG_TYPE, "Intacct connection");
  if (user) api.use(user);
  return api;
}
