/**
 * The Service Layer session on the kit's cookie session (nodes/lib/auth/session.ts): `POST /b1s/vN/Login` with
 * `{"CompanyDB","UserName","Password"}` → `B1SESSION` and `ROUTEID` cookies, `POST /b1s/vN/Logout` → 204
 * (reference sap-business-one.md §2, SLGUIDE §3.1).
 *
 * What differs from a generic cookie session (reference "Traps"):
 * - `B1SESSION`'s Set-Cookie has no Path and a trailing `;`. The kit's jar (undici's parser) reads it, but path rules
 *   would scope it to the Login URL's directory; so every request of the session sends the cookies the Login answer
 *   set, by name, whatever its path ({@link SapB1SessionSource.headers}): both cookies, exactly as set.
 * - A Login answer without `B1SESSION` is refused (ErpError `unexpected_response`), never used half.
 * - `SessionTimeout` (minutes) is kept for diagnostics; renewal is on HTTP 401 only (see answers.ts `isSessionGone`),
 *   never on a timer, so no second Login is sent while the session is alive.
 */
import { CookieSessionOptions, CookieSessionSource } from "../auth/session";
import { ErpError } from "../errors";
import { HttpResponse } from "../http";
import { failError } from "./answers";

/** The session cookie name (a credential: never logged, never on `msg`). */
export const SESSION_COOKIE = "B1SESSION";
/** The load-balancer stickiness cookie name. */
export const ROUTE_COOKIE = "ROUTEID";

/** A cookie session whose cookies go by name to every request of the session (see module doc). */
export class SapB1SessionSource extends CookieSessionSource {
  private readonly loginUrl: string;
  /** `SessionTimeout` of the last Login answer, minutes (undefined before a Login or when not sent). */
  sessionTimeoutMin: number | undefined;
  /** `Version` of the last Login answer (e.g. "1000250"). */
  serverVersion: string | undefined;
  /** Logins answered 200 since the client started (for status and benchmarks). */
  logins: number;

  constructor(opts: CookieSessionOptions) {
    const self: { source?: SapB1SessionSource } = {};
    super({ ...opts, checkLogin: (res) => (self.source as SapB1SessionSource).checkAnswer(res, opts.checkLogin) });
    self.source = this;
    this.loginUrl = opts.loginUrl;
    this.logins = 0;
    this.sessionTimeoutMin = undefined;
    this.serverVersion = undefined;
  }

  /** `Cookie: B1SESSION=…; ROUTEID=…` for any URL of this server (the cookies of the Login answer). */
  override headers(): Record<string, string> {
    return super.headers(this.loginUrl);
  }

  /** Take cookies a later answer sets (e.g. a new ROUTEID), scoped like the Login's. */
  override absorb(_url: string, res: HttpResponse): void {
    super.absorb(this.loginUrl, res);
  }

  private checkAnswer(res: HttpResponse, vendorCheck: (res: HttpResponse) => void): void {
    vendorCheck(res);
    if (!this.jar.names().includes(SESSION_COOKIE)) {
      throw new ErpError("SAP Business One Login answered without a B1SESSION cookie", { code: "unexpected_response", status: res.status });
    }
    this.logins++;
    try {
      const body = JSON.parse(res.body) as { SessionTimeout?: unknown; Version?: unknown };
      this.sessionTimeoutMin = typeof body.SessionTimeout === "number" ? body.SessionTimeout : undefined;
      this.serverVersion = typeof body.Version === "string" ? body.Version : undefined;
    } catch {
      this.sessionTimeoutMin = undefined;
    }
  }
}

/** Login answer check: 200 (SLGUIDE §3.1); anything else → the mapped error (401 → AuthError `login_failed`). */
export function checkLoginAnswer(res: HttpResponse): void {
  if (res.status === 200) return;
  throw failError(res, { op: "Login" });
}
