/**
 * @module A stand-in for node:22-slim, made from this machine's own files, for building the
 * Dockerfile where no base image can be pulled.
 */

// The root filesystem holds what the Dockerfile uses of its base image: node (this machine's
// binary, whatever its version), the npm that ships with it, /bin/sh (npm runs scripts with it),
// env (the `#!/usr/bin/env node` of npm's and TypeScript's bins), a few coreutils (mkdir, chown,
// chmod, …), the shared libraries those need (from ldd), the `node` user (uid 1000) and /tmp. The build stage's `npm ci`
// downloads from the npm registry this machine uses, so the image carries that registry and, when
// the machine trusts an extra CA (NODE_EXTRA_CA_CERTS, e.g. for a TLS-inspecting proxy), that CA.
// It is imported under its own name and passed as --build-arg NODE_IMAGE, never tagged as
// node:22-slim: it is not that image.
import { chmod, chown, cp, mkdir, realpath, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { run } from './command.js';
import type { DockerEngine } from './docker-engine.js';

export const NODE_BASE_IMAGE = 'pullcache-e2e-node:local';

// The Dockerfile's RUN lines and package.json scripts may use the basic tools every Debian slim
// image has; these are the ones they are likely to.
const TOOLS = [
  '/bin/sh',
  '/usr/bin/env',
  ...['mkdir', 'chown', 'chmod', 'cp', 'mv', 'rm', 'ln', 'cat', 'ls'].map((tool) => `/bin/${tool}`),
];

export async function importNodeBaseImage(engine: DockerEngine, workDir: string): Promise<string> {
  const rootfs = join(workDir, 'rootfs');
  const binaries: [string, string][] = [[process.execPath, '/usr/local/bin/node']];
  for (const tool of TOOLS) binaries.push([await realpath(tool), tool]);

  for (const [source, target] of binaries) await copyInto(rootfs, source, target);
  const libraries = new Set<string>();
  for (const [source] of binaries) {
    // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`
    const { stdout } = await run('ldd', [source]);
    for (const match of stdout.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g)) libraries.add(match[1]!);
  }
  for (const library of libraries) await copyInto(rootfs, library, library);

  const npm = resolve(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm');
  await cp(npm, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true, dereference: true });
  await writeFile(
    join(rootfs, 'usr/local/bin/npm'),
    '#!/bin/sh\nexec node /usr/local/lib/node_modules/npm/bin/npm-cli.js "$@"\n',
    { mode: 0o755 },
  );

  await mkdir(join(rootfs, 'etc'), { recursive: true });
  await writeFile(
    join(rootfs, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n',
  );
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
  await mkdir(join(rootfs, 'root'), { recursive: true });
  await mkdir(join(rootfs, 'home/node'), { recursive: true });
  await mkdir(join(rootfs, 'tmp'), { recursive: true });

  const changes = ['ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin', 'CMD ["node"]'];
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa) {
    await copyInto(rootfs, extraCa, '/etc/ssl/certs/extra-ca.pem');
    changes.push('ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/extra-ca.pem');
  }
  const registry = (await run('npm', ['config', 'get', 'registry'])).stdout.trim();
  if (registry) changes.push(`ENV npm_config_registry=${registry}`);

  // Files as this machine has them (root's: the suite runs as root), but home and /tmp as in Debian.
  await chown(join(rootfs, 'home/node'), 1000, 1000);
  await chmod(join(rootfs, 'tmp'), 0o1777);
  const tarball = join(workDir, 'rootfs.tar');
  await run('tar', ['--create', '--file', tarball, '--directory', rootfs, '.']);
  await engine.docker(['import', ...changes.flatMap((c) => ['--change', c]), tarball, NODE_BASE_IMAGE]);
  return NODE_BASE_IMAGE;
}

async function copyInto(rootfs: string, source: string, target: string): Promise<void> {
  const destination = join(rootfs, target);
  await mkdir(dirname(destination), { recursive: true });
  await cp(source, destination, { dereference: true });
}
