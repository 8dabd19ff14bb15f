/** @module Transport failures (no answer at all) from an upstream or its token endpoint, as RegistryErrors. */
import { RegistryError, upstreamTimeout, upstreamUnavailable } from '../errors.js';
import { ADDRESS_FORBIDDEN, type AddressForbiddenError } from './address-guard.js';

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
]);

/**
 * A failure to talk to the upstream at all: 504 for timeouts, 502 otherwise; never with credentials.
 * `what` names the party (`upstream registry docker.io`, `token endpoint of docker.io`).
 */
export function transportError(
  registry: string,
  error: unknown,
  what = `upstream registry ${registry}`,
): RegistryError {
  if (error instanceof RegistryError) return error;
  const code = (error as { code?: string }).code ?? (error as Error).name;
  if (code === ADDRESS_FORBIDDEN) {
    const { host, address } = error as AddressForbiddenError;
    const at = host === address ? host : `${host} (${address})`;
    return upstreamUnavailable(
      registry,
      `refused to connect to ${at} for ${what}: a link-local or cloud metadata address`,
      { reason: 'ADDRESS_FORBIDDEN', cause: error, detail: { host, address } },
    );
  }
  if (TIMEOUT_CODES.has(code)) {
    return upstreamTimeout(registry, `${what} did not answer in time`, { reason: code, cause: error });
  }
  if ((error as Error).name === 'HTTPParserError') {
    // It answered, but not in HTTP (a header with a line break, a bad status line): not "unreachable".
    return upstreamUnavailable(registry, `${what} sent a response that is not valid HTTP`, {
      reason: (error as { code?: string }).code ?? 'HTTPParserError',
      cause: error,
      detail: { parser: (error as Error).message.slice(0, 200) },
    });
  }
  if ((error as Error).name === 'AbortError' || code === 'UND_ERR_ABORTED') {
    return upstreamUnavailable(registry, `request to ${what} was aborted`, { reason: code, cause: error });
  }
  return upstreamUnavailable(registry, `${what} is unreachable`, { reason: code ?? 'unknown', cause: error });
}

// Reasons that mean nobody answered: no connection (refused, unreachable, no address) or no answer in time.
const NO_ANSWER_REASONS = new Set([
  ...TIMEOUT_CODES,
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
// Reasons that say nothing about the upstream: our own refusal to connect, or the request given up.
const NO_VERDICT_REASONS = new Set(['ADDRESS_FORBIDDEN', 'UND_ERR_ABORTED', 'ABORT_ERR', 'AbortError']);

/**
 * What a failed request says about its upstream's health: `none` (nobody answered: a connection
 * failure or a timeout), `unknown` (aborted, or refused by us before connecting), or `answered`
 * (it said something, if only a refusal or garbage).
 */
export function answerOf(error: unknown): 'none' | 'unknown' | 'answered' {
  if (!(error instanceof RegistryError)) return 'unknown';
  if ((error.cause as Error | undefined)?.name === 'AbortError') return 'unknown'; // whatever its code
  const reason = (error.detail as { reason?: unknown } | undefined)?.reason;
  if (typeof reason !== 'string') return 'answered';
  if (NO_ANSWER_REASONS.has(reason)) return 'none';
  return NO_VERDICT_REASONS.has(reason) ? 'unknown' : 'answered';
}
