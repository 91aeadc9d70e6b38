/**
 * "Test connection" buttons: one admin endpoint per config type, `POST <httpAdminRoot>/mlc/<type>/test`,
 * guarded by the type's write permission. The editor posts the form's current values; password
 * credentials the user did not retype arrive as "__PWRD__" and are taken from the deployed node.
 * The answer is `{ ok, message, code? }` with HTTP 200 either way; no secret is ever echoed.
 */
import { errorDetails } from "../lib/errors";
import type { RedAPI } from "./types";

export interface TestRequest {
  id?: string;
  config: Record<string, unknown>;
  credentials: Record<string, string | undefined>;
}

export interface TestResult {
  ok: boolean;
  message: string;
  code?: string;
}

const PLACEHOLDER = "__PWRD__";

async function readJson(req: unknown): Promise<Record<string, unknown>> {
  const r = req as { body?: unknown } & AsyncIterable<Buffer>;
  if (r.body && typeof r.body === "object") return r.body as Record<string, unknown>;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of r) {
    size += c.length;
    if (size > 64 * 1024) throw new Error("request too large");
    chunks.push(c);
  }
  return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>) : {};
}

/** Register the test endpoint for a config type. `test` makes one harmless vendor call. */
export function registerTestEndpoint(RED: RedAPI, type: string, test: (req: TestRequest) => Promise<TestResult>): void {
  const perm = RED.auth?.needsPermission ? RED.auth.needsPermission(`${type}.write`) : (_q: unknown, _s: unknown, next: () => void) => next();
  RED.httpAdmin.post(`/mlc/${type}/test`, perm, (req: unknown, res: { status(n: number): { json(b: unknown): void } }) => {
    void (async () => {
      try {
        const body = await readJson(req);
        const id = typeof body.id === "string" ? body.id : undefined;
        const sent = (body.credentials ?? {}) as Record<string, string | undefined>;
        const stored = id ? (RED.nodes.getCredentials(id) ?? {}) : {};
        const credentials: Record<string, string | undefined> = { ...stored };
        for (const [k, v] of Object.entries(sent)) {
          if (v !== undefined && v !== "" && v !== PLACEHOLDER) credentials[k] = v;
        }
        const result = await test({ id, config: (body.config ?? {}) as Record<string, unknown>, credentials });
        res.status(200).json(result);
      } catch (err) {
        const d = errorDetails(err);
        res.status(200).json({ ok: false, message: d.message, code: d.code } satisfies TestResult);
      }
    })();
  });
}
