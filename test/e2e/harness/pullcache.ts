/** @module The proxy under test, started as users start it: `node dist/cli.js serve` with a YAML config. */

// dist/ comes from `npm run build`, which `npm run test:e2e` runs first.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { freePort } from './ports.js';
import { type ManagedProcess, startProcess, waitForHttp } from './process.js';
import { makeTempDir, removeDir } from './temp-dir.js';

const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..', '..');
const CLI = join(PROJECT_ROOT, 'dist', 'cli.js');

export interface UpstreamConfig {
  url: string;
  username?: string;
  password?: string;
}

export interface PullcacheOptions {
  /** Registry name → upstream, e.g. `{ 'docker.io': { url: registry.url, username, password } }`. */
  registries: Record<string, UpstreamConfig>;
  defaultRegistry?: string;
  /** More top-level YAML appended as is, for settings a test needs (TTLs, limits). */
  extraYaml?: string;
  /**
   * The cache folder, owned by the caller and kept on stop, so a later pullcache can start on what
   * this one stored; by default a fresh folder, removed on stop.
   */
  storageDir?: string;
  /** HOST:PORT to listen on (default 127.0.0.1 and a free port): replicas of a cluster share a port. */
  listen?: string;
  /** HOST:PORT the test reaches it at, when not `listen` (0.0.0.0 in a network namespace). */
  reachAt?: string;
  /** A command it runs under, e.g. `['ip', 'netns', 'exec', NS]` (which execs, keeping the pid). */
  prefix?: string[];
  /** Extra environment (PULLCACHE_PEER_SECRET, POD_IP, ...). */
  env?: Record<string, string>;
  /** A whole config file to use instead of one made of the options above (listen and storage are flags). */
  configText?: string;
  /** More `storage:` keys (s3, maxSize), beside the path. */
  storage?: Record<string, unknown>;
  /** The address to listen on when `listen` is not given (127.0.0.2, .3, ... for replicas side by side). */
  host?: string;
}

export interface Pullcache {
  url: string;
  port: number;
  /** host:port, as image references name it. */
  host: string;
  storageDir: string;
  configFile: string;
  process: ManagedProcess;
  output(): string;
  stop(): Promise<void>;
}

export async function startPullcache(options: PullcacheOptions): Promise<Pullcache> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the e2e tests`);
  const dir = await makeTempDir('pullcache');
  const storageDir = options.storageDir ?? join(dir, 'storage');
  const listen = options.listen ?? `${options.host ?? '127.0.0.1'}:${await freePort()}`;
  const reachAt = options.reachAt ?? listen;
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  const configFile = join(dir, 'config.yaml');
  await writeFile(configFile, options.configText ?? configYaml(listen, storageDir, options));

  // The CLI file itself, as installed: its shebang carries the node flags production runs with.
  const args = ['serve', '--config', configFile, '--listen', listen, '--storage', storageDir];
  const [command, ...prefixArgs] = [...(options.prefix ?? []), CLI, ...args];
  const proc = startProcess(options.prefix ? `pullcache ${reachAt}` : 'pullcache', command!, prefixArgs, {
    cwd: PROJECT_ROOT,
    logFile: join(dir, 'pullcache.log'),
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  });
  const url = `http://${reachAt}`;
  try {
    // /healthz answers 200 even with client auth or an allow-list configured (/v2/ would be 401/403).
    await waitForHttp(`${url}/healthz`, { process: proc, statuses: [200] });
  } catch (error) {
    await proc.stop();
    await removeDir(dir);
    throw error;
  }
  return {
    url,
    port,
    host: reachAt,
    storageDir,
    configFile,
    process: proc,
    output: () => proc.output(),
    async stop() {
      await proc.stop();
      await removeDir(dir);
    },
  };
}

/** JSON strings are valid YAML scalars, so every value goes through JSON.stringify. */
function configYaml(listen: string, storageDir: string, options: PullcacheOptions): string {
  const lines = [
    `listen: ${JSON.stringify(listen)}`,
    `storage: ${JSON.stringify({ path: storageDir, ...options.storage })}`,
    `defaultRegistry: ${JSON.stringify(options.defaultRegistry ?? 'docker.io')}`,
    'registries:',
  ];
  for (const [name, upstream] of Object.entries(options.registries)) {
    const fields = Object.entries(upstream)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}: ${JSON.stringify(value)}`);
    lines.push(`  ${JSON.stringify(name)}: { ${fields.join(', ')} }`);
  }
  if (options.extraYaml) lines.push(options.extraYaml);
  return `${lines.join('\n')}\n`;
}
