/**
 * @module `pullcache warm`: fetches images (manifests, then config and layer blobs of the chosen
 * platforms) into the cache through the same pull layer that serves clients, reporting progress as
 * a bar on a terminal or JSON lines otherwise.
 */
import { readAll } from './chunk-source.js';
import type { Config } from './config.js';
import { type Descriptor, INDEX_MEDIA_TYPES, platformOf } from './content.js';
import type { Puller } from './pull/puller.js';
import { formatReference, parseReference } from './reference.js';
import { resolveRoute } from './routing.js';

export interface WarmOptions {
  /** `os/arch[/variant]`; empty means this machine's platform. */
  platforms: string[];
  allPlatforms: boolean;
  /** Blobs fetched at once per image. */
  concurrency?: number;
}

export interface WarmReport {
  event: 'manifest' | 'plan' | 'blob' | 'done' | 'error';
  reference: string;
  digest?: string;
  size?: number;
  cache?: string;
  platform?: string;
  message?: string;
  blobs?: number;
  bytes?: number;
  ms?: number;
}

/** This machine's platform in OCI terms (Node's `x64` is `amd64`). */
export function hostPlatform(): string {
  const arch = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' }[
    process.arch as string
  ];
  return `linux/${arch ?? process.arch}`;
}

/**
 * Warms one image; returns normally or throws. `report` receives progress events, including
 * `blob` events as each blob finishes (with bytes streamed so far through `onBytes`).
 */
export async function warmImage(
  puller: Puller,
  config: Pick<Config, 'registries' | 'defaultRegistry'>,
  input: string,
  options: WarmOptions,
  report: (event: WarmReport) => void,
  onBytes: (bytes: number) => void = () => {},
): Promise<{ blobs: number; bytes: number }> {
  const ref = parseReference(input);
  const reference = formatReference(ref);
  const route = resolveRoute(`${ref.registry}/${ref.repository}`, undefined, config);
  const top = await puller.manifest(route, ref.digest ?? ref.tag!, { head: false, accept: undefined });
  report({ event: 'manifest', reference, digest: top.digest, size: top.size, cache: top.cache });

  let manifests: { digest: string; bytes: Buffer; platform?: string }[] = [
    { digest: top.digest, bytes: top.bytes! },
  ];
  if (INDEX_MEDIA_TYPES.has(top.mediaType)) {
    const index = JSON.parse(top.bytes!.toString('utf8')) as { manifests?: Descriptor[] };
    const wanted = options.platforms.length > 0 ? options.platforms : [hostPlatform()];
    const chosen = (index.manifests ?? []).filter(
      (m) => platformOf(m) !== 'unknown/unknown' && (options.allPlatforms || wanted.includes(platformOf(m))),
    );
    if (chosen.length === 0) throw new Error(`no manifest for ${wanted.join(', ')} in ${reference}`);
    manifests = [];
    for (const descriptor of chosen) {
      const child = await puller.manifest(route, descriptor.digest, { head: false, accept: undefined });
      report({
        event: 'manifest',
        reference,
        digest: child.digest,
        size: child.size,
        cache: child.cache,
        platform: platformOf(descriptor),
      });
      manifests.push({ digest: child.digest, bytes: child.bytes!, platform: platformOf(descriptor) });
    }
  }

  const blobs = new Map<string, number>();
  for (const manifest of manifests) {
    const document = JSON.parse(manifest.bytes.toString('utf8')) as {
      config?: Descriptor;
      layers?: Descriptor[];
    };
    for (const d of [document.config, ...(document.layers ?? [])]) if (d) blobs.set(d.digest, d.size);
  }
  report({
    event: 'plan',
    reference,
    blobs: blobs.size,
    bytes: [...blobs.values()].reduce((a, b) => a + b, 0),
  });
  let bytes = 0;
  const queue = [...blobs.keys()];
  const worker = async () => {
    for (let digest = queue.shift(); digest; digest = queue.shift()) {
      const answer = await puller.blob(route, digest, { head: false, range: null });
      await readAll(answer.source!, (chunk) => onBytes(chunk.length));
      bytes += answer.size;
      report({ event: 'blob', reference, digest, size: answer.size, cache: answer.cache });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 3 }, worker));
  return { blobs: blobs.size, bytes };
}
