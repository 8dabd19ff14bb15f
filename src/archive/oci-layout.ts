/** @module Names in an OCI image layout archive that export writes and import reads. */
import { parseDigest } from '../digest.js';

export const LAYOUT_VERSION = '1.0.0';

/**
 * Where an image's name is read from, in this order: containerd's full name, then the OCI ref name
 * (a full reference as export writes it, or whatever name `skopeo copy … oci-archive:FILE:NAME` got).
 */
export const IMAGE_NAME_ANNOTATIONS = [
  'io.containerd.image.name',
  'org.opencontainers.image.ref.name',
] as const;

/** `blobs/sha256/<hex>` */
export function blobEntryName(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}
