/** @module What tests compare: an index or list with each platform's manifest, config and layers. */

export type ImageFormat = 'oci' | 'docker';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Platform {
  os: string;
  architecture: string;
}

export interface PlatformImage {
  platform: Platform;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/** What was pushed, or what a client pulled back: equal values mean byte-identical images. */
export interface ImageDigests {
  index: Descriptor;
  platforms: PlatformImage[];
}

export const MEDIA_TYPES = {
  oci: {
    index: 'application/vnd.oci.image.index.v1+json',
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  },
  docker: {
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  },
} as const;

/** Every digest of the image, index first, without duplicates (platforms may share a layer). */
export function allDigests(image: ImageDigests): string[] {
  const digests = [image.index.digest];
  for (const p of image.platforms)
    digests.push(p.manifest.digest, p.config.digest, ...p.layers.map((l) => l.digest));
  return [...new Set(digests)];
}

/** Only the comparable part, so a GeneratedImage (with its paths) can be compared to a pulled one. */
export function digestsOf(image: ImageDigests): ImageDigests {
  return { index: image.index, platforms: image.platforms };
}
