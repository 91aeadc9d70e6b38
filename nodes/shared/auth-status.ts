/**
 * What a config node that signs in shows (the way core `mqtt-broker` pushes its connection state to its users): a
 * refused sign-in pauses signing in (lib/auth/renewal.ts AuthManager cooldown) and shows `errors.auth_cooldown` on the
 * config node and on every node using it, with one warning naming the vendor's reason; a later sign-in shows
 * `<type>.status.signedIn` on the config node and stops showing the pause to late users. Status texts are catalog keys.
 * Vendor: Node-RED "Node status" guide; core 10-mqtt.js (`register`/`deregister`, status pushed to users).
 */
import type { AuthState } from "../lib/auth/source";
import type { ConfigUsers } from "./config";
import { Status } from "./node";
import type { RedNode } from "./types";

/**
 * The `onAuthState` hook of a config node's client.
 * @param type the config node type, e.g. "mlc-intacct-config" (its catalog has `status.signedIn`)
 * @param refused warning text when the vendor gave no reason, e.g. "Intacct refused the sign-in"
 * @param blockedKey the status key of a pause whose cause needs another text (Exact: `reauthorize` →
 *   `mlc-exact-config.status.reauthorize`); undefined or a function returning undefined: `errors.auth_cooldown`
 */
export function showAuthState(node: RedNode, users: ConfigUsers, type: string, refused: string, blockedKey?: (err: AuthState["error"]) => string | undefined): (st: AuthState) => void {
  return (st) => {
    if (st.blocked) {
      const status = Status.error(blockedKey?.(st.error) ?? "errors.auth_cooldown");
      node.status(status);
      users.show(status);
      node.warn(st.error?.message ?? refused);
    } else {
      users.clear();
      node.status(Status.ok(`${type}.status.signedIn`));
    }
  };
}
