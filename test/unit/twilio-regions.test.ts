import assert from "node:assert/strict";
import { TwilioClient } from "../../nodes/lib/twilio/client";
import { buildMailService, buildTwilioClient } from "../../nodes/lib/twilio/account";

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

describe("Twilio API host override", () => {
  /** The URLs the client's transport sends to (nothing leaves the process). */
  function capture(client: TwilioClient): string[] {
    const urls: string[] = [];
    (client.http as { request: unknown }).request = async (req: { url: string }) => {
      urls.push(req.url);
      return { status: 201, headers: {}, body: JSON.stringify({ sid: "VE" + "2".repeat(32), status: "pending", to: "+14155550100", channel: "sms" }) };
    };
    return urls;
  }
  const verifyStart = (c: TwilioClient) => c.rest.verify.v2.services("VA" + "3".repeat(32)).verifications.create({ to: "+14155550100", channel: "sms" });
  const messageCreate = (c: TwilioClient) => c.rest.messages.create({ to: "+14155550100", from: "+14155550101", body: "x" });

  it("a Twilio host (the README's real value https://api.twilio.com) keeps each product's host: Verify still calls verify.twilio.com", async () => {
    const client = new TwilioClient({ credentials, apiHost: "https://api.twilio.com" });
    const urls = capture(client);
    await verifyStart(client);
    await messageCreate(client);
    assert.deepEqual(urls.map((u) => new URL(u).host), ["verify.twilio.com", "api.twilio.com"]);
    await client.close();
  });

  it("any other host (a simulator, an egress proxy) replaces the host of every product", async () => {
    const client = new TwilioClient({ credentials, apiHost: "http://127.0.0.1:4010" });
    const urls = capture(client);
    await verifyStart(client);
    await messageCreate(client);
    assert.deepEqual(urls.map((u) => new URL(u).host), ["127.0.0.1:4010", "127.0.0.1:4010"]);
    await client.close();
  });

  it("an unset ${TWILIO_API_URL} (or ${SENDGRID_API_URL}) in the config node means Twilio's own hosts, not a missing variable", async () => {
    const client = buildTwilioClient({ apiHost: "${TWILIO_API_URL}", sendgridApiHost: "${SENDGRID_API_URL}" }, credentials);
    const urls = capture(client);
    await verifyStart(client);
    assert.deepEqual(urls.map((u) => new URL(u).host), ["verify.twilio.com"]);
    await client.close();
    assert.doesNotThrow(() => buildMailService({ sendgridApiHost: "${SENDGRID_API_URL}" }, { sendgridApiKey: "SG." + "k".repeat(20) + "." + "s".repeat(20) }));
    assert.throws(() => buildTwilioClient({ apiHost: "${TWILIO_API_URL}" }, { accountSid: "${TWILIO_SID}" }), /TWILIO_SID is not set/);
  });
});
