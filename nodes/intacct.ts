/**
 * Node set "intacct": the Sage Intacct connection (XML gateway, API session), the trigger (`mlc-intacct-trigger`,
 * polling on WHENMODIFIED through the shared trigger skeleton) and the fetch node.
 */
import type { RedAPI } from "./shared/types";
import { registerIntacctConfig } from "./intacct/config";
import { registerIntacctFetch } from "./intacct/fetch";
import { registerIntacctTrigger } from "./intacct/trigger";

export = function (RED: RedAPI): void {
  registerIntacctConfig(RED);
  registerIntacctTrigger(RED);
  registerIntacctFetch(RED);
};
