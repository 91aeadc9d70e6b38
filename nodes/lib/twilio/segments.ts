/**
 * SMS segment counting for per-sender pacing. Twilio's sender throughput (US/CA long code about 1, toll-free 3, short
 * code 100 per second) is in message SEGMENTS per second (https://support.twilio.com/hc/en-us/articles/115002943027),
 * so a long body costs its sender more than one unit of budget. Counted with Twilio's own calculator
 * (`sms-segments-calculator`, TwilioDevEd/message-segment-calculator): GSM-7 160 characters in one segment and 153 per
 * segment when concatenated (extension characters such as `€ [ ] { }` count two), UCS-2 70 code units in one segment
 * and 67 per segment above (https://www.twilio.com/docs/glossary/what-sms-character-limit).
 */
import { SegmentedMessage } from "sms-segments-calculator";

/**
 * Printable ASCII characters that GSM-7 encodes in ONE septet (its basic set): space to `Z` (with `@`, `$`, `#`), `_`,
 * `a` to `z`. Not: `[ \ ] ^ { | } ~` (extension characters, two septets) and the backquote (not GSM-7). A body made
 * only of these is GSM-7 with one septet per character and one grapheme per character (no combining marks, no CR LF),
 * so its segments follow from its length without the calculator (which splits graphemes: ~0.2 ms a message).
 */
const GSM7_BASIC_ASCII = /^[\x20-\x5A\x5F\x61-\x7A]*$/;

/**
 * Segments the sender of one Messages create delivers: the SMS segment count of `body` (1 for an empty body);
 * 1 for media (MMS is one message) and for WhatsApp senders (paced per message).
 * @param body the Body as sent (≤ 1600 characters), undefined for media or content templates
 * @param o.media media URLs are attached; o.from the sender (`whatsapp:+…` is not an SMS sender)
 * @returns an integer ≥ 1; never throws
 */
export function messageSegments(body: string | undefined, o: { media?: boolean; from?: string } = {}): number {
  if (!body || o.media || o.from?.startsWith("whatsapp:")) return 1;
  if (GSM7_BASIC_ASCII.test(body)) return body.length <= 160 ? 1 : Math.ceil(body.length / 153);
  try {
    return Math.max(1, new SegmentedMessage(body, "auto").segmentsCount);
  } catch {
    return 1;
  }
}
