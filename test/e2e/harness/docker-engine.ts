/** @module A private Docker Engine (Debian's dockerd 20.10) with every path in a temp folder. */

// Runs without systemd as FIELD-NOTES describe: no iptables, no bridge (containers use
// `--network host` or `--network none`), its own containerd under the exec root. overlay2 works on
// these machines and is much faster than vfs for image builds (vfs copies the whole tree per
// layer); where overlay2 cannot start, vfs is used. The CLI is /usr/bin/docker, the Debian one:
// another docker CLI may come first on PATH. DOCKER_CONFIG keeps `docker login` out of ~/.docker.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CommandResult, type RunOptions, run } from './command.js';
import { type ManagedProcess, startProcess, waitForPath, waitUntil } from './process.js';
import { makeTempDir, removeDir } from './temp-dir.js';

export const DOCKER_CLI = '/usr/bin/docker';

export interface DockerEngineOptions {
  /** daemon.json (registry-mirrors, insecure-registries, …). */
  daemonConfig?: Record<string, unknown>;
  /** dockerd's environment, e.g. from offlineEnv(). */
  env?: NodeJS.ProcessEnv;
}

export interface DockerEngine {
  dir: string;
  socket: string;
  storageDriver: string;
  process: ManagedProcess;
  /** Runs `docker -H unix://SOCK ARGS…`. */
  docker(args: string[], options?: RunOptions): Promise<CommandResult>;
  /** Removes every container (and its anonymous volumes), stops dockerd, removes its folder. */
  stop(): Promise<void>;
}

export async function startDockerEngine(options: DockerEngineOptions = {}): Promise<DockerEngine> {
  let lastError: unknown;
  for (const storageDriver of ['overlay2', 'vfs']) {
    const dir = await makeTempDir('dockerd');
    try {
      return await startIn(dir, storageDriver, options);
    } catch (error) {
      lastError = error;
      await removeEngineDir(dir);
    }
  }
  throw lastError;
}

async function startIn(
  dir: string,
  storageDriver: string,
  options: DockerEngineOptions,
): Promise<DockerEngine> {
  const socket = join(dir, 'docker.sock');
  const execRoot = join(dir, 'exec');
  const configFile = join(dir, 'daemon.json');
  // Its trust key would otherwise be written to /etc/docker/key.json (a config-file-only setting).
  const daemonConfig = { ...options.daemonConfig, 'deprecated-key-path': join(dir, 'key.json') };
  await writeFile(configFile, JSON.stringify(daemonConfig));
  const proc = startProcess(
    'dockerd',
    'dockerd',
    [
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      execRoot,
      '--pidfile',
      join(dir, 'dockerd.pid'),
      '--host',
      `unix://${socket}`,
      '--config-file',
      configFile,
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      `--storage-driver=${storageDriver}`,
    ],
    { env: options.env ?? process.env, logFile: join(dir, 'dockerd.log') },
  );
  const cliEnv = { ...process.env, DOCKER_CONFIG: join(dir, 'cli') };
  const docker = (args: string[], runOptions: RunOptions = {}) =>
    run(DOCKER_CLI, ['-H', `unix://${socket}`, ...args], { env: cliEnv, ...runOptions });

  const engine: DockerEngine = {
    dir,
    socket,
    storageDriver,
    process: proc,
    docker,
    async stop() {
      try {
        const ids = (await docker(['ps', '--all', '--quiet'])).stdout.split('\n').filter(Boolean);
        if (ids.length > 0) await docker(['rm', '--force', '--volumes', ...ids]);
      } finally {
        await proc.stop(30_000);
        await stopManagedContainerd(execRoot);
        await removeEngineDir(dir);
      }
    },
  };
  try {
    await waitForPath(socket, { process: proc, timeoutMs: 60_000 });
    const answers = async () => {
      await docker(['version']);
      return true;
    };
    await waitUntil('dockerd to answer', answers, { process: proc, timeoutMs: 60_000 });
    return engine;
  } catch (error) {
    await proc.stop();
    await stopManagedContainerd(execRoot);
    throw error;
  }
}

/** dockerd stops the containerd it started; if it could not, that containerd is stopped by its pid. */
async function stopManagedContainerd(execRoot: string): Promise<void> {
  const pid = Number(await readFile(join(execRoot, 'containerd', 'containerd.pid'), 'utf8').catch(() => ''));
  if (!Number.isInteger(pid) || pid <= 0) return;
  // Only if that pid is still this engine's containerd (pids are reused).
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes(execRoot)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** dockerd leaves mounts under its folders (the exec root's netns, sometimes overlays): unmount, then remove. */
async function removeEngineDir(dir: string): Promise<void> {
  const mountInfo = await readFile('/proc/self/mountinfo', 'utf8');
  const mounts = mountInfo
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point?.startsWith(`${dir}/`) === true)
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) await run('umount', ['--lazy', point]).catch(() => undefined);
  await removeDir(dir);
}
