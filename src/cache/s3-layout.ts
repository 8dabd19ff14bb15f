/**
 * @module Where the S3 store keeps each thing and in what form, relative to the bucket's prefix (the
 * disk store's folder layout): content by digest, manifests with their media type, tag records with
 * their pull counts, referrers records.
 */
import type { Manifest } from '../content.js';
import { type Digest, parseDigest } from '../digest.js';
import { referrersRecordName, type TagRecord } from './content-store.js';

export const contentKey = (kind: 'blobs' | 'manifests', digest: Digest | string) => {
  const { algorithm, hex } = typeof digest === 'string' ? parseDigest(digest) : digest;
  return `${kind}/${algorithm}/${hex.slice(0, 2)}/${hex}`;
};

export const tagKey = (registry: string, repository: string, tag: string) =>
  `tags/${registry}/${repository}/_tags/${tag}.json`;

/** Pull counts beside the tag record, not in it: the record is rewritten by revalidation alone. */
export const pullsKey = (registry: string, repository: string, tag: string) =>
  `tags/${registry}/${repository}/_pulls/${tag}.json`;

export function referrersKey(
  registry: string,
  repository: string,
  subject: string,
  artifactType: string | null,
): string {
  return `referrers/${registry}/${repository}/_referrers/${referrersRecordName(subject, artifactType)}`;
}

/** The registry, repository and tag of a tag record's key (or of its pull counts'); null for others. */
export function parseTagKey(
  key: string,
): { registry: string; repository: string; tag: string; kind: '_tags' | '_pulls' } | null {
  const parts = key.split('/');
  const name = parts.at(-1)!;
  const kind = parts.at(-2);
  if (parts[0] !== 'tags' || parts.length < 5 || !name.endsWith('.json')) return null;
  if (kind !== '_tags' && kind !== '_pulls') return null;
  return {
    registry: parts[1]!,
    repository: parts.slice(2, -2).join('/'),
    tag: name.slice(0, -'.json'.length),
    kind,
  };
}

/** The kind and digest of a content key; null for any other key. */
export function parseContentKey(key: string): { kind: 'blob' | 'manifest'; digest: string } | null {
  const match = /^(blobs|manifests)\/(sha256|sha512)\/[0-9a-f]{2}\/([0-9a-f]{64,128})$/.exec(key);
  if (!match) return null;
  return { kind: match[1] === 'blobs' ? 'blob' : 'manifest', digest: `${match[2]}:${match[3]}` };
}

/** A manifest object's bytes: `"<media type>\n"` + the manifest, as the disk store keeps them. */
export function manifestObject(manifest: Manifest): Buffer {
  if (/[\r\n]/.test(manifest.mediaType)) throw new Error('media type with a line break');
  return Buffer.concat([Buffer.from(`${manifest.mediaType}\n`), manifest.bytes]);
}

export function manifestOf(data: Buffer, digest: string): Manifest {
  const newline = data.indexOf(0x0a);
  const bytes = data.subarray(newline + 1);
  return { mediaType: data.subarray(0, newline).toString('utf8'), digest, size: bytes.length, bytes };
}

/** A JSON record as `valid` accepts it; null for an unreadable one (the next fetch rewrites it). */
export function recordOf<T>(data: Buffer | null, valid: (record: T) => boolean): T | null {
  if (data === null) return null;
  try {
    const record = JSON.parse(data.toString('utf8')) as T;
    return record !== null && typeof record === 'object' && valid(record) ? record : null;
  } catch {
    return null;
  }
}

export const validTagRecord = (record: TagRecord): boolean => {
  try {
    parseDigest(record.digest);
    return true;
  } catch {
    return false;
  }
};
