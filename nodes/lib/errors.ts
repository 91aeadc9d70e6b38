/**
 * Typed errors for every library client. Each carries a stable `code` (machine-readable, used as the
 * i18n key suffix in node status) and a `retryable` flag that says whether repeating the *same*
 * request could succeed without a human changing something.
 *
 * Error text never contains a secret, an access token or a session cookie: messages are built from
 * status codes, vendor error codes and vendor messages only (vendor stack traces are dropped).
 */

/** Plain, JSON-safe description of an error for `msg.error`-style properties. */
export interface ErrorDetails {
  name: string;
  code: string;
  message: string;
  retryable: boolean;
  status?: number;
  vendorCode?: string | number;
  recordId?: string;
  outcomeUnknown?: boolean;
  moreInfo?: string;
}

/** Base class: `code` is stable, `retryable` says whether the same request may be repeated. */
export class MlcError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  /** HTTP status of the response that caused the error, when there was one. */
  readonly status?: number;
  /** Vendor's own error code (Twilio numeric code, Acumatica exception type, OAuth `error`). */
  readonly vendorCode?: string | number;
  /** ERP record the error concerns, when known (so a malformed record can be found). */
  recordId?: string;

  constructor(message: string, opts: { code: string; retryable?: boolean; status?: number; vendorCode?: string | number; recordId?: string; cause?: unknown }) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.code = opts.code;
    this.retryable = opts.retryable ?? false;
    this.status = opts.status;
    this.vendorCode = opts.vendorCode;
    this.recordId = opts.recordId;
  }

  toDetails(): ErrorDetails {
    const d: ErrorDetails = { name: this.name, code: this.code, message: this.message, retryable: this.retryable };
    if (this.status !== undefined) d.status = this.status;
    if (this.vendorCode !== undefined) d.vendorCode = this.vendorCode;
    if (this.recordId !== undefined) d.recordId = this.recordId;
    return d;
  }
}

/** A non-2xx HTTP answer that no more specific error describes. Retryable for 502/503/504 only. */
export class HttpError extends MlcError {
  constructor(message: string, status: number, opts: { code?: string; vendorCode?: string | number; retryable?: boolean } = {}) {
    super(message, { code: opts.code ?? `http_${status}`, status, vendorCode: opts.vendorCode, retryable: opts.retryable ?? [502, 503, 504].includes(status) });
  }
}

/** Credentials refused, session expired and not renewable, or permission missing (401/403, OAuth invalid_grant). */
export class AuthError extends MlcError {
  constructor(message: string, opts: { status?: number; vendorCode?: string | number; code?: string } = {}) {
    super(message, { code: opts.code ?? "auth_failed", status: opts.status, vendorCode: opts.vendorCode, retryable: false });
  }
}

/** The vendor refused the request for rate or concurrency reasons and did not process it (HTTP 429, Twilio 20429). */
export class RateLimitedError extends MlcError {
  /** Delay the vendor asked for (from `Retry-After`), in ms, when it sent one. */
  readonly retryAfterMs?: number;
  constructor(message: string, opts: { status?: number; vendorCode?: string | number; retryAfterMs?: number } = {}) {
    super(message, { code: "rate_limited", status: opts.status ?? 429, vendorCode: opts.vendorCode, retryable: true });
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/**
 * No answer in time, or the connection broke. `outcomeUnknown` is true when the request had already
 * been sent: the server may have acted on it, so a non-idempotent request (a POST that sends an SMS)
 * must not be repeated blindly; it must be reconciled instead.
 */
export class TimeoutError extends MlcError {
  readonly outcomeUnknown: boolean;
  constructor(message: string, opts: { outcomeUnknown: boolean; code?: string; cause?: unknown }) {
    super(message, { code: opts.code ?? "timeout", retryable: !opts.outcomeUnknown, cause: opts.cause });
    this.outcomeUnknown = opts.outcomeUnknown;
  }
  override toDetails(): ErrorDetails {
    return { ...super.toDetails(), outcomeUnknown: this.outcomeUnknown };
  }
}

/** Twilio REST error with Twilio's numeric code (https://www.twilio.com/docs/api/errors). */
export class TwilioError extends MlcError {
  readonly twilioCode?: number;
  readonly moreInfo?: string;
  constructor(message: string, opts: { status: number; twilioCode?: number; moreInfo?: string }) {
    const code = opts.twilioCode !== undefined ? `twilio_${opts.twilioCode}` : `http_${opts.status}`;
    super(message, { code, status: opts.status, vendorCode: opts.twilioCode, retryable: opts.status === 429 || opts.twilioCode === 20429 });
    this.twilioCode = opts.twilioCode;
    this.moreInfo = opts.moreInfo;
  }
  /** 21610: the recipient replied STOP; never retry this recipient. */
  get optedOut(): boolean {
    return this.twilioCode === 21610;
  }
  override toDetails(): ErrorDetails {
    const d = super.toDetails();
    if (this.moreInfo) d.moreInfo = this.moreInfo;
    return d;
  }
}

/** An ERP answered with an error of its own (validation 422, not found, bad filter, endpoint mismatch). */
export class ErpError extends MlcError {
  constructor(message: string, opts: { code?: string; status?: number; vendorCode?: string | number; recordId?: string; retryable?: boolean }) {
    super(message, { code: opts.code ?? "erp_error", status: opts.status, vendorCode: opts.vendorCode, recordId: opts.recordId, retryable: opts.retryable ?? false });
  }
}

/** Input or configuration that can never work as given (bad phone number, unknown context store, missing field). */
export class ValidationError extends MlcError {
  constructor(message: string, opts: { code?: string; recordId?: string } = {}) {
    super(message, { code: opts.code ?? "invalid_input", recordId: opts.recordId, retryable: false });
  }
}

/** Turn anything thrown into JSON-safe details without stack traces or secrets. */
export function errorDetails(err: unknown): ErrorDetails {
  if (err instanceof MlcError) return err.toDetails();
  if (err instanceof Error) return { name: err.name, code: "internal", message: err.message, retryable: false };
  return { name: "Error", code: "internal", message: String(err), retryable: false };
}
