/**
 * @module Referrers pushed the way OCI 1.1 clients push them to a registry without the referrers API
 * (docker-registry 2.8): an artifact manifest whose `subject` is the image, and the referrers index
 * under the fallback tag `sha256-<hex>` of the subject digest.
 */

// Observed with skopeo 1.9: it pushes an artifact manifest byte for byte (empty config, any layer
// media type, `artifactType`, `subject`), also to a digest reference, untagged. An index it cannot
// keep: its index type has no `artifactType` in descriptors, so it drops them and the digest changes
// ("Manifest list must be converted ... Instructed to preserve digests"). The fallback index is
// therefore pushed with a plain manifest PUT, as oras and notation do.
import { createHash } from 'node:crypto';
import type { Descriptor } from './image-digests.js';
import { createLayoutWriter } from './layout-writer.js';
import type { Registry } from './registry.js';
import { pushSource } from './skopeo.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';

export interface ReferrerDescriptor extends Descriptor {
  artifactType: string;
  annotations: Record<string, string>;
}

export interface PushedReferrer {
  /** The artifact as the referrers list shows it. */
  descriptor: ReferrerDescriptor;
  /** Its one layer (the signature or attestation bytes). */
  layer: Descriptor;
}

export interface ReferrerSpec {
  artifactType: string;
  /** The layer's bytes; the layer's media type is the artifactType's. */
  payload: string;
}

/**
 * Generates each artifact in an OCI layout under `dir`, pushes it untagged to
 * `registry`/`repository` with skopeo, then the fallback index listing them all; returns what the
 * referrers list of `subject` should hold, in order, and the fallback tag.
 */
export async function pushReferrers(
  dir: string,
  registry: Registry,
  repository: string,
  subject: Descriptor,
  specs: ReferrerSpec[],
): Promise<{ referrers: PushedReferrer[]; fallbackTag: string }> {
  const referrers: PushedReferrer[] = [];
  for (const [i, spec] of specs.entries()) {
    const out = await createLayoutWriter(`${dir}/artifact-${i}`, 'oci');
    const config = await out.writeBlob(EMPTY, Buffer.from('{}'));
    const layer = await out.writeBlob(spec.artifactType, Buffer.from(spec.payload));
    const annotations = {
      'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
      'org.example.n': `${i}`,
    };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: spec.artifactType,
        config,
        layers: [layer],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        annotations,
      }),
    );
    const { descriptor, source } = await out.finish(OCI_MANIFEST, manifest, 'artifact');
    await pushSource(source, `${registry.host}/${repository}@${descriptor.digest}`);
    referrers.push({ descriptor: { ...descriptor, artifactType: spec.artifactType, annotations }, layer });
  }

  const fallbackTag = subject.digest.replace(':', '-');
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: referrers.map((r) => r.descriptor) }),
  );
  const response = await fetch(`${registry.url}/v2/${repository}/manifests/${fallbackTag}`, {
    method: 'PUT',
    headers: { 'content-type': OCI_INDEX },
    body: index,
  });
  if (response.status !== 201)
    throw new Error(`PUT of the fallback index: ${response.status} ${await response.text()}`);
  const digest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
  if (response.headers.get('docker-content-digest') !== digest)
    throw new Error(
      `the registry stored the fallback index as ${response.headers.get('docker-content-digest')}`,
    );
  return { referrers, fallbackTag };
}
