/**
 * The command line as scripts and operators use it: `resolve` output and errors, `serve` with the
 * config file from --config or PULLCACHE_CONFIG, flags winning over the file, start-up errors that
 * name the bad key or flag in one line, and --version.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'pullcache-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source; with `until`, stops it (SIGTERM) once stdout contains that text. */
function cli(args: string[], env: Record<string, string> = {}, until?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: process.cwd(),
      env: { ...process.env, PULLCACHE_CONFIG: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: Run = { code: null, stdout: '', stderr: '' };
    let signalled = false;
    child.stdout.on('data', (d) => {
      run.stdout += d;
      if (until && !signalled && run.stdout.includes(until)) {
        signalled = true;
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d) => (run.stderr += d));
    child.on('close', (code) => resolve({ ...run, code }));
  });
}

describe('pullcache resolve', () => {
  it.each([
    [
      'nginx',
      {
        reference: 'docker.io/library/nginx:latest',
        registry: 'docker.io',
        repository: 'library/nginx',
        tag: 'latest',
        digest: null,
        allowed: true,
        upstream: 'https://registry-1.docker.io/v2/library/nginx/manifests/latest',
      },
    ],
    [
      'quay.io/coreos/flannel:v0.12.0-amd64',
      {
        reference: 'quay.io/coreos/flannel:v0.12.0-amd64',
        registry: 'quay.io',
        repository: 'coreos/flannel',
        tag: 'v0.12.0-amd64',
        digest: null,
        allowed: true,
        upstream: 'https://quay.io/v2/coreos/flannel/manifests/v0.12.0-amd64',
      },
    ],
    [
      `registry.k8s.io/pause@sha256:${'a'.repeat(64)}`,
      {
        reference: `registry.k8s.io/pause@sha256:${'a'.repeat(64)}`,
        registry: 'registry.k8s.io',
        repository: 'pause',
        tag: null,
        digest: `sha256:${'a'.repeat(64)}`,
        allowed: true,
        upstream: `https://registry.k8s.io/v2/pause/manifests/sha256:${'a'.repeat(64)}`,
      },
    ],
  ])(
    'prints what %s means and where it is pulled from',
    async (reference, expected) => {
      const run = await cli(['resolve', reference]);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual(expected);
    },
    20_000,
  );

  it.each([
    ['gcr.io/x/y', 'gcr.io', 'x/y'],
    // An uppercase first component is a registry host, as distribution's reference library decides.
    ['LOCALDOMAIN/debian', 'LOCALDOMAIN', 'debian'],
    ['Docker/docker', 'DOCKER', 'docker'],
  ])(
    'answers for %s, valid but not allowed here, with allowed: false and exit 0',
    async (reference, registry, repository) => {
      const run = await cli(['resolve', reference]);
      expect(run.code).toBe(0);
      expect(run.stderr).toBe('');
      expect(JSON.parse(run.stdout)).toEqual({
        reference: `${registry}/${repository}:latest`,
        registry,
        repository,
        tag: 'latest',
        digest: null,
        allowed: false,
        upstream: null,
      });
    },
    20_000,
  );

  it('resolves a dotless registry host the config allows, however the config spells it', async () => {
    const config = join(dir, 'localdomain.yaml');
    writeFileSync(
      config,
      'registries:\n  docker.io: { url: https://registry-1.docker.io }\n  localdomain: { url: "http://localdomain:5000" }\n',
    );
    const run = await cli(['resolve', '--config', config, 'LocalDomain/debian:12']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      reference: 'LOCALDOMAIN/debian:12',
      registry: 'LOCALDOMAIN',
      allowed: true,
      upstream: 'http://localdomain:5000/v2/debian/manifests/12',
    });
  }, 20_000);

  it.each([
    ['Nginx', 'repository name must be lowercase'],
    ['nginx:bad tag', 'pullcache:'],
    ['Bad_Host/x', 'invalid registry host "Bad_Host"'],
  ])(
    'fails for %s with a non-zero exit and one line on stderr',
    async (reference, message) => {
      const run = await cli(['resolve', reference]);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toContain(message);
    },
    20_000,
  );
});

describe('pullcache serve', () => {
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:1',
      `storage: { path: ${join(dir, 'from-file')} }`,
      'registries:',
      '  docker.io: { url: https://registry-1.docker.io }',
    ].join('\n'),
  );

  it('takes the file from PULLCACHE_CONFIG, with --listen and --storage winning over it', async () => {
    const run = await cli(
      ['serve', '--listen', '127.0.0.1:0', '--storage', join(dir, 'from-flag')],
      { PULLCACHE_CONFIG: config },
      '"listening"',
    );
    expect(run.code).toBe(0);
    const listening = run.stdout
      .split('\n')
      .map((l) => (l ? JSON.parse(l) : {}))
      .find((l) => l.msg === 'listening');
    expect(listening.address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(listening.address).not.toBe('http://127.0.0.1:1');
    expect(run.stdout).toContain('"stopped"');
  }, 20_000);

  it('refuses to start with a bad config, naming each bad key', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      'listen: nowhere\ncache: { tagTTL: soon }\nregistries: { docker.io: { url: "ftp://x" } }\n',
    );
    const run = await cli(['serve', '--config', bad]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('listen: expected HOST:PORT');
    expect(run.stderr).toContain('cache.tagTTL: expected a duration');
    expect(run.stderr).toContain('registries.docker.io.url');
  }, 20_000);

  it('refuses to start when a ${VAR} in the config is not set', async () => {
    const secret = join(dir, 'secret.yaml');
    writeFileSync(
      secret,
      'registries:\n  docker.io: { url: https://registry-1.docker.io, username: me, password: "${HUB_TOKEN_FOR_TEST}" }\n',
    );
    const run = await cli(['serve', '--config', secret]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      'registries.docker.io.password: environment variable HUB_TOKEN_FOR_TEST is not set',
    );
  }, 20_000);
});

describe('start-up errors: one line on stderr, exit status 1', () => {
  const storage = join(dir, 'start-up');
  const oneLine = (run: Run) => {
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack
    return run.stderr.trim();
  };

  it('--listen without a host is a bad --listen flag, not an error in the config file', async () => {
    const line = oneLine(await cli(['serve', '--listen', '15082', '--storage', storage]));
    expect(line).toBe(
      'pullcache: --listen: expected HOST:PORT, e.g. 0.0.0.0:5000, got "15082" (all interfaces: 0.0.0.0:15082)',
    );
  }, 20_000);

  it('--listen with a port out of range', async () => {
    const line = oneLine(await cli(['serve', '--listen', '127.0.0.1:99999', '--storage', storage]));
    expect(line).toBe('pullcache: --listen: the port must be between 0 and 65535, got "127.0.0.1:99999"');
  }, 20_000);

  it('a port out of range in the config file names the file and the key', async () => {
    const file = join(dir, 'port-range.yaml');
    writeFileSync(
      file,
      'listen: 127.0.0.1:99999\nregistries: { docker.io: { url: https://registry-1.docker.io } }\n',
    );
    const line = oneLine(await cli(['serve', '--config', file, '--storage', storage]));
    expect(line).toBe(
      `pullcache: ${file}: invalid configuration: listen: the port must be between 0 and 65535`,
    );
  }, 20_000);

  it('a port in use', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const line = oneLine(await cli(['serve', '--listen', `127.0.0.1:${port}`, '--storage', storage]));
      expect(line).toBe(
        `pullcache: cannot listen on 127.0.0.1:${port}: the address is already in use (EADDRINUSE)`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  }, 20_000);

  it('a host that does not resolve', async () => {
    // A 64-character label cannot be a DNS name: the lookup fails without a query leaving the machine.
    const host = `${'x'.repeat(64)}.invalid`;
    const line = oneLine(await cli(['serve', '--listen', `${host}:0`, '--storage', storage]));
    expect(line).toBe(`pullcache: cannot listen on ${host}:0: the host name does not resolve (ENOTFOUND)`);
  }, 20_000);
});

describe('pullcache --version', () => {
  it('prints the version of package.json', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const run = await cli(['--version']);
    expect(run).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  }, 20_000);
});
