/**
 * The client recipes in config/examples, run by the real clients with only the proxy address
 * changed: podman and skopeo with registries.conf, containerd with each registry's hosts.toml (and
 * its commented variants: a client-auth header, HTTPS with `ca`), and client auth with skopeo
 * credentials and containerd headers. Every pull is offline (harness/offline.ts), so a recipe that
 * missed the mirror would fail instead of quietly pulling from the real registry.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCleanup } from './harness/cleanup.js';
import { run } from './harness/command.js';
import { type Containerd, startContainerd, writeHostsToml } from './harness/containerd.js';
import { DEMO_REF } from './harness/demo-images.js';
import { digestsOf } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { readOciLayout } from './harness/layout-reader.js';
import { type OfflineEnv, offlineEnv } from './harness/offline.js';
import { createPodman } from './harness/podman.js';
import { freePort } from './harness/ports.js';
import { type ManagedProcess, startProcess, waitUntil } from './harness/process.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import {
  EXAMPLE_REGISTRIES,
  PROJECT_ROOT,
  readProjectFile,
  uncommentVariants,
  withProxy,
} from './harness/recipes.js';
import { basicAuth, type Credentials, type Registry, startRegistry } from './harness/registry.js';
import { pullImage, pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const REGISTRIES = Object.keys(EXAMPLE_REGISTRIES);

describe('client recipes from config/examples', () => {
  const cleanup = createCleanup();
  let work: string;
  let demo: GeneratedImage;
  let upstream: Registry;
  let offline: OfflineEnv;
  let containerd: Containerd;
  /** Every example registry name, each served by the one test upstream. */
  let proxy: Pullcache;
  let registriesConf: string;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('client-recipes'), removeDir);
    demo = await generateImage({ dir: join(work, 'images', 'demo'), seed: 'client-recipes' });
    upstream = cleanup.add(await startRegistry(), (r) => r.stop());
    await pushImage(demo, `${upstream.host}/${DEMO_REF}`);
    offline = await offlineEnv();
    proxy = cleanup.add(
      await startPullcache({
        registries: Object.fromEntries(REGISTRIES.map((r) => [r, { url: upstream.url }])),
      }),
      (p) => p.stop(),
    );
    registriesConf = join(work, 'registries.conf');
    await writeFile(
      registriesConf,
      withProxy(await readProjectFile('config/examples/registries.conf'), proxy.host),
    );
    containerd = cleanup.add(await startContainerd(), (c) => c.stop());
  });
  afterAll(() => cleanup.run());

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`--- pullcache output (tail) ---\n${proxy?.output().slice(-6_000) ?? '(not started)'}`);
    });
  });

  const amd64 = () => demo.platforms.find((p) => p.platform.architecture === 'amd64')!;
  /** pullcache's request log lines for this registry's library/demo:1.0 manifest, with status 200. */
  const tagRequests = (server: Pullcache, registry: string, pathPrefix = '') =>
    server
      .output()
      .split('\n')
      .filter(
        (line) =>
          line.includes(`"path":"/v2/${pathPrefix}library/demo/manifests/1.0","registry":"${registry}"`) &&
          line.includes('"status":200'),
      ).length;

  /** `skopeo [--registries-conf FILE] copy --all` from `source` into a new OCI layout: what arrived. */
  async function skopeoCopy(source: string, dest: string, extra: string[] = [], conf = registriesConf) {
    await run(
      'skopeo',
      [
        '--registries-conf',
        conf,
        '--insecure-policy',
        'copy',
        '--all',
        '--preserve-digests',
        '--quiet',
        ...extra,
        source,
        `oci:${join(work, dest)}:1.0`,
      ],
      { env: offline.env },
    );
    return readOciLayout(join(work, dest), '1.0');
  }

  async function ctrPull(ref: string, hostsDir: string, namespace: string): Promise<void> {
    await run(
      'ctr',
      [
        '--address',
        containerd.address,
        '--namespace',
        namespace,
        'images',
        'pull',
        '--hosts-dir',
        hostsDir,
        ref,
      ],
      { env: offline.env },
    );
  }

  /** The example hosts.toml of each registry, written to a hosts dir with the proxy address in. */
  async function exampleHostsDir(name: string, edit: (toml: string) => string = (t) => t): Promise<string> {
    const dir = join(work, name);
    for (const registry of REGISTRIES) {
      const example = await readProjectFile(`config/examples/containerd/certs.d/${registry}/hosts.toml`);
      const file = join(dir, registry, 'hosts.toml');
      await mkdir(join(dir, registry), { recursive: true });
      await writeFile(file, edit(example));
    }
    return dir;
  }

  it('podman (CONTAINERS_REGISTRIES_CONF) pulls docker.io/library/demo:1.0 through the mirror', async () => {
    const podman = cleanup.add(
      await createPodman({ ...offline.env, CONTAINERS_REGISTRIES_CONF: registriesConf }),
      (p) => p.stop(),
    );
    const before = tagRequests(proxy, 'docker.io');
    await podman.pull('docker.io/library/demo:1.0');
    const image = await podman.inspect('docker.io/library/demo:1.0');
    expect(image.RepoDigests).toContain(`docker.io/library/demo@${demo.index.digest}`);
    expect(`sha256:${image.Id}`).toBe(amd64().config.digest);
    expect(tagRequests(proxy, 'docker.io')).toBeGreaterThan(before);
  });

  it.each(REGISTRIES)(
    'skopeo --registries-conf copies %s/library/demo:1.0 through the mirror',
    async (registry) => {
      const before = tagRequests(proxy, registry, registry === 'docker.io' ? '' : `${registry}/`);
      const pulled = await skopeoCopy(`docker://${registry}/library/demo:1.0`, `skopeo-${registry}`, [
        '--src-no-creds',
      ]);
      expect(pulled).toEqual(digestsOf(demo));
      // registries.conf names other registries by a path prefix, which pullcache routes by.
      expect(tagRequests(proxy, registry, registry === 'docker.io' ? '' : `${registry}/`)).toBeGreaterThan(
        before,
      );
    },
  );

  it('leaves the clients no way around the mirror: a fallback to the registry fails at the closed proxy', async () => {
    // The mirror answers 404 for an image the upstream lacks; skopeo then tries docker.io itself.
    await expect(
      skopeoCopy('docker://docker.io/library/absent:1.0', 'skopeo-absent', ['--src-no-creds']),
    ).rejects.toThrow(offline.proxy);
  });

  it("containerd pulls each registry's image with that registry's example hosts.toml (?ns= routing)", async () => {
    const hostsDir = await exampleHostsDir('hosts-examples', (toml) => withProxy(toml, proxy.host));
    for (const registry of REGISTRIES) {
      const ref = `${registry}/${DEMO_REF}`;
      const namespace = `example-${registry.replaceAll('.', '-')}`;
      const before = tagRequests(proxy, registry);
      await ctrPull(ref, hostsDir, namespace);
      expect(await containerd.imageTarget(ref, namespace), registry).toEqual({
        mediaType: demo.index.mediaType,
        digest: demo.index.digest,
      });
      // containerd asked for /v2/library/demo/… and ?ns=<registry> chose the upstream.
      expect(tagRequests(proxy, registry), registry).toBeGreaterThan(before);
    }
  });

  it("containerd pulls over HTTPS with the example's `ca` variant", async () => {
    const tlsDir = join(work, 'tls');
    await mkdir(tlsDir, { recursive: true });
    const cert = join(tlsDir, 'pullcache.crt');
    const key = join(tlsDir, 'pullcache.key');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    const tlsProxy = cleanup.add(await startTlsPullcache(tlsDir, upstream.url, cert, key), (p) =>
      p.stop(1_000),
    );
    // The example with only its HTTPS host: the plain one dropped, the variant uncommented.
    const hostsDir = await exampleHostsDir('hosts-https', (toml) => {
      const variants = uncommentVariants(toml);
      const plainHost = variants.slice(variants.indexOf('[host."http://'), variants.indexOf('# With TLS on'));
      return withProxy(variants.replace(plainHost, ''), tlsProxy.host).replace(
        /^(\s*)ca = .*$/m,
        `$1ca = ${JSON.stringify(cert)}`,
      );
    });
    expect(await readFile(join(hostsDir, 'docker.io', 'hosts.toml'), 'utf8')).toContain(
      `[host."https://${tlsProxy.host}"]`,
    );
    await ctrPull(`docker.io/${DEMO_REF}`, hostsDir, 'https');
    expect((await containerd.imageTarget(`docker.io/${DEMO_REF}`, 'https'))?.digest).toBe(demo.index.digest);
    expect(tlsProxy.output()).toMatch(
      /"method":"HEAD","path":"\/v2\/library\/demo\/manifests\/1\.0".*"status":200/,
    );
  });

  describe('with client auth (htpasswd and a bearer token)', () => {
    const creds: Credentials = { username: 'puller', password: 'pull-secret' };
    const token = 'e2e-static-token-0123456789abcdef';
    let authProxy: Pullcache;

    beforeAll(async () => {
      const htpasswd = join(work, 'clients.htpasswd');
      await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', creds.username, creds.password])).stdout);
      authProxy = cleanup.add(
        await startPullcache({
          registries: { 'docker.io': { url: upstream.url } },
          extraYaml: `auth:\n  htpasswd: ${JSON.stringify(htpasswd)}\n  tokens: [${JSON.stringify(token)}]`,
        }),
        (p) => p.stop(),
      );
    });

    it('skopeo pulls with --src-creds and is refused without', async () => {
      const pulled = await pullImage(`${authProxy.host}/demo:1.0`, join(work, 'auth-pulls'), { creds });
      expect(pulled).toEqual(digestsOf(demo));
      await expect(pullImage(`${authProxy.host}/demo:1.0`, join(work, 'auth-refused'))).rejects.toThrow(
        /unauthorized/,
      );
    });

    it('podman login to the mirror host lets podman and skopeo pull through registries.conf', async () => {
      // containers/image never sends the named registry's credentials (--creds, --src-creds) to a
      // mirror: a mirror's come from the auth file, under the mirror's own host.
      const authFile = join(work, 'auth.json');
      const conf = join(work, 'registries-auth.conf');
      await writeFile(
        conf,
        withProxy(await readProjectFile('config/examples/registries.conf'), authProxy.host),
      );
      const podman = cleanup.add(
        await createPodman({
          ...offline.env,
          CONTAINERS_REGISTRIES_CONF: conf,
          REGISTRY_AUTH_FILE: authFile,
        }),
        (p) => p.stop(),
      );
      await podman.podman([
        'login',
        '--tls-verify=false',
        '--username',
        creds.username,
        '--password',
        creds.password,
        authProxy.host,
      ]);
      await podman.pull('docker.io/library/demo:1.0');
      expect((await podman.inspect('docker.io/library/demo:1.0')).RepoDigests).toContain(
        `docker.io/library/demo@${demo.index.digest}`,
      );
      const pulled = await skopeoCopy(
        'docker://docker.io/library/demo:1.0',
        'skopeo-auth-mirror',
        ['--authfile', authFile],
        conf,
      );
      expect(pulled).toEqual(digestsOf(demo));
      expect(tagRequests(authProxy, 'docker.io')).toBeGreaterThanOrEqual(2);
    });

    it('containerd pulls with a Basic Authorization header in hosts.toml and fails without', async () => {
      const ref = `docker.io/${DEMO_REF}`;
      const withHeader = join(work, 'hosts-basic');
      await writeHostsToml(withHeader, 'docker.io', authProxy.url, {
        headers: { Authorization: basicAuth(creds) },
      });
      await ctrPull(ref, withHeader, 'auth-basic');
      expect((await containerd.imageTarget(ref, 'auth-basic'))?.digest).toBe(demo.index.digest);

      const without = join(work, 'hosts-no-auth');
      await writeHostsToml(without, 'docker.io', authProxy.url);
      await expect(ctrPull(ref, without, 'auth-none')).rejects.toThrow();
      expect(authProxy.output()).toMatch(/"path":"\/v2\/library\/demo\/manifests\/1\.0".*"status":401/);
    });

    it("containerd pulls with the example's bearer-token header variant", async () => {
      const hostsDir = await exampleHostsDir('hosts-bearer', (toml) => {
        const tls = toml.indexOf('# With TLS on');
        return withProxy(uncommentVariants(toml.slice(0, tls)), authProxy.host).replace(
          'REPLACE-WITH-A-PULLCACHE-TOKEN',
          token,
        );
      });
      expect(await readFile(join(hostsDir, 'docker.io', 'hosts.toml'), 'utf8')).toContain(
        `Authorization = "Bearer ${token}"`,
      );
      await ctrPull(`docker.io/${DEMO_REF}`, hostsDir, 'auth-bearer');
      expect((await containerd.imageTarget(`docker.io/${DEMO_REF}`, 'auth-bearer'))?.digest).toBe(
        demo.index.digest,
      );
    });
  });
});

interface TlsPullcache {
  host: string;
  output(): string;
  stop(graceMs?: number): Promise<void>;
}

/** pullcache with `tls:` set; ready once a TLS handshake trusting `cert` succeeds. */
async function startTlsPullcache(
  dir: string,
  upstreamUrl: string,
  cert: string,
  key: string,
): Promise<TlsPullcache> {
  const port = await freePort();
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      `listen: 127.0.0.1:${port}`,
      `storage: { path: ${JSON.stringify(join(dir, 'storage'))} }`,
      `registries: { docker.io: { url: ${JSON.stringify(upstreamUrl)} } }`,
      `tls: { cert: ${JSON.stringify(cert)}, key: ${JSON.stringify(key)} }`,
    ].join('\n'),
  );
  const proc: ManagedProcess = startProcess(
    'pullcache-tls',
    process.execPath,
    [join(PROJECT_ROOT, 'dist', 'cli.js'), 'serve', '--config', config],
    { cwd: PROJECT_ROOT },
  );
  const ca = await readFile(cert);
  try {
    await waitUntil(
      'pullcache to accept TLS',
      () =>
        new Promise<boolean>((resolve) => {
          const socket = connect({ host: '127.0.0.1', port, ca }, () => {
            socket.end();
            resolve(true);
          });
          socket.once('error', () => resolve(false));
        }),
      { process: proc },
    );
  } catch (error) {
    await proc.stop();
    throw error;
  }
  return { host: `127.0.0.1:${port}`, output: () => proc.output(), stop: (graceMs) => proc.stop(graceMs) };
}
