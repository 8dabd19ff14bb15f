/** @module What a test looks at in a storage folder: files, temp files, blob paths, digests of bodies. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every regular file below `dir` (none if it does not exist). */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Temp files (`.tmp-*`) anywhere below `dir`. */
export const tempFilesUnder = (dir: string) =>
  filesUnder(dir).filter((f) => f.slice(f.lastIndexOf('/') + 1).startsWith('.tmp-'));

export const blobFile = (storage: string, digest: string) =>
  join(storage, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

export const manifestFile = (storage: string, digest: string) =>
  join(storage, 'manifests', 'sha256', digest.slice(7, 9), digest.slice(7));

export const sha256Of = (bytes: Uint8Array | ArrayBuffer) =>
  `sha256:${createHash('sha256')
    .update(bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes)
    .digest('hex')}`;

/** Reads a whole response body, hashing as it goes (no 50 MiB buffer kept); rejects if the body breaks. */
export async function bodyDigest(response: Response): Promise<{ digest: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
    bytes += value.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, bytes };
}
