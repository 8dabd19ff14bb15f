import { describe, expect, it } from 'vitest';
import { createRealmPolicy } from './realm-policy.js';

const allowed = (registryUrl: string, realm: string, tokenRealms?: string[]) =>
  createRealmPolicy({ registryUrl, tokenRealms })(new URL(realm)).allowed;

describe('createRealmPolicy', () => {
  it("trusts the registry's own host, on any port and path", () => {
    expect(allowed('https://ghcr.io', 'https://ghcr.io/token')).toBe(true);
    expect(allowed('https://registry.example.com:5000', 'https://registry.example.com:8443/auth')).toBe(true);
    expect(allowed('https://Registry.Example.com.', 'https://registry.example.com/auth')).toBe(true);
  });

  it('trusts a realm on the same registrable domain (auth.docker.io for registry-1.docker.io)', () => {
    expect(allowed('https://registry-1.docker.io', 'https://auth.docker.io/token')).toBe(true);
    expect(allowed('https://registry.gitlab.com', 'https://gitlab.com/jwt/auth')).toBe(true);
    expect(allowed('https://registry.example.co.uk', 'https://auth.example.co.uk/token')).toBe(true);
  });

  it('refuses a realm on another domain', () => {
    const policy = createRealmPolicy({ registryUrl: 'https://registry-1.docker.io' });
    expect(policy(new URL('https://evil.com/token'))).toEqual({
      allowed: false,
      reason: "the realm host is outside the registry's domain",
    });
    expect(allowed('https://registry-1.docker.io', 'https://docker.io.evil.com/token')).toBe(false);
    expect(allowed('https://registry-1.docker.io', 'https://evil-docker.io/token')).toBe(false);
  });

  it('treats hosts under a public suffix as different owners (x.github.io vs y.github.io, a.co.uk vs b.co.uk)', () => {
    expect(allowed('https://x.github.io', 'https://y.github.io/token')).toBe(false);
    expect(allowed('https://x.github.io', 'https://x.github.io/token')).toBe(true);
    expect(allowed('https://a.co.uk', 'https://b.co.uk/token')).toBe(false);
    // A registry on a bare suffix has no registrable domain: only its own host.
    expect(allowed('https://co.uk', 'https://b.co.uk/token')).toBe(false);
  });

  it('matches IP literal hosts only exactly, and localhost only as itself', () => {
    expect(allowed('http://127.0.0.1:5000', 'http://127.0.0.1:5001/token')).toBe(true);
    expect(allowed('http://127.0.0.1:5000', 'http://127.0.0.2/token')).toBe(false);
    expect(allowed('http://10.0.0.1', 'http://10.0.0.10/token')).toBe(false);
    expect(allowed('http://[::1]:5000', 'http://[::1]:5001/token')).toBe(true);
    expect(allowed('http://[::1]:5000', 'http://[::2]/token')).toBe(false);
    expect(allowed('https://registry.example.com', 'https://93.184.216.34/token')).toBe(false);
    expect(allowed('http://127.0.0.1', 'http://localhost/token')).toBe(false);
    expect(allowed('http://localhost:5000', 'http://localhost:5001/token')).toBe(true);
    expect(allowed('http://localhost:5000', 'http://auth.localhost/token')).toBe(false);
  });

  it('trusts hosts listed in tokenRealms, and only those', () => {
    const tokenRealms = ['auth.example.net', '10.1.2.3', '[fd00::5]'];
    expect(allowed('https://registry.example.com', 'https://auth.example.net/token', tokenRealms)).toBe(true);
    expect(allowed('https://registry.example.com', 'https://AUTH.example.net/token', tokenRealms)).toBe(true);
    expect(allowed('https://registry.example.com', 'https://10.1.2.3/token', tokenRealms)).toBe(true);
    expect(allowed('https://registry.example.com', 'https://[fd00::5]/token', tokenRealms)).toBe(true);
    expect(allowed('https://registry.example.com', 'https://other.example.net/token', tokenRealms)).toBe(
      false,
    );
    expect(allowed('https://registry.example.com', 'https://example.net/token', tokenRealms)).toBe(false);
  });

  it('keeps credentials that went over TLS off a plain-http realm, unless the realm is listed', () => {
    const policy = createRealmPolicy({ registryUrl: 'https://registry-1.docker.io' });
    expect(policy(new URL('http://auth.docker.io/token'))).toEqual({
      allowed: false,
      reason: 'the realm is plain http while the registry uses https',
    });
    expect(allowed('https://registry-1.docker.io', 'http://registry-1.docker.io/token')).toBe(false);
    expect(
      allowed('https://registry.example.com', 'http://auth.example.net/token', ['auth.example.net']),
    ).toBe(true);
    expect(allowed('http://registry.example.com', 'https://auth.example.com/token')).toBe(true);
  });
});
