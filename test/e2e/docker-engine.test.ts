/**
 * The container image under the real Docker Engine: the Dockerfile builds (production dependencies
 * only), the container starts healthy as a non-root user with its baked-in config and exits 0 on
 * SIGTERM, and run as compose runs it, it is the engine's Docker Hub mirror (config/examples/
 * daemon.json): `docker pull demo:1.0` comes through it from the test upstream, never from Docker Hub.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createCleanup } from './harness/cleanup.js';
import { run } from './harness/command.js';
import { DEMO_REF } from './harness/demo-images.js';
import { type DockerEngine, startDockerEngine } from './harness/docker-engine.js';
import { digestsOf } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { importNodeBaseImage, NODE_BASE_IMAGE } from './harness/node-base-image.js';
import { type OfflineEnv, offlineEnv } from './harness/offline.js';
import { freePort } from './harness/ports.js';
import { waitForHttp, waitUntil } from './harness/process.js';
import { startPullcache } from './harness/pullcache.js';
import { PROJECT_ROOT, readProjectFile, withProxy } from './harness/recipes.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { pullImage, pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

const IMAGE = 'pullcache:e2e';
const CONFIG_PATH = '/etc/pullcache/config.yaml';
const STORAGE_PATH = '/var/lib/pullcache';

describe('the pullcache container image', () => {
  const cleanup = createCleanup();
  let work: string;
  let demo: GeneratedImage;
  let upstream: Registry;
  let offline: OfflineEnv;
  let engine: DockerEngine;
  /** Where the mirror container listens; the engine's daemon.json names it before it exists. */
  let mirrorPort: number;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('docker-engine'), removeDir);
    demo = await generateImage({ dir: join(work, 'images', 'demo'), seed: 'docker-engine' });
    upstream = cleanup.add(await startRegistry(), (r) => r.stop());
    await pushImage(demo, `${upstream.host}/${DEMO_REF}`);
    offline = await offlineEnv();
    mirrorPort = await freePort();
    const daemonJson = await readProjectFile('config/examples/daemon.json');
    engine = cleanup.add(
      await startDockerEngine({
        daemonConfig: JSON.parse(withProxy(daemonJson, `127.0.0.1:${mirrorPort}`)),
        env: offline.env,
      }),
      (e) => e.stop(),
    );
    await importNodeBaseImage(engine, work);
  });
  afterAll(() => cleanup.run());

  beforeEach(({ onTestFailed }) => {
    onTestFailed(async () => {
      const names = (await engine.docker(['ps', '--all', '--format', '{{.Names}}'])).stdout.split('\n');
      for (const name of names.filter(Boolean)) {
        const logs = await engine.docker(['logs', '--tail', '40', name]).then(
          (r) => r.stdout + r.stderr,
          (e: Error) => e.message,
        );
        console.error(`--- container ${name} (tail) ---\n${logs.slice(-6_000)}`);
      }
      console.error(`--- dockerd (tail) ---\n${engine.process.output().slice(-4_000)}`);
    });
  });

  // biome-ignore lint/suspicious/noExplicitAny: docker inspect output
  const inspect = async (what: string): Promise<any> =>
    JSON.parse((await engine.docker(['inspect', what])).stdout)[0];
  /** Runs a node one-liner in a running container and returns what it printed. */
  const nodeIn = async (container: string, script: string) =>
    (await engine.docker(['exec', container, 'node', '-e', script])).stdout;

  it('builds from the Dockerfile: non-root, a volume, a node health check, production dependencies only', async () => {
    // No base image can be pulled here: NODE_IMAGE is a stand-in made from this machine's node and
    // npm (harness/node-base-image.ts). The build stage's `npm ci` needs the npm registry, reached
    // on the host's network (the engine has no bridge).
    const buildArgs = ['--build-arg', `NODE_IMAGE=${NODE_BASE_IMAGE}`];
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) {
      const value = process.env[name];
      if (value) buildArgs.push('--build-arg', `${name}=${value}`);
    }
    await engine.docker(['build', '--network', 'host', ...buildArgs, '--tag', IMAGE, PROJECT_ROOT], {
      timeoutMs: 400_000,
    });

    const { Config: config } = await inspect(IMAGE);
    expect(config.User).toBe('1000:1000');
    expect(config.Env).toContain(`PULLCACHE_CONFIG=${CONFIG_PATH}`);
    expect(config.Volumes).toEqual({ [STORAGE_PATH]: {} });
    expect(config.ExposedPorts).toEqual({ '5000/tcp': {} });
    expect(config.Entrypoint).toEqual([
      'node',
      '--max-semi-space-size=1',
      '--liftoff-only',
      '--no-sparkplug',
      '/app/dist/cli.js',
    ]);
    expect(config.Cmd).toEqual(['serve']);
    expect(config.Healthcheck.Test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);

    const pkg = JSON.parse(await readProjectFile('package.json'));
    const { stdout } = await engine.docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'node',
      IMAGE,
      '-e',
      `const fs = require('fs'); const names = ${JSON.stringify([
        ...Object.keys(pkg.dependencies),
        ...Object.keys(pkg.devDependencies),
      ])}; process.stdout.write(JSON.stringify(names.filter((n) => fs.existsSync('/app/node_modules/' + n))))`,
    ]);
    expect(JSON.parse(stdout).sort()).toEqual(Object.keys(pkg.dependencies).sort());
  }, 420_000);

  it('starts healthy with its baked-in config as uid 1000 and exits 0 on SIGTERM (docker stop)', async () => {
    const name = 'pullcache-default';
    // No network needed: the health check and these probes run inside the container.
    await engine.docker([
      'run',
      '--detach',
      '--name',
      name,
      '--network',
      'none',
      '--health-interval',
      '1s',
      IMAGE,
    ]);
    await waitUntil(
      'the container to be healthy',
      async () => (await inspect(name)).State.Health.Status === 'healthy',
    );
    expect(await nodeIn(name, 'process.stdout.write(String(process.getuid()))')).toBe('1000');
    const baked = await nodeIn(
      name,
      `process.stdout.write(require('fs').readFileSync('${CONFIG_PATH}', 'utf8'))`,
    );
    expect(baked).toBe(await readProjectFile('config/examples/container.yaml'));
    // Ready: the cache folder on the volume is writable by uid 1000.
    const ready = "fetch('http://127.0.0.1:5000/readyz').then((r) => process.stdout.write(String(r.status)))";
    expect(await nodeIn(name, ready)).toBe('200');

    const stopping = Date.now();
    await engine.docker(['stop', '--time', '40', name]);
    expect(Date.now() - stopping).toBeLessThan(5_000); // idle: no transfer to wait for
    expect((await inspect(name)).State).toMatchObject({ Status: 'exited', ExitCode: 0, OOMKilled: false });
    const logs = (await engine.docker(['logs', name])).stdout;
    expect(logs).toContain('"signal":"SIGTERM"');
    expect(logs).toContain('"msg":"stopped"');
  });

  describe("as the engine's Docker Hub mirror, run as compose runs it", () => {
    const name = 'pullcache-mirror';
    const mirror = () => `127.0.0.1:${mirrorPort}`;
    const amd64 = () => demo.platforms.find((p) => p.platform.architecture === 'amd64')!;

    beforeAll(async () => {
      // The compose config (config/examples/container.yaml) with docker.io at the test upstream and
      // the listen address on loopback: without a bridge the container shares the host's network.
      const config = parseYaml(await readProjectFile('config/examples/container.yaml'));
      config.listen = mirror();
      config.registries = { 'docker.io': { url: upstream.url } };
      const configFile = join(work, 'mirror-config.yaml');
      await writeFile(configFile, stringifyYaml(config));
      await engine.docker([
        'run',
        '--detach',
        '--name',
        name,
        '--network',
        'host',
        // The image's check probes port 5000, which on the host's network is not this container.
        '--no-healthcheck',
        '--volume',
        `pullcache-data:${STORAGE_PATH}`,
        '--volume',
        `${configFile}:${CONFIG_PATH}:ro`,
        IMAGE,
      ]);
      await waitForHttp(`http://${mirror()}/v2/`, { statuses: [200] });
    });

    it('docker pull demo:1.0 gets the pushed image through it', async () => {
      await engine.docker(['pull', 'demo:1.0']);
      const pulled = await inspect('demo:1.0');
      expect(pulled.RepoDigests).toEqual([`demo@${demo.index.digest}`]);
      expect(pulled.Id).toBe(amd64().config.digest);
      // The container fetched them: each of this platform's blobs once from the upstream.
      for (const blob of [amd64().config, ...amd64().layers]) {
        expect(upstream.countRequests('GET', new RegExp(`/blobs/${blob.digest}$`), 200), blob.digest).toBe(1);
      }
      const logs = (await engine.docker(['logs', name])).stdout;
      // Docker resolves the tag with a HEAD, then GETs the index by digest.
      expect(logs).toMatch(/"method":"HEAD","path":"\/v2\/library\/demo\/manifests\/1\.0".*"status":200/);
      expect(logs).toContain(`"method":"GET","path":"/v2/library/demo/manifests/${demo.index.digest}"`);
    });

    it('cannot be bypassed: a fallback to Docker Hub fails at the closed proxy', async () => {
      // The mirror answers 404 for an image the upstream lacks; Docker then tries Docker Hub.
      await expect(engine.docker(['pull', 'missing:1.0'])).rejects.toThrow(offline.proxy);
    });

    it('skopeo gets every platform through it; its cache is on the volume, owned by uid 1000', async () => {
      expect(await pullImage(`${mirror()}/demo:1.0`, join(work, 'pulls'))).toEqual(digestsOf(demo));
      const layer = amd64().layers[0]!.digest.slice('sha256:'.length);
      const owner = `process.stdout.write(String(require('fs').statSync('${STORAGE_PATH}/blobs/sha256/${layer.slice(0, 2)}/${layer}').uid))`;
      expect(await nodeIn(name, owner)).toBe('1000');
      expect((await inspect(name)).Mounts).toContainEqual(
        expect.objectContaining({ Type: 'volume', Name: 'pullcache-data', Destination: STORAGE_PATH }),
      );
    });
  });

  it('docker login to pullcache with client auth, then docker pull by its name', async () => {
    // Docker sends a registry-mirror no credentials of its own (only Docker Hub's, if any), so with
    // client auth Docker names the proxy directly: docker login, then pull PROXY/IMAGE.
    const htpasswd = join(work, 'clients.htpasswd');
    await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', 'puller', 'pull-secret'])).stdout);
    const authProxy = cleanup.add(
      await startPullcache({
        registries: { 'docker.io': { url: upstream.url } },
        extraYaml: `auth: { htpasswd: ${JSON.stringify(htpasswd)} }`,
      }),
      (p) => p.stop(),
    );
    const ref = `${authProxy.host}/demo:1.0`;
    await expect(engine.docker(['pull', ref])).rejects.toThrow(/no basic auth credentials|unauthorized/);
    await engine.docker(['login', '--username', 'puller', '--password', 'pull-secret', authProxy.host]);
    await engine.docker(['pull', ref]);
    // The same image as the mirror's demo:1.0, now also under the proxy's name.
    expect((await inspect(ref)).RepoDigests).toContain(`${authProxy.host}/demo@${demo.index.digest}`);
  });
});
