/**
 * @module What each dependency costs at start, bundled as dist/cli.js is (scripts/bundle-options.ts)
 * and run in fresh node processes with the flags of its shebang: each package bundled alone, and
 * bundles of the first 1, 2, … steps in the order `serve` loads them (those rows add up to the total).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { BUNDLE_OPTIONS, LAZY_PACKAGES } from '../scripts/bundle-options.js';
import { makeTempDir, removeDir } from '../test/e2e/harness/temp-dir.js';

const ROOT = resolve(import.meta.dirname, '..');
const PROBE = join(import.meta.dirname, 'start-cost-probe.mjs');
// Each bundle is measured this often, in a fresh process each time, and the median kept: a reading
// now and then lands a V8 heap step (~4 MB) higher than the others.
const REPEATS = 3;

interface Step {
  label: string;
  /** What an entry file imports: a package, or a file of src/ (relative to the project root). */
  specifier: string;
  /** Also measured alone: packages, and modules that import nothing but one package. */
  alone?: boolean;
}

// In the order the main thread of `serve` first reaches them (src/cli.ts's imports).
const STEPS: Step[] = [
  {
    label: "undici's Headers, Request, Response and FormData as the globals (src/http/web-globals.ts)",
    specifier: './src/http/web-globals.ts',
    alone: true,
  },
  { label: 'pino (logger)', specifier: 'pino', alone: true },
  {
    label: "prom-client's registry and metric files (src/metrics.ts)",
    specifier: './src/metrics.ts',
    alone: true,
  },
  { label: 'lru-cache', specifier: 'lru-cache', alone: true },
  {
    label: "undici's Agent and request (src/upstream/http-agent.ts)",
    specifier: './src/upstream/http-agent.ts',
    alone: true,
  },
  { label: 'hono', specifier: 'hono', alone: true },
  {
    label: '@hono/node-server (on the globals above; node:http2 is scripts/http2-stub.ts)',
    specifier: '@hono/node-server',
    alone: true,
  },
  { label: 'the rest of pullcache (src/server.ts, src/warm.ts)', specifier: './src/server.ts' },
  { label: 'warm command', specifier: './src/warm.ts' },
];

/** Measured alone for comparison: what the main thread does not load at start. */
const NOT_LOADED: Step[] = [
  {
    label: 'only in the config loader process, gone once it exits: src/config.ts with zod and yaml',
    specifier: './src/config.ts',
  },
  { label: "not loaded: undici's whole index", specifier: 'undici' },
  {
    label: "not loaded: prom-client's whole index (its Pushgateway and cluster aggregator)",
    specifier: 'prom-client',
  },
  { label: 'not loaded until a foreign token realm meets credentials: tldts', specifier: 'tldts' },
];

export interface StartCostRow {
  label: string;
  /** VmRSS a node running an empty bundle gains by running a bundle of only this. */
  aloneRssBytes: number | undefined;
  /** VmRSS this step added to the bundle of the steps before it (undefined: not in the order). */
  rssBytes: number | undefined;
  /** V8 heap in use this step added. */
  heapUsedBytes: number | undefined;
  /** VmRSS with the bundle up to this step. */
  totalRssBytes: number | undefined;
}

export interface StartCost {
  /** The node flags used, from the CLI's shebang. */
  flags: string[];
  /** VmRSS of node itself running an empty bundle. */
  nodeRssBytes: number;
  rows: StartCostRow[];
}

interface Sample {
  rssBytes: number;
  heapUsedBytes: number;
}

/** The node flags of `#!/usr/bin/env -S node FLAGS...`, as production runs with them. */
export async function cliNodeFlags(): Promise<string[]> {
  const shebang = (await readFile(join(ROOT, 'src', 'cli.ts'), 'utf8')).split('\n', 1)[0] ?? '';
  const words = shebang.replace(/^#!\S*env -S /, '').split(/\s+/);
  return words[0] === 'node' ? words.slice(1).filter(Boolean) : [];
}

export async function measureStartCost(): Promise<StartCost> {
  const flags = await cliNodeFlags();
  const dir = await makeTempDir('start-cost');
  try {
    let bundles = 0;
    const bundle = async (specifiers: string[], external = LAZY_PACKAGES): Promise<string> => {
      const outfile = join(dir, `step-${bundles++}.mjs`);
      // Each import is kept alive by a global, so that no part of it is left out as unused.
      const contents = specifiers
        .map((s, i) => `import * as m${i} from ${JSON.stringify(s)};\nglobalThis.startCost${i} = m${i};`)
        .join('\n');
      await build({
        ...BUNDLE_OPTIONS,
        external,
        stdin: { contents, resolveDir: ROOT, loader: 'ts', sourcefile: 'start-cost-entry.ts' },
        outfile,
      });
      return outfile;
    };
    const measure = async (file: string): Promise<Sample> => {
      const samples: Sample[] = [];
      for (let i = 0; i < REPEATS; i++) {
        const { stdout } = await promisify(execFile)(process.execPath, [...flags, PROBE, file], {
          cwd: ROOT,
        });
        samples.push(JSON.parse(stdout) as Sample);
      }
      return samples.sort((a, b) => a.rssBytes - b.rssBytes)[Math.floor(REPEATS / 2)]!;
    };

    const empty = await measure(await bundle([]));
    const rows: StartCostRow[] = [];
    let before = empty;
    for (const [i, step] of STEPS.entries()) {
      const upTo = await measure(await bundle(STEPS.slice(0, i + 1).map((s) => s.specifier)));
      const alone = step.alone ? await measure(await bundle([step.specifier])) : undefined;
      rows.push({
        label: step.label,
        aloneRssBytes: alone && alone.rssBytes - empty.rssBytes,
        rssBytes: upTo.rssBytes - before.rssBytes,
        heapUsedBytes: upTo.heapUsedBytes - before.heapUsedBytes,
        totalRssBytes: upTo.rssBytes,
      });
      before = upTo;
    }
    for (const step of NOT_LOADED) {
      const external = LAZY_PACKAGES.filter((p) => p !== step.specifier);
      const alone = await measure(await bundle([step.specifier], external));
      rows.push({
        label: step.label,
        aloneRssBytes: alone.rssBytes - empty.rssBytes,
        rssBytes: undefined,
        heapUsedBytes: undefined,
        totalRssBytes: undefined,
      });
    }
    return { flags, nodeRssBytes: empty.rssBytes, rows };
  } finally {
    await removeDir(dir);
  }
}

export function startCostTable({ nodeRssBytes, rows }: StartCost): string {
  const mb = (bytes: number | undefined) => (bytes === undefined ? '—' : (bytes / 1e6).toFixed(1));
  const lines = [
    '| Loaded | RSS added alone (MB) | RSS added in load order (MB) | V8 heap added in load order (MB) | RSS after (MB) |',
    '|---|--:|--:|--:|--:|',
    `| node itself, empty bundle | — | ${mb(nodeRssBytes)} | — | ${mb(nodeRssBytes)} |`,
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.label} | ${mb(row.aloneRssBytes)} | ${mb(row.rssBytes)} | ${mb(row.heapUsedBytes)} | ${mb(row.totalRssBytes)} |`,
    );
  }
  return lines.join('\n');
}
