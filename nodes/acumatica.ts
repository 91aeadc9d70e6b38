/** Node set "acumatica": connection config, event trigger (push/poll) and fetch/update node. */
import type { RedAPI } from "./shared/types";
import { registerAcumaticaConfig } from "./acumatica/config";
import { registerAcumaticaFetch } from "./acumatica/fetch";
import { registerAcumaticaTrigger } from "./acumatica/trigger";

export = function (RED: RedAPI): void {
  registerAcumaticaConfig(RED);
  registerAcumaticaTrigger(RED);
  registerAcumaticaFetch(RED);
};
