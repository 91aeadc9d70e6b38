/**
 * The Sage Intacct, Exact Online and Business Central simulators as one Node-RED stack runs them (test/harness/stack.ts
 * `erps` option): started on 127.0.0.1 port 0, with the environment variables their example flows read (README
 * "Sage Intacct", "Exact Online", "Business Central") and the credentials a user types into the config nodes
 * (`${VAR}` references; Exact's refresh token pasted, as after an authorisation). Used by `npm run demo` and the fuzz
 * test, so both drive the shipped examples exactly as the family e2e tests do.
 */
import { ExactSim } from "../sims/exact";
import { BcSim } from "../sims/bc";
import { IntacctSim } from "../sims/intacct";

/** ERP simulators a stack can start besides Acumatica and SAP Business One (which every stack has). */
export type ErpSimName = "intacct" | "exact" | "bc";

/** The started simulators (only those asked for). */
export interface ErpSims {
  intacct?: IntacctSim;
  exact?: ExactSim;
  bc?: BcSim;
}

/** Where the Exact example's callback says Node-RED is: the sim app's redirect-URI domain (the sim delivers it locally). */
export const EXACT_PUBLIC_URL = "https://nodered.example.com";
/** The Intacct example's approver (APPROVER_PHONE) and the amount above which it calls instead of texting (CALL_THRESHOLD). */
export const INTACCT_APPROVER = "+14155550123";
export const INTACCT_CALL_THRESHOLD = "10000";
export const INTACCT_APPROVER_USER = "JSMITH";

/**
 * Start the simulators named in `names`.
 * @param nodeRedPort the port Node-RED will listen on (Exact delivers its "public" https callbacks there)
 * @returns the simulators and the environment variables pointing the examples at them
 */
export async function startErpSims(names: readonly ErpSimName[], nodeRedPort: number): Promise<{ sims: ErpSims; env: Record<string, string> }> {
  const sims: ErpSims = {};
  let env: Record<string, string> = {};
  if (names.includes("intacct")) {
    const s = (sims.intacct = new IntacctSim());
    await s.start();
    env = {
      ...env,
      INTACCT_URL: s.endpoint,
      INTACCT_COMPANY_ID: s.companyId,
      INTACCT_TIMEZONE: s.timeZone,
      INTACCT_SENDER_ID: s.senderId,
      INTACCT_SENDER_PASSWORD: s.senderPassword,
      INTACCT_USER_ID: s.userId,
      INTACCT_USER_PASSWORD: s.userPassword,
      APPROVER_PHONE: INTACCT_APPROVER,
      // the Intacct user the example's routing table maps to APPROVER_PHONE (the vendor's bill approver)
      APPROVER_USER: INTACCT_APPROVER_USER,
      CALL_THRESHOLD: INTACCT_CALL_THRESHOLD,
    };
  }
  if (names.includes("exact")) {
    const s = (sims.exact = new ExactSim());
    await s.start();
    s.callbackTarget = `http://127.0.0.1:${nodeRedPort}`;
    env = {
      ...env,
      EXACT_BASE_URL: s.url,
      EXACT_DIVISION: String(s.division),
      EXACT_REDIRECT_URI: s.redirectUri,
      EXACT_PUBLIC_URL,
      EXACT_CLIENT_ID: s.clientId,
      EXACT_CLIENT_SECRET: s.clientSecret,
      EXACT_WEBHOOK_SECRET: s.webhookSecret,
    };
  }
  if (names.includes("bc")) {
    const s = (sims.bc = new BcSim());
    await s.start();
    env = { ...env, ...s.env() };
  }
  return { sims, env };
}

/** Stop whatever {@link startErpSims} started. */
export async function stopErpSims(sims: ErpSims): Promise<void> {
  await sims.intacct?.stop();
  await sims.exact?.stop();
  await sims.bc?.stop();
}

/**
 * Credentials of the Intacct and Exact nodes, as a user fills them: `${VAR}` references, and for the Exact connection
 * a refresh token pasted into the dialog (`refreshToken`, from {@link ExactSim.grant}; never a reference, since
 * the node rotates and saves it). Keyed by node type.
 */
export function erpCredentialRefs(exactRefreshToken?: string): Record<string, Record<string, string>> {
  return {
    "mlc-intacct-config": { senderId: "${INTACCT_SENDER_ID}", senderPassword: "${INTACCT_SENDER_PASSWORD}", userId: "${INTACCT_USER_ID}", userPassword: "${INTACCT_USER_PASSWORD}" },
    "mlc-exact-trigger": { webhookSecret: "${EXACT_WEBHOOK_SECRET}" },
    ...(exactRefreshToken ? { "mlc-exact-config": { clientId: "${EXACT_CLIENT_ID}", clientSecret: "${EXACT_CLIENT_SECRET}", refreshToken: exactRefreshToken } } : {}),
  };
}
