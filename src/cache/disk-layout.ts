/**
 * @module Where the disk store keeps each thing under `storage.path`, and the file operations its
 * content side (disk-store.ts) and inventory side (disk-inventory.ts) share:
 *
 *   blobs/sha256/ab/abcdef…          blob bytes
 *   manifests/sha256/ab/abcdef…      "<media type>\n" + manifest bytes
 *   tags/<registry>/<repository>/_tags/<tag>.json   { digest, mediaType, size, fetchedAt }
 *   tags/<registry>/<repository>/_pulls/<tag>.json  { pulls, lastPulledAt }
 *   referrers/<registry>/<repository>/_referrers/<alg>-<hex>[-<sha256 of artifactType>].json
 *                                    { manifests, source, fetchedAt }
 *   .removals                        touched by `rm`/`prune`: other processes re-check their index
 *
 * `_tags`, `_pulls` and `_referrers` cannot be repository path components (those start with
 * [a-z0-9]), so record folders never collide with nested repositories. A referrers record's name
 * holds only the subject digest's parts and a hash of the artifactType filter, never the filter
 * itself. Pull counts live apart from the tag record so that the counter never races a
 * revalidation rewriting the record, and neither has to read the other first.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '../content.js';
import { DIGEST_ALGORITHMS, type Digest, parseDigest } from '../digest.js';
import { storageUnavailable } from '../errors.js';
import { referrersRecordName, type TagRecord } from './content-store.js';
import type { TagPulls } from './inventory-store.js';
import { tempName } from './temp-name.js';

export type ContentKind = 'blob' | 'manifest';

export interface DiskLayout {
  readonly root: string;
  contentPath(kind: ContentKind, digest: Digest): string;
  tagPath(registry: string, repository: string, tag: string): string;
  tagPullsPath(registry: string, repository: string, tag: string): string;
  referrersPath(registry: string, repository: string, subject: string, artifactType: string | null): string;
  /** The file `rm` and `prune` touch after removing content (see disk-inventory.ts). */
  readonly removalsMark: string;
}

export function diskLayout(root: string): DiskLayout {
  return {
    root,
    contentPath: (kind, digest) =>
      join(
        root,
        kind === 'blob' ? 'blobs' : 'manifests',
        digest.algorithm,
        digest.hex.slice(0, 2),
        digest.hex,
      ),
    tagPath: (registry, repository, tag) => join(root, 'tags', registry, repository, '_tags', `${tag}.json`),
    tagPullsPath: (registry, repository, tag) =>
      join(root, 'tags', registry, repository, '_pulls', `${tag}.json`),
    referrersPath: (registry, repository, subject, artifactType) =>
      join(root, 'referrers', registry, repository, '_referrers', referrersRecordName(subject, artifactType)),
    removalsMark: join(root, '.removals'),
  };
}

/** The index key of a blob or manifest (`blob:sha256:…`, `manifest:sha256:…`). */
export const contentKey = (kind: ContentKind, digest: string) => `${kind}:${digest}`;

/** The kind and digest of an index key. */
export function parseContentKey(key: string): { kind: ContentKind; digest: Digest } {
  const colon = key.indexOf(':');
  return {
    kind: key.slice(0, colon) === 'blob' ? 'blob' : 'manifest',
    digest: parseDigest(key.slice(colon + 1)),
  };
}

/** A committed content file found on disk (temp files and stray names are not). */
export interface ContentFileFound {
  kind: ContentKind;
  digest: string;
  path: string;
  size: number;
  mtime: number;
}

/** Every committed blob and manifest file; `onOther` sees every other file in those folders. */
export async function* contentFiles(
  layout: DiskLayout,
  onOther?: (path: string, name: string, mtime: number) => Promise<void>,
): AsyncGenerator<ContentFileFound> {
  for (const kind of ['blob', 'manifest'] as const) {
    for (const [algorithm, hexLength] of Object.entries(DIGEST_ALGORITHMS)) {
      for await (const file of walk(
        join(layout.root, kind === 'blob' ? 'blobs' : 'manifests', algorithm),
        1,
      )) {
        const name = file.path.slice(file.path.lastIndexOf('/') + 1);
        if (name.length !== hexLength || !/^[a-f0-9]+$/.test(name)) {
          await onOther?.(file.path, name, file.mtime);
          continue;
        }
        yield { kind, digest: `${algorithm}:${name}`, path: file.path, size: file.size, mtime: file.mtime };
      }
    }
  }
}

/** A manifest file's media type and bytes; null when it is not there. */
export async function readManifestFile(layout: DiskLayout, digest: string): Promise<Manifest | null> {
  const data = await readFile(layout.contentPath('manifest', parseDigest(digest))).catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw readFailure(`manifest ${digest}`, error);
  });
  if (!data) return null;
  const newline = data.indexOf(0x0a);
  const bytes = data.subarray(newline + 1);
  return { mediaType: data.subarray(0, newline).toString('utf8'), digest, size: bytes.length, bytes };
}

/** A tag record; null when missing or unreadable (the next fetch rewrites it). Other errors throw. */
export async function readTagRecord(path: string): Promise<TagRecord | null> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw error;
  });
  if (text === null) return null;
  try {
    const record = JSON.parse(text) as TagRecord;
    parseDigest(record.digest);
    return record;
  } catch {
    return null;
  }
}

/** A tag's pull counts; null when none were written (or the file is unreadable). */
export async function readPulls(path: string): Promise<TagPulls | null> {
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw error;
  });
  if (text === null) return null;
  try {
    const pulls = JSON.parse(text) as TagPulls;
    return Number.isSafeInteger(pulls.pulls) && Number.isFinite(pulls.lastPulledAt) ? pulls : null;
  } catch {
    return null;
  }
}

/** Writes a small record through a temp file and a rename: readers see the old or the new one. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf('/'));
  await mkdir(dir, { recursive: true });
  const temp = join(dir, tempName('tag'));
  try {
    await writeFile(temp, text);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Files below `dir`, up to `depth` folders down; a missing folder yields nothing. */
export async function* walk(
  dir: string,
  depth: number,
): AsyncGenerator<{ path: string; size: number; mtime: number }> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (depth > 0) yield* walk(path, depth - 1);
    } else if (entry.isFile()) {
      const info = await stat(path).catch(() => null);
      if (info) yield { path, size: info.size, mtime: info.mtimeMs };
    }
  }
}

/** Only a missing file is a cache miss; every other failure (EIO, EACCES, EISDIR, ...) is an error. */
export function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/** `EIO: i/o error` from Node's `EIO: i/o error, read '/path'`: the reason without the path. */
export function reasonOf(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  const reason = String(message ?? error).split(', ')[0]!;
  return code && !reason.startsWith(code) ? `${code}: ${reason}` : reason;
}

/** A cached file that exists but cannot be read: a storage error (503), never a silent miss. */
export function readFailure(what: string, error: unknown) {
  return storageUnavailable(`cannot read ${what}: ${reasonOf(error)}`, error);
}
