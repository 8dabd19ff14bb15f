/** @module Blobs by digest, passed through from the upstream (the disk cache slots in here). */
import { formatRangeHeader, parseContentRange, type RangeSpec } from '../byte-range.js';
import { RegistryError } from '../errors.js';
import type { Route } from '../routing.js';
import type { Upstreams } from '../upstream/upstreams.js';
import type { BlobAnswer } from './types.js';

export interface BlobOptions {
  head: boolean;
  range: RangeSpec | null;
}

export function createBlobs(upstreams: Upstreams) {
  return {
    async blob(route: Route, digest: string, options: BlobOptions): Promise<BlobAnswer> {
      const remote = upstreams.get(route.registry);
      const response = await remote.getBlob(route.repository, digest, {
        head: options.head,
        ...(options.range ? { range: formatRangeHeader(options.range) } : {}),
      });
      if (options.head) response.body.resume();
      const length = Number(response.headers['content-length']);
      if (response.status === 206) {
        const contentRange = parseContentRange(String(response.headers['content-range'] ?? ''));
        if (!contentRange || contentRange.size === null) {
          response.body.destroy();
          throw new RegistryError(
            'UNAVAILABLE',
            502,
            `upstream registry ${route.registry} sent an invalid range`,
          );
        }
        return {
          digest,
          size: contentRange.size,
          range: contentRange.range,
          stream: options.head ? null : response.body,
          passed: response.passed,
          cache: 'pass',
        };
      }
      if (!Number.isSafeInteger(length)) {
        response.body.destroy();
        throw new RegistryError(
          'UNAVAILABLE',
          502,
          `upstream registry ${route.registry} sent no blob length`,
        );
      }
      return {
        digest,
        size: length,
        range: null,
        stream: options.head ? null : response.body,
        passed: response.passed,
        cache: 'pass',
      };
    },
  };
}
