/**
 * Node set "intacct": the Sage Intacct connection (XML gateway, API session) and the fetch node. The trigger
 * (`mlc-intacct-trigger`, polling on WHENMODIFIED) joins when the shared trigger skeleton (nodes/shared/trigger.ts)
 * lands; its library pieces are in nodes/lib/intacct/events.ts.
 */
import type { RedAPI } from "./shared/types";
import { registerIntacctConfig } from "./intacct/config";
import { registerIntacctFetch } from "./intacct/fetch";

export = function (RED: RedAPI): void {
  registerIntacctConfig(RED);
  registerIntacctFetch(RED);
};
