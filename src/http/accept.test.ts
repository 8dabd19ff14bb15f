import { describe, expect, it } from 'vitest';
import { mergeAccept } from './accept.js';

describe('mergeAccept', () => {
  it('joins repeated lines, keeping each media type once in first-seen order', () => {
    expect(
      mergeAccept([
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json',
        '*/*',
      ]),
    ).toBe(
      'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, */*',
    );
  });
  it('is undefined when nothing was sent', () => {
    expect(mergeAccept([])).toBeUndefined();
    expect(mergeAccept([' , '])).toBeUndefined();
  });
});
