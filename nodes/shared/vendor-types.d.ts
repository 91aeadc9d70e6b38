/**
 * Declarations for two small jshttp modules that ship no types: `parseurl` (how Express reads a request
 * target) and `content-type` (RFC 9110 media-type parsing, as body-parser uses it).
 */
declare module "parseurl" {
  import type { IncomingMessage } from "node:http";
  interface ParsedUrl {
    pathname?: string | null;
    search?: string | null;
    query?: string | null;
  }
  function parseurl(req: Pick<IncomingMessage, "url">): ParsedUrl | undefined;
  export = parseurl;
}

declare module "content-type" {
  interface ParsedMediaType {
    type: string;
    parameters: Record<string, string>;
  }
  /** @throws TypeError when the header is missing or not a valid media type */
  export function parse(header: string): ParsedMediaType;
}
