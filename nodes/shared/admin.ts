/**
 * "Test connection" buttons: one admin endpoint per config type, `POST <httpAdminRoot>/mlc/<type>/test`,
 * guarded by the type's write permission. The editor posts the form's current values; password
 * credentials the user did not retype arrive as "__PWRD__" and are taken from the deployed node.
 * The answer is `{ ok, message, code? }` with HTTP 200 either way; no secret is ever echoed.
 */
import type { IncomingMessage } from "node:http";
import { errorDetails } from "../lib/errors";
import { readRawBody } from "./dispatcher";
import type { RedAPI, RedNode } from "./types";

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

const MAX_TEST_BODY_BYTES = 64 * 1024;

/**
 * The posted form as an object: the admin app's JSON parser's result, or (when httpAdminRoot and httpNodeRoot
 * coincide, so the package's capture claimed the body below /mlc) the raw body read once and parsed here.
 * @throws Error when the body is larger than 64 KB, unavailable, not JSON or not an object
 */
async function readJson(req: unknown): Promise<Record<string, unknown>> {
  const r = req as { body?: unknown };
  if (r.body && typeof r.body === "object") return r.body as Record<string, unknown>;
  const raw = await readRawBody(req as IncomingMessage, MAX_TEST_BODY_BYTES);
  if (!raw.length) return {};
  const parsed: unknown = JSON.parse(raw.toString("utf8"));
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("request body is not a JSON object");
  return parsed as Record<string, unknown>;
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

/** What a deployed config node offers Test connection: its client, and whether a form names the same connection. */
export interface LiveConnection<C> {
  client(): C;
  sameConnection(config: Record<string, unknown>, credentials: Record<string, string | undefined>): boolean;
}

/**
 * Run `test` on the deployed config node's own client when the form names that node's connection unchanged (so the
 * test opens no second ERP session, which vendors count against their limits), else on a client built from the form
 * and closed afterwards. Errors of `build` or `test` propagate (registerTestEndpoint answers them as `ok: false`).
 */
export async function testOnConnection<C extends { close(): Promise<void> }>(RED: RedAPI, type: string, req: TestRequest, build: () => C, test: (client: C) => Promise<TestResult>): Promise<TestResult> {
  const deployed = req.id ? (RED.nodes.getNode(req.id) as (RedNode & { mlc?: LiveConnection<C> }) | null) : null;
  const live = deployed?.type === type && deployed.mlc?.sameConnection(req.config, req.credentials) ? deployed.mlc : undefined;
  const client = live ? live.client() : build();
  try {
    return await test(client);
  } finally {
    if (!live) await client.close();
  }
}
