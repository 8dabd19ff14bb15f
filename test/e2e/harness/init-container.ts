/**
 * @module An init container of a Kubernetes manifest, run as written: its command, unchanged, in a
 * chroot of the test's own (a temp root holding the few tools a slim image has, copied from this
 * machine with their libraries), its volumes folders of that root: configMap items written from the
 * manifest's ConfigMap, hostPath volumes standing for the node's folders. Needs root (chroot).
 */
import { copyFile, mkdir, realpath, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run } from './command.js';

export interface InitContainerRun {
  /** The folder of the root standing for the node's `path` (a hostPath volume's path). */
  hostPath(path: string): string;
  /** What the container printed. */
  output: string;
}

// biome-ignore lint/suspicious/noExplicitAny: parsed Kubernetes objects
type K8sObject = any;

/**
 * Runs the init container `name` of the manifest's workload in `root`, with `tools` (commands its
 * script calls) in the root's /bin.
 */
export async function runInitContainer(
  manifest: string,
  name: string,
  root: string,
  tools: string[],
): Promise<InitContainerRun> {
  const objects: K8sObject[] = parseAllDocuments(manifest)
    .map((d) => d.toJS())
    .filter(Boolean);
  const workload = objects.find((o) => o.spec?.template?.spec?.initContainers);
  const pod = workload.spec.template.spec;
  const init = (pod.initContainers as K8sObject[]).find((c) => c.name === name);
  if (!init) throw new Error(`no init container ${name}`);

  const hostPaths = new Map<string, string>();
  for (const mount of init.volumeMounts as K8sObject[]) {
    const volume = (pod.volumes as K8sObject[]).find((v) => v.name === mount.name);
    const dir = join(root, mount.mountPath);
    await mkdir(dir, { recursive: true });
    if (volume.hostPath) hostPaths.set(volume.hostPath.path, dir);
    else if (volume.configMap) {
      const configMap = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap.name,
      );
      const items: { key: string; path: string }[] =
        volume.configMap.items ?? Object.keys(configMap.data).map((key) => ({ key, path: key }));
      for (const item of items) await writeFile(join(dir, item.path), configMap.data[item.key]);
    } else throw new Error(`volume ${mount.name}: only hostPath and configMap volumes are supported`);
  }
  for (const tool of tools) await installTool(root, tool);

  // Found on this machine's PATH; the command inside looks for its tools in the root's /bin only.
  const chroot = (await run('sh', ['-c', 'command -v chroot'])).stdout.trim();
  const { stdout, stderr } = await run(chroot, [root, ...init.command, ...(init.args ?? [])], {
    env: { PATH: '/bin' },
  });
  return {
    hostPath(path) {
      const dir = hostPaths.get(path);
      if (!dir) throw new Error(`the init container mounts no hostPath ${path}`);
      return dir;
    },
    output: stdout + stderr,
  };
}

/** Copies a command of this machine into `root`/bin, with the shared libraries it loads. */
async function installTool(root: string, tool: string): Promise<void> {
  const path = (await run('sh', ['-c', `command -v ${tool}`])).stdout.trim();
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(await realpath(path), join(root, 'bin', tool));
  const libraries = (await run('ldd', [path])).stdout.matchAll(/(\/\S+\.so[.\d]*)/g);
  for (const [library] of libraries) {
    const target = join(root, library);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(await realpath(library), target);
  }
}
