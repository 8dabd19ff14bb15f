/** @module A private containerd 1.6 (all paths in a temp folder) and `ctr` pulling through a mirror. */

// Why the hosts.toml `server` is an unused port: containerd falls back from a failing mirror to the
// next host and finally to `server`, silently; with nothing there a broken mirror fails the pull.
//
// Observed with 1.6.20 here (as root): it appends `?ns=<registry>` to every mirror request and
// sends no /v2/ ping; `images pull` unpacks every pulled platform into overlayfs snapshots (works);
// content is per namespace, so a fresh namespace fetches every blob again; `images rm --sync`
// returns once the garbage collector has dropped the content. With `--user` it trades the password
// for a token by an OAuth2 form POST to the realm (skopeo uses GET), and per pull it asks for the
// same scope twice and GETs the index by digest twice; behind auth only its first HEAD is a 401.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './command.js';
import type { Descriptor } from './image-digests.js';
import { freePort } from './ports.js';
import { type ManagedProcess, startProcess, waitForPath } from './process.js';
import type { Credentials } from './registry.js';
import { makeTempDir, removeDir } from './temp-dir.js';

export interface PullOptions {
  hostsDir: string;
  /** e.g. linux/arm64; the host's platform when neither this nor allPlatforms is set. */
  platform?: string;
  allPlatforms?: boolean;
  /** Namespace for this pull (default: the instance's); a fresh one starts with an empty content store. */
  namespace?: string;
  /** Credentials for the registry (`ctr --user`); containerd trades them for a token itself. */
  user?: Credentials;
}

export interface Containerd {
  address: string;
  namespace: string;
  process: ManagedProcess;
  /** Runs `ctr --address SOCK -n NS ARGS…`. */
  ctr(args: string[], namespace?: string): Promise<string>;
  pull(ref: string, options: PullOptions): Promise<void>;
  /** The image's target descriptor (`ctr images ls`), or undefined when it is not there. */
  imageTarget(ref: string, namespace?: string): Promise<Pick<Descriptor, 'mediaType' | 'digest'> | undefined>;
  /** Removes the image and waits for the garbage collector to drop its content. */
  removeImage(ref: string, namespace?: string): Promise<void>;
  /** Digests in the content store (`ctr content ls`), as seen from the namespace. */
  contentDigests(namespace?: string): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * `prefix`: a command containerd and ctr run under, e.g. `['ip', 'netns', 'exec', NS]` (a node of
 * the test's own).
 */
export async function startContainerd(namespace = 'e2e', prefix: string[] = []): Promise<Containerd> {
  const dir = await makeTempDir('containerd');
  const address = join(dir, 'containerd.sock');
  const configFile = join(dir, 'config.toml');
  await writeFile(
    configFile,
    [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      // CRI wants a CNI setup and is not needed to pull; leaving it on only adds noise and time.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(address)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
      '[debug]',
      `  address = ${JSON.stringify(join(dir, 'debug.sock'))}`,
      // The opt plugin would otherwise create /opt/containerd.
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    ].join('\n'),
  );
  const [command, ...args] = [...prefix, 'containerd', '--config', configFile];
  const proc = startProcess('containerd', command!, args, {
    logFile: join(dir, 'containerd.log'),
  });
  try {
    await waitForPath(address, { process: proc });
  } catch (error) {
    await proc.stop();
    await removeDir(dir);
    throw error;
  }

  // In the prefix too: ctr itself resolves and fetches what `images pull` names.
  const ctr = async (args: string[], ns = namespace) => {
    const [command, ...rest] = [...prefix, 'ctr', '--address', address, '--namespace', ns, ...args];
    return (await run(command!, rest)).stdout;
  };

  return {
    address,
    namespace,
    process: proc,
    ctr,
    async pull(ref, options) {
      const platform = options.allPlatforms
        ? ['--all-platforms']
        : options.platform
          ? ['--platform', options.platform]
          : [];
      const user = options.user ? ['--user', `${options.user.username}:${options.user.password}`] : [];
      await ctr(
        ['images', 'pull', '--hosts-dir', options.hostsDir, ...platform, ...user, ref],
        options.namespace,
      );
    },
    async imageTarget(ref, ns) {
      // REF  TYPE  DIGEST  SIZE (two words)  PLATFORMS  LABELS
      const line = (await ctr(['images', 'ls', `name==${ref}`], ns))
        .split('\n')
        .find((l) => l.startsWith(`${ref} `));
      const [, mediaType, digest] = line?.split(/\s+/) ?? [];
      return mediaType && digest ? { mediaType, digest } : undefined;
    },
    async removeImage(ref, ns) {
      await ctr(['images', 'rm', '--sync', ref], ns);
    },
    async contentDigests(ns) {
      return (await ctr(['content', 'ls', '--quiet'], ns)).split('\n').filter(Boolean);
    },
    async stop() {
      await proc.stop();
      await removeDir(dir);
    },
  };
}

export interface HostsTomlOptions {
  /** Extra request headers for the mirror, e.g. `{ Authorization: 'Basic …' }`. */
  headers?: Record<string, string>;
}

/**
 * Writes `DIR/<registry>/hosts.toml` naming `mirrorUrl` (http://127.0.0.1:PORT) as the only host
 * for pull and resolve, with `server` on an unused port so nothing can be pulled around it.
 */
export async function writeHostsToml(
  dir: string,
  registry: string,
  mirrorUrl: string,
  options: HostsTomlOptions = {},
): Promise<string> {
  const host = `[host.${JSON.stringify(mirrorUrl)}]`;
  const lines = [
    `server = "http://127.0.0.1:${await freePort()}"`,
    '',
    host,
    '  capabilities = ["pull", "resolve"]',
  ];
  if (options.headers) {
    lines.push(`  [host.${JSON.stringify(mirrorUrl)}.header]`);
    for (const [name, value] of Object.entries(options.headers))
      lines.push(`    ${name} = ${JSON.stringify(value)}`);
  }
  const file = join(dir, registry, 'hosts.toml');
  await mkdir(join(dir, registry), { recursive: true });
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}
