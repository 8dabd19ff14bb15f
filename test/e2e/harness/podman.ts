/** @module podman 4.3 without systemd, its storage and state in a temp folder, pulling images. */

// As FIELD-NOTES say: vfs storage, a file events backend, cgroupfs. It reads the registries.conf
// named by CONTAINERS_REGISTRIES_CONF; everything else (policy.json) is the machine's.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './command.js';
import { makeTempDir, removeDir } from './temp-dir.js';

export interface PodmanImage {
  /** The image id: the digest of the pulled platform's config, without `sha256:`. */
  Id: string;
  RepoDigests: string[];
}

export interface Podman {
  /** Runs `podman [storage flags] ARGS…` in the given environment. */
  podman(args: string[]): Promise<string>;
  pull(ref: string): Promise<void>;
  inspect(ref: string): Promise<PodmanImage>;
  stop(): Promise<void>;
}

export async function createPodman(env: NodeJS.ProcessEnv): Promise<Podman> {
  const dir = await makeTempDir('podman');
  const flags = [
    '--root',
    join(dir, 'root'),
    '--runroot',
    join(dir, 'runroot'),
    '--tmpdir',
    join(dir, 'tmp'),
    '--storage-driver',
    'vfs',
    '--events-backend',
    'file',
    '--cgroup-manager',
    'cgroupfs',
  ];
  // Large layers are staged in TMPDIR (/var/tmp by default).
  const podmanEnv = { ...env, TMPDIR: dir };
  const podman = async (args: string[]) =>
    (await run('podman', [...flags, ...args], { env: podmanEnv })).stdout;
  return {
    podman,
    async pull(ref) {
      await podman(['pull', '--quiet', ref]);
    },
    async inspect(ref) {
      const [image] = JSON.parse(await podman(['image', 'inspect', ref])) as PodmanImage[];
      if (!image) throw new Error(`podman image inspect ${ref}: no image`);
      return image;
    },
    async stop() {
      await removeDir(dir);
    },
  };
}

/**
 * The same settings as configuration files in `dir`, for a script whose bare `podman …` cannot
 * take the flags: podman 4.3 reads CONTAINERS_STORAGE_CONF (graphroot, runroot, driver) and
 * CONTAINERS_CONF ([engine] events_logger, cgroup_manager, tmp_dir for --tmpdir, and
 * image_copy_tmp_dir where layers are staged). Returns the variables naming them.
 */
export async function podmanConfigEnv(dir: string): Promise<NodeJS.ProcessEnv> {
  const storageConf = join(dir, 'storage.conf');
  const containersConf = join(dir, 'containers.conf');
  const copyTmp = join(dir, 'copy-tmp');
  await mkdir(copyTmp, { recursive: true });
  await writeFile(
    storageConf,
    [
      '[storage]',
      'driver = "vfs"',
      `graphroot = ${JSON.stringify(join(dir, 'root'))}`,
      `runroot = ${JSON.stringify(join(dir, 'runroot'))}`,
      '',
    ].join('\n'),
  );
  await writeFile(
    containersConf,
    [
      '[engine]',
      'events_logger = "file"',
      'cgroup_manager = "cgroupfs"',
      `tmp_dir = ${JSON.stringify(join(dir, 'tmp'))}`,
      `image_copy_tmp_dir = ${JSON.stringify(copyTmp)}`,
      '',
    ].join('\n'),
  );
  return { CONTAINERS_STORAGE_CONF: storageConf, CONTAINERS_CONF: containersConf };
}
