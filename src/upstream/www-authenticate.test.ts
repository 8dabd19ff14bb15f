import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from './www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/nginx:pull',
          },
        },
      ],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic realm=simple', [{ scheme: 'basic', params: { realm: 'simple' } }]],
    [
      'Basic realm="r", Bearer realm="https://a/token", service="s"',
      [
        { scheme: 'basic', params: { realm: 'r' } },
        { scheme: 'bearer', params: { realm: 'https://a/token', service: 's' } },
      ],
    ],
    [
      'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push"',
      [
        {
          scheme: 'bearer',
          params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:a/b:pull,push' },
        },
      ],
    ],
    [
      'Bearer realm="with \\"quotes\\" inside"',
      [{ scheme: 'bearer', params: { realm: 'with "quotes" inside' } }],
    ],
    ['BEARER REALM="x" ,  SERVICE = "y"', [{ scheme: 'bearer', params: { realm: 'x', service: 'y' } }]],
    ['Negotiate abc123==', [{ scheme: 'negotiate', params: { token68: 'abc123==' } }]],
    ['Bearer', [{ scheme: 'bearer', params: {} }]],
    ['', []],
    ['Bearer realm="unterminated', [{ scheme: 'bearer', params: { realm: 'unterminated' } }]],
  ])('%s', (header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });

  it('reads every header line when several are sent', () => {
    expect(parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual([
      'basic',
      'bearer',
    ]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });
});
