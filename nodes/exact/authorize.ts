/** Editor authorisation of an Exact Online connection through the Node-RED admin server (see {@link registerAuthorize}). */
import { randomId } from "../lib/ids";
import { configApi } from "../shared/config";
import { readRawBody } from "../shared/dispatcher";
import type { RedAPI } from "../shared/types";
import type { ExactConfigApi } from "./config";

/** Pending editor authorisations: state → config node id (10 min). */
const pending = new Map<string, { id: string; at: number }>();

/**
 * The editor's "Authorise" button (authorization-code grant, reference exact-online.md §2.1):
 * `POST <httpAdminRoot>/mlc/<type>/authorize {id}` (write permission) answers `{ ok, url }`, Exact's authorize page for
 * the deployed config node with a single-use `state` (10 min); Exact redirects the browser to
 * `GET <httpAdminRoot>/mlc/<type>/oauth?code&state`, which exchanges the code through that node's client (the tokens
 * are saved before use) and answers a short text page; an unknown, used or expired state gets 400.
 */
export function registerAuthorize(RED: RedAPI, type: string): void {
  const perm = RED.auth?.needsPermission ? RED.auth.needsPermission(`${type}.write`) : (_q: unknown, _s: unknown, next: () => void) => next();
  type Res = { status(n: number): { json(b: unknown): void; send(b: string): void } };
  RED.httpAdmin.post(`/mlc/${type}/authorize`, perm, (req: { body?: unknown }, res: Res) => {
    void (async () => {
      try {
        // the admin JSON parser's result, or the raw body when the package's /mlc capture claimed it (same roots)
        const body = (req.body && typeof req.body === "object" ? req.body : JSON.parse((await readRawBody(req as never, 4096)).toString("utf8") || "{}")) as { id?: unknown };
        const id = typeof body.id === "string" ? body.id : "";
        const api = configApi<ExactConfigApi>(RED, id, type, "deployed Exact Online connection (deploy first, then authorise)");
        const state = randomId("s");
        for (const [k, v] of pending) if (Date.now() - v.at > 600_000) pending.delete(k);
        pending.set(state, { id, at: Date.now() });
        res.status(200).json({ ok: true, url: api.authorizeUrl(state) });
      } catch (err) {
        res.status(200).json({ ok: false, message: err instanceof SyntaxError ? "request body is not JSON" : (err as Error).message });
      }
    })();
  });
  // Exact's redirect: no admin token travels with a browser redirect, so the single-use state is the guard
  RED.httpAdmin.get(`/mlc/${type}/oauth`, (req: { query?: Record<string, unknown> }, res: Res) => {
    const state = String(req.query?.state ?? "");
    const p = pending.get(state);
    pending.delete(state);
    if (!p || Date.now() - p.at > 600_000 || typeof req.query?.code !== "string") return void res.status(400).send("Unknown or expired authorisation");
    const code = req.query.code;
    Promise.resolve()
      .then(() => configApi<ExactConfigApi>(RED, p.id, type, "Exact Online connection").exchange(code))
      .then(
        () => res.status(200).send("Exact Online is authorised. You can close this window."),
        () => res.status(400).send("Exact refused the authorisation code"),
      );
  });
}

