/**
 * XML hygiene of the Intacct client (nodes/lib/intacct/xml.ts, reference sage-intacct.md §7): characters XML 1.0
 * forbids are removed before escaping, attributes keep their values, untrusted answers with a DOCTYPE or ENTITY,
 * HTML pages and oversized bodies are refused with a clear error.
 */
import assert from "node:assert/strict";
import { buildRequestXml, parseXml, xmlText } from "../../nodes/lib/intacct/xml";
import { readDocument } from "../../nodes/lib/intacct/answers";

describe("intacct: XML hygiene", () => {
  it("removes C0 controls (not TAB/LF/CR), U+FFFE/U+FFFF and lone surrogates; keeps paired surrogates", () => {
    assert.equal(xmlText("a\u0000b\u0001c\u0008d\u000be\u000cf\u001fg"), "abcdefg");
    assert.equal(xmlText("t\tl\nc\r"), "t\tl\nc\r");
    assert.equal(xmlText("x\uFFFEy\uFFFFz"), "xyz");
    assert.equal(xmlText("lone \uD800 high, lone \uDC00 low, pair \uD83D\uDE00"), "lone  high, lone  low, pair \uD83D\uDE00");
  });

  it("builds a declaration, escaped text and attributes, transaction=\"true\" written out, no DOCTYPE", () => {
    const xml = buildRequestXml({ request: { operation: { "@_transaction": "true", content: { function: [{ "@_controlid": 'a"&<', x: "1 < 2 & 3 > \u0002" }] } } } });
    assert.equal(xml, '<?xml version="1.0" encoding="utf-8"?><request><operation transaction="true"><content><function controlid="a&quot;&amp;&lt;"><x>1 &lt; 2 &amp; 3 &gt; </x></function></content></operation></request>');
    assert.deepEqual(parseXml(xml), { request: { operation: { "@_transaction": "true", content: { function: { "@_controlid": 'a"&<', x: "1 < 2 & 3 >" } } } } });
  });

  it("refuses DOCTYPE/ENTITY in any case or spacing, non-XML and oversized bodies", () => {
    for (const body of ['<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>', "<?xml version='1.0'?>\n<!doctype r SYSTEM 'http://x/'><r/>", '<r><! ENTITY x "y"></r>']) {
      assert.throws(() => parseXml(body), (e: unknown) => (e as { code?: string }).code === "xml_doctype");
    }
    assert.throws(() => parseXml("<html><body>Error 502</body>"), (e: unknown) => (e as { code?: string }).code === "not_xml");
    assert.throws(() => parseXml("Bad gateway"), (e: unknown) => (e as { code?: string }).code === "not_xml");
    assert.throws(() => parseXml("<r>" + "x".repeat(100) + "</r>", 50), (e: unknown) => (e as { code?: string }).code === "xml_too_large");
  });

  it("a 4xx with an XML body is read as an answer; a Cloudflare page is an HttpError", () => {
    const doc = readDocument({ status: 401, headers: {}, body: "<response><control><status>failure</status></control></response>", attempts: 1 }, "http://x/");
    assert.ok(doc.response);
    assert.throws(() => readDocument({ status: 200, headers: {}, body: "<!DOCTYPE html><html><body>Attention required</body></html>", attempts: 1 }, "http://x/"), (e: unknown) => (e as { code?: string }).code === "http_200");
    assert.throws(() => readDocument({ status: 502, headers: {}, body: "<!DOCTYPE html><html><div id='cf-error-details'></div></html>", attempts: 1 }, "http://x/"), (e: unknown) => (e as { status?: number }).status === 502 && (e as { retryable?: boolean }).retryable === true);
  });
});
