/**
 * Runs a real Node-RED as a child process with its own user directory: the way end-to-end tests and the
 * demo exercise the package. Node-RED listens on 127.0.0.1 only.
 *
 * Which Node-RED and which Node binary are taken from MLC_NODE_RED (path to red.js) and MLC_NODE_BIN,
 * so CI can run the same suite on Node-RED 5 under Node 22; defaults are this repo's devDependency and
 * the current Node.
 */
import { ChildProcess, spawn, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");

export interface NodeRedOptions {
  /** User directory; created when missing. */
  userDir: string;
  /** Port; 0 picks a free one. */
  port?: number;
  /** Extra environment for the Node-RED process (endpoints, secrets for `${VAR}` references). */
  env?: Record<string, string>;
  /** Echo Node-RED's log lines to this function. */
  onLog?: (line: string) => void;
  /** settings.js `contextStorage` as JavaScript source (may `require(...)` a store module); default see writeSettings. */
  contextStorage?: string;
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Write the settings file used by tests and demo. Its context storage is exactly what the README's
 * "What survives a crash" tells users to put in settings.js: this package's store as default, memory
 * as "memory". A benchmark may pass another `contextStorage` literal to compare stores.
 */
export function writeSettings(userDir: string, port: number, contextStorage?: string): string {
  fs.mkdirSync(userDir, { recursive: true });
  const file = path.join(userDir, "settings.js");
  fs.writeFileSync(
    file,
    `module.exports = {
  uiHost: "127.0.0.1",
  uiPort: ${port},
  flowFile: "flows.json",
  credentialSecret: process.env.MLC_CREDENTIAL_SECRET || "ml-connector-local-secret",
  contextStorage: ${contextStorage ?? `{
    default: { module: require("node-red-contrib-ml-connector/store") },
    memory: { module: "memory" }
  }`},
  logging: { console: { level: "info", metrics: false, audit: false } },
  editorTheme: { tours: false, projects: { enabled: false } },
  diagnostics: { enabled: false },
  runtimeState: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } }
};
`,
  );
  return file;
}

/** npm commands a test waits on synchronously; bounded so a stalled npm fails the run with a message instead of hanging it (ms). */
const NPM_TIMEOUT_MS = 10 * 60_000;

function npm(args: string[], cwd: string): string {
  try {
    return execFileSync("npm", args, { cwd, encoding: "utf8", stdio: "pipe", timeout: NPM_TIMEOUT_MS, killSignal: "SIGKILL" });
  } catch (err) {
    const e = err as { code?: string; signal?: string; stderr?: string };
    const why = e.signal === "SIGKILL" ? `no answer within ${NPM_TIMEOUT_MS / 1000} s` : String(e.stderr ?? e.code ?? err).slice(-2000);
    throw new Error(`npm ${args[0]} in ${cwd} failed: ${why}`);
  }
}

/** One tarball per test process: dist/ does not change while mocha runs, so packing it again gives the same bytes. */
let packed: string | undefined;
/** One installed tree per tarball digest (the package and its production dependencies, as npm installed them). */
const installed = new Map<string, string>();
const scratch: string[] = [];
process.once("exit", () => {
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

/** Pack this repo (npm pack) into `destDir`; returns the tarball path. Requires a built dist/. Packs once per process. */
export function packRepo(destDir: string): string {
  fs.mkdirSync(destDir, { recursive: true });
  if (!packed) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-pack-"));
    scratch.push(dir);
    const name = npm(["pack", "--silent", "--pack-destination", dir], REPO_ROOT).trim().split("\n").pop() as string;
    packed = path.join(dir, name);
  }
  const dest = path.join(destDir, path.basename(packed));
  fs.copyFileSync(packed, dest);
  return dest;
}

/**
 * Install a packed tarball into a Node-RED user directory, as the palette manager would (npm install). The first
 * install of a given tarball runs npm into a scratch directory; every user directory then gets that directory's
 * package.json and a link to its node_modules, so each test's Node-RED loads exactly what npm installed without
 * paying (or risking) another install. Throws when npm fails or stalls for NPM_TIMEOUT_MS.
 */
export function installInto(userDir: string, tarball: string): void {
  fs.mkdirSync(userDir, { recursive: true });
  const digest = createHash("sha256").update(fs.readFileSync(tarball)).digest("hex");
  let tree = installed.get(digest);
  if (!tree) {
    tree = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-install-"));
    scratch.push(tree);
    fs.writeFileSync(path.join(tree, "package.json"), JSON.stringify({ name: "node-red-project", private: true, version: "0.0.1" }, null, 2));
    npm(["install", "--no-audit", "--no-fund", "--prefer-offline", "--omit=dev", tarball], tree);
    installed.set(digest, tree);
  }
  fs.copyFileSync(path.join(tree, "package.json"), path.join(userDir, "package.json"));
  fs.rmSync(path.join(userDir, "node_modules"), { recursive: true, force: true });
  fs.symlinkSync(path.join(tree, "node_modules"), path.join(userDir, "node_modules"), "dir");
}

/** Link this repo into a user directory instead of installing (the demo: no pack, edits show at once). */
export function linkInto(userDir: string): void {
  const nm = path.join(userDir, "node_modules");
  fs.mkdirSync(nm, { recursive: true });
  const link = path.join(nm, "node-red-contrib-ml-connector");
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(REPO_ROOT, link, "dir");
}

export class NodeRed {
  private child?: ChildProcess;
  readonly log: string[] = [];
  port = 0;

  constructor(private readonly opts: NodeRedOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Process id of the running Node-RED (for CPU and memory readings), undefined when not running. */
  get pid(): number | undefined {
    return this.child && this.child.exitCode === null ? this.child.pid : undefined;
  }

  /** Start and wait until the Admin API answers and flows have started. */
  async start(timeoutMs = 60000): Promise<void> {
    if (!this.port) this.port = this.opts.port || (await freePort());
    const settings = writeSettings(this.opts.userDir, this.port, this.opts.contextStorage);
    const redJs = process.env.MLC_NODE_RED || require.resolve("node-red/red.js", { paths: [REPO_ROOT] });
    const nodeBin = process.env.MLC_NODE_BIN || process.execPath;
    this.child = spawn(nodeBin, [redJs, "--userDir", this.opts.userDir, "--settings", settings, "--port", String(this.port)], {
      // NODE_ENV production unless the test asks otherwise (Node-RED's own default is development).
      env: { ...process.env, NODE_ENV: "production", ...(this.opts.env ?? {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const onData = (buf: Buffer): void => {
      for (const line of buf.toString("utf8").split(/\r?\n/)) {
        if (!line) continue;
        this.log.push(line);
        this.opts.onLog?.(line);
      }
    };
    this.child.stdout?.on("data", onData);
    this.child.stderr?.on("data", onData);
    const firstLine = this.log.length;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`Node-RED exited (${this.child.exitCode}):\n${this.log.slice(-30).join("\n")}`);
      try {
        const r = await fetch(`${this.url}/settings`);
        // Our own process must say it listens on our port: a stale server on a reused port must not pass for it.
        const mine = this.log.slice(firstLine);
        if (r.ok && mine.some((l) => l.includes(`Server now running at ${this.url}/`)) && mine.some((l) => /Started flows/.test(l))) return;
      } catch {
        /* not yet listening */
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`Node-RED did not start in ${timeoutMs} ms:\n${this.log.slice(-30).join("\n")}`);
  }

  /** Resident set size of the Node-RED process, bytes (Linux /proc; 0 when unknown). */
  rssBytes(): number {
    const pid = this.child?.pid;
    if (!pid) return 0;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
      return m ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  }

  /** Stop with SIGINT (clean shutdown: close handlers run, context is flushed). */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill("SIGKILL"), 20000);
      c.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
      c.kill("SIGINT");
    });
  }

  /** Kill the process with `signal` (default SIGKILL: no close handlers, no context flush) and wait for it to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill(signal);
    });
    this.log.push(`---- killed (${signal}) ----`);
  }

  async restart(): Promise<void> {
    await this.stop();
    this.log.push("---- restart ----");
    await this.start();
  }

  /** Deploy a flow array (full deploy) through the Admin API; resolves once the new flows have started. */
  async deploy(flows: unknown[]): Promise<void> {
    const firstLine = this.log.length;
    const r = await fetch(`${this.url}/flows`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Node-RED-Deployment-Type": "full", "Node-RED-API-Version": "v1" },
      body: JSON.stringify(flows),
    });
    if (r.status !== 204 && r.status !== 200) throw new Error(`deploy failed: HTTP ${r.status} ${await r.text()}`);
    // The Admin API answers before the flows are started; wait for the runtime to say so.
    await waitFor(() => this.log.slice(firstLine).some((l) => /Started flows/.test(l)), 30000, "flows started after deploy");
  }

  async getJson<T>(p: string): Promise<T> {
    const r = await fetch(`${this.url}${p}`, { headers: { Accept: "application/json" } });
    if (!r.ok) throw new Error(`GET ${p}: HTTP ${r.status}`);
    return (await r.json()) as T;
  }

  /** Press an inject node through the Admin API. */
  async inject(id: string): Promise<void> {
    const r = await fetch(`${this.url}/inject/${id}`, { method: "POST" });
    if (r.status !== 200) throw new Error(`inject ${id}: HTTP ${r.status}`);
  }
}

/** A fresh temporary directory. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 15000, what = "condition"): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Wait until `count()` reaches `target`; give up (resolving false) once it has not grown for `idleMs` ms, so a run
 * that lost events reports its numbers instead of hanging (no fixed deadline: a loaded machine is not a failure).
 */
export async function waitProgress(count: () => number, target: number, idleMs: number): Promise<boolean> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const n = count();
    if (n >= target) return true;
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since > idleMs) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
