/**
 * A config node's session kept across restarts (sessions are scarce: a crash should not open a second one while the
 * first is alive) in its {@link TokenFile} (`<userDir>/.mlc-tokens/<family>-<node id>.json`, encrypted with Node-RED's
 * credential secret, shared/config.ts tokenFileFor): read at start, written whenever the client hands it a new state,
 * deleted when the node is deleted (not when it is redeployed or stopped: the next start reuses it).
 * Vendor: Node-RED "Storing credentials" (credentialSecret); lib/auth/token-file.ts for the file format.
 */
import type { TokenFile } from "../lib/auth/token-file";
import { tokenFileFor } from "./config";
import type { RedAPI, RedNode } from "./types";

/** What a client needs to reuse and keep a session (e.g. IntacctClientOptions `session` / `onSession`). */
export interface KeptSessionHooks<S> {
  /** The session kept by an earlier run, if the file holds a readable one. */
  session?: S;
  /** Keep `s` (undefined: forget it); never rejects (a failure is warned once per call). */
  onSession?: (s: S | undefined) => Promise<void>;
}

/** One config node's kept session; {@link hooks} at client build, {@link forget} from the close handler. */
export class KeptSession<S> {
  private file: TokenFile | undefined;

  /**
   * @param family file name prefix ("intacct")
   * @param identity what the session is bound to (endpoint, company, user…): a file of another identity is not read
   * @param label how warnings name it ("the Intacct session")
   */
  constructor(
    private readonly RED: RedAPI,
    private readonly node: RedNode,
    private readonly family: string,
    private readonly identity: () => string,
    private readonly label: string,
  ) {}

  /** Hooks for the client; without a usable file (no userDir or no secret) a warning says it is kept in memory only. */
  hooks(): KeptSessionHooks<S> {
    const f = tokenFileFor(this.RED, this.node, this.family, this.identity());
    if ("reason" in f) {
      this.node.warn(`${this.label} is kept in memory only (${f.reason}): after a crash the next start opens a new session`);
      return {};
    }
    this.file = f;
    const lost = (): void => this.node.warn(`Could not keep ${this.label} on disk: after a crash the next start opens a new session`);
    return { session: read<S>(f), onSession: (s) => (s ? f.write(JSON.stringify(s)) : f.clear()).catch(lost) };
  }

  /** Close handler: delete the kept session when the node was deleted (`removed`); never rejects. */
  async forget(removed: boolean): Promise<void> {
    if (!removed) return;
    const f = this.file ?? tokenFileFor(this.RED, this.node, this.family, this.identity());
    if (!("reason" in f)) await f.clear().catch(() => undefined);
  }
}

function read<S>(file: TokenFile): S | undefined {
  try {
    const text = file.read();
    return text ? (JSON.parse(text) as S) : undefined;
  } catch {
    return undefined;
  }
}
