/**
 * @module What a failed pull means to its client. Errors leave the pull layer as RegistryErrors: a
 * plain error from the transfer (a broken or too slow body, bytes that do not verify) is the
 * upstream's failure, 502 with a message, never an "internal error".
 */
import { VerificationError } from '../cache/temp-file.js';
import { RegistryError, storageUnavailable, upstreamInvalid, upstreamUnavailable } from '../errors.js';

/** A mistake in our own code (a bug), which should stay a logged 500 rather than blame the upstream. */
const BUGS = [TypeError, RangeError, ReferenceError, SyntaxError];

export function pullFailure(registry: string, error: unknown): unknown {
  if (error instanceof RegistryError || !(error instanceof Error)) return error;
  if (BUGS.some((kind) => error.constructor === kind)) return error;
  if (error instanceof VerificationError) {
    return upstreamInvalid(registry, `sent a blob that does not verify: ${error.message}`, 'DIGEST_INVALID', {
      reason: 'VerificationError',
      cause: error,
    });
  }
  const { code, syscall, path } = error as NodeJS.ErrnoException;
  // File system errors carry the path they were about; socket errors do not.
  if (syscall !== undefined && path !== undefined) return storageUnavailable(`${syscall} failed`, error);
  return upstreamUnavailable(
    registry,
    `transfer from upstream registry ${registry} failed: ${error.message.replace(/\s+/g, ' ').slice(0, 200)}`,
    { reason: code ?? error.name, cause: error },
  );
}

/** `work` with its failures made RegistryErrors for `registry`. */
export async function mapPullFailure<T>(registry: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw pullFailure(registry, error);
  }
}
