/**
 * Exact Online webhooks (reference `exact-online.md` §8): the `HashCode` check and the notification's fields.
 *
 * Body: `{"Content":{…},"HashCode":"<64 upper-case hex>"}`, compact JSON. The hash is HMAC-SHA256 keyed with the
 * app's webhook secret (App Center, not the OAuth client secret) over the RAW bytes between the leading
 * `{"Content":` and the trailing `,"HashCode":"` — never a re-serialised object — as UPPER-case hex, compared in
 * constant time (picqer/exact-php-client `Webhook/Authenticatable.php`). An empty body is Exact's validation call:
 * answer 2xx without a check.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const BODY_RE = /^\{"Content":([\s\S]*),"HashCode":"([^"]*)"\}\s*$/;

/**
 * True when `raw` carries a valid HashCode for `secret` (lower-case hex, base64 or a hash over re-encoded JSON
 * are all refused). Never throws; false for anything malformed.
 * @param raw the request body exactly as received (Buffer or UTF-8 string)
 */
export function verifyExactHashCode(raw: Buffer | string, secret: string): boolean {
  if (!secret) return false;
  const text = Buffer.isBuffer(raw) ? raw.toString("utf8") : raw;
  const m = BODY_RE.exec(text);
  if (!m || !/^[0-9A-F]{64}$/.test(m[2])) return false;
  const want = Buffer.from(createHmac("sha256", secret).update(m[1], "utf8").digest("hex").toUpperCase(), "ascii");
  const got = Buffer.from(m[2], "ascii");
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Sign `content` (the raw Content JSON text) the way Exact does; for simulators and tests. */
export function exactHashCode(content: string, secret: string): string {
  return createHmac("sha256", secret).update(content, "utf8").digest("hex").toUpperCase();
}

/** A webhook notification's content (no record data: fetch `endpoint`). */
export interface ExactNotification {
  topic: string;
  clientId: string;
  division: number;
  /** Lower-case: `create`, `update`, `delete` (Exact's casing varies). */
  action: string;
  /** The changed record's GUID. */
  key: string;
  /** Absolute URL of the record on the regional host. */
  endpoint: string;
  /** As sent (no zone), e.g. `2025-03-14T09:26:53.59`. */
  eventCreatedOn: string;
  /** Dedupe key: `Topic|Division|Key|Action|EventCreatedOn` (reference §8.3). */
  deliveryId: string;
}

/**
 * The fields of a verified body. Returns undefined when a field is missing or of the wrong type (the caller answers
 * a fixed 400). Call only after {@link verifyExactHashCode}.
 */
export function parseExactNotification(raw: Buffer | string): ExactNotification | undefined {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.isBuffer(raw) ? raw.toString("utf8") : raw);
  } catch {
    return undefined;
  }
  const c = (body as { Content?: Record<string, unknown> } | null)?.Content;
  if (typeof c !== "object" || c === null) return undefined;
  const { Topic, ClientId, Division, Action, Key, ExactOnlineEndpoint, EventCreatedOn } = c as Record<string, unknown>;
  if (typeof Topic !== "string" || typeof Action !== "string" || typeof Key !== "string" || typeof EventCreatedOn !== "string") return undefined;
  if (typeof Division !== "number" || !Number.isInteger(Division) || typeof ExactOnlineEndpoint !== "string") return undefined;
  const action = Action.toLowerCase();
  return {
    topic: Topic,
    clientId: typeof ClientId === "string" ? ClientId : "",
    division: Division,
    action,
    key: Key.toLowerCase(),
    endpoint: ExactOnlineEndpoint,
    eventCreatedOn: EventCreatedOn,
    deliveryId: [Topic, Division, Key.toLowerCase(), action, EventCreatedOn].join("|"),
  };
}

/** What the receiver answers and, for a verified delivery, its notification. */
export type ExactWebhookVerdict =
  | { kind: "validation"; status: 200 }
  | { kind: "refused"; status: 401 | 400; reason: "bad_signature" | "malformed" | "no_secret" }
  | { kind: "notification"; status: 200; notification: ExactNotification };

/**
 * Decide the answer to one POST at the callback URL (reference §8.2–§8.4): an empty body is Exact's validation call
 * (2xx, no check); a body whose HashCode does not verify is refused with 401 before anything is parsed; a verified
 * body without the expected fields gets 400. Never throws. The caller answers 2xx only after journaling the
 * notification (acknowledged means durable) and fetches the record afterwards.
 * @param secret the app's webhook secret; empty → every non-empty body is refused (`no_secret`)
 */
export function judgeExactWebhook(raw: Buffer | string, secret: string): ExactWebhookVerdict {
  const text = Buffer.isBuffer(raw) ? raw.toString("utf8") : raw;
  if (text.trim() === "") return { kind: "validation", status: 200 };
  if (!secret) return { kind: "refused", status: 401, reason: "no_secret" };
  if (!verifyExactHashCode(text, secret)) return { kind: "refused", status: 401, reason: "bad_signature" };
  const notification = parseExactNotification(text);
  return notification ? { kind: "notification", status: 200, notification } : { kind: "refused", status: 400, reason: "malformed" };
}
