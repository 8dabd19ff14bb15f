/**
 * The CI recipes in config/examples, run for real where this machine can run them: the GitHub
 * Actions step that writes a registries.conf and pulls with skopeo and podman, and the GitLab
 * `skopeo-copy` job. Their script text goes to bash exactly as the YAML has it; only the
 * environment is the test's, as a runner would set it: PULLCACHE is a test pullcache (docker.io and
 * quay.io, each with its own test upstream), RUNNER_TEMP a temp folder, podman's rootful no-systemd
 * settings in the files CONTAINERS_CONF and CONTAINERS_STORAGE_CONF name, and no way to the
 * internet (harness/offline.ts). The Docker steps need `sudo systemctl restart docker` (GitHub) or a
 * Docker-in-Docker service (GitLab) and are not run; the jq merge of daemon.json is, on sample files.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createCleanup } from './harness/cleanup.js';
import { run } from './harness/command.js';
import type { PlatformImage } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { readOciImage } from './harness/layout-reader.js';
import { type OfflineEnv, offlineEnv } from './harness/offline.js';
import { type PodmanImage, podmanConfigEnv } from './harness/podman.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { EXAMPLE_PROXY, parseToml, readProjectFile } from './harness/recipes.js';
import { type Registry, startRegistry } from './harness/registry.js';
import { pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';

interface GithubStep {
  name?: string;
  run?: string;
}
interface GithubWorkflow {
  jobs: Record<string, { env?: Record<string, string>; steps: GithubStep[] }>;
}
interface GitlabJob {
  variables?: Record<string, string>;
  script: string[];
}

/** One request line of pullcache's log (src/http/request-log.ts). */
interface RequestLine {
  msg: string;
  method: string;
  path: string;
  registry?: string;
  repository?: string;
  reference?: string;
  status: number;
}

describe('CI recipes from config/examples', () => {
  const cleanup = createCleanup();
  let work: string;
  let alpine: GeneratedImage;
  let busybox: GeneratedImage;
  /** The test docker.io, holding library/alpine:3.20. */
  let hub: Registry;
  /** The test quay.io, holding prometheus/busybox:latest. */
  let quay: Registry;
  let proxy: Pullcache;
  let offline: OfflineEnv;
  let github: GithubWorkflow;
  let gitlab: Record<string, unknown>;

  beforeAll(async () => {
    work = cleanup.add(await makeTempDir('ci-recipes'), removeDir);
    // OCI images: a single-platform copy into `oci:` then keeps the manifest byte for byte.
    alpine = await generateImage({ dir: join(work, 'images', 'alpine'), tag: '3.20', seed: 'ci-alpine' });
    busybox = await generateImage({
      dir: join(work, 'images', 'busybox'),
      tag: 'latest',
      seed: 'ci-busybox',
    });
    [hub, quay] = await Promise.all([startRegistry(), startRegistry()]);
    cleanup.add(hub, (r) => r.stop());
    cleanup.add(quay, (r) => r.stop());
    await pushImage(alpine, `${hub.host}/library/alpine:3.20`);
    await pushImage(busybox, `${quay.host}/prometheus/busybox:latest`);
    offline = await offlineEnv();
    proxy = cleanup.add(
      await startPullcache({ registries: { 'docker.io': { url: hub.url }, 'quay.io': { url: quay.url } } }),
      (p) => p.stop(),
    );
    github = parseYaml(await readProjectFile('config/examples/github-actions.yml')) as GithubWorkflow;
    gitlab = parseYaml(await readProjectFile('config/examples/gitlab-ci.yml')) as Record<string, unknown>;
  });
  afterAll(() => cleanup.run());

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`--- pullcache output (tail) ---\n${proxy?.output().slice(-6_000) ?? '(not started)'}`);
    });
  });

  /** The pushed image's platform that a plain pull on this machine (linux/amd64) picks. */
  const amd64 = (image: GeneratedImage): Omit<PlatformImage, 'platform'> => {
    const { platform: _, ...rest } = image.platforms.find((p) => p.platform.architecture === 'amd64')!;
    return rest;
  };

  /** pullcache's request lines for this registry's repository answered 200, by endpoint. */
  function served(registry: string, repository: string) {
    const lines = proxy
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as RequestLine)
      .filter(
        (l) =>
          l.msg === 'request' && l.registry === registry && l.repository === repository && l.status === 200,
      );
    return {
      manifests: lines.filter((l) => l.path.includes('/manifests/')).length,
      blobs: lines.filter((l) => l.method === 'GET' && l.path.includes('/blobs/')).length,
    };
  }

  const githubJob = () => github.jobs['pull-through-cache']!;
  const githubStep = (name: string): GithubStep => {
    const step = githubJob().steps.find((s) => s.name?.startsWith(name));
    if (!step?.run) throw new Error(`github-actions.yml: no step "${name}…" with a run script`);
    return step;
  };

  it('the recipes name the example proxy in PULLCACHE, which the runs replace', () => {
    expect(githubJob().env?.PULLCACHE).toBe(EXAMPLE_PROXY);
    expect((gitlab.variables as Record<string, string>).PULLCACHE).toBe(EXAMPLE_PROXY);
  });

  describe('GitHub Actions: the "skopeo and podman read a registries.conf" step', () => {
    let runnerTemp: string;
    let podmanEnv: NodeJS.ProcessEnv;

    beforeAll(async () => {
      runnerTemp = join(work, 'github', 'runner-temp');
      const workspace = join(work, 'github', 'workspace');
      await mkdir(runnerTemp, { recursive: true });
      await mkdir(workspace, { recursive: true });
      podmanEnv = await podmanConfigEnv(join(work, 'github', 'podman'));
      const script = join(work, 'github', 'step.sh');
      await writeFile(script, githubStep('skopeo and podman read a registries.conf').run!);
      // A run step without `shell:` runs as `bash -e {0}` on Linux runners, in the workspace.
      await run('bash', ['-e', script], {
        cwd: workspace,
        env: {
          ...offline.env,
          ...podmanEnv,
          ...githubJob().env,
          PULLCACHE: proxy.host,
          RUNNER_TEMP: runnerTemp,
          GITHUB_WORKSPACE: workspace,
          GITHUB_ACTIONS: 'true',
          CI: 'true',
        },
      });
    });

    it('writes a registries.conf mirroring docker.io and quay.io to pullcache', async () => {
      const conf = parseToml(await readFile(join(runnerTemp, 'registries.conf'), 'utf8'));
      expect(conf.registry).toEqual([
        { prefix: 'docker.io', location: 'docker.io', mirror: [{ location: proxy.host, insecure: true }] },
        {
          prefix: 'quay.io',
          location: 'quay.io',
          mirror: [{ location: `${proxy.host}/quay.io`, insecure: true }],
        },
      ]);
    });

    it('skopeo copied docker.io/library/alpine:3.20 through pullcache, byte for byte', async () => {
      expect(await readOciImage(join(runnerTemp, 'alpine'), '3.20')).toEqual(amd64(alpine));
      const through = served('docker.io', 'library/alpine');
      expect(through.manifests).toBeGreaterThanOrEqual(1);
      expect(through.blobs).toBeGreaterThanOrEqual(1 + amd64(alpine).layers.length);
      // pullcache fetched it from the docker.io upstream, the only place that has it.
      expect(hub.countRequests('GET', /^\/v2\/library\/alpine\/manifests\//, 200)).toBeGreaterThanOrEqual(1);
    });

    it('podman pulled quay.io/prometheus/busybox:latest through pullcache (its quay.io path prefix)', async () => {
      const { stdout } = await run('podman', ['image', 'inspect', 'quay.io/prometheus/busybox:latest'], {
        env: { ...offline.env, ...podmanEnv },
      });
      const [image] = JSON.parse(stdout) as PodmanImage[];
      expect(image?.RepoDigests).toContain(`quay.io/prometheus/busybox@${busybox.index.digest}`);
      expect(`sha256:${image?.Id}`).toBe(amd64(busybox).config.digest);
      const through = served('quay.io', 'prometheus/busybox');
      expect(through.manifests).toBeGreaterThanOrEqual(1);
      expect(through.blobs).toBeGreaterThanOrEqual(1 + amd64(busybox).layers.length);
      expect(
        quay.countRequests('GET', /^\/v2\/prometheus\/busybox\/manifests\//, 200),
      ).toBeGreaterThanOrEqual(1);
      expect(hub.countRequests('GET', /busybox/)).toBe(0);
    });
  });

  describe('GitHub Actions: the jq merge of daemon.json in "Use pullcache as Docker Hub mirror"', () => {
    // The step edits /etc/docker/daemon.json with sudo and restarts Docker with systemctl, which
    // this machine has not; its jq command (filter and --arg values) runs here on sample files.
    let jqCommand: string;
    const host = EXAMPLE_PROXY;

    beforeAll(() => {
      const script = githubStep('Use pullcache as Docker Hub mirror').run!;
      // The jq output replaces the file only through "$conf.new", so a failed jq leaves it intact.
      expect(script).toMatch(/"\$conf" \| sudo tee "\$conf\.new"[^\n]*\n\s*sudo mv "\$conf\.new" "\$conf"/);
      const match = /sudo (jq\b[\s\S]*?"\$conf")/.exec(script);
      if (!match) throw new Error(`no jq command in the step:\n${script}`);
      jqCommand = match[1]!;
    });

    async function merge(daemonJson: unknown): Promise<Record<string, unknown>> {
      const conf = join(work, 'daemon.json');
      await writeFile(conf, JSON.stringify(daemonJson, null, 2));
      // The command as the step has it, `sudo` dropped; "$conf" and "$PULLCACHE" from the environment.
      const { stdout } = await run('bash', ['-e', '-c', jqCommand], {
        env: { PATH: process.env.PATH, ...githubJob().env, conf },
      });
      return JSON.parse(stdout) as Record<string, unknown>;
    }

    it('keeps other keys, sets the mirror and adds the host to the insecure registries once', async () => {
      const existing = {
        'log-driver': 'json-file',
        'log-opts': { 'max-size': '10m', 'max-file': '3' },
        'registry-mirrors': ['https://mirror.gcr.io'],
        'insecure-registries': ['registry.internal:5000', '10.0.0.0/8'],
        features: { buildkit: true },
      };
      const merged = await merge(existing);
      expect(merged).toEqual({
        ...existing,
        'registry-mirrors': [`http://${host}`],
        'insecure-registries': expect.arrayContaining([...existing['insecure-registries'], host]),
      });
      expect(merged['insecure-registries']).toHaveLength(3);
      // Run again (the job runs on every push): nothing changes, the host is not added twice.
      expect(await merge(merged)).toEqual(merged);
    });

    it('does not duplicate a host already listed, and fills the `{}` the step writes for a missing file', async () => {
      const listed = await merge({ 'insecure-registries': [host, 'other:5000'] });
      expect((listed['insecure-registries'] as string[]).filter((h) => h === host)).toHaveLength(1);
      expect(await merge({})).toEqual({
        'registry-mirrors': [`http://${host}`],
        'insecure-registries': [host],
      });
    });
  });

  describe('GitLab CI: the skopeo-copy job', () => {
    let jobTmp: string;
    let manifestsBefore: number;

    beforeAll(async () => {
      // The job writes /tmp/registries.conf and /tmp/alpine, in its own container's /tmp; here the
      // script gets a private /tmp (a mount namespace with a temp folder bound there).
      jobTmp = join(work, 'gitlab', 'tmp');
      await mkdir(jobTmp, { recursive: true });
      const job = gitlab['skopeo-copy'] as GitlabJob;
      manifestsBefore = served('docker.io', 'library/alpine').manifests;
      // The runner runs the script lines in one bash, stopping at the first failure.
      await run(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'bash',
          '-c',
          'mount --bind "$0" /tmp && exec bash -eo pipefail -c "$1"',
          jobTmp,
          job.script.join('\n'),
        ],
        {
          env: {
            ...offline.env,
            ...(gitlab.variables as Record<string, string>),
            ...job.variables,
            PULLCACHE: proxy.host,
            GITLAB_CI: 'true',
            CI: 'true',
          },
        },
      );
    });

    it('writes a registries.conf mirroring docker.io to pullcache', async () => {
      const conf = parseToml(await readFile(join(jobTmp, 'registries.conf'), 'utf8'));
      expect(conf.registry).toEqual([
        { prefix: 'docker.io', location: 'docker.io', mirror: [{ location: proxy.host, insecure: true }] },
      ]);
    });

    it('skopeo copied docker.io/library/alpine:3.20 through pullcache, byte for byte', async () => {
      expect(await readOciImage(join(jobTmp, 'alpine'), '3.20')).toEqual(amd64(alpine));
      expect(served('docker.io', 'library/alpine').manifests).toBeGreaterThan(manifestsBefore);
    });
  });
});
