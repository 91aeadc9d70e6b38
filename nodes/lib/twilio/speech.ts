/**
 * IVR-friendly text for text-to-speech (`<Say>`): amounts, dates and reference numbers as a person would
 * read them, from the runtime's own locale data (ECMA-402 `Intl.NumberFormat`, `Intl.DateTimeFormat`,
 * `Intl.DisplayNames`) rather than hand-made tables wherever the data exists.
 *
 * - `speakAmount(1250.5, "USD", "en-US")` → "1,250 dollars and 50 cents"
 * - `speakDate("2025-04-09", "en-US")` → "Wednesday, April 9, 2025"
 * - `spellReference("INV-1042")` → "I N V, 1 0 4 2"
 *
 * Every function returns its input (as text) rather than throwing when it cannot make sense of it, so a
 * malformed ERP value never stops a call: the voice reads what the ERP holds.
 *
 * Twilio `<Say>`: https://www.twilio.com/docs/voice/twiml/say ; Amazon Polly voices read "1,250" as a number
 * and single capital letters as letter names (https://docs.aws.amazon.com/polly/latest/dg/supportedtags.html).
 */

/** English names of the major and minor units of common currencies (Intl has names for the major unit only). */
const EN_UNITS: Record<string, { major: [string, string]; minor?: [string, string] }> = {
  USD: { major: ["dollar", "dollars"], minor: ["cent", "cents"] },
  CAD: { major: ["Canadian dollar", "Canadian dollars"], minor: ["cent", "cents"] },
  AUD: { major: ["Australian dollar", "Australian dollars"], minor: ["cent", "cents"] },
  NZD: { major: ["New Zealand dollar", "New Zealand dollars"], minor: ["cent", "cents"] },
  SGD: { major: ["Singapore dollar", "Singapore dollars"], minor: ["cent", "cents"] },
  HKD: { major: ["Hong Kong dollar", "Hong Kong dollars"], minor: ["cent", "cents"] },
  EUR: { major: ["euro", "euros"], minor: ["cent", "cents"] },
  GBP: { major: ["pound", "pounds"], minor: ["penny", "pence"] },
  CHF: { major: ["Swiss franc", "Swiss francs"], minor: ["centime", "centimes"] },
  ZAR: { major: ["rand", "rand"], minor: ["cent", "cents"] },
  MXN: { major: ["peso", "pesos"], minor: ["centavo", "centavos"] },
  INR: { major: ["rupee", "rupees"], minor: ["paisa", "paise"] },
  JPY: { major: ["yen", "yen"] },
};

/** A locale Intl accepts: `locale` when valid, else "en-US". */
export function safeLocale(locale: string | undefined): string {
  if (!locale) return "en-US";
  try {
    return Intl.getCanonicalLocales(locale)[0] ?? "en-US";
  } catch {
    return "en-US";
  }
}

function isEnglish(locale: string): boolean {
  return /^en(-|$)/i.test(locale);
}

/** Parse an ERP amount: a number, or text such as "1250.50", "1,250.50" or "-12". NaN when it is none. */
function parseAmount(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value !== "string") return NaN;
  const text = value.trim().replace(/[\s,](?=\d{3}(\D|$))/g, "");
  return /^[-+]?(\d+\.?\d*|\.\d+)$/.test(text) ? Number(text) : NaN;
}

/** ISO 4217 code when `code` is three letters Intl accepts as a currency, else undefined. */
function currencyCode(code: unknown): string | undefined {
  if (typeof code !== "string" || !/^[A-Za-z]{3}$/.test(code.trim())) return undefined;
  const c = code.trim().toUpperCase();
  try {
    new Intl.NumberFormat("en-US", { style: "currency", currency: c });
    return c;
  } catch {
    return undefined;
  }
}

/**
 * Speak an amount of money.
 * - English locales and a currency with known unit names: "1,250 dollars and 50 cents", "1 pound and 1 penny",
 *   "12 dollars" (no minor part when it is zero), "minus 5 euros".
 * - Other currencies/locales: Intl's long form with the currency name ("1.250,50 Euro", "1,250.50 Swedish kronor").
 * - Unknown or missing currency: the formatted number followed by the code as given ("1,250.5 XTS").
 * - Not a number: the input as text.
 * @param amount number or numeric text (ERP values are often strings)
 * @param currency ISO 4217 code ("USD")
 * @param locale BCP 47 locale of the voice ("en-US"); an invalid one falls back to "en-US"
 */
export function speakAmount(amount: unknown, currency?: string, locale?: string): string {
  const loc = safeLocale(locale);
  const n = parseAmount(amount);
  if (!Number.isFinite(n)) return [amount, currency].filter((v) => v !== undefined && v !== null && v !== "").map(String).join(" ");
  const code = currencyCode(currency);
  if (!code) {
    const num = new Intl.NumberFormat(loc, { maximumFractionDigits: 6 }).format(n);
    return currency ? `${num} ${String(currency).trim()}` : num;
  }
  const units = EN_UNITS[code];
  if (isEnglish(loc) && units) {
    const digits = new Intl.NumberFormat(loc, { style: "currency", currency: code }).resolvedOptions().maximumFractionDigits ?? 2;
    const scale = 10 ** digits;
    const totalMinor = Math.round(Math.abs(n) * scale);
    const major = Math.floor(totalMinor / scale);
    const minor = totalMinor - major * scale;
    const int = new Intl.NumberFormat(loc, { maximumFractionDigits: 0 }).format(major);
    let text = `${int} ${major === 1 ? units.major[0] : units.major[1]}`;
    if (minor > 0 && units.minor) text += ` and ${minor} ${minor === 1 ? units.minor[0] : units.minor[1]}`;
    return n < 0 && totalMinor > 0 ? `minus ${text}` : text;
  }
  return new Intl.NumberFormat(loc, { style: "currency", currency: code, currencyDisplay: "name" }).format(n);
}

/**
 * Name of a currency in the locale's language ("USD", "en-US" → "US Dollar"), via Intl.DisplayNames; the code
 * itself when unknown.
 */
export function currencyName(currency: string, locale?: string): string {
  const code = currencyCode(currency);
  if (!code) return currency;
  try {
    return new Intl.DisplayNames([safeLocale(locale)], { type: "currency" }).of(code) ?? code;
  } catch {
    return code;
  }
}

const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})(?:T00:00(?::00(?:\.0+)?)?)?$/;

/**
 * Speak a date as the locale writes it in full ("Wednesday, April 9, 2025").
 * Date-only values ("2025-04-09", and ERP midnights without an offset such as "2025-04-09T00:00:00") are
 * calendar dates: formatted in UTC so no time zone moves them to the previous day. Other timestamps are
 * formatted in `timeZone` (default UTC).
 * @param value ISO 8601 text, a Date, or epoch milliseconds
 * @param locale BCP 47 locale ("en-US")
 * @param timeZone IANA zone for timestamps with a time ("America/New_York"); ignored for date-only values
 * @returns the spoken date, or the input as text when it is not a date
 */
export function speakDate(value: unknown, locale?: string, timeZone?: string): string {
  const loc = safeLocale(locale);
  let date: Date | undefined;
  let zone = timeZone || "UTC";
  if (value instanceof Date) date = value;
  else if (typeof value === "number" && Number.isFinite(value)) date = new Date(value);
  else if (typeof value === "string") {
    const text = value.trim();
    const m = DATE_ONLY.exec(text);
    if (m) {
      date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
      zone = "UTC";
      if (date.getUTCMonth() !== Number(m[2]) - 1) date = undefined; // "2025-02-30"
    } else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(text)) {
      date = new Date(text + "Z"); // no offset: read as UTC, not as this server's local time
    } else if (/^\d{4}-\d{2}-\d{2}T/.test(text)) {
      date = new Date(text);
    }
  }
  if (!date || Number.isNaN(date.getTime())) return value === undefined || value === null ? "" : String(value);
  try {
    return new Intl.DateTimeFormat(loc, { dateStyle: "full", timeZone: zone }).format(date);
  } catch {
    return new Intl.DateTimeFormat(loc, { dateStyle: "full", timeZone: "UTC" }).format(date);
  }
}

/**
 * Spell a reference number character by character so a voice does not read "INV" as a word or "1042" as
 * "one thousand forty-two": letters and digits are separated by spaces, groups (split at separators such as
 * "-", "/", "." and at letter↔digit changes) by ", " which makes the voice pause.
 * "INV-1042" → "I N V, 1 0 4 2"; "po 77/b" → "P O, 7 7, B".
 * @param ref any value; non-alphanumeric characters only separate groups
 */
export function spellReference(ref: unknown): string {
  const text = ref === undefined || ref === null ? "" : String(ref);
  const groups: string[] = [];
  let current: string[] = [];
  let kind: "letter" | "digit" | undefined;
  const flush = (): void => {
    if (current.length) groups.push(current.join(" "));
    current = [];
    kind = undefined;
  };
  for (const ch of text) {
    const k = /\p{Nd}/u.test(ch) ? "digit" : /\p{L}/u.test(ch) ? "letter" : undefined;
    if (!k) {
      flush();
      continue;
    }
    if (kind && k !== kind) flush();
    kind = k;
    current.push(ch.toLocaleUpperCase());
  }
  flush();
  return groups.join(", ");
}

/** Mustache's lambda contract: the raw section text and a function rendering it against the current view. */
export type MustacheLambda = (text: string, render: (template: string) => string) => string;

/**
 * The view for a spoken-message template: the msg plus the section helpers
 * `{{#amount}}{{payload.Amount}} {{payload.CurrencyID}}{{/amount}}` (number, then an optional ISO 4217 code;
 * "USD 12.5" works too), `{{#date}}{{payload.DueDate}}{{/date}}` and `{{#spell}}{{payload.ReferenceNbr}}{{/spell}}`.
 * The helpers shadow msg properties of the same name (msg.amount, msg.date, msg.spell) inside the template.
 * @param msg the message the template renders over
 * @param locale the voice's language ("en-US")
 * @param timeZone zone for timestamps given to `date` (default UTC)
 */
export function speechView(msg: Record<string, unknown>, locale?: string, timeZone?: string): Record<string, unknown> {
  const lambda = (fn: (text: string) => string): (() => MustacheLambda) => () => (text, render) => fn(render(text).trim());
  return {
    ...msg,
    amount: lambda((rendered) => {
      const parts = rendered.split(/\s+/).filter((p) => p !== "");
      if (parts.length === 2 && /^[A-Za-z]{3}$/.test(parts[0]) && !/^[A-Za-z]{3}$/.test(parts[1])) return speakAmount(parts[1], parts[0], locale);
      if (parts.length >= 2 && /^[A-Za-z]{3}$/.test(parts[parts.length - 1])) return speakAmount(parts.slice(0, -1).join(""), parts[parts.length - 1], locale);
      return speakAmount(parts.join(""), undefined, locale);
    }),
    date: lambda((rendered) => speakDate(rendered, locale, timeZone)),
    spell: lambda((rendered) => spellReference(rendered)),
  };
}
