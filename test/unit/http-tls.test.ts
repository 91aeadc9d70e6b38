/**
 * Per-client TLS trust on the HTTP client (nodes/lib/http.ts `HttpClientOptions.tls`): a self-signed HTTPS server on
 * 127.0.0.1:0 is accepted with its certificate as CA, refused without it (once: a certificate refusal is not retried),
 * refused with a wrong SHA-256 pin even when the CA is trusted, and the CA never becomes trusted process-wide.
 *
 * Certificates: generated for each run with the machine's `openssl` (a fresh key pair, valid 2 days); where `openssl`
 * is missing, the test-only pair checked in under test/fixtures/tls/ (valid until 2126; never used outside tests).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { MlcError, ValidationError } from "../../nodes/lib/errors";
import { HttpClient, HttpTlsOptions } from "../../nodes/lib/http";

const FIXTURES = path.join(__dirname, "..", "..", "..", "test", "fixtures", "tls");

function makeCert(dir: string, name: string): { key: string; cert: string } | undefined {
  const keyFile = path.join(dir, `${name}-key.pem`);
  const certFile = path.join(dir, `${name}-cert.pem`);
  const r = spawnSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
    { stdio: "ignore", timeout: 20_000, killSignal: "SIGKILL" },
  );
  if (r.status !== 0) return undefined;
  return { key: fs.readFileSync(keyFile, "utf8"), cert: fs.readFileSync(certFile, "utf8") };
}

function pinOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

describe("http client: per-client TLS (CA bundle, SHA-256 pin)", function () {
  this.timeout(20000);
  let server: https.Server;
  let url: string;
  let cert: string;
  let otherCert: string;
  let requests = 0;
  let source = "";
  const clients: HttpClient[] = [];

  before(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mlc-tls-"));
    const made = makeCert(dir, "server");
    const other = made && makeCert(dir, "other");
    fs.rmSync(dir, { recursive: true, force: true });
    const pair = made ?? { key: fs.readFileSync(path.join(FIXTURES, "server-key.pem"), "utf8"), cert: fs.readFileSync(path.join(FIXTURES, "server-cert.pem"), "utf8") };
    source = made ? "openssl" : "fixtures";
    cert = pair.cert;
    otherCert = other?.cert ?? fs.readFileSync(path.join(FIXTURES, "other-cert.pem"), "utf8");
    server = https.createServer({ key: pair.key, cert: pair.cert }, (_req, res) => {
      requests++;
      res.writeHead(200, { "Content-Type": "text/plain" }).end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/ping`;
  });
  after(async () => {
    for (const c of clients) await c.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    requests = 0;
  });

  function client(tls?: HttpTlsOptions): HttpClient {
    const c = new HttpClient({ tls, retry: { baseDelayMs: 1, maxDelayMs: 2 } });
    clients.push(c);
    return c;
  }

  it("accepts the self-signed server with its certificate as CA", async () => {
    assert.ok(source === "openssl" || source === "fixtures");
    const res = await client({ ca: cert }).request({ method: "GET", url });
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok");
  });

  it("refuses it without the CA, at once and without retrying; refuses it when another certificate is the CA", async () => {
    let retries = 0;
    const c = new HttpClient({ onRetry: () => retries++ });
    clients.push(c);
    await assert.rejects(c.request({ method: "GET", url }), (e: unknown) => e instanceof MlcError && e.code === "tls_refused" && !e.retryable);
    await assert.rejects(client({ ca: otherCert }).request({ method: "GET", url }), (e: unknown) => e instanceof MlcError && e.code === "tls_refused");
    assert.equal(retries, 0);
    assert.equal(requests, 0);
  });

  it("checks a pin in addition to the CA: the right pin passes, a wrong one is refused, a pin alone does not replace the CA", async () => {
    const ok = await client({ ca: cert, pinSha256: pinOf(cert) }).request({ method: "GET", url });
    assert.equal(ok.status, 200);
    await assert.rejects(client({ ca: cert, pinSha256: pinOf(otherCert) }).request({ method: "GET", url }), (e: unknown) => e instanceof MlcError && e.code === "tls_refused" && /ERR_TLS_PIN_MISMATCH/.test(e.message));
    await assert.rejects(client({ pinSha256: pinOf(cert) }).request({ method: "GET", url }), (e: unknown) => e instanceof MlcError && e.code === "tls_refused");
    assert.equal(requests, 1);
  });

  it("refuses malformed settings when the client is made", () => {
    assert.throws(() => new HttpClient({ tls: { pinSha256: "abc" } }), ValidationError);
    assert.throws(() => new HttpClient({ tls: { ca: "not a certificate" } }), ValidationError);
  });

  it("the CA stays with its client: the process-wide fetch still refuses the server", async () => {
    const c = client({ ca: cert });
    assert.equal((await c.request({ method: "GET", url })).status, 200);
    await assert.rejects(fetch(url));
    assert.equal(process.env.NODE_TLS_REJECT_UNAUTHORIZED, undefined);
  });
});
