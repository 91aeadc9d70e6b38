/** Node set "twilio": the Twilio account config and the nodes that send and track notifications. */
import type { RedAPI } from "./shared/types";
import { registerTwilioConfig } from "./twilio/config";
import { registerSms } from "./twilio/sms";
import { registerStatus } from "./twilio/status";

export = function (RED: RedAPI): void {
  registerTwilioConfig(RED);
  registerSms(RED);
  registerStatus(RED);
};
