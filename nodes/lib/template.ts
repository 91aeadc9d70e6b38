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
