/** @module What the pull-through layer answers the HTTP layer with. */
import type { ChunkSource } from '../chunk-source.js';
import type { ByteRange, ManifestHead } from '../content.js';

/** What the pull layer reports as it works (metrics). */
export interface PullEvents {
  /** Bytes of blobs and manifests received from an upstream. */
  fetched(registry: string, bytes: number): void;
}

/** How a request was served, for logs and metrics. */
export type CacheOutcome = 'hit' | 'miss' | 'revalidated' | 'stale' | 'pass';

export interface ManifestAnswer extends ManifestHead {
  /** The manifest bytes; null for HEAD. */
  bytes: Buffer | null;
  passed: Record<string, string>;
  cache: CacheOutcome;
}

export interface BlobAnswer {
  digest: string;
  /** Full blob size. */
  size: number;
  /** The part sent (206), or null for all of it. */
  range: ByteRange | null;
  /** Null for HEAD, and for a redirect. */
  source: ChunkSource | null;
  /** Where the client fetches the cached bytes itself (a presigned bucket URL): answered with 307. */
  redirect?: string;
  passed: Record<string, string>;
  cache: CacheOutcome;
}

export interface ListingAnswer {
  contentType: string;
  body: Buffer;
  /** The upstream's `Link: <...>; rel="next"` target, for the HTTP layer to rewrite. */
  next: URLSearchParams | null;
  headers: Record<string, string>;
  passed: Record<string, string>;
}

/** A referrers list: always one OCI image index, every upstream page in it (so `next` is null). */
export interface ReferrersAnswer extends ListingAnswer {
  cache: CacheOutcome;
}
