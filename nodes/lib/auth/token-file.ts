/**
 * A rotating refresh token kept on disk so that a restart (even after `kill -9`) refreshes the existing grant
 * instead of opening a new one: each OAuth grant is one licensed API user on Acumatica (MYOB-IDG
 * `IS__con_License_Restrictions_API_Users.html`, `OAuthOIDC_GettingStarted_RefreshToken.html`), and a token refused
 * because it was rotated and never saved means a new grant per crash until "API Login Limit".
 *
 * Why not Node-RED's own credentials: the runtime writes `flows_cred.json` only when flows are deployed
 * (`@node-red/runtime/lib/flows/index.js` setFlows → `credentials.export()` → `storage.saveCredentials`, in Node-RED
 * 4.1 and 5); `RED.nodes.addCredentials` at run time only marks the cache dirty, so a rotated token would be lost
 * by any crash before the next deploy.
 *
 * File: one per config node, `<dir>/<name>.json`, encrypted like Node-RED's credentials file
 * (`@node-red/runtime/lib/nodes/credentials.js`): AES-256-CTR, key = SHA-256(credential secret), random 16-byte IV
 * as hex, then the base64 ciphertext, stored as `{"$": "<iv hex><base64>"}`; with encryption disabled
 * (`credentialSecret: false`) the JSON is stored as `{"plain": …}` like Node-RED does. Written atomically: temp
 * file, `fsync`, `rename`, `fsync` of the directory; mode 0600. The content is bound to a fingerprint of the
 * connection (instance, client, user): a token saved for other settings is ignored.
 *
 * No Node-RED import; Node-RED's settings are read by the config node and passed in.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const ALGORITHM = "aes-256-ctr";

interface Stored {
  /** SHA-256 hex of the connection identity the token belongs to. */
  binding: string;
  refreshToken: string;
  /** When it was saved, ISO 8601. */
  savedAt: string;
}

/** Options of {@link TokenFile}. */
export interface TokenFileOptions {
  /** Directory, created (mode 0700) on the first write. */
  dir: string;
  /** File name without extension; characters outside `[A-Za-z0-9_.-]` are replaced (e.g. a config node id). */
  name: string;
  /**
   * Encryption secret: Node-RED's `credentialSecret` (or the generated `_credentialSecret`); `false` stores the token
   * unencrypted, as Node-RED does with its credentials when encryption is disabled.
   */
  secret: string | false;
  /** Identity of the connection (e.g. instance URL, client ID, user name); a token saved under another one is ignored. */
  binding: string;
}

/**
 * One persisted refresh token. Reads are synchronous (a config node reads it once when it starts); writes are
 * serialised and resolve only once the file is durable.
 */
export class TokenFile {
  /** Full path of the file. */
  readonly file: string;
  private readonly key?: Buffer;
  private readonly binding: string;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: TokenFileOptions) {
    const safe = opts.name.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 120) || "token";
    this.file = path.join(opts.dir, `${safe}.json`);
    if (opts.secret !== false) this.key = createHash("sha256").update(String(opts.secret)).digest();
    this.binding = createHash("sha256").update(opts.binding).digest("hex");
  }

  /**
   * The saved refresh token, or undefined when there is none, it belongs to other connection settings, or it cannot be
   * read (wrong secret, damaged file). Never throws.
   */
  read(): string | undefined {
    try {
      const raw = JSON.parse(fs.readFileSync(this.file, "utf8")) as { $?: string; plain?: Stored };
      let stored: Stored | undefined;
      if (this.key && typeof raw.$ === "string") {
        const iv = Buffer.from(raw.$.slice(0, 32), "hex");
        const decipher = createDecipheriv(ALGORITHM, this.key, iv);
        stored = JSON.parse(decipher.update(raw.$.slice(32), "base64", "utf8") + decipher.final("utf8")) as Stored;
      } else if (!this.key && raw.plain) {
        stored = raw.plain;
      }
      if (!stored || stored.binding !== this.binding || typeof stored.refreshToken !== "string" || !stored.refreshToken) return undefined;
      return stored.refreshToken;
    } catch {
      return undefined;
    }
  }

  /**
   * Save `refreshToken` (replacing the previous one) and resolve once it is on disk (file and directory fsync'd).
   * @throws the file-system error (ENOSPC, EACCES…) when the write fails; the previous file is then left in place
   */
  write(refreshToken: string): Promise<void> {
    const stored: Stored = { binding: this.binding, refreshToken, savedAt: new Date().toISOString() };
    let content: string;
    if (this.key) {
      const iv = randomBytes(16);
      const cipher = createCipheriv(ALGORITHM, this.key, iv);
      content = JSON.stringify({ $: iv.toString("hex") + cipher.update(JSON.stringify(stored), "utf8", "base64") + cipher.final("base64") });
    } else {
      content = JSON.stringify({ plain: stored });
    }
    return this.enqueue(() => this.writeAtomic(content));
  }

  /** Forget the token (after a sign-out ended the grant). Resolves once the removal is durable; never rejects. */
  clear(): Promise<void> {
    return this.enqueue(async () => {
      await fs.promises.rm(this.file, { force: true });
      await this.syncDir();
    }).catch(() => undefined);
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const p = this.chain.then(step);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async writeAtomic(content: string): Promise<void> {
    await fs.promises.mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    const fh = await fs.promises.open(tmp, "w", 0o600);
    try {
      await fh.writeFile(content, "utf8");
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.promises.rename(tmp, this.file);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    await this.syncDir();
  }

  private async syncDir(): Promise<void> {
    let dh: fs.promises.FileHandle | undefined;
    try {
      dh = await fs.promises.open(this.opts.dir, "r");
      await dh.sync();
    } catch {
      // some file systems cannot fsync a directory; the rename is still atomic
    } finally {
      await dh?.close().catch(() => undefined);
    }
  }
}
