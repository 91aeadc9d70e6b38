/**
 * `mlc-sapb1-config`: one SAP Business One Service Layer (URL, `/b1s/v1` or `/b1s/v2`, CompanyDB, user, password,
 * server time zone, and the connection's own TLS trust: a CA certificate (PEM) and/or a SHA-256 pin for the
 * self-signed certificate Service Layer ships with; never a process-wide switch). Owns the single SapB1Client every
 * trigger and fetch node using it shares: one Login, reused, renewed once on 401, logged out when the node closes.
 * A refused Login pauses logging in (5 min) and is shown on this node and on every node using it.
 * The session survives a restart, even `kill -9`: its cookies are kept in `<userDir>/.mlc-tokens/sapb1-<node id>.json`,
 * encrypted with Node-RED's credential secret (lib/auth/token-file.ts), and reused until the server answers 401
 * instead of logging in while the old session is still alive; a logout (clean stop) or deleting the node removes it.
 * On several instances with one Redis store, the session is shared (one Login per connection, logout by the last).
 * Vendor: SAP "Working with SAP Business One Service Layer" §3.1 (Login/Logout), reference sap-business-one.md §1–2.
 */
import { AuthState } from "../lib/auth/source";
import type { TokenFile } from "../lib/auth/token-file";
import { SapB1Client, SapB1ClientOptions } from "../lib/sapb1/client";
import { readKeptSession, sessionIdentity, type KeptSapB1Session } from "../lib/sapb1/session";
import { sharedSecretFor } from "../shared/shared-secret";
import { registerTestEndpoint, testOnConnection } from "../shared/admin";
import { ConfigUsers, OwnedClient, configApi, configString, tokenFileFor } from "../shared/config";
import { Status, registerNode } from "../shared/node";
import type { RedAPI, RedNode } from "../shared/types";

export const SAPB1_CONFIG_TYPE = "mlc-sapb1-config";

export interface SapB1ConfigProps extends Record<string, unknown> {
  name?: string;
  url?: string;
  version?: "v1" | "v2";
  companyDb?: string;
  timeZone?: string;
  /** PEM CA certificate(s) to trust for this connection (not a secret: a public certificate). */
  ca?: string;
  /** SHA-256 fingerprint of the server certificate (hex, colons allowed). */
  pin?: string;
  timeout?: string | number;
}

export interface SapB1ConfigApi {
  /** @throws the configuration error; ErpError "client_closed" after the config node closed */
  client(): SapB1Client;
  /** CompanyDB (the envelope's tenant). */
  readonly tenant: string;
  /** The Service Layer server's IANA time zone (UpdateDate/UpdateTime are server-local); default "UTC". */
  readonly timeZone: string;
  /** Register a node that uses this connection: it is shown the connection's Login problems (idempotent). */
  use(user: RedNode): void;
  /** Whether a Test connection form names this connection (URL, version, CompanyDB, TLS trust, user, password). */
  sameConnection(config: Record<string, unknown>, credentials: Record<string, string | undefined>): boolean;
}

interface SapB1ConfigNode extends RedNode {
  mlc: SapB1ConfigApi;
}

type Hooks = Pick<SapB1ClientOptions, "onAuthState" | "session" | "onSession" | "sharedSession">;
const identity = (config: SapB1ConfigProps, c: Record<string, string | undefined>): string =>
  sessionIdentity([config.url, config.version === "v1" ? "v1" : "v2", config.companyDb, c.username]);
const settings = (config: SapB1ConfigProps, c: Record<string, string | undefined>): string => identity(config, c) + sessionIdentity([config.ca, config.pin, c.password]);

/** Build a client from the node's properties and credentials. @throws ValidationError (missing_env, bad URL, bad TLS) */
export function buildSapB1Client(config: SapB1ConfigProps, c: Record<string, string | undefined>, hooks: Hooks = {}): SapB1Client {
  const ca = configString(config.ca, "CA certificate");
  const pin = configString(config.pin, "Certificate pin");
  const timeout = Number(config.timeout);
  const opts: SapB1ClientOptions = {
    url: configString(config.url, "Service Layer URL"),
    version: config.version === "v1" ? "v1" : "v2",
    companyDb: configString(config.companyDb, "Company database"),
    username: configString(c.username, "User name"),
    password: configString(c.password, "Password"),
    tls: ca || pin ? { ca: ca || undefined, pinSha256: pin || undefined } : undefined,
    http: Number.isFinite(timeout) && timeout > 0 ? { timeoutMs: timeout * 1000 } : undefined,
    ...hooks,
  };
  return new SapB1Client(opts);
}

export function registerSapB1Config(RED: RedAPI): void {
  registerNode<SapB1ConfigProps>(
    RED,
    SAPB1_CONFIG_TYPE,
    (node, config) => {
      const users = new ConfigUsers();
      let file: TokenFile | undefined;
      const onAuthState = (s: AuthState): void => {
        if (s.blocked) {
          const status = Status.error("errors.auth_cooldown");
          node.status(status);
          users.show(status);
          node.warn(s.error?.message ?? "SAP Business One refused the Login");
        } else {
          users.clear();
          node.status(Status.ok("mlc-sapb1-config.status.signedIn"));
        }
      };
      const owned = new OwnedClient(
        node,
        () => {
          const hooks: Hooks = { onAuthState, sharedSession: sharedSecretFor<KeptSapB1Session>(RED, identity(config, node.credentials)) };
          const f = tokenFileFor(RED, node, "sapb1", identity(config, node.credentials));
          if ("reason" in f) node.warn(`The SAP Business One session is kept in memory only (${f.reason}): after a crash the next start logs in while the old session lives on`);
          else {
            file = f;
            hooks.session = readKeptSession(f);
            hooks.onSession = (s) =>
              (s ? f.write(JSON.stringify(s)) : f.clear()).catch(() => node.warn("Could not keep the SAP Business One session on disk: after a crash the next start logs in again"));
          }
          return buildSapB1Client(config, node.credentials, hooks);
        },
        async (removed) => {
          if (!removed) return; // a clean stop logged out (and forgot the session); a failed logout keeps it for the next start
          const f = file ?? tokenFileFor(RED, node, "sapb1", identity(config, node.credentials));
          if (!("reason" in f)) await f.clear().catch(() => undefined);
        },
      );
      (node as SapB1ConfigNode).mlc = {
        client: () => owned.get(),
        get tenant() {
          return configString(config.companyDb, "Company database");
        },
        get timeZone() {
          return configString(config.timeZone, "Server time zone") || "UTC";
        },
        use: (user: RedNode) => users.add(user),
        sameConnection: (form, creds) => settings(form as SapB1ConfigProps, creds) === settings(config, node.credentials),
      };
    },
    { username: { type: "text" }, password: { type: "password" } },
  );

  // the deployed connection, unchanged, is tested on its session: another Login while it lives is a client bug (§2)
  registerTestEndpoint(RED, SAPB1_CONFIG_TYPE, (req) =>
    testOnConnection(RED, SAPB1_CONFIG_TYPE, req, () => buildSapB1Client(req.config as SapB1ConfigProps, req.credentials), async (client) => {
      const r = await client.testConnection();
      return { ok: true, message: `Logged in to ${r.companyDb} (/b1s/${r.version}${r.serverVersion ? `, server ${r.serverVersion}` : ""}); Items answer` };
    }),
  );
}

/**
 * Find the SAP Business One config node a dependent node references; `user` is registered with it.
 * @throws ValidationError code "no_config"
 */
export function sapB1Config(RED: RedAPI, id: unknown, user?: RedNode): SapB1ConfigApi {
  const api = configApi<SapB1ConfigApi>(RED, id, SAPB1_CONFIG_TYPE, "SAP Business One connection");
  if (user) api.use(user);
  return api;
}
