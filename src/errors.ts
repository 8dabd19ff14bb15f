/** @module The one error type of pullcache: a registry error with its OCI code and HTTP status. */

/** Error codes of the OCI distribution spec, plus the few a proxy needs (UNAVAILABLE, TIMEOUT). */
export type OciErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'RANGE_INVALID'
  | 'UNAVAILABLE'
  | 'TIMEOUT'
  | 'UNKNOWN';

export interface OciErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/**
 * Thrown by domain code; only the HTTP layer's error handler turns it into a response.
 * `headers` carries what a client needs to act on the error (Retry-After, WWW-Authenticate).
 */
export class RegistryError extends Error {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;
  /** Upstream error entries passed through verbatim (an upstream's own OCI error body). */
  readonly upstreamErrors: OciErrorEntry[] | undefined;

  constructor(
    code: OciErrorCode,
    status: number,
    message: string,
    options: {
      detail?: unknown;
      headers?: Record<string, string>;
      upstreamErrors?: OciErrorEntry[];
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
    this.upstreamErrors = options.upstreamErrors;
  }

  /** The `{"errors":[...]}` body the distribution spec defines. */
  toBody(): { errors: OciErrorEntry[] } {
    if (this.upstreamErrors && this.upstreamErrors.length > 0) return { errors: this.upstreamErrors };
    const entry: OciErrorEntry = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

export const nameInvalid = (message: string, detail?: unknown) =>
  new RegistryError('NAME_INVALID', 400, message, { detail });
export const tagInvalid = (message: string, detail?: unknown) =>
  new RegistryError('TAG_INVALID', 400, message, { detail });
export const digestInvalid = (message: string, detail?: unknown) =>
  new RegistryError('DIGEST_INVALID', 400, message, { detail });
export const unsupported = (message: string, detail?: unknown) =>
  new RegistryError('UNSUPPORTED', 405, message, { detail });
export const denied = (message: string, detail?: unknown) =>
  new RegistryError('DENIED', 403, message, { detail });
