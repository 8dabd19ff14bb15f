/**
 * @module Store reads on the pull path. The store throws a 503 storage error for anything but a
 * missing file; this logs it as the error it is (an operator must look at the disk) on its way to
 * the client, instead of letting it pass for a miss.
 */
import type { Logger } from 'pino';
import { RegistryError } from '../errors.js';

export function createLocalRead(logger: Logger) {
  return async function localRead<T>(about: Record<string, string>, work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      if (error instanceof RegistryError && error.status >= 500) {
        const cause = error.cause as NodeJS.ErrnoException | undefined;
        logger.error(
          { ...about, error: error.message, code: cause?.code, path: cause?.path },
          'cache storage error',
        );
      }
      throw error;
    }
  };
}
