/**
 * @module The referrers list as the OCI distribution spec defines it: the image index a referrers
 * answer is, the `artifactType` filter, and the fallback tag (`sha256-<hex>`) under which clients
 * keep that index on registries without the referrers API.
 */
import { MEDIA_TYPES } from '../content.js';
import { badRequest } from '../errors.js';

/** One entry of a referrers index: a descriptor of a manifest whose `subject` is the digest asked about. */
export type ReferrerDescriptor = Record<string, unknown>;

// RFC 6838 restricted names, `type/subtype`: what an artifactType filter can be.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** The `artifactType` query parameter: null when absent or empty; 400 when it is not a media type. */
export function parseArtifactType(value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  if (!MEDIA_TYPE.test(value)) {
    throw badRequest(
      'invalid artifactType parameter: expected a media type such as application/vnd.example+json',
      {
        artifactType: value.slice(0, 200),
      },
    );
  }
  return value;
}

/**
 * The referrers tag of a subject digest: its algorithm truncated to 32 characters, `-`, its encoded
 * part truncated to 64, with every character a tag cannot hold replaced by `-`.
 */
export function fallbackTag(subject: string): string {
  const colon = subject.indexOf(':');
  const tag = `${subject.slice(0, colon).slice(0, 32)}-${subject.slice(colon + 1).slice(0, 64)}`;
  return tag.replace(/[^a-zA-Z0-9_.-]/g, '-');
}

/**
 * The `manifests` of an image index (a referrers answer or a fallback tag's index); null when the
 * bytes are not one: not JSON, not an object, or `manifests` missing or holding a non-object.
 */
export function referrersOf(bytes: Buffer): ReferrerDescriptor[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const { manifests } = parsed as { manifests?: unknown };
  if (!Array.isArray(manifests)) return null;
  if (!manifests.every((m) => typeof m === 'object' && m !== null && !Array.isArray(m))) return null;
  return manifests as ReferrerDescriptor[];
}

/** Only the descriptors of this artifactType (all of them without a filter). */
export function filterReferrers(
  manifests: ReferrerDescriptor[],
  artifactType: string | null,
): ReferrerDescriptor[] {
  return artifactType === null ? manifests : manifests.filter((m) => m.artifactType === artifactType);
}

/** The referrers answer a client gets, the same whether the upstream has the API or not. */
export function referrersIndex(manifests: ReferrerDescriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }));
}
