/**
 * XML hygiene for the Sage Intacct XML gateway (reference sage-intacct.md §2 and §7), built on `fast-xml-parser`
 * (the design card's choice):
 * - outbound: {@link buildRequestXml} serialises a plain tree with `XMLBuilder`; every text value first goes through
 *   {@link xmlText}, which removes characters XML 1.0 forbids (U+0000–U+001F except TAB/LF/CR, U+FFFE, U+FFFF,
 *   unpaired surrogates: the official SDK's builder throws on them, the gateway cannot read them); no DOCTYPE.
 * - inbound: {@link parseXml} treats the body as untrusted: a size cap, any `<!DOCTYPE` or `<!ENTITY` refused before
 *   parsing (XXE and billion-laughs bodies get {@link XmlRefusedError}), no entity declarations are ever read, only
 *   the predefined and numeric character references are decoded.
 * Non-XML bodies (Cloudflare HTML error pages) are refused with `not_xml`, never thrown as parser internals.
 */
import { XMLBuilder, XMLParser, XMLValidator } from "fast-xml-parser";
import { ErpError } from "../errors";

/** Largest response body read, in characters (32 MiB: a 2000-row page of wide records stays well below). */
export const MAX_XML_CHARS = 32 * 1024 * 1024;

/** A body that is not acceptable XML: DOCTYPE/ENTITY (`xml_doctype`), too large (`xml_too_large`), not XML (`not_xml`). */
export class XmlRefusedError extends ErpError {
  constructor(message: string, code: "xml_doctype" | "xml_too_large" | "not_xml") {
    super(message, { code, retryable: false });
  }
}

// XML 1.0 §2.2 Char: TAB, LF, CR, U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF (surrogate pairs)
const ILLEGAL_XML_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `value` as text with every character XML 1.0 forbids removed (the builder escapes `& < > " '`). */
export function xmlText(value: unknown): string {
  const s = typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  return s.replace(ILLEGAL_XML_CHARS, "");
}

/** One element of a request tree: text, a list of repeated elements, or nested elements; `@_name` keys are attributes. */
export type XmlNode = string | number | boolean | XmlTree | XmlTree[] | string[];
/** Element name → content. Key order is element order. */
export interface XmlTree {
  [name: string]: XmlNode;
}

function clean(node: XmlNode): XmlNode {
  if (Array.isArray(node)) return (node as XmlNode[]).map(clean) as XmlTree[];
  if (typeof node === "object" && node !== null) {
    const out: XmlTree = {};
    for (const [k, v] of Object.entries(node)) out[k] = clean(v);
    return out;
  }
  return xmlText(node);
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  suppressEmptyNode: true,
  // "true" must stay transaction="true": the builder's default writes a bare attribute, which is not XML
  suppressBooleanAttributes: false,
  processEntities: true,
  format: false,
});

/**
 * `<?xml version="1.0" encoding="utf-8"?>` + the serialised `tree` (no DOCTYPE, control characters removed, text and
 * attributes escaped). Empty strings become empty elements `<x/>`.
 */
export function buildRequestXml(tree: XmlTree): string {
  return `<?xml version="1.0" encoding="utf-8"?>${builder.build(clean(tree)) as string}`;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: true,
  htmlEntities: true,
  trimValues: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

const DOCTYPE_RE = /<!\s*(DOCTYPE|ENTITY)/i;

/**
 * Parse an untrusted XML body into plain objects (attributes under `@_name`, element text as strings, repeated
 * elements as arrays, empty elements as "").
 * @param maxChars size cap in characters; default {@link MAX_XML_CHARS}
 * @throws XmlRefusedError `xml_doctype` for any DOCTYPE or ENTITY declaration, `xml_too_large` past the cap,
 *   `not_xml` for a body that is not well-formed XML (e.g. an HTML error page)
 */
export function parseXml(text: string, maxChars = MAX_XML_CHARS): Record<string, unknown> {
  if (text.length > maxChars) throw new XmlRefusedError(`XML answer larger than ${maxChars} characters`, "xml_too_large");
  if (DOCTYPE_RE.test(text)) throw new XmlRefusedError("XML with a DOCTYPE or ENTITY declaration refused (XXE / entity expansion)", "xml_doctype");
  const body = text.trim();
  if (!body.startsWith("<") || XMLValidator.validate(body) !== true) throw new XmlRefusedError("Answer is not well-formed XML", "not_xml");
  const out = parser.parse(body) as unknown;
  if (typeof out !== "object" || out === null) throw new XmlRefusedError("Answer is not well-formed XML", "not_xml");
  return out as Record<string, unknown>;
}

/** `v` as an array: undefined → [], one element → [it]. */
export function asArray<T>(v: T | T[] | undefined | null): T[] {
  if (v === undefined || v === null || v === "") return [];
  return Array.isArray(v) ? v : [v];
}

/** Text content of a parsed element ("" for empty or missing; the `#text` of an element with attributes). */
export function textOf(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v === "object" && v !== null && "#text" in v) return textOf((v as Record<string, unknown>)["#text"]);
  return "";
}
