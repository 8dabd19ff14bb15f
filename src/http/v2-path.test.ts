import { describe, expect, it } from 'vitest';
import { parseV2Path } from './v2-path.js';

const d = `sha256:${'a'.repeat(64)}`;

describe('parseV2Path', () => {
  it.each([
    ['/v2/', { kind: 'base' }],
    ['/v2', { kind: 'base' }],
    ['/v2/_catalog', { kind: 'catalog' }],
    ['/v2/library/nginx/manifests/latest', { kind: 'manifest', name: 'library/nginx', reference: 'latest' }],
    [`/v2/a/b/c/manifests/${d}`, { kind: 'manifest', name: 'a/b/c', reference: d }],
    ['/v2/x/manifests/manifests/v1', { kind: 'manifest', name: 'x/manifests', reference: 'v1' }],
    [`/v2/nginx/blobs/${d}`, { kind: 'blob', name: 'nginx', digest: d }],
    ['/v2/nginx/blobs/uploads/', { kind: 'upload', name: 'nginx' }],
    ['/v2/nginx/blobs/uploads/123-abc', { kind: 'upload', name: 'nginx' }],
    ['/v2/quay.io/coreos/flannel/tags/list', { kind: 'tags', name: 'quay.io/coreos/flannel' }],
    [`/v2/nginx/referrers/${d}`, { kind: 'referrers', name: 'nginx', digest: d }],
    ['/v2/nginx/other', null],
    ['/healthz', null],
  ])('%s', (path, expected) => {
    expect(parseV2Path(path)).toEqual(expected);
  });

  it.each([
    '/v2/../etc/manifests/x',
    '/v2/a/./b/manifests/x',
    '/v2/a/%2e%2e/manifests/x',
    '/v2/a/manifests/..',
  ])('refuses %s', (path) => {
    expect(() => parseV2Path(path)).toThrow(expect.objectContaining({ code: 'NAME_INVALID', status: 400 }));
  });
});
