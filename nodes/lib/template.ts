/**
 * Message text from a Mustache template over the whole `msg` (https://mustache.github.io/mustache.5.html),
 * the same language as Node-RED's core template node. SMS and speech are plain text, so nothing is
 * HTML-escaped: `{{payload.Vendor}}` and `{{{payload.Vendor}}}` render the same.
 */
import Mustache from "mustache";
import { ValidationError } from "./errors";

/**
 * Render `template` with `view` (usually the msg).
 * @throws ValidationError code "bad_template" when the template does not parse
 */
export function renderTemplate(template: string, view: unknown): string {
  try {
    return Mustache.render(template, view, {}, { escape: (s: unknown) => String(s) });
  } catch (err) {
    throw new ValidationError(`Template error: ${(err as Error).message}`, { code: "bad_template" });
  }
}

/** True when the text holds Mustache tags and so needs rendering. */
export function isTemplate(text: string): boolean {
  return text.includes("{{");
}

/**
 * An optional node property that may be a template (a fetch node's `$select`, `$filter`, …): `undefined` when blank,
 * rendered with `render` over `view` when it holds tags, else the text trimmed.
 * @param render `renderTemplate`, or `renderODataFilter` (lib/odata.ts) for filters, whose values become OData literals
 * @throws what `render` throws (ValidationError "bad_template" / "bad_filter")
 */
export function renderOptional(template: string | undefined, view: unknown, render: (template: string, view: unknown) => string = renderTemplate): string | undefined {
  if (!template || template.trim() === "") return undefined;
  return isTemplate(template) ? render(template, view) : template.trim();
}
