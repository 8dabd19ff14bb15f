/** @module What a registry serves, as both the cache and the upstream describe it (the same face for both). */
import type { Readable } from 'node:stream';

/** Manifest media types a pull-through cache understands; anything else is passed on as bytes. */
export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** Media types of a manifest that lists other manifests (one per platform). */
export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);

/** A manifest's or an index's reference to other content, as its JSON holds it. */
export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

/** An index entry's platform as `os/architecture[/variant]` (empty when it names none). */
export const platformOf = (d: Pick<Descriptor, 'platform'>) =>
  [d.platform?.os, d.platform?.architecture, d.platform?.variant].filter(Boolean).join('/');

/** The OCI spec asks registries to accept manifests of at least 4 MiB; more is not a manifest. */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

export interface ManifestHead {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Manifest extends ManifestHead {
  bytes: Buffer;
}

/** A blob's bytes from some offset on, as a source of them (an upstream, a peer) sends them. */
export interface BlobPart {
  /** Total blob size, when the source says (Content-Length of a 200, or the Content-Range total). */
  total: number | null;
  /** Offset of the first byte of `stream` in the blob (0 when the source ignored the Range). */
  startsAt: number;
  stream: Readable;
}

/** An inclusive byte range, as in HTTP's `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Headers an upstream sends that a client should see too (rate limits, retry hints). */
export const PASSED_ON_HEADERS = [
  'ratelimit-limit',
  'ratelimit-remaining',
  'docker-ratelimit-source',
  'retry-after',
] as const;
