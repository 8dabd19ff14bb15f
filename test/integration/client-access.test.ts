/**
 * Safe to expose: client credentials (htpasswd bcrypt entries, static bearer tokens) with the Basic
 * challenge clients expect, client network allow-lists, and HTTPS with certificate reload.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import bcrypt from 'bcryptjs';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from '../../src/upstream/www-authenticate.js';
import { selfSignedCertificate } from '../support/certificate.js';
import { RegistryContent, registryHandlers } from '../support/fake-registry.js';
import { firstError } from '../support/http-client.js';
import { type LoopbackServer, startLoopback } from '../support/msw-loopback.js';
import { startProxy, type TestProxy } from '../support/proxy.js';

const content = new RegistryContent();
content.addImage('library/app', '1.0');
const dir = mkdtempSync(join(tmpdir(), 'pullcache-access-'));
const htpasswd = join(dir, 'htpasswd');
const TOKEN = 'ci-pull-token-0123456789abcdef';
let registry: LoopbackServer;

beforeAll(async () => {
  registry = await startLoopback(...registryHandlers(content, { auth: { kind: 'none' } }));
  writeFileSync(
    htpasswd,
    `# pullers\nalice:${bcrypt.hashSync('wonderland', 4)}\nbob:${bcrypt.hashSync('builder', 4)}\n`,
  );
});
afterAll(async () => {
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('client credentials', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      auth: { htpasswd, tokens: [TOKEN], realm: 'team-cache' },
    });
  });
  afterAll(() => proxy.close());

  it('challenges a client without credentials the way docker login expects, without upstream traffic', async () => {
    registry.requests.length = 0;
    const response = await fetch(`${proxy.url}/v2/`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="team-cache"');
    expect((await firstError(response)).code).toBe('UNAUTHORIZED');
    expect((await fetch(`${proxy.url}/v2/app/manifests/1.0`)).status).toBe(401);
    expect(registry.requests).toHaveLength(0);
  });

  it('quotes a realm holding quotes and backslashes, so that clients read it back', async () => {
    const realm = 'team "A" \\ cache';
    const quoting = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      auth: { tokens: [TOKEN], realm },
    });
    try {
      const response = await fetch(`${quoting.url}/v2/`);
      expect(response.status).toBe(401);
      const header = response.headers.get('www-authenticate');
      expect(header).toBe('Basic realm="team \\"A\\" \\\\ cache"');
      expect(parseWwwAuthenticate(header ?? '')).toEqual([{ scheme: 'basic', params: { realm } }]);
      await response.arrayBuffer();
    } finally {
      await quoting.close();
    }
  });

  it.each([
    ['a correct htpasswd user', basic('alice', 'wonderland'), 200],
    ['another htpasswd user', basic('bob', 'builder'), 200],
    ['a wrong password', basic('alice', 'wrong'), 401],
    ['an unknown user', basic('mallory', 'wonderland'), 401],
    ['a malformed Basic value', 'Basic !!!', 401],
    ['a static bearer token', `Bearer ${TOKEN}`, 200],
    ['a wrong bearer token', `Bearer ${TOKEN}x`, 401],
    ['an unknown scheme', `Digest ${TOKEN}`, 401],
  ])('%s → %d', async (_, authorization, status) => {
    const response = await fetch(`${proxy.url}/v2/app/manifests/1.0`, { headers: { authorization } });
    expect(response.status).toBe(status);
    await response.arrayBuffer();
  });

  it('keeps health open, and metrics free of credentials (for probes and scrapers)', async () => {
    expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${proxy.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${proxy.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${proxy.url}/_pullcache/stats`)).status).toBe(401);
  });

  it('refuses an htpasswd file with entries that are not bcrypt', async () => {
    const weak = join(dir, 'weak');
    writeFileSync(weak, 'carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n');
    await expect(
      startProxy({ registries: { 'docker.io': { url: registry.url } }, auth: { htpasswd: weak } }),
    ).rejects.toThrow(/line 1 of .* is not a bcrypt entry/);
  });
});

describe('client networks', () => {
  it('refuses clients outside allowedClients with 403, but keeps health open', async () => {
    const proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      allowedClients: ['10.0.0.0/8', 'fd00::/8'],
    });
    try {
      const response = await fetch(`${proxy.url}/v2/`);
      expect(response.status).toBe(403);
      expect((await firstError(response)).code).toBe('DENIED');
      expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('serves clients inside allowedClients', async () => {
    const proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      allowedClients: ['127.0.0.0/8'],
    });
    try {
      expect((await fetch(`${proxy.url}/v2/`)).status).toBe(200);
    } finally {
      await proxy.close();
    }
  });
});

describe('HTTPS', () => {
  // Both certificates are written to the same two files: a reload reads the new one.
  const certificate = (name: string) => {
    const { cert, key, pem } = selfSignedCertificate(dir, name);
    renameSync(cert, join(dir, 'tls.crt'));
    renameSync(key, join(dir, 'tls.key'));
    return pem;
  };
  const subjectOf = (port: number) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(String(socket.getPeerCertificate().subject.CN));
        socket.end();
      });
      socket.on('error', reject);
    });

  it('serves the API over TLS and reloads the certificate on demand (SIGHUP)', async () => {
    const first = certificate('pullcache-one');
    const proxy = await startProxy({
      registries: { 'docker.io': { url: registry.url } },
      tls: { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
    });
    try {
      expect(proxy.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const agent = new Agent({ connect: { ca: first } });
      const response = await undiciFetch(`${proxy.url}/v2/app/manifests/1.0`, { dispatcher: agent });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      await agent.close();
      const port = Number(new URL(proxy.url).port);
      expect(await subjectOf(port)).toBe('pullcache-one');
      certificate('pullcache-two');
      proxy.reloadTls();
      expect(await subjectOf(port)).toBe('pullcache-two');
    } finally {
      await proxy.close();
    }
  });
});
