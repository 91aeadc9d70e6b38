/** Node set "twilio": the Twilio account config and the nodes that send and track notifications. */
import type { RedAPI } from "./shared/types";
import { registerTwilioConfig } from "./twilio/config";
import { registerSms } from "./twilio/sms";
import { registerStatus } from "./twilio/status";
import { registerEmail } from "./twilio/email";
import { registerCall } from "./twilio/call";
import { registerVerify } from "./twilio/verify";

export = function (RED: RedAPI): void {
  registerTwilioConfig(RED);
  registerSms(RED);
  registerStatus(RED);
  registerEmail(RED);
  registerCall(RED);
  registerVerify(RED);
};
