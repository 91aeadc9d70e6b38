/**
 * OData `$filter` text built or templated by the package, safe against quotes in the values.
 *
 * OData (v3/v4 URL conventions, §5.1.1.6.1 "string literals"; Acumatica: MYOB-IDG
 * `IntegrationDev_RESTExample_Parameter_filter.html`) writes a string literal between single quotes and a quote
 * inside it doubled: `VendorID eq 'O''BRIEN'`. A value pasted raw into a filter either breaks it (`O'BRIEN`) or
 * widens it (`X' or VendorID ne '`), so every value goes through {@link odataStringLiteral} or
 * {@link renderODataFilter}.
 */
import Mustache from "mustache";
import { ValidationError } from "./errors";

/**
 * The text of a value as an OData string literal: `'` + text with every `'` doubled + `'`.
 * e.g. `odataStringLiteral("O'BRIEN")` → `'O''BRIEN'`. The result is unencoded (the client URL-encodes `$filter`).
 * @param value any value; converted with String()
 */
export function odataStringLiteral(value: unknown): string {
  return `'${escapeODataString(value)}'`;
}

/** The inside of an OData string literal: the text with every `'` doubled (no surrounding quotes). */
export function escapeODataString(value: unknown): string {
  return String(value).replace(/'/g, "''");
}

const OPEN = "\uE000";
const CLOSE = "\uE001";
/** Values allowed outside quotes: OData numbers and the keywords true / false / null. */
const BARE_SCALAR = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$/;

/**
 * Render a Mustache `$filter` template over `view` (usually the msg) with OData-safe values:
 * - `{{path}}` inside a quoted literal of the template (`VendorID eq '{{payload.Vendor}}'`) is escaped as literal
 *   text: each `'` doubled, so `O'BRIEN` → `'O''BRIEN'` and `X' or VendorID ne '` stays one literal;
 * - `{{path}}` outside quotes must be a number or `true`/`false`/`null` (`Amount gt {{payload.min}}`); anything else
 *   is refused (put it inside quotes);
 * - `{{{path}}}` (and `{{& path}}`) insert the value unchanged: only for filter text the flow itself builds.
 * Quotes of the template are read the OData way (`''` inside a literal is an escaped quote).
 * @returns the filter text, unencoded
 * @throws ValidationError code "bad_template" when the template does not parse; code "bad_filter" when a value outside
 *   quotes is not a number/true/false/null, or the template contains the private-use characters U+E000/U+E001
 */
export function renderODataFilter(template: string, view: unknown): string {
  if (template.includes(OPEN) || template.includes(CLOSE)) throw new ValidationError("Filter template contains reserved characters U+E000/U+E001", { code: "bad_filter" });
  let marked: string;
  try {
    marked = Mustache.render(template, view, {}, { escape: (s: unknown) => `${OPEN}${String(s).replace(/[\uE000\uE001]/g, "")}${CLOSE}` });
  } catch (err) {
    throw new ValidationError(`Template error: ${(err as Error).message}`, { code: "bad_template" });
  }
  let out = "";
  let inQuote = false;
  for (let i = 0; i < marked.length; i++) {
    const ch = marked[i];
    if (ch === OPEN) {
      const end = marked.indexOf(CLOSE, i + 1);
      const value = marked.slice(i + 1, end);
      i = end;
      if (inQuote) out += escapeODataString(value);
      else if (BARE_SCALAR.test(value.trim())) out += value.trim();
      else {
        throw new ValidationError(`Filter value ${JSON.stringify(value.length > 40 ? `${value.slice(0, 39)}…` : value)} is outside quotes and is not a number, true, false or null; write it inside quotes, e.g. Field eq '{{…}}'`, {
          code: "bad_filter",
        });
      }
      continue;
    }
    if (ch === "'") {
      if (inQuote && marked[i + 1] === "'") {
        out += "''";
        i++;
        continue;
      }
      inQuote = !inQuote;
    }
    out += ch;
  }
  return out;
}
