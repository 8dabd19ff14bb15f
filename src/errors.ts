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

// --- factories: every error a client can get is built here, so status and code stay consistent ---

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
export const rangeNotSatisfiable = (size: number) =>
  new RegistryError('RANGE_INVALID', 416, 'requested range not satisfiable', {
    detail: { size },
    headers: { 'content-range': `bytes */${size}` },
  });
export const unauthorized = (message: string, headers?: Record<string, string>, detail?: unknown) =>
  new RegistryError('UNAUTHORIZED', 401, message, { detail, ...(headers ? { headers } : {}) });
/** A path that is not part of the pull API (404 with the spec's UNSUPPORTED code). */
export const notFound = (message = 'not found: this path is not part of the registry API') =>
  new RegistryError('UNSUPPORTED', 404, message);
export const badRequest = (message: string, detail?: unknown) =>
  new RegistryError('UNSUPPORTED', 400, message, { detail });

interface UpstreamDetail {
  /** Why, in a word or code (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT, ...): metrics and logs. */
  reason?: string;
  cause?: unknown;
  headers?: Record<string, string>;
  detail?: Record<string, unknown>;
}

const upstreamOptions = (registry: string, extra: UpstreamDetail) => ({
  detail: { registry, ...(extra.reason !== undefined ? { reason: extra.reason } : {}), ...extra.detail },
  ...(extra.cause !== undefined ? { cause: extra.cause } : {}),
  ...(extra.headers ? { headers: extra.headers } : {}),
});

/** The upstream (or its token endpoint) could not be reached or broke off: 502 UNAVAILABLE. */
export const upstreamUnavailable = (registry: string, message: string, extra: UpstreamDetail = {}) =>
  new RegistryError('UNAVAILABLE', 502, message, upstreamOptions(registry, extra));

/** The upstream (or its token endpoint) did not answer in time: 504 TIMEOUT. */
export const upstreamTimeout = (
  registry: string,
  message = `upstream registry ${registry} did not answer in time`,
  extra: UpstreamDetail = {},
) => new RegistryError('TIMEOUT', 504, message, upstreamOptions(registry, extra));

/** The upstream answered, but with something unusable (wrong digest, bad headers, too large): 502. */
export const upstreamInvalid = (
  registry: string,
  what: string,
  code: OciErrorCode = 'MANIFEST_INVALID',
  extra: UpstreamDetail = {},
) => new RegistryError(code, 502, `upstream registry ${registry} ${what}`, upstreamOptions(registry, extra));

/** The upstream said the content does not exist: 404 with the endpoint's own code. */
export const upstreamNotFound = (registry: string, code: OciErrorCode, extra: UpstreamDetail = {}) =>
  new RegistryError(
    code,
    404,
    `not found at upstream registry ${registry}`,
    upstreamOptions(registry, extra),
  );

/** The upstream's own error answer (401, 403, 429, 5xx, ...): its status, and its OCI error body if it sent one. */
export const upstreamAnswered = (
  registry: string,
  status: number,
  code: OciErrorCode,
  extra: { headers?: Record<string, string>; upstreamErrors?: OciErrorEntry[] } = {},
) =>
  new RegistryError(
    code,
    status,
    status === 404
      ? `not found at upstream registry ${registry}`
      : `upstream registry ${registry} answered ${status}`,
    {
      detail: { registry, status },
      ...(extra.headers ? { headers: extra.headers } : {}),
      ...(extra.upstreamErrors && extra.upstreamErrors.length > 0
        ? { upstreamErrors: extra.upstreamErrors }
        : {}),
    },
  );

/** Reasons of the refusals pullcache makes for an upstream without asking it. */
const OWN_REFUSALS = { rateLimited: 'RATE_LIMIT_SPENT', coolingDown: 'COOLING_DOWN' } as const;

/**
 * The upstream's pull limit is spent (it answered 429, or said nothing is left): 429 TOOMANYREQUESTS
 * with the Retry-After its answer gave or its window implies, sent without asking it again.
 * `headers` are its last `ratelimit-*` headers, passed on.
 */
export const upstreamRateLimited = (
  registry: string,
  retryAfterSeconds: number,
  headers: Record<string, string> = {},
) =>
  new RegistryError(
    'TOOMANYREQUESTS',
    429,
    `the pull limit of upstream registry ${registry} is spent: it is not asked again for ${retryAfterSeconds}s`,
    upstreamOptions(registry, {
      reason: OWN_REFUSALS.rateLimited,
      headers: { ...headers, 'retry-after': String(retryAfterSeconds) },
      detail: { retryAfterSeconds },
    }),
  );

/**
 * The upstream stopped answering (connection failures, timeouts): 503 UNAVAILABLE at once, with
 * Retry-After for the rest of its cool-down, so the client falls back to its next host.
 */
export const upstreamCoolingDown = (registry: string, retryAfterSeconds: number) =>
  new RegistryError(
    'UNAVAILABLE',
    503,
    `upstream registry ${registry} is not answering: it is not asked again for ${retryAfterSeconds}s`,
    upstreamOptions(registry, {
      reason: OWN_REFUSALS.coolingDown,
      headers: { 'retry-after': String(retryAfterSeconds) },
      detail: { retryAfterSeconds },
    }),
  );

/** Whether pullcache refused on the upstream's behalf, without asking it (already logged once, when it began). */
export function refusedWithoutAsking(error: RegistryError): boolean {
  const reason = (error.detail as { reason?: unknown } | undefined)?.reason;
  return reason === OWN_REFUSALS.rateLimited || reason === OWN_REFUSALS.coolingDown;
}

/**
 * The cache's storage failed (EIO, EACCES, an object store that is down, ...) on content that should
 * be there: 503, never a silent miss. `detail` names the store when there is more than a disk.
 */
export const storageUnavailable = (what: string, cause?: unknown, detail?: Record<string, unknown>) =>
  new RegistryError('UNAVAILABLE', 503, `cache storage error: ${what}`, {
    detail: { reason: (cause as { code?: string } | undefined)?.code ?? 'unknown', ...detail },
    ...(cause !== undefined ? { cause } : {}),
  });

/**
 * A peer request this replica will not serve now: its download of the blob is fed by the asking peer
 * itself (the two disagree on the owner while the member list changes). 503, so the asker goes on to
 * its next source at once instead of both waiting on each other.
 */
export const peerConflict = (message: string, detail?: Record<string, unknown>) =>
  new RegistryError('UNAVAILABLE', 503, message, { detail });

/** A failure nobody turned into a RegistryError: on the pull path it is the upstream side's fault. */
export const internalError = (detail?: unknown) =>
  new RegistryError('UNKNOWN', 500, 'internal error', { detail });
