/** What prefetch reads out of a served manifest: the blobs of an image, or why there are none. */
import { describe, expect, it } from 'vitest';
import { MEDIA_TYPES } from '../content.js';
import { prefetchPlan } from './prefetch.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('prefetchPlan', () => {
  it('lists the config first, then each layer once, and sums the layer sizes only', () => {
    const manifest = json({
      schemaVersion: 2,
      config: { digest: digest('c'), size: 100 },
      layers: [
        { digest: digest('a'), size: 1000 },
        { digest: digest('b'), size: 2000 },
        { digest: digest('a'), size: 1000 },
      ],
    });
    expect(prefetchPlan(MEDIA_TYPES.ociManifest, manifest)).toEqual({
      blobs: [
        { digest: digest('c'), size: 100 },
        { digest: digest('a'), size: 1000 },
        { digest: digest('b'), size: 2000 },
      ],
      layerBytes: 4000,
    });
    expect(prefetchPlan(`${MEDIA_TYPES.dockerManifest}; charset=utf-8`, manifest)).toHaveProperty('blobs');
  });

  it('expands no index, list or other media type', () => {
    const index = json({ manifests: [{ digest: digest('a'), size: 10 }] });
    for (const type of [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.dockerSchema1Signed]) {
      expect(prefetchPlan(type, index)).toEqual({ skip: 'not an image manifest' });
    }
  });

  it('refuses bytes that are not JSON and descriptors that are not valid', () => {
    expect(prefetchPlan(MEDIA_TYPES.ociManifest, Buffer.from('{'))).toEqual({ skip: 'not valid JSON' });
    for (const layer of [
      { digest: '../../etc/passwd', size: 1 },
      { digest: 'sha256:abc', size: 1 },
      { digest: digest('a'), size: -1 },
      { digest: digest('a'), size: 1.5 },
      { digest: digest('a') },
      null,
    ]) {
      expect(prefetchPlan(MEDIA_TYPES.ociManifest, json({ layers: [layer] })), JSON.stringify(layer)).toEqual(
        {
          skip: 'an invalid descriptor',
        },
      );
    }
  });

  it('takes a manifest without layers or config as one with nothing to fetch', () => {
    expect(prefetchPlan(MEDIA_TYPES.ociManifest, json({ schemaVersion: 2 }))).toEqual({
      blobs: [],
      layerBytes: 0,
    });
    expect(prefetchPlan(MEDIA_TYPES.ociManifest, json(null))).toEqual({ blobs: [], layerBytes: 0 });
  });
});
