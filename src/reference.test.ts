import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RegistryError } from './errors.js';
import {
  assertRepositoryPath,
  assertTag,
  DOCKER_HUB,
  formatReference,
  isRegistryComponent,
  isValidDomain,
  isValidRepositoryPath,
  isValidTag,
  NAME_TOTAL_LENGTH_MAX,
  normalizeRegistryHost,
  parseReference,
  type Reference,
  splitDockerDomain,
  TAG_MAX,
} from './reference.js';

const HEX64 = 'f'.repeat(64);
const D = `sha256:${HEX64}`;
const D2 = `sha256:${'0123456789abcdef'.repeat(4)}`;
const D512 = `sha512:${'ab'.repeat(64)}`;
const ID = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a';
const a = (n: number) => 'a'.repeat(n);

/** Short test titles for long inputs. */
const show = (s: string) => (s.length > 70 ? `${s.slice(0, 40)}…(${s.length} chars)` : JSON.stringify(s));

/** The error a call throws, checked to be our typed error. */
function thrown(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return err as RegistryError;
  }
  throw new Error('expected a throw');
}

type Valid = [input: string, registry: string, repository: string, tag: string | null, digest: string | null];

const VALID: Valid[] = [
  // Docker Hub familiar names
  ['nginx', 'docker.io', 'library/nginx', 'latest', null],
  ['nginx:1.25', 'docker.io', 'library/nginx', '1.25', null],
  ['nginx:latest', 'docker.io', 'library/nginx', 'latest', null],
  ['user/app:1', 'docker.io', 'user/app', '1', null],
  ['docker/docker', 'docker.io', 'docker/docker', 'latest', null],
  ['library/debian', 'docker.io', 'library/debian', 'latest', null],
  ['library/foo/bar', 'docker.io', 'library/foo/bar', 'latest', null],
  ['store/foo/bar', 'docker.io', 'store/foo/bar', 'latest', null],
  ['other/library', 'docker.io', 'other/library', 'latest', null],
  ['nonlibrary/ubuntu', 'docker.io', 'nonlibrary/ubuntu', 'latest', null],
  ['ubuntu-12.04-base', 'docker.io', 'library/ubuntu-12.04-base', 'latest', null],
  ['foo/foo_bar.com:8080', 'docker.io', 'foo/foo_bar.com', '8080', null],
  // Docker Hub spelled out, and its aliases
  ['docker.io/nginx', 'docker.io', 'library/nginx', 'latest', null],
  ['docker.io/library/nginx', 'docker.io', 'library/nginx', 'latest', null],
  ['docker.io/library/nginx:1', 'docker.io', 'library/nginx', '1', null],
  ['docker.io/docker/docker', 'docker.io', 'docker/docker', 'latest', null],
  ['index.docker.io/foo', 'docker.io', 'library/foo', 'latest', null],
  ['index.docker.io/foo/bar', 'docker.io', 'foo/bar', 'latest', null],
  ['index.docker.io/library/ubuntu-12.04-base', 'docker.io', 'library/ubuntu-12.04-base', 'latest', null],
  ['registry-1.docker.io/nginx', 'docker.io', 'library/nginx', 'latest', null],
  ['registry-1.docker.io/bitnami/redis:7', 'docker.io', 'bitnami/redis', '7', null],
  ['DOCKER.IO/nginx', 'docker.io', 'library/nginx', 'latest', null],
  ['Index.Docker.IO/user/app', 'docker.io', 'user/app', 'latest', null],
  // Look-alikes of Docker Hub are other registries: no alias, no library/ prefix
  ['docker.io:443/nginx', 'docker.io:443', 'nginx', 'latest', null],
  ['registry-2.docker.io/foo', 'registry-2.docker.io', 'foo', 'latest', null],
  ['hub.docker.com/foo', 'hub.docker.com', 'foo', 'latest', null],
  // Other registries
  ['quay.io/coreos/flannel:v0.12.0-amd64', 'quay.io', 'coreos/flannel', 'v0.12.0-amd64', null],
  ['gcr.io/distroless/static', 'gcr.io', 'distroless/static', 'latest', null],
  ['ghcr.io/owner/repo/sub/path:tag', 'ghcr.io', 'owner/repo/sub/path', 'tag', null],
  [`quay.io/a/b@${D}`, 'quay.io', 'a/b', null, D],
  ['example.com/privatebase', 'example.com', 'privatebase', 'latest', null],
  ['example.com:8000/private/moonbase', 'example.com:8000', 'private/moonbase', 'latest', null],
  ['example.com:8080/bar', 'example.com:8080', 'bar', 'latest', null],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', 'sub-dom1.foo.com', 'bar/baz/quux', 'some-long-tag', null],
  [
    'b.gcr.io/test.example.com/my-app:test.example.com',
    'b.gcr.io',
    'test.example.com/my-app',
    'test.example.com',
    null,
  ],
  ['xn--n3h.com/myimage:xn--n3h.com', 'xn--n3h.com', 'myimage', 'xn--n3h.com', null],
  [`xn--7o8h.com/myimage:xn--7o8h.com@${D}`, 'xn--7o8h.com', 'myimage', 'xn--7o8h.com', D],
  ['a-b.com/x', 'a-b.com', 'x', 'latest', null],
  ['ab.c-om/x', 'ab.c-om', 'x', 'latest', null],
  ['a--b.com/x', 'a--b.com', 'x', 'latest', null],
  ['0101.com/x', '0101.com', 'x', 'latest', null],
  ['001a.com/x', '001a.com', 'x', 'latest', null],
  ['a.b/c', 'a.b', 'c', 'latest', null],
  ['a:1/b', 'a:1', 'b', 'latest', null],
  ['test:5000/repo', 'test:5000', 'repo', 'latest', null],
  ['test:5000/repo:tag', 'test:5000', 'repo', 'tag', null],
  [`test:5000/repo@${D}`, 'test:5000', 'repo', null, D],
  [`test:5000/repo:tag@${D}`, 'test:5000', 'repo', 'tag', D],
  ['example.com:750050/x', 'example.com:750050', 'x', 'latest', null],
  // Uppercase hosts are allowed, and lowercased
  ['Quay.IO/coreos/etcd', 'quay.io', 'coreos/etcd', 'latest', null],
  ['Asdf.com/foo', 'asdf.com', 'foo', 'latest', null],
  ['EXAMPLE.COM:5000/foo', 'example.com:5000', 'foo', 'latest', null],
  // A first component with an uppercase letter is a host (distribution's splitDockerDomain); one
  // without '.' or ':' is spelled uppercase, so that it stays a host when formatted and parsed again
  ['LOCALDOMAIN/debian', 'LOCALDOMAIN', 'debian', 'latest', null],
  ['Localdomain/debian:12', 'LOCALDOMAIN', 'debian', '12', null],
  ['Docker/docker', 'DOCKER', 'docker', 'latest', null],
  ['DOCKER/docker', 'DOCKER', 'docker', 'latest', null],
  ['Foo/bar/baz', 'FOO', 'bar/baz', 'latest', null],
  [`MyHost/x@${D}`, 'MYHOST', 'x', null, D],
  ['Registry-1/x', 'REGISTRY-1', 'x', 'latest', null],
  ['Docker.io/nginx', 'docker.io', 'library/nginx', 'latest', null],
  ['Foo:5000/bar', 'foo:5000', 'bar', 'latest', null],
  // localhost
  ['localhost/foo', 'localhost', 'foo', 'latest', null],
  ['localhost/foo/bar', 'localhost', 'foo/bar', 'latest', null],
  ['localhost/library/debian', 'localhost', 'library/debian', 'latest', null],
  ['LOCALHOST/foo', 'localhost', 'foo', 'latest', null],
  ['localhost:8080/bar', 'localhost:8080', 'bar', 'latest', null],
  [`localhost:5000/x@${D}`, 'localhost:5000', 'x', null, D],
  [`localhost:5000/x:t@${D}`, 'localhost:5000', 'x', 't', D],
  ['localhost:5000/localhost:5000', 'localhost:5000', 'localhost', '5000', null],
  // A single component is never a domain, whatever it looks like
  ['localhost', 'docker.io', 'library/localhost', 'latest', null],
  ['localhost:5000', 'docker.io', 'library/localhost', '5000', null],
  ['example.com', 'docker.io', 'library/example.com', 'latest', null],
  ['test.com:tag', 'docker.io', 'library/test.com', 'tag', null],
  ['test.com:5000', 'docker.io', 'library/test.com', '5000', null],
  ['foo_bar.com:8080', 'docker.io', 'library/foo_bar.com', '8080', null],
  ['192.168.1.1', 'docker.io', 'library/192.168.1.1', 'latest', null],
  ['192.168.1.1:5000', 'docker.io', 'library/192.168.1.1', '5000', null],
  // IPv4
  ['192.168.1.1/repo', '192.168.1.1', 'repo', 'latest', null],
  ['192.168.1.1:5000/repo', '192.168.1.1:5000', 'repo', 'latest', null],
  ['192.168.1.1:5000/repo:5050', '192.168.1.1:5000', 'repo', '5050', null],
  ['127.0.0.1:5000/docker/docker', '127.0.0.1:5000', 'docker/docker', 'latest', null],
  // IPv6
  ['[2001:db8::1]/repo', '[2001:db8::1]', 'repo', 'latest', null],
  ['[2001:db8:1:2:3:4:5:6]/repo:tag', '[2001:db8:1:2:3:4:5:6]', 'repo', 'tag', null],
  ['[2001:db8::1]:5000/repo', '[2001:db8::1]:5000', 'repo', 'latest', null],
  ['[2001:db8::1]:5000/repo:tag', '[2001:db8::1]:5000', 'repo', 'tag', null],
  [`[2001:db8::1]:5000/repo:tag@${D}`, '[2001:db8::1]:5000', 'repo', 'tag', D],
  ['[2001:db8::]:5000/repo', '[2001:db8::]:5000', 'repo', 'latest', null],
  ['[::1]:5000/repo', '[::1]:5000', 'repo', 'latest', null],
  ['[FC00::1]:5000/docker/docker', '[fc00::1]:5000', 'docker/docker', 'latest', null],
  [
    '[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:443/a',
    '[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:443',
    'a',
    'latest',
    null,
  ],
  // Path separators: one '.', one or two '_', any number of '-'
  ['test_com', 'docker.io', 'library/test_com', 'latest', null],
  ['a.b', 'docker.io', 'library/a.b', 'latest', null],
  ['a_b', 'docker.io', 'library/a_b', 'latest', null],
  ['a__b', 'docker.io', 'library/a__b', 'latest', null],
  ['a-b', 'docker.io', 'library/a-b', 'latest', null],
  ['a---b', 'docker.io', 'library/a---b', 'latest', null],
  ['a1-2_3.4__5---6', 'docker.io', 'library/a1-2_3.4__5---6', 'latest', null],
  ['docker-rules/docker', 'docker.io', 'docker-rules/docker', 'latest', null],
  ['docker---rules/docker', 'docker.io', 'docker---rules/docker', 'latest', null],
  ['dock__er/docker', 'docker.io', 'dock__er/docker', 'latest', null],
  ['d/docker', 'docker.io', 'd/docker', 'latest', null],
  ['jess/t', 'docker.io', 'jess/t', 'latest', null],
  ['0/1', 'docker.io', '0/1', 'latest', null],
  // Only a bare 64-hex input is an image ID; with anything around it, it is a name
  [`docker.io/${ID}`, 'docker.io', `library/${ID}`, 'latest', null],
  [`${ID}:tag`, 'docker.io', `library/${ID}`, 'tag', null],
  [ID.slice(1), 'docker.io', `library/${ID.slice(1)}`, 'latest', null],
  // A 64-character non-hex name
  [
    'thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    'docker.io',
    'library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev',
    'latest',
    null,
  ],
  // Tags
  ['lowercase:Uppercase', 'docker.io', 'library/lowercase', 'Uppercase', null],
  ['nginx:_', 'docker.io', 'library/nginx', '_', null],
  ['nginx:_foo', 'docker.io', 'library/nginx', '_foo', null],
  ['nginx:9', 'docker.io', 'library/nginx', '9', null],
  ['nginx:1.0-rc.1', 'docker.io', 'library/nginx', '1.0-rc.1', null],
  ['nginx:a..b--c__', 'docker.io', 'library/nginx', 'a..b--c__', null],
  [`nginx:${a(TAG_MAX)}`, 'docker.io', 'library/nginx', a(TAG_MAX), null],
  // Digests: the tag is kept beside a digest, and 'latest' is not added to a digest
  [`nginx@${D}`, 'docker.io', 'library/nginx', null, D],
  [`nginx@${D2}`, 'docker.io', 'library/nginx', null, D2],
  [`nginx:1@${D}`, 'docker.io', 'library/nginx', '1', D],
  [`nginx@${D512}`, 'docker.io', 'library/nginx', null, D512],
  [`busybox:latest@${D}`, 'docker.io', 'library/busybox', 'latest', D],
  // Length limit: on the normalized path; the host does not count, 'library/' does
  [`example.com/${a(255)}`, 'example.com', a(255), 'latest', null],
  [`example.com/${a(255)}:tag`, 'example.com', a(255), 'tag', null],
  [a(247), 'docker.io', `library/${a(247)}`, 'latest', null],
  [`docker.io/${a(247)}`, 'docker.io', `library/${a(247)}`, 'latest', null],
  [`u/${a(253)}`, 'docker.io', `u/${a(253)}`, 'latest', null],
  [`${'a/'.repeat(127)}a:tag`, 'docker.io', `${'a/'.repeat(127)}a`, 'tag', null],
  [`${a(300)}.com/x`, `${a(300)}.com`, 'x', 'latest', null],
];

type Invalid = [input: string, code: 'NAME_INVALID' | 'TAG_INVALID' | 'DIGEST_INVALID'];

const INVALID: Invalid[] = [
  // Empty names
  ['', 'NAME_INVALID'],
  [':justtag', 'NAME_INVALID'],
  [`@${D}`, 'NAME_INVALID'],
  [`:tag@${D}`, 'NAME_INVALID'],
  // Uppercase in the path (the host may be uppercase, the path may not)
  ['Nginx', 'NAME_INVALID'],
  ['Uppercase:tag', 'NAME_INVALID'],
  ['docker/Docker', 'NAME_INVALID'],
  ['docker.io/docker/Docker', 'NAME_INVALID'],
  ['test:5000/Uppercase/lowercase:tag', 'NAME_INVALID'],
  ['quay.io/CoreOS/etcd', 'NAME_INVALID'],
  ['LOCALDOMAIN', 'NAME_INVALID'], // a single component is a path, never a host
  ['Foo/Bar', 'NAME_INVALID'],
  ['LOCALDOMAIN/Debian', 'NAME_INVALID'],
  // Leading and trailing separators
  ['-docker', 'NAME_INVALID'],
  ['-docker/docker', 'NAME_INVALID'],
  ['docker-/docker', 'NAME_INVALID'],
  ['-docker-/docker', 'NAME_INVALID'],
  ['foo/-bar', 'NAME_INVALID'],
  ['foo/bar-', 'NAME_INVALID'],
  ['foo/bar.', 'NAME_INVALID'],
  ['.foo/bar', 'NAME_INVALID'],
  ['_docker/_docker', 'NAME_INVALID'],
  ['_foo/bar', 'NAME_INVALID'],
  ['____/____', 'NAME_INVALID'],
  // Separators that are not in the grammar
  ['dock..er/docker', 'NAME_INVALID'],
  ['dock_.er/docker', 'NAME_INVALID'],
  ['dock-.er/docker', 'NAME_INVALID'],
  ['dock.-er/docker', 'NAME_INVALID'],
  ['dock___er/docker', 'NAME_INVALID'],
  ['a._b', 'NAME_INVALID'],
  ['a_-b', 'NAME_INVALID'],
  // Dot-dot and empty components
  ['a/../b', 'NAME_INVALID'],
  ['a/..', 'NAME_INVALID'],
  ['../a', 'NAME_INVALID'],
  ['quay.io/a/../b', 'NAME_INVALID'],
  ['docker/', 'NAME_INVALID'],
  ['docker.io/', 'NAME_INVALID'],
  ['docker.io/nginx/', 'NAME_INVALID'],
  ['quay.io/a/b/:tag', 'NAME_INVALID'],
  ['/nginx', 'NAME_INVALID'],
  ['a//b', 'NAME_INVALID'],
  ['docker///docker', 'NAME_INVALID'],
  ['docker.io//nginx', 'NAME_INVALID'],
  ['docker.io/docker///docker', 'NAME_INVALID'],
  // Characters outside the grammar
  ['aa/asdf$$^/aa', 'NAME_INVALID'],
  ['a^a', 'NAME_INVALID'],
  [' nginx', 'NAME_INVALID'],
  ['nginx latest', 'NAME_INVALID'],
  ['ñginx', 'NAME_INVALID'],
  ['https://github.com/docker/docker', 'NAME_INVALID'],
  ['nginx:ta/g', 'NAME_INVALID'], // a ':' before a '/' is a port, and 'ta' is not one
  // Bad hosts
  ['-docker.io/docker/docker', 'NAME_INVALID'],
  ['ab-.com/x', 'NAME_INVALID'],
  ['ab.-com/x', 'NAME_INVALID'],
  ['ab.com-/x', 'NAME_INVALID'],
  ['a..b.com/x', 'NAME_INVALID'],
  ['.com/x', 'NAME_INVALID'],
  ['foo_bar.com:8080/app', 'NAME_INVALID'],
  ['foo_bar.com/app', 'NAME_INVALID'], // upstream parses it with an empty domain
  ['docker.io_a/x', 'NAME_INVALID'],
  ['test.com:http/bar', 'NAME_INVALID'],
  ['example.com:/x', 'NAME_INVALID'],
  [':5000/x', 'NAME_INVALID'],
  ['example.com:80:80/x', 'NAME_INVALID'],
  // Bad IPv6 hosts
  ['[2001:db8::1]', 'NAME_INVALID'],
  ['[2001:db8::1]:5000', 'NAME_INVALID'],
  ['[2001:db8::1]:tag', 'NAME_INVALID'],
  ['fc00::1:5000/debian', 'NAME_INVALID'],
  ['[fe80::1%eth0]:5000/debian', 'NAME_INVALID'],
  ['[fe80::1%@invalidzone]:5000/repo', 'NAME_INVALID'],
  ['[2001:db8:3:4::192.0.2.33]:5000/debian', 'NAME_INVALID'],
  ['[fd00:1:2::3]75050/x', 'NAME_INVALID'],
  ['[fd00:1:2::3]::75050/x', 'NAME_INVALID'],
  ['[]/x', 'NAME_INVALID'],
  // An image ID or a digest is not a name
  [ID, 'NAME_INVALID'],
  [HEX64, 'NAME_INVALID'],
  [D, 'NAME_INVALID'],
  [D512, 'NAME_INVALID'],
  // Length limit
  [`example.com/${a(256)}`, 'NAME_INVALID'],
  [`domain.com/${a(256)}:tag`, 'NAME_INVALID'],
  [a(248), 'NAME_INVALID'],
  [`docker.io/${a(248)}`, 'NAME_INVALID'],
  [`u/${a(254)}`, 'NAME_INVALID'],
  [`${'a/'.repeat(128)}a`, 'NAME_INVALID'],
  // Tags
  ['nginx:', 'TAG_INVALID'],
  [`nginx:@${D}`, 'TAG_INVALID'],
  ['localhost:5000/x:', 'TAG_INVALID'],
  ['nginx:-foo', 'TAG_INVALID'],
  ['nginx:.foo', 'TAG_INVALID'],
  [`nginx:${a(TAG_MAX + 1)}`, 'TAG_INVALID'],
  ['nginx:a b', 'TAG_INVALID'],
  ['nginx: latest', 'TAG_INVALID'],
  ['nginx:a+b', 'TAG_INVALID'],
  ['nginx:a:b', 'TAG_INVALID'],
  ['nginx:ä', 'TAG_INVALID'],
  ['quay.io/a/b:tag!', 'TAG_INVALID'],
  ['[::1]:5000/repo:t~g', 'TAG_INVALID'],
  // Digests
  ['nginx@', 'DIGEST_INVALID'],
  ['nginx:1@', 'DIGEST_INVALID'],
  [`repo@sha256:${'f'.repeat(34)}`, 'DIGEST_INVALID'],
  [`repo@sha256:${'f'.repeat(63)}`, 'DIGEST_INVALID'],
  [`repo@sha256:${'f'.repeat(65)}`, 'DIGEST_INVALID'],
  [`repo@sha256:${'F'.repeat(64)}`, 'DIGEST_INVALID'],
  [`repo@sha256:${'g'.repeat(64)}`, 'DIGEST_INVALID'],
  [`repo@sha512:${HEX64}`, 'DIGEST_INVALID'],
  [`repo@md5:${'f'.repeat(32)}`, 'DIGEST_INVALID'],
  [`validname@invaliddigest:${HEX64}`, 'DIGEST_INVALID'],
  [`repo@SHA256:${HEX64}`, 'DIGEST_INVALID'],
  [`repo@${HEX64}`, 'DIGEST_INVALID'],
  ['repo@sha256', 'DIGEST_INVALID'],
  ['repo:tag@sha256:zz', 'DIGEST_INVALID'],
  [`repo@${D} `, 'DIGEST_INVALID'],
  [`a@b@${D}`, 'DIGEST_INVALID'],
  [`repo@${D}@${D}`, 'DIGEST_INVALID'],
];

describe('parseReference', () => {
  it('has a table of 100+ cases', () => {
    expect(VALID.length + INVALID.length).toBeGreaterThan(200);
  });

  for (const [input, registry, repository, tag, digest] of VALID) {
    it(`parses ${show(input)}`, () => {
      const ref = parseReference(input);
      expect(ref).toEqual({ registry, repository, tag, digest });
      // The normalized string parses to the same reference.
      expect(parseReference(formatReference(ref))).toEqual(ref);
    });
  }

  for (const [input, code] of INVALID) {
    it(`refuses ${show(input)} with ${code}`, () => {
      const err = thrown(() => parseReference(input));
      expect(err.code).toBe(code);
      expect(err.status).toBe(400);
      expect(err.toBody().errors[0]?.code).toBe(code);
    });
  }

  it('explains the common name errors', () => {
    expect(thrown(() => parseReference('docker/Docker')).message).toBe('repository name must be lowercase');
    expect(thrown(() => parseReference(a(248))).message).toBe(
      'repository name must not be more than 255 characters',
    );
    expect(thrown(() => parseReference('')).message).toMatch(/at least one component/);
    expect(thrown(() => parseReference(ID)).message).toMatch(/cannot specify 64-byte hexadecimal strings/);
    expect(thrown(() => parseReference(D)).message).toMatch(/use <name>@<digest>/);
    expect(thrown(() => parseReference('foo_bar.com:8080/app')).message).toBe(
      'invalid registry host "foo_bar.com:8080"',
    );
    expect(thrown(() => parseReference('nginx:')).message).toBe('tag must not be empty');
  });

  it('reports the name before the tag, and the tag before the digest', () => {
    expect(thrown(() => parseReference('Nginx:-x@sha256:zz')).code).toBe('NAME_INVALID');
    expect(thrown(() => parseReference('nginx:-x@sha256:zz')).code).toBe('TAG_INVALID');
  });

  it('keeps error details bounded for huge input', () => {
    const err = thrown(() => parseReference(`${a(100_000)}$`));
    expect(JSON.stringify(err.toBody()).length).toBeLessThan(1000);
  });
});

describe('formatReference', () => {
  const base = { registry: 'quay.io', repository: 'a/b' };
  it.each([
    [{ ...base, tag: 't', digest: null }, 'quay.io/a/b:t'],
    [{ ...base, tag: null, digest: D }, `quay.io/a/b@${D}`],
    [{ ...base, tag: 't', digest: D }, `quay.io/a/b:t@${D}`],
    [{ ...base, tag: null, digest: null }, 'quay.io/a/b'],
    [
      { registry: DOCKER_HUB, repository: 'library/nginx', tag: 'latest', digest: null },
      'docker.io/library/nginx:latest',
    ],
  ] as [Reference, string][])('formats %o as %s', (ref, out) => {
    expect(formatReference(ref)).toBe(out);
  });

  it('gives the canonical Docker Hub form for familiar names', () => {
    for (const input of [
      'nginx',
      'docker.io/nginx',
      'index.docker.io/nginx',
      'registry-1.docker.io/library/nginx',
    ]) {
      expect(formatReference(parseReference(input))).toBe('docker.io/library/nginx:latest');
    }
  });
});

describe('splitDockerDomain', () => {
  it.each([
    ['nginx', 'docker.io', 'library/nginx'],
    ['user/app', 'docker.io', 'user/app'],
    ['docker.io/nginx', 'docker.io', 'library/nginx'],
    ['index.docker.io/foo', 'docker.io', 'library/foo'],
    ['registry-1.docker.io/foo/bar', 'docker.io', 'foo/bar'],
    ['quay.io/nginx', 'quay.io', 'nginx'],
    ['localhost/nginx', 'localhost', 'nginx'],
    ['localhost', 'docker.io', 'library/localhost'],
    ['myhost/nginx', 'docker.io', 'myhost/nginx'],
    ['MyHost/nginx', 'MYHOST', 'nginx'],
    ['myhost:5000/nginx', 'myhost:5000', 'nginx'],
    ['[::1]/a/b', '[::1]', 'a/b'],
    ['EXAMPLE.com/a', 'example.com', 'a'],
  ])('splits %s into %s + %s', (name, registry, repository) => {
    expect(splitDockerDomain(name)).toEqual({ registry, repository });
  });

  it.each(['', 'docker.io/', 'a..b/c', 'quay.io/A', 'bad_host.io/x', 'Bad_Host/x', 'nginx:latest', 'x/'])(
    'refuses %j',
    (name) => {
      expect(thrown(() => splitDockerDomain(name)).code).toBe('NAME_INVALID');
    },
  );
});

describe('normalizeRegistryHost', () => {
  it.each([
    ['docker.io', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['INDEX.DOCKER.IO', 'docker.io'],
    ['Registry-1.Docker.IO', 'docker.io'],
    ['registry-1.docker.io:443', 'registry-1.docker.io:443'],
    ['Quay.io', 'quay.io'],
    ['localhost:5000', 'localhost:5000'],
    ['[FC00::1]:5000', '[fc00::1]:5000'],
    ['LocalHost', 'localhost'],
    // A host by its uppercase letters only: lowercased, 'localdomain/x' would be Docker Hub's
    ['LOCALDOMAIN', 'LOCALDOMAIN'],
    ['localdomain', 'LOCALDOMAIN'],
    ['LocalDomain', 'LOCALDOMAIN'],
  ])('%s -> %s', (host, out) => {
    expect(normalizeRegistryHost(host)).toBe(out);
  });
});

describe('isValidDomain', () => {
  it.each([
    'test.com',
    'test.com:10304',
    'localhost',
    'localhost:8080',
    'a',
    'a.b',
    'ab.cd.com',
    'a-b.com',
    'ab.c-om',
    '0101.com',
    '001a.com',
    'b.gbc.io:443',
    'xn--n3h.com',
    'Asdf.com',
    '192.168.1.1:75050',
    '[fd00:1:2::3]:75050',
    '[fd00123123123]:75050',
    '[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050',
    '[::1]',
  ])('accepts %s', (s) => {
    expect(isValidDomain(s)).toBe(true);
  });

  it.each([
    '',
    'test.com:http',
    '-ab.com',
    'ab-.com',
    'ab.-com',
    'ab.com-',
    'a..b',
    'a.',
    'a_b.com',
    'test.com:',
    '[fd00:1:2::3]75050',
    '[fd00:1:2::3]::75050',
    '[fd00:1:2::3%eth0]:75050',
    'fd00:1:2::3:75050',
    '[]',
    'a/b',
  ])('refuses %j', (s) => {
    expect(isValidDomain(s)).toBe(false);
  });
});

describe('repository paths', () => {
  it.each([
    'a',
    'library/ubuntu',
    'docker/stevvooe/app',
    'aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb',
    'a/a/a/a',
    'aa-a/a',
    'foo_bar',
    'foo_bar.com',
    'foo.com/foo_bar',
    'a__b/c---d',
    a(NAME_TOTAL_LENGTH_MAX),
    `${'a/'.repeat(127)}a`,
  ])('accepts %s', (s) => {
    expect(isValidRepositoryPath(s)).toBe(true);
    expect(() => assertRepositoryPath(s)).not.toThrow();
  });

  it.each([
    ['', /must not be empty/],
    [a(NAME_TOTAL_LENGTH_MAX + 1), /must not be more than 255 characters/],
    [`${'a/'.repeat(128)}a`, /must not be more than 255 characters/],
    ['Library/ubuntu', /must be lowercase/],
    ['a b', /invalid character " "/],
    ['a$b', /invalid character "\$"/],
    ['a:b', /invalid character ":"/],
    ['a@b', /invalid character "@"/],
    ['a/../b', /component "\.\." must not contain "\.\."/],
    ['dock..er', /must not contain "\.\."/],
    ['a//b', /empty components/],
    ['a/', /empty components/],
    ['/a', /empty components/],
    ['-a', /must start and end with a lowercase letter or digit/],
    ['a_', /must start and end with a lowercase letter or digit/],
    ['x/a.', /component "a\." must start and end/],
    ['a___b', /invalid separator/],
    ['a._b', /invalid separator/],
    ['a-_b', /invalid separator/],
  ])('refuses %j: %s', (s, message) => {
    expect(isValidRepositoryPath(s)).toBe(false);
    const err = thrown(() => assertRepositoryPath(s));
    expect(err.code).toBe('NAME_INVALID');
    expect(err.message).toMatch(message);
    expect(err.detail).toEqual({ name: s.length > 300 ? expect.any(String) : s });
  });

  it('does not take a domain', () => {
    expect(isValidRepositoryPath('quay.io:443/a')).toBe(false);
    expect(isValidRepositoryPath('quay.io/a')).toBe(true); // 'quay.io' is a valid path component too
  });
});

describe('tags', () => {
  it.each(['latest', '_', 'A', '0', 'v1.2.3-rc.1_b', 'a..--__', a(TAG_MAX)])('accepts %s', (s) => {
    expect(isValidTag(s)).toBe(true);
    expect(() => assertTag(s)).not.toThrow();
  });

  it.each([
    ['', 'tag must not be empty'],
    [a(TAG_MAX + 1), 'tag must not be more than 128 characters'],
    ['-a', 'tag must not start with "." or "-"'],
    ['.a', 'tag must not start with "." or "-"'],
    ['a/b', 'tag may contain only letters, digits, "_", "." and "-"'],
    ['a:b', 'tag may contain only letters, digits, "_", "." and "-"'],
    ['ü', 'tag may contain only letters, digits, "_", "." and "-"'],
    ['a\n', 'tag may contain only letters, digits, "_", "." and "-"'],
  ])('refuses %j', (s, message) => {
    expect(isValidTag(s)).toBe(false);
    const err = thrown(() => assertTag(s));
    expect(err.code).toBe('TAG_INVALID');
    expect(err.message).toBe(message);
  });
});

// --- Properties -------------------------------------------------------------------------------

const chars = (alphabet: string, minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength, maxLength });
const alnum = chars('abcdefghijklmnopqrstuvwxyz0123456789', 1, 6);
const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');
const component = fc
  .tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 3 }))
  .map(([head, rest]) => head + rest.map(([sep, an]) => sep + an).join(''));
const path = fc.array(component, { minLength: 1, maxLength: 5 }).map((cs) => cs.join('/'));
const label = fc
  .tuple(chars('abcXYZ019', 1, 4), chars('abcXYZ019-', 0, 3), chars('abcXYZ019', 1, 4))
  .map(([x, y, z]) => x + y + z);
const port = fc.integer({ min: 1, max: 65535 }).map((p) => `:${p}`);
const domain = fc.oneof(
  fc
    .tuple(fc.array(label, { minLength: 2, maxLength: 3 }), fc.option(port))
    .map(([ls, p]) => ls.join('.') + (p ?? '')),
  fc.tuple(label, port).map(([l, p]) => l + p),
  fc.option(port).map((p) => `localhost${p ?? ''}`),
  fc.option(port).map((p) => `[fd00::1]${p ?? ''}`),
  fc.constantFrom('docker.io', 'index.docker.io', 'registry-1.docker.io', 'DOCKER.IO', 'quay.io'),
  // A host without '.' or ':' that is one by its uppercase letter ('LOCALDOMAIN', 'myHost')
  fc
    .tuple(chars('abcXYZ019', 0, 3), chars('XYZ', 1, 1), chars('abcXYZ019', 0, 3))
    .map(([x, y, z]) => x + y + z),
);
const tag = fc
  .tuple(chars('aZ09_', 1, 1), chars('aZ09_.-', 0, TAG_MAX - 1))
  .map(([first, rest]) => first + rest);
const digest = chars('0123456789abcdef', 64, 64).map((hex) => `sha256:${hex}`);
const reference = fc.record({
  domain: fc.option(domain),
  path,
  tag: fc.option(tag),
  digest: fc.option(digest),
});
const toInput = (r: { domain: string | null; path: string; tag: string | null; digest: string | null }) =>
  `${r.domain === null ? '' : `${r.domain}/`}${r.path}${r.tag === null ? '' : `:${r.tag}`}${r.digest === null ? '' : `@${r.digest}`}`;

/** An oracle for the path grammar without regular expressions: alnum runs joined by valid separators. */
function pathOracle(s: string): boolean {
  if (s.length === 0 || s.length > NAME_TOTAL_LENGTH_MAX) return false;
  const isAlnum = (c: string) => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  return s.split('/').every((comp) => {
    const runs: string[] = [];
    for (const c of comp) {
      const kind = isAlnum(c) ? 'a' : c;
      const last = runs.at(-1);
      if (last !== undefined && (last[0] === 'a' ? kind === 'a' : last[0] === c)) runs[runs.length - 1] += c;
      else runs.push(kind === 'a' ? `a${c}` : c);
    }
    if (runs.length === 0 || runs[0]?.[0] !== 'a' || runs.at(-1)?.[0] !== 'a') return false;
    return runs.every((r, i) => {
      if (i % 2 === 0) return r[0] === 'a';
      return r === '.' || r === '_' || r === '__' || /^-+$/.test(r);
    });
  });
}

describe('properties', () => {
  it('parses generated references to their parts, and formatting is a fixpoint', () => {
    fc.assert(
      fc.property(reference, (r) => {
        const first = r.path.split('/')[0] ?? '';
        // Without a domain, a first component that looks like a host would be taken as one.
        fc.pre(r.domain !== null || !r.path.includes('/') || !(first.includes('.') || first === 'localhost'));
        const ref = parseReference(toInput(r));
        const registry = r.domain === null ? DOCKER_HUB : normalizeRegistryHost(r.domain);
        expect(ref.registry).toBe(registry);
        expect(normalizeRegistryHost(ref.registry)).toBe(ref.registry); // one spelling per host
        expect(ref.repository).toBe(
          registry === DOCKER_HUB && !r.path.includes('/') ? `library/${r.path}` : r.path,
        );
        expect(ref.tag).toBe(r.tag ?? (r.digest === null ? 'latest' : null));
        expect(ref.digest).toBe(r.digest);
        const once = formatReference(ref);
        expect(parseReference(once)).toEqual(ref);
        expect(formatReference(parseReference(once))).toBe(once);
      }),
    );
  });

  it('accepts generated paths, under any registry host', () => {
    fc.assert(
      fc.property(path, (p) => {
        expect(isValidRepositoryPath(p)).toBe(true);
        expect(() => assertRepositoryPath(p)).not.toThrow();
        expect(parseReference(`example.com/${p}`).repository).toBe(p);
      }),
    );
  });

  it('refuses a generated path with an uppercase letter, saying so', () => {
    fc.assert(
      fc.property(path, fc.nat(), chars('ABCXYZ', 1, 1), (p, at, upper) => {
        const i = at % (p.length + 1);
        const s = p.slice(0, i) + upper + p.slice(i);
        expect(isValidRepositoryPath(s)).toBe(false);
        expect(thrown(() => assertRepositoryPath(s)).message).toBe('repository name must be lowercase');
      }),
    );
  });

  it('agrees with a regex-free oracle on arbitrary paths', () => {
    fc.assert(
      fc.property(chars('ab0._-/', 0, 12), (s) => {
        expect(isValidRepositoryPath(s)).toBe(pathOracle(s));
        const threw = (() => {
          try {
            assertRepositoryPath(s);
            return false;
          } catch {
            return true;
          }
        })();
        expect(threw).toBe(!isValidRepositoryPath(s));
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts generated tags and refuses them with a leading "." or "-"', () => {
    fc.assert(
      fc.property(tag, fc.constantFrom('.', '-'), (t, lead) => {
        expect(isValidTag(t)).toBe(true);
        expect(isValidTag(lead + t.slice(1))).toBe(false);
      }),
    );
  });

  it('either parses any string to a fixpoint or throws a typed 400 error', () => {
    fc.assert(
      fc.property(chars('aA0f.:_-/@[]% ', 0, 24), (s) => {
        let ref: Reference;
        try {
          ref = parseReference(s);
        } catch (err) {
          expect(err).toBeInstanceOf(RegistryError);
          expect(['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID']).toContain((err as RegistryError).code);
          expect((err as RegistryError).status).toBe(400);
          return;
        }
        expect(isValidRepositoryPath(ref.repository)).toBe(true);
        expect(parseReference(formatReference(ref))).toEqual(ref);
      }),
      { numRuns: 3000 },
    );
  });
});

// --- Agreement with distribution's grammar -----------------------------------------------------

/**
 * distribution/reference's ReferenceRegexp (regexp.go), written out here independently of the
 * module's own composition: name `(domain/)?path`, then `:tag`, then `@digest`.
 */
const DISTRIBUTION_REFERENCE = (() => {
  const alnum = '[a-z0-9]+';
  const sep = '(?:[._]|__|[-]+)';
  const pathComponent = `${alnum}(?:${sep}${alnum})*`;
  const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
  const host = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[(?:[a-fA-F0-9:]+)\\])`;
  const name = `(?:${host}(?::[0-9]+)?/)?${pathComponent}(?:/${pathComponent})*`;
  const tagPat = '[\\w][\\w.-]{0,127}';
  const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}';
  return new RegExp(`^(${name})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
})();
const HEX = '0123456789abcdef';
/** Inputs built from the pieces references are made of, so that many are valid and many nearly so. */
const referenceLike = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: chars('abAZ09', 1, 3) },
      fc.constantFrom('.', ':', '_', '__', '-', '/', '/', '@', '[', ']', '..', '::1'),
      fc.constantFrom('localhost', 'LOCALDOMAIN', 'Docker', 'docker.io', 'quay.io', '5000', 'latest'),
      fc.constantFrom('sha256:', 'sha512:', 'md5:', ''),
      chars(HEX, 64, 64),
      chars(HEX, 64, 64).map((hex) => `@sha256:${hex}`),
      chars(HEX, 128, 128).map((hex) => `@sha512:${hex}`),
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join(''));
const throwsOrRef = (s: string): Reference | RegistryError => {
  try {
    return parseReference(s);
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryError);
    return err as RegistryError;
  }
};

describe("agreement with distribution's reference grammar", () => {
  it('checks the regex itself on known inputs', () => {
    for (const ok of ['nginx', 'LOCALDOMAIN/debian', 'a:1/b', `quay.io/a/b:t@${D}`, '[::1]:5000/x']) {
      expect(DISTRIBUTION_REFERENCE.test(ok), ok).toBe(true);
    }
    for (const bad of ['Nginx', 'foo/Bar', 'a//b', 'nginx:', 'foo_bar.com:8080/app', 'a@b']) {
      expect(DISTRIBUTION_REFERENCE.test(bad), bad).toBe(false);
    }
  });

  it('accepts only inputs that match it, and formats to strings that match it with a domain', () => {
    fc.assert(
      fc.property(fc.oneof(referenceLike, reference.map(toInput)), (s) => {
        const ref = throwsOrRef(s);
        if (ref instanceof RegistryError) return;
        expect(DISTRIBUTION_REFERENCE.test(s)).toBe(true);
        const formatted = DISTRIBUTION_REFERENCE.exec(formatReference(ref));
        expect(formatted?.[1]).toBe(`${ref.registry}/${ref.repository}`);
        expect(formatted?.[1]?.slice(0, ref.registry.length + 1)).toBe(`${ref.registry}/`);
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts every input that matches it, but for the cases distribution refuses later too', () => {
    fc.assert(
      fc.property(referenceLike, (s) => {
        const match = DISTRIBUTION_REFERENCE.exec(s);
        // Short enough that no name reaches the length limit, which upstream checks after the regex.
        fc.pre(match !== null && s.length <= 240);
        const digest = match![3];
        // Refused after the regex upstream as well: digests that are not a known algorithm's
        // lowercase hex (go-digest's Validate), and an image ID where a name should be.
        const refusedUpstream =
          (digest !== undefined && !/^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(digest)) ||
          /^[a-f0-9]{64}$/.test(s);
        // Our deliberate differences: a bare digest is not docker.io/library/sha256 with a tag, and a
        // first component taken for a host must be a valid one ('a_b.com/x' upstream gets an empty
        // domain, which nothing can pull from).
        const bareDigest = /^sha(?:256|512):[a-fA-F0-9]{32,}$/.test(s);
        const name = match![1]!;
        const first = name.includes('/') ? name.slice(0, name.indexOf('/')) : '';
        const badHost = isRegistryComponent(first) && !isValidDomain(first);
        const ref = throwsOrRef(s);
        if (refusedUpstream || bareDigest || badHost) expect(ref).toBeInstanceOf(RegistryError);
        else expect(ref).not.toBeInstanceOf(RegistryError);
      }),
      { numRuns: 3000 },
    );
  });

  it('answers any string, unicode and control characters included, with a reference or a typed 400', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme' })),
        (s) => {
          const ref = throwsOrRef(s);
          if (ref instanceof RegistryError) {
            expect(ref.status).toBe(400);
            return;
          }
          expect(DISTRIBUTION_REFERENCE.test(formatReference(ref))).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('puts a domain-looking or uppercase first component in the registry, and nothing else', () => {
    fc.assert(
      fc.property(referenceLike, (s) => {
        const ref = throwsOrRef(s);
        if (ref instanceof RegistryError) return;
        const name = DISTRIBUTION_REFERENCE.exec(s)![1]!;
        const slash = name.indexOf('/');
        const first = slash < 0 ? '' : name.slice(0, slash);
        const isHost =
          first.includes('.') || first.includes(':') || first === 'localhost' || /[A-Z]/.test(first);
        expect(ref.registry).toBe(isHost ? normalizeRegistryHost(first) : DOCKER_HUB);
      }),
      { numRuns: 3000 },
    );
  });
});
