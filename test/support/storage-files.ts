/** @module What a test finds in a proxy's storage folder: every file, and the temp files left behind. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every file below `dir` (none if it does not exist). */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** What a storage folder holds: blob, manifest and tag files, and temp files (crash or failure leftovers). */
export function storedContent(storage: string) {
  const temps = filesUnder(storage).filter((f) => f.split('/').at(-1)!.startsWith('.tmp-'));
  const content = (folder: string) => filesUnder(join(storage, folder)).filter((f) => !temps.includes(f));
  return { blobs: content('blobs'), manifests: content('manifests'), tags: content('tags'), temps };
}
