/**
 * A real `redis-server` (Debian package `redis-server`) for tests: started on a free loopback port (found by listening
 * on port 0 and closing), bound to 127.0.0.1, no persistence, no config file, stopped after. Found on PATH or in
 * /usr/bin (`MLC_REDIS_SERVER` points elsewhere).
 *
 * When it is missing: with env `CI` set, {@link requireRedis} throws (CI must not hide a missing install); otherwise
 * the calling suite is skipped with a message naming the apt package.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

export const REDIS_APT_HINT = "redis-server not found: install it with `apt-get install -y redis-server` (Debian package redis-server)";

/** Path of redis-server, or undefined. */
export function findRedisServer(): string | undefined {
  const env = process.env.MLC_REDIS_SERVER;
  if (env) return fs.existsSync(env) ? env : undefined;
  for (const dir of [...(process.env.PATH ?? "").split(path.delimiter), "/usr/bin", "/usr/sbin"]) {
    if (!dir) continue;
    const p = path.join(dir, "redis-server");
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * Call in a mocha `before` (with `this`): skips the suite when redis-server is missing, or throws when env CI is set.
 * @returns the redis-server path
 */
export function requireRedis(ctx: Mocha.Context): string {
  const bin = findRedisServer();
  if (bin) return bin;
  if (process.env.CI) throw new Error(REDIS_APT_HINT + " (CI is set, so this is a failure, not a skip)");
  console.warn(`      SKIPPED: ${REDIS_APT_HINT}`);
  ctx.skip();
  return "";
}

/** A free loopback TCP port (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  private proc?: ChildProcess;
  private exited?: Promise<void>;
  port = 0;

  /**
   * @param bin redis-server path
   * @param dataDir with a directory: append-only file, fsync on every write (`appendfsync always`), so a restart keeps
   *   every acknowledged write (what the README recommends); without: no persistence
   */
  constructor(
    private readonly bin: string,
    private readonly dataDir?: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Start (or restart on the same port). Resolves once it accepts connections. @throws Error when it does not start in 20 s */
  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const persist = this.dataDir ? ["--dir", this.dataDir, "--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", ...persist, "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"];
    const proc = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    proc.stdout?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    proc.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const deadline = Date.now() + 20000;
    for (;;) {
      if (!this.running) throw new Error(`redis-server exited: ${log}`);
      if (await this.ping()) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${this.port}: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** One PING over a raw socket; true on +PONG. */
  ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect(this.port, "127.0.0.1");
      let buf = "";
      const done = (ok: boolean): void => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(2000, () => done(false));
      s.once("error", () => done(false));
      s.on("data", (d: Buffer) => {
        buf += d.toString();
        if (buf.includes("\r\n")) done(buf.startsWith("+PONG"));
      });
      s.write("PING\r\n");
    });
  }

  /** Stop (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await this.exited;
    clearTimeout(t);
  }

}

/** Start a redis-server for a suite (call from `before`); skips/throws as {@link requireRedis} says. */
export async function startRedis(ctx: Mocha.Context, dataDir?: string): Promise<RedisServer> {
  const bin = requireRedis(ctx);
  const r = new RedisServer(bin, dataDir);
  await r.start();
  return r;
}
