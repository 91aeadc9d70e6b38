/**
 * The event envelope every trigger emits and every downstream node reads, whatever the ERP
 * (see the project design card). Kept in one place so all five ERP families share it.
 */

/** ERP families of the package; the first part of `msg.topic`. */
export type ErpSystem = "acumatica" | "intacct" | "exact" | "bc" | "sapb1";

/** Event actions a trigger can report. */
export type ErpAction = "created" | "updated" | "deleted";

/** `msg.erp`: where an event came from, and its stable `jobId`. */
export interface ErpMeta {
  system: ErpSystem;
  tenant: string;
  /** Vendor entity name ("Bill", "Payment", or a Generic Inquiry name for Acumatica push). */
  entity: string;
  /** Record key in the vendor's terms ("Bill/000123"). */
  id: string;
  /** Human document number when there is one ("000123"). */
  number?: string;
  action: ErpAction;
  /** Last modification time of the record, ISO 8601, when known. */
  modifiedAt?: string;
  /** Push/webhook delivery id (Acumatica notification `Id`), when the event came by push. */
  deliveryId?: string;
  /** Stable id of "this event on this record" (see lib/ids.ts deriveJobId). */
  jobId: string;
  /** True when the event is replayed from the push journal after a restart (lib/journal.ts). */
  replay?: boolean;
}

/** Twilio channels. */
export type TwilioChannel = "sms" | "mms" | "whatsapp" | "voice" | "email" | "verify";

/** `msg.twilio`: what a Twilio node did. */
export interface TwilioMeta {
  sid: string;
  status: string;
  /** Recipient in E.164 (or channel address). */
  to: string;
  channel: TwilioChannel;
  errorCode?: number;
  jobId: string;
}

/** The message shape a trigger emits. */
export interface ErpEventMsg {
  topic: string;
  payload: Record<string, unknown>;
  erp: ErpMeta;
  _msgid?: string;
  [key: string]: unknown;
}

/** `"<erp>/<entity>/<action>"` */
export function eventTopic(meta: Pick<ErpMeta, "system" | "entity" | "action">): string {
  return `${meta.system}/${meta.entity}/${meta.action}`;
}
