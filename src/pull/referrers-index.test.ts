import { describe, expect, it } from 'vitest';
import { assertTag } from '../reference.js';
import {
  fallbackTag,
  filterReferrers,
  parseArtifactType,
  referrersIndex,
  referrersOf,
} from './referrers-index.js';

describe('fallbackTag', () => {
  it('maps digests as the spec table does, and the result is a valid tag', () => {
    const a64 = 'a'.repeat(64);
    const a128 = 'a'.repeat(128);
    const cases = [
      [`sha256:${a64}`, `sha256-${a64}`],
      [`sha512:${a128}`, `sha512-${a64}`],
      [
        'test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation',
        'test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot',
      ],
    ];
    for (const [digest, tag] of cases) {
      expect(fallbackTag(digest!)).toBe(tag);
      expect(() => assertTag(tag!)).not.toThrow();
    }
  });
});

describe('parseArtifactType', () => {
  it('takes media types, treats an absent or empty filter as none, and refuses anything else with 400', () => {
    expect(parseArtifactType(undefined)).toBeNull();
    expect(parseArtifactType('')).toBeNull();
    for (const type of ['application/vnd.cncf.notary.signature', 'application/spdx+json', 'a/b'])
      expect(parseArtifactType(type)).toBe(type);
    for (const bad of ['sig', 'a/b/c', '../x', 'a/ b', 'a/b\n', '/b', `a/${'x'.repeat(200)}`]) {
      expect(() => parseArtifactType(bad), bad).toThrow(
        expect.objectContaining({ name: 'RegistryError', status: 400 }),
      );
    }
  });
});

describe('referrersOf', () => {
  it('reads the manifests of an image index and nothing else', () => {
    const entry = {
      mediaType: 'm',
      digest: 'sha256:x',
      size: 1,
      artifactType: 'a/b',
      annotations: { k: 'v' },
    };
    expect(referrersOf(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [entry] })))).toEqual([
      entry,
    ]);
    expect(referrersOf(Buffer.from('{"manifests":[]}'))).toEqual([]);
    for (const bad of [
      '',
      '{',
      'null',
      '[]',
      '{"manifests":{}}',
      '{"manifests":[1]}',
      '{"manifests":[[]]}',
      '{}',
    ])
      expect(referrersOf(Buffer.from(bad)), bad).toBeNull();
  });
});

describe('filterReferrers and referrersIndex', () => {
  it('keeps only the artifactType asked for, and answers an OCI image index', () => {
    const sig = { digest: 'sha256:1', artifactType: 'application/vnd.example.sig' };
    const sbom = { digest: 'sha256:2', artifactType: 'application/spdx+json' };
    const untyped = { digest: 'sha256:3' };
    const all = [sig, sbom, untyped];
    expect(filterReferrers(all, null)).toEqual(all);
    expect(filterReferrers(all, 'application/spdx+json')).toEqual([sbom]);
    expect(filterReferrers(all, 'application/none')).toEqual([]);
    expect(JSON.parse(referrersIndex([sig]).toString('utf8'))).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [sig],
    });
  });
});
