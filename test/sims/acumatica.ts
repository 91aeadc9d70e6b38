/**
 * Local simulator of the Acumatica contract-based REST API (`/entity/{EndpointName}/{EndpointVersion}/{Entity}`),
 * its OAuth 2.0 token endpoint (`/identity/connect/token`), the legacy cookie sign-in (`/entity/auth/login|logout`),
 * the licence limits (API users, requests per minute, concurrent requests) and push-notification delivery
 * (Acumatica → webhook receiver).
 *
 * Behaviour follows `/work/shared/reference/acumatica.md` (sources: MYOB Acumatica Integration Development Guide
 * "IntegrationDev_RESTExample_*", "OAuthOIDC_*", "IS__con_License_Restrictions_API_Users", "IS__con_Push_Notification_Format";
 * the official C# client `Acumatica/AcumaticaRESTAPIClientForCSharp` and its OpenAPI files `Default_24.200.001`).
 * Where the reference marks a fact "⚠️ verify", the simulator picks the documented guess and says so in a comment.
 *
 * Only Node built-ins are used (`node:crypto`; `node:http`/`node:https` through `./http-server`). The server binds to
 * 127.0.0.1 on an ephemeral port.
 */
import type http from "node:http";
import { randomBytes, randomUUID } from "node:crypto";
import { BodyTooLargeError, SimServer, readBody, sendRequest, splitUrl, writeJson } from "./http-server";

// ---------------------------------------------------------------------------------------------------------------------
// Public constants (messages the tests and the nodes under test can recognise)
// ---------------------------------------------------------------------------------------------------------------------

/** 401 `HttpError.message` for a missing/expired/unknown session or token (reference §6). */
export const ACU_MSG_NOT_LOGGED_IN = "The user is not logged in to the system.";
/** 404 `HttpError.message` when get-by-id/get-by-key/delete finds nothing. */
export const ACU_MSG_NO_ENTITY = "No entity satisfies the condition.";
/**
 * 404 `HttpError.message` template for an unknown endpoint name or version; `{name}`/`{version}` are the values from
 * the request URL. Simulator wording (the real text is not documented); use {@link endpointNotFoundMessage}.
 */
export const ACU_MSG_ENDPOINT_NOT_FOUND = "The endpoint {name}/{version} is not found.";
/** Matches any message produced from {@link ACU_MSG_ENDPOINT_NOT_FOUND}. */
export const ACU_RE_ENDPOINT_NOT_FOUND = /^The endpoint (.+)\/(.+) is not found\.$/;
/** Sign-in failure text (cookie login 500 body; reference §2.2: body contains "Invalid credentials"). */
export const ACU_MSG_INVALID_CREDENTIALS = "Invalid credentials. Please try again.";
/** Licence API-user limit text (reference §2.2/§2.3: body contains "API Login Limit"; sim answers HTTP 500). */
export const ACU_MSG_API_LOGIN_LIMIT = "API Login Limit";
/** 429 `HttpError.message` when the licence "Max API requests per minute" is exceeded (body shape ⚠️ unverified). */
export const ACU_MSG_RATE_LIMIT = "The number of requests per minute has exceeded the limit set by the license.";
/** 429 `HttpError.message` when the licence "Max concurrent API requests" is exceeded (body shape ⚠️ unverified). */
export const ACU_MSG_CONCURRENCY_LIMIT = "The number of concurrent requests has exceeded the limit set by the license.";
/** 500 `HttpError.message` used for injected 500 faults without a body. */
export const ACU_MSG_SERVER_ERROR = "An error has occurred.";

/** Builds the 404 message for an unknown endpoint, e.g. `The endpoint Default/21.200.001 is not found.` */
export function endpointNotFoundMessage(name: string, version: string): string {
  return ACU_MSG_ENDPOINT_NOT_FOUND.replace("{name}", name).replace("{version}", version);
}

/** Key fields per entity, in URL key order (reference §5). */
export const ACU_ENTITY_KEYS: Readonly<Record<string, readonly string[]>> = {
  Bill: ["Type", "ReferenceNbr"],
  Check: ["Type", "ReferenceNbr"],
  Payment: ["Type", "ReferenceNbr"],
  Invoice: ["Type", "ReferenceNbr"],
  Vendor: ["VendorID"],
  Customer: ["CustomerID"],
  Employee: ["EmployeeID"],
};

// ---------------------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------------------

/** Constructor options. All durations are named with their unit. */
export interface AcumaticaSimOptions {
  /** Tenant (company) login name; used by cookie login `tenant`, OAuth client ids `<GUID>@<Tenant>` and push `CompanyId`. Default "AcmeProd". */
  tenant?: string;
  /** Endpoint served under `/entity/{name}/{version}`. Default `{ name: "Default", versions: ["23.200.001", "24.200.001"] }`. */
  endpoint?: { name: string; versions: string[] };
  /** Users allowed to sign in. Default `[{ name: "api.user", password: "P@ss-w0rd" }]`. */
  users?: { name: string; password: string }[];
  /**
   * Connected applications (SM303010). `clientId` is the full `<GUID>@<Tenant>` string. `scopes` = scopes the app may
   * request (default `["api", "offline_access", "openid"]`; `api:concurrent_access` is not enabled by default, which
   * reproduces the third-party report that requesting it fails). Default: one client
   * `3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@<tenant>` / `s3cr3t`.
   */
  clients?: { clientId: string; clientSecret: string; scopes?: string[] }[];
  /** OAuth access-token lifetime in seconds (reference §2.1: ≈ 1 hour). Default 3600. */
  accessTokenTtlSec?: number;
  /** OAuth refresh-token lifetime in seconds from first issue (reference §2.1: 30 days). Default 2 592 000. */
  refreshTokenTtlSec?: number;
  /** Cookie session idle expiry in milliseconds (reference §2.2: ≈ 20 min, ⚠️ verify). Default 1 200 000. */
  sessionIdleMs?: number;
  /** Licence "Max Web Services API users": concurrent cookie sessions + OAuth grants. Default 2 (trial licence). */
  maxApiUsers?: number;
  /** Licence "Max API requests per minute" (sliding 60 s window over entity calls) → 429. Default unlimited. */
  requestsPerMinute?: number;
  /** Licence "Max concurrent API requests" (entity calls in flight) → 429. Default unlimited. */
  maxConcurrentRequests?: number;
  /** Artificial latency added to every entity call, in milliseconds. Default 0. */
  latencyMs?: number;
  /** Instance virtual directory, e.g. "/AcmeERP" (reference §1: `https://host/MyInstance/entity/...`). Default "" (none). */
  virtualDirectory?: string;
  /** UTC offset, in minutes, of the date-times the instance returns (reference §3: offset reflects the instance time zone). Default 0. */
  utcOffsetMinutes?: number;
  /** When true (default) cookie login must name the tenant (multi-tenant instance); a missing tenant fails like bad credentials. */
  requireTenant?: boolean;
  /** Clock in epoch milliseconds; inject a fake clock to test idle expiry, token expiry and the per-minute window. Default `Date.now`. */
  now?: () => number;
  /** Optional line logger (one line per request / push attempt). */
  log?: (line: string) => void;
}

/** A record as stored: plain values (`Amount: 1250`), nested contacts as plain objects, details as arrays of plain objects. Served wrapped as `{ value: … }`. */
export type AcuRecord = Record<string, unknown>;

/** One entry of {@link AcumaticaSim.requests}. `path` is the raw URL path (with virtual directory), `query` the raw query string without `?`. */
export interface AcuRequestLog {
  method: string;
  path: string;
  query: string;
  status: number;
  auth: "bearer" | "cookie" | "none";
}

/** Licence / sign-in counters (see {@link AcumaticaSim.stats}). */
export interface AcuStats {
  /** Successful sign-ins: cookie logins + OAuth password grants. */
  logins: number;
  /** Sign-outs that actually ended a session or grant (`/entity/auth/logout` with cookie or Bearer, token revocation). */
  logouts: number;
  /** Current API users counted by the licence: live cookie sessions + live OAuth grants. */
  activeSessions: number;
  /** Access tokens issued (password grants + refreshes). */
  tokensIssued: number;
  /** Successful refresh_token grants. */
  refreshes: number;
}

/** A fault to return instead of the normal response (see {@link AcumaticaSim.injectFault}). */
export interface AcuFault {
  status: 429 | 500 | 401;
  /** Never answer (the request stays open until {@link AcumaticaSim.stop}): a server or network that hangs. */
  hang?: boolean;
  /** Response body; default an `HttpError` matching the status. */
  body?: unknown;
  /** Only requests whose path (after the virtual directory) starts with this prefix consume the fault, e.g. "/entity/Default/24.200.001/Bill". Default: any request. */
  pathPrefix?: string;
}

/** Target of a push notification (Acumatica "Webhook" destination with the optional custom header, reference §7). */
export interface AcuPushTarget {
  url: string;
  headerName?: string;
  headerValue?: string;
}

/** A push notification to deliver (reference §7 body fields). */
export interface AcuPushNotification {
  /** Generic Inquiry name or built-in query class name → `Query`. */
  query: string;
  /** Rows new in the query result → `Inserted` (keys are GI column names). */
  inserted?: AcuRecord[];
  /** Rows that left the result → `Deleted` (an update = one Deleted + one Inserted). */
  deleted?: AcuRecord[];
  /** Data-transaction id → `Id`; default a random GUID string. */
  id?: string;
  /** → `TimeStamp`; default .NET ticks (100 ns since 0001-01-01) of the sim clock. Serialized as an exact JSON integer. */
  timeStamp?: bigint;
  /** → `AdditionalInfo`; default `{}`. */
  additionalInfo?: Record<string, unknown>;
}

/** Options of {@link AcumaticaSim.pushNotification}. */
export interface AcuPushOptions {
  /** Deliver the same notification (same Id and TimeStamp) this many times (at-least-once duplicates). Default 1. */
  times?: number;
  /** Delay between retry attempts, in milliseconds. Default 0. */
  retryDelayMs?: number;
  /** Attempts per delivery while the receiver answers non-2xx (reference §7: at most five). Default 5. */
  maxAttempts?: number;
  /** Per-attempt timeout in milliseconds (a timeout/connection error is recorded as status 0). Default 5000. */
  timeoutMs?: number;
}

/** One push attempt, recorded in {@link AcumaticaSim.pushDeliveries}. */
export interface AcuPushDelivery {
  /** Notification `Id`. */
  id: string;
  query: string;
  /** 1-based attempt within one delivery. */
  attempt: number;
  /** 1-based delivery number when `times` > 1. */
  delivery: number;
  /** HTTP status the receiver answered; 0 = connection error or timeout. */
  status: number;
  url: string;
}

// ---------------------------------------------------------------------------------------------------------------------
// Schema (extracted from Default_24.200.001 OpenAPI `components.schemas`; S string, D decimal, B bool, T date-time,
// I int/short, G guid, o:X linked object of schema X, a:X detail array of X — detail rows are not schema-checked)
// ---------------------------------------------------------------------------------------------------------------------

const SCHEMA_SRC: Record<string, string> = {
  Bill: "Amount:D,Applications:a:BillApplicationDetail,ApprovedForPayment:B,Balance:D,BranchID:S,CashAccount:S,CurrencyID:S,Date:T,Description:S,Details:a:BillDetail,DueDate:T,Hold:B,LocationID:S,PostPeriod:S,Project:S,ReferenceNbr:S,Status:S,TaxDetails:a:BillTaxDetail,TaxTotal:D,Terms:S,Type:S,Vendor:S,VendorRef:S,IsTaxValid:B,LastModifiedDateTime:T",
  Check: "ApplicationDate:T,CashAccount:S,CurrencyID:S,Description:S,Details:a:CheckDetail,History:a:CheckHistoryDetail,Hold:B,PaymentAmount:D,PaymentMethod:S,PaymentRef:S,ReferenceNbr:S,Status:S,Type:S,UnappliedBalance:D,Vendor:S,LastModifiedDateTime:T",
  Payment: "ApplicationDate:T,ApplicationHistory:a:PaymentApplicationHistoryDetail,AppliedToDocuments:D,Branch:S,CardAccountNbr:I,CashAccount:S,Charges:a:PaymentCharge,CreditCardProcessingInfo:a:CreditCardProcessingDetail,CurrencyID:S,CustomerID:S,Description:S,DocumentsToApply:a:PaymentDetail,Hold:B,IsCCPayment:B,OrdersToApply:a:PaymentOrderDetail,PaymentAmount:D,PaymentMethod:S,PaymentRef:S,ReferenceNbr:S,Status:S,Type:S,LastModifiedDateTime:T,ProcessingCenterID:S,SaveCard:B,CreditCardTransactionInfo:a:CreditCardTransactionDetail,ExternalRef:S,OrigTransaction:S,BranchID:S,CustomerLocationID:S,IsNewCard:B,NoteID:G,AvailableBalance:D,AppliedToOrders:D",
  Invoice: "Amount:D,ApplicationsCreditMemo:a:InvoiceApplicationsCreditMemo,ApplicationsDefault:a:InvoiceApplicationsDefault,Balance:D,BillingPrinted:B,BillToContact:o:DocContact,BillToContactOverride:B,CreatedDateTime:T,Customer:S,CustomerOrder:S,Date:T,Description:S,Details:a:InvoiceDetail,DiscountDetails:a:InvoiceDiscountDetail,DueDate:T,Hold:B,LastModifiedDateTime:T,LinkARAccount:S,LinkBranch:S,LocationID:S,PostPeriod:S,Project:S,ReferenceNbr:S,Status:S,ShipToContact:o:DocContact,ShipToContactOverride:B,TaxDetails:a:InvoiceTaxDetail,IsTaxValid:B,TaxTotal:D,Terms:S,Type:S",
  Vendor: "AccountRef:S,APAccount:S,APSubaccount:S,Attributes:a:AttributeValue,CashAccount:S,Contacts:a:CustomerContact,CreatedDateTime:T,CurrencyID:S,CurrencyRateType:S,EnableCurrencyOverride:B,EnableRateOverride:B,F1099Box:S,F1099Vendor:B,FATCA:B,FOBPoint:S,ForeignEntity:B,LandedCostVendor:B,LastModifiedDateTime:T,LeadTimedays:I,LegalName:S,LocationName:S,MainContact:o:Contact,MaxReceipt:D,MinReceipt:D,ParentAccount:S,PaymentBy:S,PaymentInstructions:a:BusinessAccountPaymentInstructionDetail,PaymentLeadTimedays:I,PaymentMethod:S,PaySeparately:B,PrimaryContact:o:Contact,PrintOrders:B,ReceiptAction:S,ReceivingBranch:S,RemittanceAddressOverride:B,RemittanceContact:o:Contact,RemittanceContactOverride:B,SendOrdersbyEmail:B,ShippingContactOverride:B,ShippingAddressOverride:B,ShippingContact:o:Contact,ShippingTerms:S,ShipVia:S,Status:S,TaxCalculationMode:S,TaxRegistrationID:S,TaxZone:S,Terms:S,ThresholdReceipt:D,VendorClass:S,VendorID:S,VendorIsLaborUnion:B,VendorIsTaxAgency:B,VendorName:S,Warehouse:S",
  Customer: "AccountRef:S,ApplyOverdueCharges:B,Attributes:a:AttributeValue,AutoApplyPayments:B,BAccountID:I,BillingAddressOverride:B,BillingContact:o:Contact,BillingContactOverride:B,Contacts:a:CustomerContact,CreatedDateTime:T,CreditVerificationRules:o:CreditVerificationRules,CurrencyID:S,CurrencyRateType:S,CustomerClass:S,CustomerID:S,CustomerCategory:S,CustomerName:S,Email:S,EnableCurrencyOverride:B,EnableRateOverride:B,EnableWriteOffs:B,FOBPoint:S,LastModifiedDateTime:T,LeadTimedays:I,LocationName:S,MainContact:o:Contact,MultiCurrencyStatements:B,OrderPriority:I,ParentRecord:S,PaymentInstructions:a:BusinessAccountPaymentInstructionDetail,PriceClassID:S,PrimaryContact:o:Contact,PrimaryContactID:I,PrintDunningLetters:B,PrintInvoices:B,PrintStatements:B,ResidentialDelivery:B,Salespersons:a:CustomerSalesPerson,SaturdayDelivery:B,SendDunningLettersbyEmail:B,SendInvoicesbyEmail:B,SendStatementsbyEmail:B,ShippingAddressOverride:B,ShippingBranch:S,ShippingContact:o:Contact,ShippingContactOverride:B,ShippingRule:S,ShippingTerms:S,ShippingZoneID:S,ShipVia:S,StatementCycleID:S,StatementType:S,Status:S,TaxRegistrationID:S,TaxZone:S,Terms:S,WarehouseID:S,WriteOffLimit:D,RestrictVisibilityTo:S,CreditLimit:D,NoteID:G,EntityUsageType:S,TaxExemptionNumber:S,IsGuestCustomer:B",
  Employee: "Attributes:a:AttributeValue,ContactInfo:o:Contact,Delegates:a:EmployeeDelegate,EmployeeID:S,EmployeeName:S,EmployeeSettings:o:EmployeeSettings,EmploymentHistory:a:EmploymentHistoryRecord,FinancialSettings:o:EmployeeFinancialSettings,LastModifiedDateTime:T,Status:S",
  DocContact: "Attention:S,BusinessName:S,Email:S,Phone1:S",
  Contact: "Active:B,Activities:a:ActivityDetail,Address:o:Address,OverrideAccountAddress:B,AddressValidated:B,Attention:S,Attributes:a:AttributeValue,BusinessAccount:S,Campaigns:a:CampaignDetail,Cases:a:CaseDetail,CompanyName:S,ContactClass:S,ContactID:I,ContactMethod:S,ConvertedBy:S,DateOfBirth:T,DisplayName:S,DoNotCall:B,DoNotEmail:B,DoNotFax:B,DoNotMail:B,Duplicate:S,DuplicateFound:B,Duplicates:a:ContactDuplicateDetail,Email:S,Fax:S,FaxType:S,FirstName:S,Gender:S,Image:S,JobTitle:S,LanguageOrLocale:S,LastIncomingActivity:T,LastModifiedDateTime:T,LastName:S,LastOutgoingActivity:T,MaritalStatus:S,MarketingLists:a:MarketingListDetail,MiddleName:S,NoMarketing:B,NoMassMail:B,Notifications:a:ContactNotification,Opportunities:a:OpportunityDetail,Owner:S,OwnerEmployeeName:S,ParentAccount:S,Phone1:S,Phone1Type:S,Phone2:S,Phone2Type:S,Phone3:S,Phone3Type:S,QualificationDate:T,Reason:S,Relations:a:RelationDetail,RoleAssignments:a:BCRoleAssignment,Source:S,SourceCampaign:S,SpouseOrPartnerName:S,Status:S,Synchronize:B,Title:S,Type:S,UserInfo:o:ContactUserInfo,WebSite:S,Workgroup:S,WorkgroupDescription:S,NoteID:G,FullName:S,ExtRefNbr:S",
  CreditVerificationRules: "CreditDaysPastDue:I,CreditLimit:D,CreditVerification:S,FirstDueDate:T,OpenOrdersBalance:D,RemainingCreditLimit:D,UnreleasedBalance:D",
  EmployeeSettings: "BranchID:S,Calendar:S,CurrencyID:S,CurrencyRateTypeID:S,DepartmentID:S,EmployeeClass:S,EmployeeRefNbr:S,EnableCurrencyOverride:B,EnableRateOverride:B,LaborItem:S,RegularHoursValidation:S,ReportsTo:S,RouteEmails:B,Salesperson:S,TimeCardIsRequired:B,UnionLocalID:S",
  EmployeeFinancialSettings: "APAccount:S,APSubaccount:S,CashAccount:S,ExpenseAccount:S,ExpenseSubaccount:S,PaymentInstructions:a:BusinessAccountPaymentInstructionDetail,PaymentMethod:S,PrepaymentAccount:S,PrepaymentSubaccount:S,SalesAccount:S,SalesSubaccount:S,TaxZone:S,Terms:S",
  Address: "AddressLine1:S,AddressLine2:S,City:S,Country:S,PostalCode:S,State:S,Validated:B",
  ContactUserInfo: "GeneratePassword:B,Login:S,Password:S,Roles:a:ContactRoles,Status:S,UserType:S",
};

type ScalarType = "S" | "D" | "B" | "T" | "I" | "G";
type FieldDef = { kind: "scalar"; type: ScalarType } | { kind: "object"; schema: string } | { kind: "array"; item: string };
type Schema = Map<string, FieldDef>;

const SCHEMAS = new Map<string, Schema>();
for (const [name, src] of Object.entries(SCHEMA_SRC)) {
  const m: Schema = new Map();
  for (const part of src.split(",")) {
    const [f, t, ref] = part.split(":");
    if (t === "o") m.set(f, { kind: "object", schema: ref });
    else if (t === "a") m.set(f, { kind: "array", item: ref });
    else m.set(f, { kind: "scalar", type: t as ScalarType });
  }
  SCHEMAS.set(name, m);
}

/** Documents whose ReferenceNbr is assigned from a numbering sequence when a PUT inserts without it. */
const AUTO_NUMBERED: Record<string, string> = { Bill: "ReferenceNbr", Check: "ReferenceNbr", Payment: "ReferenceNbr", Invoice: "ReferenceNbr" };
/** Selector fields validated on PUT (→ 422 "'X' cannot be found in the system."). */
const REFERENCES: Record<string, [string, string][]> = {
  Bill: [["Vendor", "Vendor"]],
  Check: [["Vendor", "Vendor"]],
  Payment: [["CustomerID", "Customer"]],
  Invoice: [["Customer", "Customer"]],
};
const FIELD_LABELS: Record<string, string> = {
  ReferenceNbr: "Reference Nbr.",
  VendorID: "Vendor ID",
  CustomerID: "Customer ID",
  EmployeeID: "Employee ID",
};
const RESERVED = new Set(["id", "rowNumber", "note", "custom", "_links", "error", "files", "delete"]);
/** Largest request body accepted (413 past it). */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EDM: Record<FType, string> = {
  string: "Edm.String",
  number: "Edm.Decimal",
  bool: "Edm.Boolean",
  datetime: "Edm.DateTimeOffset",
  guid: "Edm.Guid",
  null: "<null>",
};

// ---------------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------------

/** Error that becomes an HTTP response with an `HttpError` (or given) body. */
class HttpFail extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** ISO-8601 with offset and millisecond precision, e.g. `2025-03-10T14:22:31.117+00:00`. */
function formatIso(ms: number, offsetMin: number): string {
  const d = new Date(ms + offsetMin * 60_000);
  const sign = offsetMin < 0 ? "-" : "+";
  const a = Math.abs(offsetMin);
  return `${d.toISOString().slice(0, 23)}${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

const DTO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?$/;

/** Parses an OData date-time literal body (`yyyy-MM-ddTHH:mm:ss.fffK`); no offset → instance offset. Returns epoch ms or undefined. */
function parseDto(s: string, defaultOffsetMin: number): number | undefined {
  const m = DTO_RE.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac, off] = m;
  let offMin = defaultOffsetMin;
  if (off === "Z") offMin = 0;
  else if (off) offMin = (off[0] === "-" ? -1 : 1) * (Number(off.slice(1, 3)) * 60 + Number(off.slice(4, 6)));
  const ms = Number((frac ?? "0").padEnd(3, "0").slice(0, 3));
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se ?? 0), ms);
  if (Number.isNaN(utc)) return undefined;
  return utc - offMin * 60_000;
}

function label(field: string): string {
  return FIELD_LABELS[field] ?? field.replace(/([a-z])([A-Z])/g, "$1 $2");
}

function httpError(message: string, extra?: Record<string, unknown>): Record<string, unknown> {
  return { message, ...extra };
}

/** .NET ticks (100 ns intervals since 0001-01-01T00:00:00Z) for an epoch-ms time. */
function dotNetTicks(ms: number): bigint {
  return (BigInt(Math.trunc(ms)) + 62_135_596_800_000n) * 10_000n;
}

function b64url(buf: Buffer | string): string {
  return Buffer.from(buf).toString("base64url");
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

// ---------------------------------------------------------------------------------------------------------------------
// $filter (OData v3 URI conventions subset, reference §4)
// ---------------------------------------------------------------------------------------------------------------------

type FType = "string" | "number" | "bool" | "datetime" | "guid" | "null";
interface FExpr {
  type: FType;
  ev: (r: AcuRecord) => unknown;
}
type Tok =
  | { k: "id"; v: string; pos: number }
  | { k: "str"; v: string; pos: number }
  | { k: "num"; v: number; pos: number }
  | { k: "typed"; t: string; v: string; pos: number }
  | { k: "(" | ")" | ","; pos: number };

const CMP_OPS = new Set(["eq", "ne", "gt", "ge", "lt", "le"]);
const OP_KIND: Record<string, string> = {
  eq: "Equal",
  ne: "NotEqual",
  gt: "GreaterThan",
  ge: "GreaterThanOrEqual",
  lt: "LessThan",
  le: "LessThanOrEqual",
};

function scalarToF(t: ScalarType): FType {
  switch (t) {
    case "S":
      return "string";
    case "D":
    case "I":
      return "number";
    case "B":
      return "bool";
    case "T":
      return "datetime";
    case "G":
      return "guid";
  }
}

class FilterParser {
  private toks: Tok[] = [];
  private i = 0;

  constructor(
    private readonly src: string,
    private readonly entity: string,
    private readonly offsetMin: number,
  ) {}

  parse(): FExpr {
    this.tokenize();
    if (this.toks.length === 0) return { type: "bool", ev: () => true };
    const e = this.parseOr();
    if (this.i < this.toks.length) this.syntax(this.toks[this.i].pos);
    if (e.type !== "bool") throw new HttpFail(400, `The $filter expression must evaluate to a single boolean value: '${this.src}'.`);
    return e;
  }

  private syntax(pos: number): never {
    throw new HttpFail(400, `Syntax error at position ${pos} in '${this.src}'.`);
  }

  private tokenize(): void {
    const s = this.src;
    let p = 0;
    const idRe = /[A-Za-z_][A-Za-z0-9_.]*(?:\/[A-Za-z_][A-Za-z0-9_.]*)*/y;
    const numRe = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?/y;
    const readQuoted = (start: number): [string, number] => {
      // start points at the opening quote
      let q = start + 1;
      let out = "";
      for (;;) {
        if (q >= s.length) throw new HttpFail(400, `Unterminated string literal at position ${start} in '${s}'.`);
        if (s[q] === "'") {
          if (s[q + 1] === "'") {
            out += "'";
            q += 2;
            continue;
          }
          return [out, q + 1];
        }
        out += s[q++];
      }
    };
    while (p < s.length) {
      const c = s[p];
      if (c === " " || c === "\t" || c === "\r" || c === "\n") {
        p++;
        continue;
      }
      if (c === "(" || c === ")" || c === ",") {
        this.toks.push({ k: c, pos: p });
        p++;
        continue;
      }
      if (c === "'") {
        const [v, next] = readQuoted(p);
        this.toks.push({ k: "str", v, pos: p });
        p = next;
        continue;
      }
      numRe.lastIndex = p;
      const nm = /[-\d]/.test(c) ? numRe.exec(s) : null;
      if (nm) {
        this.toks.push({ k: "num", v: Number(nm[0].replace(/[mMdDfFlL]$/, "")), pos: p });
        p += nm[0].length;
        continue;
      }
      idRe.lastIndex = p;
      const im = idRe.exec(s);
      if (im) {
        const after = p + im[0].length;
        if (s[after] === "'") {
          const [v, next] = readQuoted(after);
          this.toks.push({ k: "typed", t: im[0], v, pos: p });
          p = next;
        } else {
          this.toks.push({ k: "id", v: im[0], pos: p });
          p = after;
        }
        continue;
      }
      this.syntax(p);
    }
  }

  private peek(): Tok | undefined {
    return this.toks[this.i];
  }

  private isId(v: string): boolean {
    const t = this.peek();
    return t !== undefined && t.k === "id" && t.v === v;
  }

  private expect(k: "(" | ")" | ","): void {
    const t = this.peek();
    if (!t || t.k !== k) this.syntax(t ? t.pos : this.src.length);
    this.i++;
  }

  private requireBool(e: FExpr, op: string): void {
    if (e.type !== "bool") throw new HttpFail(400, `The operand of '${op}' must be of type 'Edm.Boolean', found '${EDM[e.type]}' in '${this.src}'.`);
  }

  private parseOr(): FExpr {
    return this.parseLogical("or", () => this.parseAnd());
  }

  private parseAnd(): FExpr {
    return this.parseLogical("and", () => this.parseUnary());
  }

  /** `operand (op operand)*`, left-associative; both sides must be Boolean; evaluation short-circuits. */
  private parseLogical(op: "or" | "and", operand: () => FExpr): FExpr {
    let a = operand();
    while (this.isId(op)) {
      this.i++;
      const b = operand();
      this.requireBool(a, op);
      this.requireBool(b, op);
      const l = a;
      a = { type: "bool", ev: op === "or" ? (r) => l.ev(r) === true || b.ev(r) === true : (r) => l.ev(r) === true && b.ev(r) === true };
    }
    return a;
  }

  private parseUnary(): FExpr {
    if (this.isId("not")) {
      this.i++;
      const e = this.parseUnary();
      this.requireBool(e, "not");
      return { type: "bool", ev: (r) => e.ev(r) !== true };
    }
    return this.parseCmp();
  }

  private parseCmp(): FExpr {
    const a = this.parsePrimary();
    const t = this.peek();
    if (t && t.k === "id" && CMP_OPS.has(t.v)) {
      this.i++;
      const b = this.parsePrimary();
      const op = t.v;
      const compatible =
        a.type === b.type ||
        a.type === "null" ||
        b.type === "null" ||
        (a.type === "guid" && b.type === "string") ||
        (a.type === "string" && b.type === "guid");
      if (!compatible) {
        throw new HttpFail(
          400,
          `A binary operator with incompatible types was detected. Found operand types '${EDM[a.type]}' and '${EDM[b.type]}' for operator kind '${OP_KIND[op]}'.`,
        );
      }
      const type = a.type === "null" ? b.type : a.type;
      return { type: "bool", ev: (r) => compare(op, a.ev(r), b.ev(r), type) };
    }
    return a;
  }

  private parsePrimary(): FExpr {
    const t = this.peek();
    if (!t) this.syntax(this.src.length);
    this.i++;
    switch (t.k) {
      case "(": {
        const e = this.parseOr();
        this.expect(")");
        return e;
      }
      case "str": {
        const v = t.v;
        return { type: "string", ev: () => v };
      }
      case "num": {
        const v = t.v;
        return { type: "number", ev: () => v };
      }
      case "typed":
        return this.typedLiteral(t);
      case "id": {
        if (t.v === "true" || t.v === "false") {
          const v = t.v === "true";
          return { type: "bool", ev: () => v };
        }
        if (t.v === "null") return { type: "null", ev: () => null };
        if (this.peek()?.k === "(") return this.func(t.v, t.pos);
        return this.field(t.v);
      }
      default:
        this.syntax(t.pos);
    }
  }

  private typedLiteral(t: { t: string; v: string; pos: number }): FExpr {
    if (t.t === "datetimeoffset" || t.t === "datetime") {
      const ms = parseDto(t.v, this.offsetMin);
      if (ms === undefined) {
        const edm = t.t === "datetime" ? "Edm.DateTime" : "Edm.DateTimeOffset";
        throw new HttpFail(400, `Unrecognized '${edm}' literal '${t.t}'${t.v}'' at '${t.pos}' in '${this.src}'.`);
      }
      return { type: "datetime", ev: () => ms };
    }
    if (t.t === "guid") {
      if (!GUID_RE.test(t.v)) throw new HttpFail(400, `Unrecognized 'Edm.Guid' literal 'guid'${t.v}'' at '${t.pos}' in '${this.src}'.`);
      const v = t.v;
      return { type: "guid", ev: () => v };
    }
    throw new HttpFail(400, `Unrecognized literal '${t.t}'${t.v}'' at '${t.pos}' in '${this.src}'.`);
  }

  private args(): FExpr[] {
    this.expect("(");
    const out: FExpr[] = [];
    if (this.peek()?.k === ")") {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.parseOr());
      const t = this.peek();
      if (t?.k === ",") {
        this.i++;
        continue;
      }
      this.expect(")");
      return out;
    }
  }

  private func(name: string, pos: number): FExpr {
    if (name !== "substringof" && name !== "startswith" && name !== "endswith") {
      if (name.startsWith("cf.")) throw new HttpFail(400, `Custom-field filters ('${name}') are not supported by the simulator.`);
      throw new HttpFail(400, `Unknown function '${name}' at position ${pos} in '${this.src}'.`);
    }
    const a = this.args();
    if (a.length !== 2 || a.some((x) => x.type !== "string" && x.type !== "null")) {
      throw new HttpFail(400, `No function signature for the function with name '${name}' matches the specified arguments.`);
    }
    const [x, y] = a;
    const s = (v: unknown): string | null => (v === null || v === undefined ? null : String(v).toLowerCase());
    return {
      type: "bool",
      ev: (r) => {
        const p = s(x.ev(r));
        const q = s(y.ev(r));
        if (p === null || q === null) return false;
        if (name === "substringof") return q.includes(p);
        if (name === "startswith") return p.startsWith(q);
        return p.endsWith(q);
      },
    };
  }

  private field(path: string): FExpr {
    const segs = path.split("/");
    let schema = SCHEMAS.get(this.entity) as Schema;
    let typeName = this.entity;
    for (let k = 0; k < segs.length; k++) {
      const def = schema.get(segs[k]);
      if (!def) throw new HttpFail(400, `Could not find a property named '${segs[k]}' on type '${typeName}' in '${this.src}'.`);
      const last = k === segs.length - 1;
      if (def.kind === "array") throw new HttpFail(400, `Filtering on detail entities ('${path}') is not supported.`);
      if (def.kind === "object") {
        if (last) throw new HttpFail(400, `The property '${path}' is a linked entity and cannot be compared; use a field of it, e.g. '${path}/...'.`);
        schema = SCHEMAS.get(def.schema) as Schema;
        typeName = def.schema;
        continue;
      }
      if (!last) throw new HttpFail(400, `The property '${segs[k]}' on type '${typeName}' has no properties ('${path}').`);
      const type = scalarToF(def.type);
      const offsetMin = this.offsetMin;
      return {
        type,
        ev: (r) => {
          let cur: unknown = r;
          for (const s of segs) {
            if (!isObj(cur)) return null;
            cur = cur[s];
          }
          if (cur === undefined || cur === null) return null;
          if (type === "datetime") {
            const ms = typeof cur === "string" ? parseDto(cur, offsetMin) ?? Date.parse(cur) : NaN;
            return Number.isNaN(ms) ? null : ms;
          }
          return cur;
        },
      };
    }
    throw new HttpFail(400, `Invalid property path '${path}'.`);
  }
}

function compare(op: string, x: unknown, y: unknown, type: FType): boolean {
  if (x === null || x === undefined || y === null || y === undefined) {
    const both = (x === null || x === undefined) && (y === null || y === undefined);
    if (op === "eq") return both;
    if (op === "ne") return !both;
    return false;
  }
  let c: number;
  if (type === "string" || type === "guid") {
    // SQL Server default collation: case-insensitive
    const a = String(x).toLowerCase();
    const b = String(y).toLowerCase();
    c = a < b ? -1 : a > b ? 1 : 0;
  } else {
    c = Number(x) - Number(y);
  }
  switch (op) {
    case "eq":
      return c === 0;
    case "ne":
      return c !== 0;
    case "gt":
      return c > 0;
    case "ge":
      return c >= 0;
    case "lt":
      return c < 0;
    default:
      return c <= 0;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// $select / $expand
// ---------------------------------------------------------------------------------------------------------------------

type Tree = Map<string, Tree>;

function parsePaths(raw: string | null): Tree | null {
  if (raw === null) return null;
  const tree: Tree = new Map();
  for (const item of raw.split(",")) {
    const p = item.trim();
    if (!p) continue;
    let node = tree;
    for (const seg of p.split("/")) {
      const s = seg.trim();
      if (!s) throw new HttpFail(400, `Invalid path '${p}'.`);
      let next = node.get(s);
      if (!next) {
        next = new Map();
        node.set(s, next);
      }
      node = next;
    }
  }
  return tree;
}

function validateTree(tree: Tree, schemaName: string | null, param: string, prefix = ""): void {
  for (const [name, sub] of tree) {
    if (name === "files" && param === "$expand") continue;
    if (param === "$select" && RESERVED.has(name)) continue; // id, rowNumber, note… are always returned
    if (schemaName === null) continue; // detail rows are schemaless
    const def = SCHEMAS.get(schemaName)?.get(name);
    if (!def) throw new HttpFail(400, `Invalid ${param}: '${prefix}${name}' is not a field of '${schemaName}'.`);
    if (param === "$expand" && def.kind === "scalar") throw new HttpFail(400, `Invalid $expand: '${prefix}${name}' is not a linked or detail entity.`);
    if (sub.size > 0) {
      if (def.kind === "scalar") throw new HttpFail(400, `Invalid ${param}: '${prefix}${name}' has no fields.`);
      validateTree(sub, def.kind === "object" ? def.schema : null, param, `${prefix}${name}/`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Internal state types
// ---------------------------------------------------------------------------------------------------------------------

interface CookieSession {
  sessionId: string;
  authTicket: string;
  user: string;
  lastUsed: number;
}

interface Grant {
  sessionId: string;
  clientId: string;
  user: string;
  scopes: string[];
  accessTokens: Map<string, number>; // token → expiresAt (ms)
  refreshToken?: string;
  refreshExpiresAt?: number;
}

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  entry: AcuRequestLog;
  path: string; // after virtual directory
  query: URLSearchParams;
  body: Buffer;
}

type ParsedOpts = { expand: Tree; select: Tree | null };

// ---------------------------------------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------------------------------------

/**
 * Acumatica contract-based REST API simulator. Typical use:
 * ```ts
 * const sim = new AcumaticaSim({ maxApiUsers: 2 });
 * const base = await sim.start();            // "http://127.0.0.1:<port>" (the instance URL)
 * sim.seedDemoData();
 * // … point the node at `base`, endpoint Default/24.200.001 …
 * assert.equal(sim.stats.activeSessions, 0); // the node signed out
 * await sim.stop();
 * ```
 */
export class AcumaticaSim {
  /** Every HTTP request received, in arrival order (status filled in when the response is sent). */
  readonly requests: AcuRequestLog[] = [];
  /** Every push attempt made by {@link pushNotification}. */
  readonly pushDeliveries: AcuPushDelivery[] = [];
  /**
   * Test hook run before a list (`GET /{Entity}`) is answered, with its `$skip`: lets a test change records between
   * the pages of one listing, as users of a live tenant do. Not cleared by {@link reset}.
   */
  beforeList?: (entity: string, skip: number) => void;

  private readonly tenant: string;
  private readonly endpoint: { name: string; versions: string[] };
  private readonly users: { name: string; password: string }[];
  private readonly clients: { clientId: string; clientSecret: string; scopes: string[] }[];
  private readonly accessTtlMs: number;
  private readonly refreshTtlMs: number;
  private readonly sessionIdleMs: number;
  private readonly maxApiUsers: number;
  private readonly requestsPerMinute: number;
  private readonly maxConcurrent: number;
  private readonly latencyMs: number;
  private readonly vdir: string;
  private readonly offsetMin: number;
  private readonly requireTenant: boolean;
  private readonly now: () => number;
  private readonly log?: (line: string) => void;

  private readonly server = new SimServer({ name: "AcumaticaSim", handler: (req, res) => this.handle(req, res) });
  private data = new Map<string, Map<string, AcuRecord>>();
  private rowCounters = new Map<string, number>();
  private lastStampMs = 0;
  private cookieSessions = new Map<string, CookieSession>();
  private grants = new Set<Grant>();
  private faults: { fault: AcuFault; left: number }[] = [];
  private minuteWindow: number[] = [];
  private inFlight = 0;
  private counters = { logins: 0, logouts: 0, tokensIssued: 0, refreshes: 0 };

  constructor(opts: AcumaticaSimOptions = {}) {
    this.tenant = opts.tenant ?? "AcmeProd";
    this.endpoint = opts.endpoint ?? { name: "Default", versions: ["23.200.001", "24.200.001"] };
    this.users = opts.users ?? [{ name: "api.user", password: "P@ss-w0rd" }];
    this.clients = (opts.clients ?? [{ clientId: `3F2A9C10-1B2C-4D5E-8F90-ABCDEF012345@${this.tenant}`, clientSecret: "s3cr3t" }]).map((c) => ({
      clientId: c.clientId,
      clientSecret: c.clientSecret,
      scopes: c.scopes ?? ["api", "offline_access", "openid"],
    }));
    this.accessTtlMs = (opts.accessTokenTtlSec ?? 3600) * 1000;
    this.refreshTtlMs = (opts.refreshTokenTtlSec ?? 30 * 24 * 3600) * 1000;
    this.sessionIdleMs = opts.sessionIdleMs ?? 20 * 60_000;
    this.maxApiUsers = opts.maxApiUsers ?? 2;
    this.requestsPerMinute = opts.requestsPerMinute ?? Infinity;
    this.maxConcurrent = opts.maxConcurrentRequests ?? Infinity;
    this.latencyMs = opts.latencyMs ?? 0;
    this.vdir = (opts.virtualDirectory ?? "").replace(/\/+$/, "");
    if (this.vdir && !this.vdir.startsWith("/")) this.vdir = `/${this.vdir}`;
    this.offsetMin = opts.utcOffsetMinutes ?? 0;
    this.requireTenant = opts.requireTenant ?? true;
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
  }

  // ----------------------------------------------------------------------------------------------------------------- lifecycle

  /** Starts listening on 127.0.0.1:0. Resolves with the instance URL `http://127.0.0.1:<port>[virtualDirectory]`. */
  async start(): Promise<string> {
    return `${await this.server.start()}${this.vdir}`;
  }

  /** Stops the server and drops open (keep-alive) connections. */
  stop(): Promise<void> {
    return this.server.stop();
  }

  /** Instance URL (`http://127.0.0.1:<port>[virtualDirectory]`, still the last one after {@link stop}); throws before {@link start}. */
  get url(): string {
    if (!this.server.origin) throw new Error("AcumaticaSim not started");
    return `${this.server.origin}${this.vdir}`;
  }

  /** Entity base URL for an endpoint version, e.g. `http://127.0.0.1:1234/entity/Default/24.200.001`. Default: the last configured version. */
  entityUrl(version?: string): string {
    return `${this.url}/entity/${this.endpoint.name}/${version ?? this.endpoint.versions[this.endpoint.versions.length - 1]}`;
  }

  /** Snapshot of sign-in counters; `activeSessions` = live cookie sessions + live OAuth grants (licence API users). */
  get stats(): AcuStats {
    this.prune();
    return { ...this.counters, activeSessions: this.activeCount() };
  }

  /** Clears records, sessions, grants, faults, request/push logs and counters. Options, users and clients are kept. */
  reset(): void {
    this.data.clear();
    this.rowCounters.clear();
    this.cookieSessions.clear();
    this.grants.clear();
    this.faults = [];
    this.minuteWindow = [];
    this.requests.length = 0;
    this.pushDeliveries.length = 0;
    this.counters = { logins: 0, logouts: 0, tokensIssued: 0, refreshes: 0 };
  }

  // ----------------------------------------------------------------------------------------------------------------- data

  /**
   * Seeds or updates a record (plain values, e.g. `{ Type: "Bill", ReferenceNbr: "000123", Amount: 1250 }`; nested
   * contacts as plain objects). Matches an existing record by `id` or by the key fields ({@link ACU_ENTITY_KEYS}),
   * merges fields (nested objects merged, arrays replaced), and sets `id` (GUID), `rowNumber` and
   * `LastModifiedDateTime` (ISO with offset, ms precision, strictly increasing) unless given. `Date` values are
   * converted to that ISO form. Throws on unknown entities, unknown fields and wrong value types (catches test typos).
   * Returns a copy of the stored record.
   */
  upsert(entity: string, record: AcuRecord): AcuRecord {
    const ent = this.canonicalEntity(entity);
    if (!ent) throw new Error(`AcumaticaSim: unknown entity '${entity}'`);
    const schema = SCHEMAS.get(ent) as Schema;
    const plain = this.checkPlain(schema, record, ent);
    const store = this.store(ent);
    let existing = typeof plain.id === "string" ? store.get(plain.id) : undefined;
    if (!existing && this.hasAllKeys(ent, plain)) existing = this.findByKeys(ent, ACU_ENTITY_KEYS[ent].map((k) => String(plain[k])));
    if (!existing) {
      const missing = ACU_ENTITY_KEYS[ent].filter((k) => plain[k] === undefined || plain[k] === null || plain[k] === "");
      if (missing.length) throw new Error(`AcumaticaSim: ${ent} record needs key field(s) ${missing.join(", ")}`);
      existing = this.newRecord(ent, plain);
      store.set(existing.id as string, existing);
    }
    this.merge(schema, existing, plain, "replace");
    if (plain.LastModifiedDateTime === undefined) existing.LastModifiedDateTime = this.stamp();
    return clone(existing);
  }

  /** Looks a record up by key values in key order (or `[id]`). Returns a copy, or undefined. */
  get(entity: string, keys: string[]): AcuRecord | undefined {
    const ent = this.canonicalEntity(entity);
    if (!ent) return undefined;
    const r = this.lookup(ent, keys);
    return r ? clone(r) : undefined;
  }

  /** All records of an entity ordered by rowNumber (copies). */
  all(entity: string): AcuRecord[] {
    const ent = this.canonicalEntity(entity);
    if (!ent) return [];
    return this.sorted(ent).map(clone);
  }

  /** Deletes a record by key values (or `[id]`). Returns whether it existed. */
  remove(entity: string, keys: string[]): boolean {
    const ent = this.canonicalEntity(entity);
    const r = ent ? this.lookup(ent, keys) : undefined;
    if (!ent || !r) return false;
    this.store(ent).delete(r.id as string);
    return true;
  }

  /**
   * Adds a small realistic data set: 3 Employees (ContactInfo with national-format phones, one invalid "555-01"),
   * 3 Vendors (MainContact), 4 Bills (Pending Approval / Open / Open / Balanced), 2 AR Payments (one "Voided",
   * "Card declined") and 1 Customer. LastModifiedDateTime values are fixed in March 2025 (distinct, ms precision).
   * Returns the stored records.
   */
  seedDemoData(): { employees: AcuRecord[]; vendors: AcuRecord[]; bills: AcuRecord[]; payments: AcuRecord[]; customers: AcuRecord[] } {
    const lm = (d: string) => `2025-03-${d}+00:00`;
    const employees = [
      this.upsert("Employee", {
        EmployeeID: "EP00000001",
        EmployeeName: "Maria Chen",
        Status: "Active",
        ContactInfo: { DisplayName: "Maria Chen", FirstName: "Maria", LastName: "Chen", Email: "maria.chen@acme.example", Phone1: "(415) 555-0132", Phone1Type: "Business 1" },
        LastModifiedDateTime: lm("03T09:15:02.410"),
      }),
      this.upsert("Employee", {
        EmployeeID: "EP00000002",
        EmployeeName: "David Okafor",
        Status: "Active",
        ContactInfo: { DisplayName: "David Okafor", FirstName: "David", LastName: "Okafor", Email: "david.okafor@acme.example", Phone1: "(212) 555-0187", Phone1Type: "Cell" },
        LastModifiedDateTime: lm("03T09:15:03.022"),
      }),
      this.upsert("Employee", {
        EmployeeID: "EP00000003",
        EmployeeName: "Priya Raman",
        Status: "Active",
        ContactInfo: { DisplayName: "Priya Raman", FirstName: "Priya", LastName: "Raman", Email: "priya.raman@acme.example", Phone1: "555-01", Phone1Type: "Business 1" },
        LastModifiedDateTime: lm("03T09:15:03.517"),
      }),
    ];
    const vendors = [
      this.upsert("Vendor", {
        VendorID: "V000041",
        VendorName: "Bayside Office Supply",
        Status: "Active",
        CurrencyID: "USD",
        Terms: "30D",
        MainContact: { DisplayName: "Bayside Office Supply", Email: "billing@bayside.example", Phone1: "(510) 555-0119", Address: { AddressLine1: "12 Harbor Way", City: "Oakland", State: "CA", PostalCode: "94607", Country: "US" } },
        LastModifiedDateTime: lm("04T11:02:45.100"),
      }),
      this.upsert("Vendor", {
        VendorID: "V000042",
        VendorName: "Contoso Freight LLC",
        Status: "Active",
        CurrencyID: "USD",
        Terms: "30D",
        MainContact: { DisplayName: "Contoso Freight LLC", Email: "ar@contoso-freight.example", Phone1: "(312) 555-0144", Address: { AddressLine1: "400 W Lake St", City: "Chicago", State: "IL", PostalCode: "60606", Country: "US" } },
        LastModifiedDateTime: lm("04T11:03:10.250"),
      }),
      this.upsert("Vendor", {
        VendorID: "V000043",
        VendorName: "Fabrikam Maintenance",
        Status: "Hold",
        CurrencyID: "USD",
        Terms: "15D",
        MainContact: { DisplayName: "Fabrikam Maintenance", Email: "accounts@fabrikam.example", Phone1: "(206) 555-0171", Address: { AddressLine1: "9 Pike Pl", City: "Seattle", State: "WA", PostalCode: "98101", Country: "US" } },
        LastModifiedDateTime: lm("04T11:03:41.903"),
      }),
    ];
    const bill = (nbr: string, vendor: string, amount: number, balance: number, status: string, approved: boolean, hold: boolean, desc: string, date: string, due: string, vref: string, mod: string) =>
      this.upsert("Bill", {
        Type: "Bill",
        ReferenceNbr: nbr,
        Vendor: vendor,
        VendorRef: vref,
        Amount: amount,
        Balance: balance,
        TaxTotal: 0,
        Status: status,
        Hold: hold,
        ApprovedForPayment: approved,
        Description: desc,
        Date: `${date}T00:00:00+00:00`,
        DueDate: `${due}T00:00:00+00:00`,
        CurrencyID: "USD",
        BranchID: "HQ",
        Terms: "30D",
        PostPeriod: "032025",
        LastModifiedDateTime: mod,
      });
    const bills = [
      bill("000121", "V000041", 318.4, 318.4, "Pending Approval", false, false, "Toner and paper, March", "2025-03-07", "2025-04-06", "BOS-7781", lm("10T08:01:12.004")),
      bill("000122", "V000043", 4820, 4820, "Open", true, false, "HVAC quarterly maintenance", "2025-03-08", "2025-03-23", "FM-2025-031", lm("10T13:47:05.660")),
      bill("000123", "V000042", 1250, 1250, "Open", false, false, "Freight, PO 4471", "2025-03-10", "2025-04-09", "INV-88231", lm("10T14:22:31.117")),
      bill("000124", "V000042", 15999.99, 15999.99, "Balanced", false, true, "Warehouse racking install", "2025-03-11", "2025-04-10", "INV-88410", lm("11T09:05:00.000")),
    ];
    const customers = [
      this.upsert("Customer", {
        CustomerID: "C000017",
        CustomerName: "Northwind Traders",
        Status: "Active",
        Email: "ap@northwind.example",
        CustomerClass: "DEFAULT",
        CurrencyID: "USD",
        Terms: "30D",
        CreditLimit: 50000,
        MainContact: { DisplayName: "Northwind Traders", Email: "ap@northwind.example", Phone1: "(206) 555-0100", Address: { AddressLine1: "1 Market St", City: "Seattle", State: "WA", PostalCode: "98101", Country: "US" } },
        LastModifiedDateTime: lm("05T10:00:00.500"),
      }),
    ];
    const payments = [
      this.upsert("Payment", {
        Type: "Payment",
        ReferenceNbr: "000311",
        CustomerID: "C000017",
        PaymentAmount: 2400,
        AvailableBalance: 0,
        AppliedToDocuments: 2400,
        Status: "Closed",
        Hold: false,
        PaymentMethod: "CHECK",
        PaymentRef: "CHK-5521",
        CashAccount: "10200",
        CurrencyID: "USD",
        Description: "Payment for AR invoice 004410",
        ApplicationDate: "2025-03-09T00:00:00+00:00",
        LastModifiedDateTime: lm("09T16:40:18.233"),
      }),
      this.upsert("Payment", {
        Type: "Payment",
        ReferenceNbr: "000312",
        CustomerID: "C000017",
        PaymentAmount: 980.5,
        AvailableBalance: 0,
        AppliedToDocuments: 0,
        Status: "Voided",
        Hold: false,
        PaymentMethod: "VISA",
        PaymentRef: "CC-0099",
        CashAccount: "10250",
        CurrencyID: "USD",
        Description: "Card declined",
        ApplicationDate: "2025-03-10T00:00:00+00:00",
        LastModifiedDateTime: lm("10T15:02:44.871"),
      }),
    ];
    return { employees, vendors, bills, payments, customers };
  }

  // ----------------------------------------------------------------------------------------------------------------- faults / auth control

  /**
   * Makes the next `count` (default 1) requests matching `fault.pathPrefix` (path after the virtual directory; default
   * any request) answer `fault.status` with `fault.body` (default a matching `HttpError`). Takes precedence over
   * authentication, rate limits and routing. A 429 never carries `Retry-After` (reference §2.3).
   */
  injectFault(fault: AcuFault, count = 1): void {
    this.faults.push({ fault, left: count });
  }

  /**
   * Invalidates every current access token and cookie session: the next entity call with them gets 401
   * `The user is not logged in to the system.`. Cookie sessions are ended (their licence slots freed); OAuth grants with
   * a refresh token stay alive (a refresh then works and reuses the same server session); grants without one end.
   */
  expireAllTokens(): void {
    this.cookieSessions.clear();
    for (const g of this.grants) {
      for (const t of g.accessTokens.keys()) g.accessTokens.set(t, 0);
      if (!g.refreshToken) this.grants.delete(g);
    }
  }

  // ----------------------------------------------------------------------------------------------------------------- push

  /**
   * Delivers a push notification like Acumatica's Webhook destination (reference §7): `POST target.url` with
   * `Content-Type: application/json` and the optional custom header `headerName: headerValue`, body
   * `{Inserted, Deleted, Query, CompanyId, Id, TimeStamp, AdditionalInfo}` (TimeStamp = .NET ticks, an exact JSON
   * integer above 2^53). Each delivery is retried while the receiver answers non-2xx (or the connection fails → 0), up
   * to `maxAttempts` (5) attempts. `times` repeats the same notification (same Id/TimeStamp). Resolves with the status
   * of every attempt in order; each attempt is also recorded in {@link pushDeliveries}.
   */
  async pushNotification(target: AcuPushTarget, n: AcuPushNotification, opts: AcuPushOptions = {}): Promise<number[]> {
    const times = opts.times ?? 1;
    const maxAttempts = opts.maxAttempts ?? 5;
    const id = n.id ?? randomUUID();
    const ticks = n.timeStamp ?? dotNetTicks(this.now());
    const marker = "\u0000TS\u0000";
    const body = JSON.stringify({
      Inserted: n.inserted ?? [],
      Deleted: n.deleted ?? [],
      Query: n.query,
      CompanyId: this.tenant,
      Id: id,
      TimeStamp: marker,
      AdditionalInfo: n.additionalInfo ?? {},
    }).replace(JSON.stringify(marker), ticks.toString());
    const headers: Record<string, string> = {
      "Content-Type": "application/json; charset=utf-8",
      Accept: "application/json",
      "Content-Length": String(Buffer.byteLength(body)),
      Connection: "close",
    };
    if (target.headerName) headers[target.headerName] = target.headerValue ?? "";
    const statuses: number[] = [];
    for (let d = 1; d <= times; d++) {
      for (let attempt = 1; attempt <= maxAttempts; attempt++) {
        const { status } = await sendRequest(target.url, { headers, body, timeoutMs: opts.timeoutMs ?? 5000 });
        statuses.push(status);
        this.pushDeliveries.push({ id, query: n.query, attempt, delivery: d, status, url: target.url });
        this.log?.(`push ${n.query} ${id} delivery ${d} attempt ${attempt} → ${status}`);
        if (status >= 200 && status < 300) break;
        if (attempt < maxAttempts && opts.retryDelayMs) await new Promise((r) => setTimeout(r, opts.retryDelayMs));
      }
    }
    return statuses;
  }

  // ----------------------------------------------------------------------------------------------------------------- HTTP plumbing

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { path: pathname, query: rawQuery } = splitUrl(req.url);
    const authz = req.headers.authorization ?? "";
    const cookies = parseCookies(req.headers.cookie);
    const auth: AcuRequestLog["auth"] = /^bearer\s/i.test(authz) ? "bearer" : cookies.has("ASP.NET_SessionId") || cookies.has(".ASPXAUTH") ? "cookie" : "none";
    const entry: AcuRequestLog = { method: req.method ?? "GET", path: pathname, query: rawQuery, status: 0, auth };
    this.requests.push(entry);
    const ctx: Ctx = { req, res, entry, path: pathname, query: new URLSearchParams(rawQuery), body: Buffer.alloc(0) };
    try {
      ctx.body = await readBody(req, MAX_BODY_BYTES, "destroy").catch((e: unknown) => {
        throw e instanceof BodyTooLargeError ? new HttpFail(413, "Request entity too large.") : e;
      });
      if (this.vdir) {
        if (pathname !== this.vdir && !pathname.startsWith(`${this.vdir}/`)) throw new HttpFail(404, `No HTTP resource was found that matches the request URI '${pathname}'.`);
        ctx.path = pathname.slice(this.vdir.length) || "/";
      }
      const fault = this.takeFault(ctx.path);
      if (fault?.hang) return; // left unanswered; stop() destroys the socket
      if (fault) return this.sendFault(ctx, fault);
      await this.route(ctx);
    } catch (e) {
      if (e instanceof HttpFail) {
        this.send(ctx, e.status, e.body ?? httpError(e.message));
      } else {
        this.send(
          ctx,
          500,
          httpError(ACU_MSG_SERVER_ERROR, {
            exceptionMessage: e instanceof Error ? e.message : String(e),
            exceptionType: "System.Exception",
            stackTrace: "   at PX.Api.ContractBased.EntityService.Process() in C:\\Bld\\AC-FULL2024R2\\WebSites\\Pure\\PX.Api.ContractBased\\EntityService.cs:line 412",
          }),
        );
      }
    }
  }

  private send(ctx: Ctx, status: number, body?: unknown, headers: Record<string, string | string[]> = {}): void {
    ctx.entry.status = status;
    const { res } = ctx;
    if (res.headersSent) return;
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (!res.hasHeader("Cache-Control")) res.setHeader("Cache-Control", "no-cache");
    this.log?.(`${ctx.entry.method} ${ctx.entry.path}${ctx.entry.query ? `?${ctx.entry.query}` : ""} → ${status}`);
    if (body === undefined || status === 204) {
      res.statusCode = status;
      res.end();
      return;
    }
    writeJson(res, status, body);
  }

  private takeFault(path: string): AcuFault | undefined {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i];
      if (f.fault.pathPrefix && !path.startsWith(f.fault.pathPrefix)) continue;
      f.left--;
      if (f.left <= 0) this.faults.splice(i, 1);
      return f.fault;
    }
    return undefined;
  }

  private sendFault(ctx: Ctx, f: AcuFault): void {
    const body =
      f.body !== undefined
        ? f.body
        : f.status === 429
          ? httpError(ACU_MSG_RATE_LIMIT)
          : f.status === 401
            ? httpError(ACU_MSG_NOT_LOGGED_IN)
            : httpError(ACU_MSG_SERVER_ERROR, { exceptionMessage: "Injected fault", exceptionType: "System.Exception" });
    this.send(ctx, f.status, body);
  }

  private async route(ctx: Ctx): Promise<void> {
    const method = ctx.entry.method;
    const p = ctx.path.replace(/\/+$/, "");
    const lower = p.toLowerCase();
    if (lower === "/identity/connect/token") return method === "POST" ? this.tokenEndpoint(ctx) : this.methodNotAllowed(ctx);
    if (lower === "/identity/connect/revocation") return method === "POST" ? this.revocationEndpoint(ctx) : this.methodNotAllowed(ctx);
    if (lower === "/identity/.well-known/openid-configuration") return this.discovery(ctx);
    if (lower === "/entity/auth/login") return method === "POST" ? this.login(ctx) : this.methodNotAllowed(ctx);
    if (lower === "/entity/auth/logout") return method === "POST" ? this.logout(ctx) : this.methodNotAllowed(ctx);
    if (lower.startsWith("/entity/")) return this.entityRoute(ctx);
    throw new HttpFail(404, `No HTTP resource was found that matches the request URI '${ctx.entry.path}'.`);
  }

  private methodNotAllowed(ctx: Ctx): void {
    this.send(ctx, 405, httpError(`The requested resource does not support http method '${ctx.entry.method}'.`));
  }

  // ----------------------------------------------------------------------------------------------------------------- licence

  private prune(): void {
    const now = this.now();
    for (const [id, s] of this.cookieSessions) if (now - s.lastUsed > this.sessionIdleMs) this.cookieSessions.delete(id);
    for (const g of this.grants) if (!this.grantAlive(g, now)) this.grants.delete(g);
  }

  private grantAlive(g: Grant, now: number): boolean {
    if (g.refreshToken && (g.refreshExpiresAt ?? 0) > now) return true;
    for (const exp of g.accessTokens.values()) if (exp > now) return true;
    return false;
  }

  private activeCount(): number {
    return this.cookieSessions.size + this.grants.size;
  }

  // ----------------------------------------------------------------------------------------------------------------- OAuth

  private formBody(ctx: Ctx): URLSearchParams {
    const ct = String(ctx.req.headers["content-type"] ?? "");
    if (!ct.toLowerCase().includes("application/x-www-form-urlencoded")) return new URLSearchParams();
    return new URLSearchParams(ctx.body.toString("utf8"));
  }

  private oauthError(ctx: Ctx, error: string, description?: string): void {
    this.send(ctx, 400, description ? { error, error_description: description } : { error }, { Pragma: "no-cache", "Cache-Control": "no-store" });
  }

  private tokenEndpoint(ctx: Ctx): void {
    const ct = String(ctx.req.headers["content-type"] ?? "").toLowerCase();
    if (!ct.includes("application/x-www-form-urlencoded")) return this.oauthError(ctx, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
    const f = this.formBody(ctx);
    const grantType = f.get("grant_type");
    if (!grantType) return this.oauthError(ctx, "unsupported_grant_type");
    // client_id must be the full "<GUID>@<Tenant>" string exactly as generated (reference §2.1)
    const client = this.clients.find((c) => c.clientId === f.get("client_id"));
    if (!client || client.clientSecret !== f.get("client_secret")) return this.oauthError(ctx, "invalid_client");
    const now = this.now();
    this.prune();
    if (grantType === "password") {
      const user = this.users.find((u) => u.name.toLowerCase() === (f.get("username") ?? "").toLowerCase());
      if (!user || user.password !== f.get("password")) return this.oauthError(ctx, "invalid_grant", "invalid_username_or_password");
      const scopes = (f.get("scope") ?? "api").split(/\s+/).filter(Boolean);
      if (scopes.some((s) => !client.scopes.includes(s))) return this.oauthError(ctx, "invalid_scope");
      // Licence: OAuth authorizations count as API users (reference §2.3). Sim choice: refuse at the token endpoint (⚠️ verify).
      if (this.activeCount() >= this.maxApiUsers) return this.oauthError(ctx, "invalid_grant", ACU_MSG_API_LOGIN_LIMIT);
      const g: Grant = { sessionId: randomUUID(), clientId: client.clientId, user: user.name, scopes, accessTokens: new Map() };
      if (scopes.includes("offline_access")) {
        g.refreshToken = randomBytes(32).toString("hex").toUpperCase();
        g.refreshExpiresAt = now + this.refreshTtlMs;
      }
      this.grants.add(g);
      this.counters.logins++;
      return this.issue(ctx, g, now);
    }
    if (grantType === "refresh_token") {
      const rt = f.get("refresh_token") ?? "";
      const g = [...this.grants].find((x) => x.refreshToken !== undefined && x.refreshToken === rt);
      if (!g || g.clientId !== client.clientId || (g.refreshExpiresAt ?? 0) <= now) return this.oauthError(ctx, "invalid_grant");
      // Rotation (reference §2.1 ⚠️ verify; sim rotates): the old refresh token is now invalid. Same server session.
      g.refreshToken = randomBytes(32).toString("hex").toUpperCase();
      this.counters.refreshes++;
      return this.issue(ctx, g, now);
    }
    return this.oauthError(ctx, "unsupported_grant_type");
  }

  private issue(ctx: Ctx, g: Grant, now: number): void {
    const header = b64url(JSON.stringify({ alg: "RS256", typ: "at+jwt", kid: "sim" }));
    const payload = b64url(
      JSON.stringify({
        iss: `${this.url}/identity`,
        sub: g.user,
        client_id: g.clientId,
        scope: g.scopes,
        sid: g.sessionId,
        exp: Math.floor((now + this.accessTtlMs) / 1000),
        jti: randomUUID(),
      }),
    );
    const token = `${header}.${payload}.${b64url(randomBytes(32))}`;
    g.accessTokens.set(token, now + this.accessTtlMs);
    this.counters.tokensIssued++;
    const body: Record<string, unknown> = { access_token: token, expires_in: Math.round(this.accessTtlMs / 1000), token_type: "Bearer" };
    if (g.refreshToken) body.refresh_token = g.refreshToken;
    body.scope = g.scopes.join(" ");
    this.send(ctx, 200, body, { Pragma: "no-cache", "Cache-Control": "no-store" });
  }

  private revocationEndpoint(ctx: Ctx): void {
    const f = this.formBody(ctx);
    const client = this.clients.find((c) => c.clientId === f.get("client_id"));
    if (!client || client.clientSecret !== f.get("client_secret")) return this.oauthError(ctx, "invalid_client");
    const tok = f.get("token") ?? "";
    for (const g of this.grants) {
      if (g.clientId === client.clientId && (g.refreshToken === tok || g.accessTokens.has(tok))) {
        this.grants.delete(g);
        this.counters.logouts++;
      }
    }
    this.send(ctx, 200);
  }

  private discovery(ctx: Ctx): void {
    const id = `${this.url}/identity`;
    this.send(ctx, 200, {
      issuer: id,
      authorization_endpoint: `${id}/connect/authorize`,
      token_endpoint: `${id}/connect/token`,
      revocation_endpoint: `${id}/connect/revocation`,
      end_session_endpoint: `${id}/connect/endsession`,
      scopes_supported: ["openid", "profile", "email", "api", "offline_access", "api:concurrent_access"],
      grant_types_supported: ["authorization_code", "implicit", "hybrid", "password", "refresh_token"],
      token_endpoint_auth_methods_supported: ["client_secret_post", "client_secret_basic"],
    });
  }

  // ----------------------------------------------------------------------------------------------------------------- cookie sessions

  private login(ctx: Ctx): void {
    const ct = String(ctx.req.headers["content-type"] ?? "").toLowerCase();
    let b: Record<string, unknown> = {};
    const text = ctx.body.toString("utf8");
    if (ct.includes("application/x-www-form-urlencoded")) {
      b = Object.fromEntries(new URLSearchParams(text));
    } else {
      try {
        const parsed: unknown = text ? JSON.parse(text) : {};
        if (isObj(parsed)) b = parsed;
      } catch {
        throw new HttpFail(400, "The request is invalid.", httpError("The request is invalid.", { modelState: { credentials: ["Invalid JSON."] } }));
      }
    }
    const name = typeof b.name === "string" ? b.name : "";
    const password = typeof b.password === "string" ? b.password : "";
    const tenant = typeof b.tenant === "string" ? b.tenant : undefined;
    const user = this.users.find((u) => u.name.toLowerCase() === name.toLowerCase());
    const tenantOk = tenant === undefined || tenant === "" ? !this.requireTenant : tenant.toLowerCase() === this.tenant.toLowerCase();
    if (!user || user.password !== password || !tenantOk) {
      return this.send(
        ctx,
        500,
        httpError(ACU_MSG_INVALID_CREDENTIALS, {
          exceptionMessage: ACU_MSG_INVALID_CREDENTIALS,
          exceptionType: "PX.Data.PXException",
          stackTrace: "   at PX.Export.Authentication.LoginService.Login(String login, String password) in C:\\Bld\\AC-FULL2024R2\\NetTools\\PX.Export\\Authentication\\LoginService.cs:line 91",
        }),
      );
    }
    this.prune();
    if (this.activeCount() >= this.maxApiUsers) {
      // Reference §2.2/§2.3: body contains "API Login Limit"; real status probably 500 (⚠️ verify) — sim uses 500.
      return this.send(
        ctx,
        500,
        httpError(`${ACU_MSG_API_LOGIN_LIMIT}`, {
          exceptionMessage: `${ACU_MSG_API_LOGIN_LIMIT}: the maximum number of concurrent API users (${this.maxApiUsers}) allowed by the license has been reached.`,
          exceptionType: "PX.Data.PXException",
        }),
      );
    }
    const s: CookieSession = { sessionId: randomBytes(12).toString("base64url").toLowerCase(), authTicket: randomBytes(48).toString("hex").toUpperCase(), user: user.name, lastUsed: this.now() };
    this.cookieSessions.set(s.sessionId, s);
    this.counters.logins++;
    const branch = typeof b.branch === "string" && b.branch ? b.branch : "HQ";
    const locale = typeof b.locale === "string" && b.locale ? b.locale : "en-US";
    this.send(ctx, 204, undefined, {
      "Set-Cookie": [
        `ASP.NET_SessionId=${s.sessionId}; path=/; HttpOnly; SameSite=Lax`,
        `.ASPXAUTH=${s.authTicket}; path=/; HttpOnly`,
        `UserBranch=${encodeURIComponent(branch)}; path=/; HttpOnly`,
        `Locale=${encodeURIComponent(`Culture=${locale}&TimeZone=GMTE0000U`)}; path=/; HttpOnly`,
        `requestid=${randomBytes(16).toString("hex").toUpperCase()}; path=/; HttpOnly`,
      ],
    });
  }

  private logout(ctx: Ctx): void {
    const authz = ctx.req.headers.authorization ?? "";
    const m = /^bearer\s+(.+)$/i.exec(authz);
    if (m) {
      for (const g of this.grants) {
        if (g.accessTokens.has(m[1].trim())) {
          this.grants.delete(g);
          this.counters.logouts++;
        }
      }
      return this.send(ctx, 204);
    }
    const cookies = parseCookies(ctx.req.headers.cookie);
    const sid = cookies.get("ASP.NET_SessionId");
    const s = sid ? this.cookieSessions.get(sid) : undefined;
    if (s && s.authTicket === cookies.get(".ASPXAUTH")) {
      this.cookieSessions.delete(s.sessionId);
      this.counters.logouts++;
    }
    const expired = "expires=Mon, 01 Jan 1900 00:00:00 GMT";
    this.send(ctx, 204, undefined, {
      "Set-Cookie": [`.ASPXAUTH=; ${expired}; path=/; HttpOnly`, `ASP.NET_SessionId=; ${expired}; path=/; HttpOnly`],
    });
  }

  /** Returns normally when the request carries a live Bearer token or cookie session; throws 401 otherwise. */
  private authenticate(ctx: Ctx): void {
    const now = this.now();
    const authz = ctx.req.headers.authorization ?? "";
    const m = /^bearer\s+(.+)$/i.exec(authz);
    if (m) {
      const tok = m[1].trim();
      for (const g of this.grants) {
        const exp = g.accessTokens.get(tok);
        if (exp !== undefined) {
          if (exp > now && g.scopes.includes("api")) return;
          break;
        }
      }
      throw new HttpFail(401, ACU_MSG_NOT_LOGGED_IN);
    }
    const cookies = parseCookies(ctx.req.headers.cookie);
    const sid = cookies.get("ASP.NET_SessionId");
    const s = sid ? this.cookieSessions.get(sid) : undefined;
    // both the session cookie and the auth ticket are needed (reference §2.2: keep and return all cookies)
    if (s && s.authTicket === cookies.get(".ASPXAUTH")) {
      if (now - s.lastUsed > this.sessionIdleMs) {
        this.cookieSessions.delete(s.sessionId);
      } else {
        s.lastUsed = now;
        return;
      }
    }
    throw new HttpFail(401, ACU_MSG_NOT_LOGGED_IN);
  }

  // ----------------------------------------------------------------------------------------------------------------- entity API

  private async entityRoute(ctx: Ctx): Promise<void> {
    let segs: string[];
    try {
      segs = ctx.path.split("/").filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new HttpFail(400, "The request URI is invalid.");
    }
    const [, epName, epVer, entName, ...rest] = segs;
    if (!epName || !epVer || epName.toLowerCase() !== this.endpoint.name.toLowerCase() || !this.endpoint.versions.includes(epVer)) {
      throw new HttpFail(404, endpointNotFoundMessage(epName ?? "", epVer ?? ""));
    }
    if (!entName) throw new HttpFail(404, `No entity specified for the endpoint ${this.endpoint.name}/${epVer}.`);
    const entity = this.canonicalEntity(entName);
    if (!entity) throw new HttpFail(404, `The entity '${entName}' is not found in the endpoint ${this.endpoint.name}/${epVer}.`);

    this.authenticate(ctx);

    // licence limits (reference §2.3): concurrency and per-minute → 429, no Retry-After
    if (this.inFlight >= this.maxConcurrent) throw new HttpFail(429, ACU_MSG_CONCURRENCY_LIMIT);
    const now = this.now();
    this.minuteWindow = this.minuteWindow.filter((t) => now - t < 60_000);
    if (this.minuteWindow.length >= this.requestsPerMinute) throw new HttpFail(429, ACU_MSG_RATE_LIMIT);
    this.minuteWindow.push(now);

    this.inFlight++;
    try {
      if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
      const linkBase = `${this.vdir}/entity/${this.endpoint.name}/${epVer}/${entity}`;
      const method = ctx.entry.method;
      if (method === "GET") {
        if (rest.length === 0) return this.list(ctx, entity, linkBase);
        if (rest.length === 1 && rest[0] === "$adHocSchema") return this.adHocSchema(ctx, entity, linkBase);
        const rec = this.lookupFromUrl(entity, rest);
        if (!rec) throw new HttpFail(404, ACU_MSG_NO_ENTITY);
        const o = this.parseOpts(ctx, entity);
        return this.send(ctx, 200, this.serialize(entity, rec, o, linkBase));
      }
      if (method === "PUT") {
        if (rest.length !== 0) throw new HttpFail(405, `The requested resource does not support http method 'PUT'.`);
        return this.put(ctx, entity, linkBase);
      }
      if (method === "DELETE") {
        const rec = rest.length ? this.lookupFromUrl(entity, rest) : undefined;
        if (!rec) throw new HttpFail(404, ACU_MSG_NO_ENTITY);
        this.store(entity).delete(rec.id as string);
        return this.send(ctx, 204);
      }
      if (method === "POST") throw new HttpFail(404, `The action '${rest.join("/")}' is not supported by the simulator.`);
      return this.methodNotAllowed(ctx);
    } finally {
      this.inFlight--;
    }
  }

  private parseOpts(ctx: Ctx, entity: string): ParsedOpts {
    const expand = parsePaths(ctx.query.get("$expand")) ?? new Map();
    validateTree(expand, entity, "$expand");
    const select = parsePaths(ctx.query.get("$select"));
    if (select) validateTree(select, entity, "$select");
    // nested $expand (MainContact/Address) implies the parent
    return { expand, select };
  }

  private intParam(ctx: Ctx, name: string): number | undefined {
    const raw = ctx.query.get(name);
    if (raw === null) return undefined;
    if (!/^\d+$/.test(raw.trim()) || Number(raw) > 2_147_483_647) throw new HttpFail(400, `The value '${raw}' is not valid for ${name}.`);
    return Number(raw);
  }

  private list(ctx: Ctx, entity: string, linkBase: string): void {
    const o = this.parseOpts(ctx, entity);
    const top = this.intParam(ctx, "$top");
    const skip = this.intParam(ctx, "$skip") ?? 0;
    this.beforeList?.(entity, skip);
    const rawFilter = ctx.query.get("$filter");
    const filter = rawFilter ? new FilterParser(rawFilter, entity, this.offsetMin).parse() : undefined;
    let rows = this.sorted(entity);
    if (filter) rows = rows.filter((r) => filter.ev(r) === true);
    rows = rows.slice(skip, top === undefined ? undefined : skip + top);
    this.send(
      ctx,
      200,
      rows.map((r) => this.serialize(entity, r, o, linkBase)),
    );
  }

  private adHocSchema(ctx: Ctx, entity: string, linkBase: string): void {
    const schema = SCHEMAS.get(entity) as Schema;
    const out: Record<string, unknown> = { id: randomUUID(), rowNumber: 1, note: { value: null } };
    for (const [k, def] of schema) if (def.kind === "scalar") out[k] = {};
    out.custom = {};
    out._links = { self: linkBase };
    this.send(ctx, 200, out);
  }

  private put(ctx: Ctx, entity: string, linkBase: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(ctx.body.toString("utf8") || "null");
    } catch {
      throw new HttpFail(400, "The request is invalid.", httpError("The request is invalid.", { modelState: { entity: ["Invalid JSON."] } }));
    }
    if (!isObj(parsed)) throw new HttpFail(400, "The request is invalid.", httpError("The request is invalid.", { modelState: { entity: ["An entity object is required."] } }));
    const schema = SCHEMAS.get(entity) as Schema;
    const plain = this.unwrap(schema, parsed, "entity");
    const store = this.store(entity);
    let existing = typeof plain.id === "string" ? store.get(plain.id) : undefined;
    if (!existing && this.hasAllKeys(entity, plain)) existing = this.findByKeys(entity, ACU_ENTITY_KEYS[entity].map((k) => String(plain[k])));
    const ifMatch = String(ctx.req.headers["if-match"] ?? "").trim();
    const ifNoneMatch = String(ctx.req.headers["if-none-match"] ?? "").trim();
    if (ifMatch === "*" && !existing) throw new HttpFail(412, "The record does not exist. The operation has been canceled because of the If-Match header.");
    if (ifNoneMatch === "*" && existing) throw new HttpFail(412, "The record already exists. The operation has been canceled because of the If-None-Match header.");

    const inserting = !existing;
    const target: AcuRecord = existing ? clone(existing) : this.newRecord(entity, plain, true);
    delete plain.id;
    this.merge(schema, target, plain, "patch");

    // validation → 422 with field-level errors (reference §6)
    const fieldErrors = new Map<string, { value: unknown; error: string }>();
    if (inserting) {
      const auto = AUTO_NUMBERED[entity];
      for (const k of ACU_ENTITY_KEYS[entity]) {
        const v = target[k];
        if (v !== undefined && v !== null && String(v).trim() !== "") continue;
        if (k === auto) continue;
        fieldErrors.set(k, { value: v ?? null, error: `'${label(k)}' cannot be empty.` });
      }
    }
    for (const [field, refEntity] of REFERENCES[entity] ?? []) {
      if (!(field in plain)) continue;
      const v = target[field];
      if (v === undefined || v === null || v === "") continue;
      if (!this.findByKeys(refEntity, [String(v)])) fieldErrors.set(field, { value: v, error: `'${label(field)}' cannot be found in the system.` });
    }
    if (fieldErrors.size) {
      const out = this.serialize(entity, target, this.parseOpts(ctx, entity), linkBase);
      for (const [k, fe] of fieldErrors) out[k] = fe.value === null ? { error: fe.error } : { value: fe.value, error: fe.error };
      const detail = [...fieldErrors].map(([k, fe]) => `${label(k)}: ${fe.error}`).join("\r\n");
      out.error = `${inserting ? "Inserting" : "Updating"}  '${entity}' record raised at least one error. Please review the errors.\r\n${detail}`;
      return this.send(ctx, 422, out);
    }
    if (inserting) {
      const auto = AUTO_NUMBERED[entity];
      if (auto && (target[auto] === undefined || target[auto] === null || target[auto] === "")) target[auto] = this.nextNumber(entity, auto);
      target.rowNumber = this.nextRow(entity);
    }
    target.LastModifiedDateTime = this.stamp();
    store.set(target.id as string, target);
    this.send(ctx, 200, this.serialize(entity, target, this.parseOpts(ctx, entity), linkBase));
  }

  // ----------------------------------------------------------------------------------------------------------------- (de)serialization

  /** Value-wrapped request body → plain record (unknown fields ignored; non-wrapped values → 400). */
  private unwrap(schema: Schema | null, body: Record<string, unknown>, path: string): AcuRecord {
    const out: AcuRecord = {};
    const bad: (field: string, msg: string) => never = (field, msg) => {
      throw new HttpFail(400, "The request is invalid.", httpError("The request is invalid.", { modelState: { [`${path}.${field}`]: [msg] } }));
    };
    for (const [k, v] of Object.entries(body)) {
      if (k === "id") {
        if (typeof v === "string" && GUID_RE.test(v)) out.id = v.toLowerCase();
        else if (v !== null && v !== undefined) bad(k, `Error converting value to type 'System.Guid'.`);
        continue;
      }
      if (k === "delete") {
        if (v === true) out.delete = true;
        continue;
      }
      if (k === "note") {
        if (isObj(v)) out.note = v.value === undefined || v.value === null ? null : String(v.value);
        else if (typeof v === "string") out.note = v; // older endpoints serialized note as a plain string
        continue;
      }
      if (RESERVED.has(k)) continue;
      const def = schema ? schema.get(k) : undefined;
      if (schema && !def) continue; // unknown field on a known entity: ignored
      if (k === "LastModifiedDateTime") continue; // read-only, maintained by the server
      if (!def) {
        // schemaless detail row
        if (isObj(v) && "value" in v) out[k] = v.value;
        else if (isObj(v)) out[k] = this.unwrap(null, v, `${path}.${k}`);
        else if (v !== null && v !== undefined) bad(k, "Expected a value object like {\"value\": ...}.");
        continue;
      }
      if (def.kind === "scalar") {
        if (!isObj(v)) {
          if (v === null || v === undefined) continue;
          bad(k, `Error converting value ${JSON.stringify(v)} to type '${scalarTypeName(def.type)}'. Fields must be sent as {"value": ...}.`);
        }
        if (!("value" in v)) continue;
        const conv = convertScalar(def.type, v.value, this.offsetMin);
        if (!conv.ok) bad(k, `Error converting value ${JSON.stringify(v.value)} to type '${scalarTypeName(def.type)}'.`);
        out[k] = conv.value;
      } else if (def.kind === "object") {
        if (v === null) continue;
        if (!isObj(v)) bad(k, `Expected an object for '${k}'.`);
        out[k] = this.unwrap(SCHEMAS.get(def.schema) ?? null, v, `${path}.${k}`);
      } else {
        if (v === null) continue;
        if (!Array.isArray(v)) bad(k, `Expected an array for '${k}'.`);
        out[k] = v.map((row, i) => {
          if (!isObj(row)) return bad(`${k}[${i}]`, "Expected an object.");
          return this.unwrap(null, row, `${path}.${k}[${i}]`);
        });
      }
    }
    return out;
  }

  private serialize(schemaName: string | null, rec: AcuRecord, o: { expand: Tree; select: Tree | null }, linkBase?: string): Record<string, unknown> {
    const out: Record<string, unknown> = { id: rec.id, rowNumber: rec.rowNumber };
    if (linkBase !== undefined) out.note = { value: (rec.note as string | undefined | null) ?? "" };
    const schema = schemaName ? SCHEMAS.get(schemaName) : undefined;
    const keys = schema ? [...schema.keys()].filter((k) => k in rec) : Object.keys(rec).filter((k) => !RESERVED.has(k));
    for (const k of keys) {
      const v = rec[k];
      const def: FieldDef | undefined = schema
        ? schema.get(k)
        : Array.isArray(v)
          ? { kind: "array", item: "" }
          : isObj(v)
            ? { kind: "object", schema: "" }
            : { kind: "scalar", type: "S" };
      if (!def) continue;
      if (def.kind === "scalar") {
        if (o.select && !o.select.has(k)) continue;
        out[k] = v === null || v === undefined ? {} : { value: v };
        continue;
      }
      // linked/detail entities only when $expand-ed (reference §3)
      const ex = o.expand.get(k);
      if (!ex) continue;
      if (o.select && !o.select.has(k)) continue;
      const subSelect = o.select ? o.select.get(k) ?? null : null;
      const sub = { expand: ex, select: subSelect && subSelect.size > 0 ? subSelect : null };
      const childSchema = def.kind === "object" && def.schema ? def.schema : null;
      if (def.kind === "object") {
        if (isObj(v)) out[k] = this.serialize(childSchema, v, sub);
      } else if (Array.isArray(v)) {
        out[k] = v.filter(isObj).map((row) => this.serialize(null, row, sub));
      }
    }
    if (linkBase !== undefined) {
      if (o.expand.has("files")) out.files = [];
      out.custom = {};
      if (typeof rec.error === "string") out.error = rec.error;
      out._links = { self: `${linkBase}/${rec.id}`, "files:put": `${linkBase}/${rec.id}/files/{filename}` };
    } else {
      out.custom = {};
    }
    return out;
  }

  // ----------------------------------------------------------------------------------------------------------------- storage helpers

  private canonicalEntity(name: string): string | undefined {
    const l = name.toLowerCase();
    return Object.keys(ACU_ENTITY_KEYS).find((e) => e.toLowerCase() === l);
  }

  private store(entity: string): Map<string, AcuRecord> {
    let s = this.data.get(entity);
    if (!s) {
      s = new Map();
      this.data.set(entity, s);
    }
    return s;
  }

  private sorted(entity: string): AcuRecord[] {
    return [...this.store(entity).values()].sort((a, b) => (a.rowNumber as number) - (b.rowNumber as number));
  }

  private nextRow(entity: string): number {
    const n = (this.rowCounters.get(entity) ?? 0) + 1;
    this.rowCounters.set(entity, n);
    return n;
  }

  private nextNumber(entity: string, field: string): string {
    let max = 0;
    for (const r of this.store(entity).values()) {
      const n = Number(r[field]);
      if (Number.isInteger(n) && n > max) max = n;
    }
    return pad(max + 1, 6);
  }

  private newRecord(entity: string, plain: AcuRecord, deferRow = false): AcuRecord {
    const id = typeof plain.id === "string" ? plain.id : randomUUID();
    let rowNumber = 0;
    if (!deferRow) {
      if (typeof plain.rowNumber === "number") {
        rowNumber = plain.rowNumber;
        this.rowCounters.set(entity, Math.max(this.rowCounters.get(entity) ?? 0, rowNumber));
      } else {
        rowNumber = this.nextRow(entity);
      }
    }
    return { id, rowNumber };
  }

  private hasAllKeys(entity: string, rec: AcuRecord): boolean {
    return ACU_ENTITY_KEYS[entity].every((k) => rec[k] !== undefined && rec[k] !== null && rec[k] !== "");
  }

  private findByKeys(entity: string, keys: string[]): AcuRecord | undefined {
    const names = ACU_ENTITY_KEYS[entity];
    if (keys.length !== names.length) return undefined;
    const want = keys.map((k) => k.trim().toLowerCase());
    for (const r of this.store(entity).values()) {
      if (names.every((n, i) => String(r[n] ?? "").trim().toLowerCase() === want[i])) return r;
    }
    return undefined;
  }

  private lookup(entity: string, keys: string[]): AcuRecord | undefined {
    if (keys.length === 1 && GUID_RE.test(keys[0])) {
      const r = this.store(entity).get(keys[0].toLowerCase());
      if (r) return r;
    }
    return this.findByKeys(entity, keys);
  }

  private lookupFromUrl(entity: string, segs: string[]): AcuRecord | undefined {
    const n = ACU_ENTITY_KEYS[entity].length;
    if (segs.length === 1 && GUID_RE.test(segs[0])) return this.lookup(entity, segs);
    if (segs.length !== n) throw new HttpFail(400, `The number of key values in the URL (${segs.length}) does not match the number of key fields of '${entity}' (${n}: ${ACU_ENTITY_KEYS[entity].join(", ")}).`);
    return this.findByKeys(entity, segs);
  }

  /** Server time stamp: strictly increasing, ms precision, instance offset. */
  private stamp(): string {
    const ms = Math.max(this.now(), this.lastStampMs + 1);
    this.lastStampMs = ms;
    return formatIso(ms, this.offsetMin);
  }

  /** Validates/normalizes a plain record given to upsert(); throws Error on unknown fields or wrong types. */
  private checkPlain(schema: Schema | null, rec: AcuRecord, where: string): AcuRecord {
    if (!isObj(rec)) throw new Error(`AcumaticaSim: ${where} must be an object`);
    const out: AcuRecord = {};
    for (const [k, v] of Object.entries(rec)) {
      if (k === "id") {
        if (typeof v !== "string" || !GUID_RE.test(v)) throw new Error(`AcumaticaSim: ${where}.id must be a GUID string`);
        out.id = v.toLowerCase();
        continue;
      }
      if (k === "rowNumber" || k === "note" || k === "error") {
        out[k] = v;
        continue;
      }
      if (!schema) {
        out[k] = isObj(v) ? this.checkPlain(null, v, `${where}.${k}`) : Array.isArray(v) ? v.map((x, i) => (isObj(x) ? this.checkPlain(null, x, `${where}.${k}[${i}]`) : x)) : v instanceof Date ? formatIso(v.getTime(), this.offsetMin) : v;
        continue;
      }
      const def = schema.get(k);
      if (!def) throw new Error(`AcumaticaSim: '${k}' is not a field of ${where} (Default/24.200.001 schema)`);
      if (def.kind === "scalar") {
        const c = v instanceof Date ? { ok: true, value: formatIso(v.getTime(), this.offsetMin) } : convertScalar(def.type, v, this.offsetMin, true);
        if (!c.ok) throw new Error(`AcumaticaSim: ${where}.${k} must be ${scalarTypeName(def.type)}, got ${JSON.stringify(v)}`);
        out[k] = c.value;
      } else if (def.kind === "object") {
        if (v === null) out[k] = null;
        else if (!isObj(v)) throw new Error(`AcumaticaSim: ${where}.${k} must be an object`);
        else out[k] = this.checkPlain(SCHEMAS.get(def.schema) ?? null, v, `${where}.${k}`);
      } else {
        if (!Array.isArray(v)) throw new Error(`AcumaticaSim: ${where}.${k} must be an array`);
        out[k] = v.map((x, i) => {
          if (!isObj(x)) throw new Error(`AcumaticaSim: ${where}.${k}[${i}] must be an object`);
          return this.checkPlain(null, x, `${where}.${k}[${i}]`);
        });
      }
    }
    return out;
  }

  /** Merges plain `src` into `target`. Nested objects merge; arrays: "replace" (seeding) or "patch" (PUT: rows by id, `delete: true`, new rows appended). */
  private merge(schema: Schema | null, target: AcuRecord, src: AcuRecord, arrays: "replace" | "patch"): void {
    for (const [k, v] of Object.entries(src)) {
      if (k === "id" || k === "delete") continue;
      if (k === "rowNumber") {
        if (arrays === "replace" && typeof v === "number") target.rowNumber = v;
        continue;
      }
      const def = schema?.get(k);
      const isObject = def ? def.kind === "object" : isObj(v);
      const isArray = def ? def.kind === "array" : Array.isArray(v);
      if (isObject) {
        if (v === null) {
          target[k] = null;
          continue;
        }
        const cur = isObj(target[k]) ? (target[k] as AcuRecord) : { id: randomUUID(), rowNumber: 1 };
        this.merge(def && def.kind === "object" ? SCHEMAS.get(def.schema) ?? null : null, cur, v as AcuRecord, arrays);
        target[k] = cur;
      } else if (isArray) {
        const rows = (v as AcuRecord[]).filter(isObj);
        if (arrays === "replace") {
          target[k] = rows.map((r, i) => {
            const row: AcuRecord = { id: typeof r.id === "string" ? r.id : randomUUID(), rowNumber: i + 1 };
            this.merge(null, row, r, arrays);
            return row;
          });
        } else {
          const cur = Array.isArray(target[k]) ? [...(target[k] as AcuRecord[])] : [];
          for (const r of rows) {
            const idx = typeof r.id === "string" ? cur.findIndex((x) => x.id === r.id) : -1;
            if (r.delete === true) {
              if (idx >= 0) cur.splice(idx, 1);
              continue;
            }
            if (idx >= 0) this.merge(null, cur[idx], r, arrays);
            else {
              const row: AcuRecord = { id: randomUUID(), rowNumber: 0 };
              this.merge(null, row, r, arrays);
              cur.push(row);
            }
          }
          cur.forEach((row, i) => (row.rowNumber = i + 1));
          target[k] = cur;
        }
      } else {
        target[k] = v;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// module-private helpers (after the class for readability)
// ---------------------------------------------------------------------------------------------------------------------

function scalarTypeName(t: ScalarType): string {
  return { S: "System.String", D: "System.Decimal", B: "System.Boolean", T: "System.DateTime", I: "System.Int32", G: "System.Guid" }[t];
}

/** Converts a JSON value to the stored form of a scalar field. `strict` (seeding) disallows string→number/bool coercion. */
function convertScalar(t: ScalarType, v: unknown, offsetMin: number, strict = false): { ok: boolean; value: unknown } {
  if (v === null || v === undefined) return { ok: true, value: null };
  switch (t) {
    case "S":
      return typeof v === "string" ? { ok: true, value: v } : !strict && (typeof v === "number" || typeof v === "boolean") ? { ok: true, value: String(v) } : { ok: false, value: v };
    case "D":
    case "I": {
      const n = typeof v === "number" ? v : !strict && typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
      if (!Number.isFinite(n) || (t === "I" && !Number.isInteger(n))) return { ok: false, value: v };
      return { ok: true, value: n };
    }
    case "B":
      if (typeof v === "boolean") return { ok: true, value: v };
      if (!strict && (v === "true" || v === "false")) return { ok: true, value: v === "true" };
      return { ok: false, value: v };
    case "T": {
      if (typeof v !== "string") return { ok: false, value: v };
      if (strict) return Number.isNaN(Date.parse(v)) ? { ok: false, value: v } : { ok: true, value: v };
      const ms = parseDto(v, offsetMin) ?? (/^\d{4}-\d{2}-\d{2}$/.test(v) ? parseDto(`${v}T00:00:00`, offsetMin) : undefined);
      return ms === undefined ? { ok: false, value: v } : { ok: true, value: formatIso(ms, offsetMin) };
    }
    case "G":
      return typeof v === "string" && GUID_RE.test(v) ? { ok: true, value: v.toLowerCase() } : { ok: false, value: v };
  }
}
