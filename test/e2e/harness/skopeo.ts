/** @module skopeo pushing generated images into a registry and pulling them back or through the proxy. */

// Observed with skopeo 1.9: `--preserve-digests` makes it fail rather than silently convert. Its
// `oci:` transport handles OCI media types only (see images.ts), so a Docker list is pushed from
// and pulled into a `dir:` folder, which keeps any manifest byte for byte. Without TLS verification
// it tries https first, then http. `--insecure-policy` and `--*-no-creds` keep the machine's
// policy.json and stored credentials out of the tests.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './command.js';
import type { ImageDigests } from './image-digests.js';
import type { GeneratedImage } from './images.js';
import { readDirLayout, readOciImage, readOciLayout } from './layout-reader.js';
import type { Credentials } from './registry.js';

function credsArgs(side: 'src' | 'dest', creds: Credentials | undefined): string[] {
  return creds ? [`--${side}-creds`, `${creds.username}:${creds.password}`] : [`--${side}-no-creds`];
}

function skopeoCopy(args: string[]): Promise<unknown> {
  return run('skopeo', ['--insecure-policy', 'copy', '--all', '--preserve-digests', '--quiet', ...args]);
}

/** Pushes every platform of a generated image; `ref` is `127.0.0.1:PORT/library/demo:1.0`. */
export async function pushImage(image: GeneratedImage, ref: string, creds?: Credentials): Promise<void> {
  await pushSource(image.source, ref, creds);
}

/**
 * Pushes what a skopeo source (`oci:DIR:TAG`) names; `ref` may be a digest
 * (`127.0.0.1:PORT/library/demo@sha256:…`), which pushes it untagged.
 */
export async function pushSource(source: string, ref: string, creds?: Credentials): Promise<void> {
  await skopeoCopy(['--dest-tls-verify=false', ...credsArgs('dest', creds), source, `docker://${ref}`]);
}

/**
 * Pulls one manifest by digest (`127.0.0.1:PORT/library/demo@sha256:…`; an image or an artifact such
 * as a signature) into a new OCI layout under `outDir`, and returns what arrived, each file verified.
 */
export async function pullManifest(ref: string, outDir: string, creds?: Credentials) {
  const dest = join(outDir, ref.replaceAll(/[/:@]/g, '_'));
  await mkdir(outDir, { recursive: true });
  await skopeoCopy([
    '--src-tls-verify=false',
    ...credsArgs('src', creds),
    `docker://${ref}`,
    `oci:${dest}:pulled`,
  ]);
  return { ...(await readOciImage(dest, 'pulled')), layoutDir: dest };
}

export interface PullOptions {
  creds?: Credentials;
  /** `oci` for OCI images; `dir` keeps a Docker manifest list as it is. */
  layout?: 'oci' | 'dir';
}

/**
 * Pulls every platform of `ref` (plain HTTP allowed) into a new folder under `outDir` and returns
 * the digests of what arrived, each blob verified against its digest.
 */
export async function pullImage(
  ref: string,
  outDir: string,
  options: PullOptions = {},
): Promise<ImageDigests> {
  const layout = options.layout ?? 'oci';
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  const dest = join(outDir, `${ref.replaceAll(/[/:]/g, '_')}-${layout}`);
  await mkdir(outDir, { recursive: true });
  await skopeoCopy([
    '--src-tls-verify=false',
    ...credsArgs('src', options.creds),
    `docker://${ref}`,
    layout === 'oci' ? `oci:${dest}:${tag}` : `dir:${dest}`,
  ]);
  return layout === 'oci' ? readOciLayout(dest, tag) : readDirLayout(dest);
}
