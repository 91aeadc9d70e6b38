import assert from "node:assert/strict";
import { TwilioClient } from "../../nodes/lib/twilio/client";

const credentials = { accountSid: "AC" + "1".repeat(32), authToken: "t" };

interface SdkHosts {
  edge?: string;
  region?: string;
  getHostname(hostname: string, edge?: string, region?: string): string;
}

describe("Twilio regions and edges", () => {
  it("US1 (default) uses the global hosts", () => {
    const sdk = new TwilioClient({ credentials }).rest as unknown as SdkHosts;
    assert.equal(sdk.getHostname("api.twilio.com", sdk.edge, sdk.region), "api.twilio.com");
    assert.equal(sdk.getHostname("verify.twilio.com", sdk.edge, sdk.region), "verify.twilio.com");
  });

  it("IE1 always goes through the Dublin edge, never the retired api.ie1.twilio.com form", () => {
    const sdk = new TwilioClient({ credentials, region: "ie1" }).rest as unknown as SdkHosts;
    assert.equal(sdk.getHostname("api.twilio.com", sdk.edge, sdk.region), "api.dublin.ie1.twilio.com");
    assert.equal(sdk.getHostname("verify.twilio.com", sdk.edge, sdk.region), "verify.dublin.ie1.twilio.com");
  });

  it("an explicit edge wins; a region without a known edge is refused", () => {
    const sdk = new TwilioClient({ credentials, region: "au1", edge: "sydney" }).rest as unknown as SdkHosts;
    assert.equal(sdk.getHostname("api.twilio.com", sdk.edge, sdk.region), "api.sydney.au1.twilio.com");
    assert.throws(() => new TwilioClient({ credentials, region: "br1" }), /needs an edge/);
  });
});
