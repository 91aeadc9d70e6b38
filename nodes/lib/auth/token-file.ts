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

/** A value sealed like Node-RED's credentials: `{"$": "<iv hex><base64 AES-256-CTR>"}`, or `{"plain": …}` unencrypted. */
export type Sealed = { $: string } | { plain: unknown };

/** The AES-256 key for a credential secret (SHA-256 of it, as Node-RED does); undefined for `false` (no encryption). */
export function sealKey(secret: string | false): Buffer | undefined {
  return secret === false ? undefined : createHash("sha256").update(String(secret)).digest();
}

/** Encrypt `value` (JSON) with `key` (random IV), or wrap it as `plain` when `key` is undefined. */
export function seal(value: unknown, key: Buffer | undefined): Sealed {
  if (!key) return { plain: value };
  const iv = randomBytes(16);
  const cipher = createCipheriv(ALGORITHM, key, iv);
  return { $: iv.toString("hex") + cipher.update(JSON.stringify(value), "utf8", "base64") + cipher.final("base64") };
}

/**
 * Open what {@link seal} made. @returns undefined when the form does not match the key (encrypted without a key,
 * plain with one) @throws SyntaxError when the secret is wrong or the text is damaged
 */
export function unseal<T>(raw: unknown, key: Buffer | undefined): T | undefined {
  const r = (raw ?? {}) as { $?: unknown; plain?: unknown };
  if (key && typeof r.$ === "string") {
    const decipher = createDecipheriv(ALGORITHM, key, Buffer.from(r.$.slice(0, 32), "hex"));
    return JSON.parse(decipher.update(r.$.slice(32), "base64", "utf8") + decipher.final("utf8")) as T;
  }
  return !key && r.plain !== undefined ? (r.plain as T) : undefined;
}

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
    this.key = sealKey(opts.secret);
    this.binding = createHash("sha256").update(opts.binding).digest("hex");
  }

  /**
   * The saved refresh token, or undefined when there is none, it belongs to other connection settings, or it cannot be
   * read (wrong secret, damaged file). Never throws.
   */
  read(): string | undefined {
    try {
      const stored = unseal<Stored>(JSON.parse(fs.readFileSync(this.file, "utf8")) as Sealed, this.key);
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
    const content = JSON.stringify(seal(stored, this.key));
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
