/**
 * @module What each dependency costs at start, in fresh node processes run with the flags of
 * dist/cli.js's shebang: each package imported alone, and all of them imported one after another in
 * the order `serve` first loads them (those rows add up to the total).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const PROBE = join(import.meta.dirname, 'start-cost-probe.mjs');

interface Step {
  label: string;
  specifier: string;
  /** Also measured alone: packages, and modules that import nothing but one package. */
  alone?: boolean;
}

// In the order dist/cli.js's imports first reach them; the last is what the lean import avoids.
const STEPS: Step[] = [
  { label: 'pino (logger)', specifier: 'pino', alone: true },
  { label: 'yaml (config file)', specifier: 'yaml', alone: true },
  { label: 'zod (config schema library)', specifier: 'zod', alone: true },
  { label: 'pullcache config schema (dist/config.js)', specifier: '../dist/config.js' },
  { label: 'prom-client (metrics)', specifier: 'prom-client', alone: true },
  { label: 'lru-cache', specifier: 'lru-cache', alone: true },
  {
    label: "undici's Agent and request (dist/upstream/http-agent.js)",
    specifier: '../dist/upstream/http-agent.js',
    alone: true,
  },
  { label: 'hono', specifier: 'hono', alone: true },
  {
    label: "@hono/node-server (it reads node's global Request/Response: node's internal fetch)",
    specifier: '@hono/node-server',
    alone: true,
  },
  { label: 'the rest of pullcache (dist/server.js, dist/warm.js)', specifier: '../dist/server.js' },
  { label: 'warm command', specifier: '../dist/warm.js' },
  { label: "not loaded: undici's whole index, for comparison", specifier: 'undici', alone: true },
];

export interface StartCostRow {
  label: string;
  /** VmRSS a fresh node gains by importing only this. */
  aloneRssBytes: number | undefined;
  /** VmRSS this import added. */
  rssBytes: number;
  /** V8 heap in use this import added. */
  heapUsedBytes: number;
  /** VmRSS after it. */
  totalRssBytes: number;
}

export interface StartCost {
  /** The node flags used, from the CLI's shebang. */
  flags: string[];
  /** VmRSS of node itself running an empty script. */
  nodeRssBytes: number;
  rows: StartCostRow[];
}

/** The node flags of `#!/usr/bin/env -S node FLAGS...`, as production runs with them. */
export async function cliNodeFlags(): Promise<string[]> {
  const shebang = (await readFile(join(ROOT, 'dist', 'cli.js'), 'utf8')).split('\n', 1)[0] ?? '';
  const words = shebang.replace(/^#!\S*env -S /, '').split(/\s+/);
  return words[0] === 'node' ? words.slice(1).filter(Boolean) : [];
}

export async function measureStartCost(): Promise<StartCost> {
  const flags = await cliNodeFlags();
  const probe = async (specifiers: string[]) => {
    const { stdout } = await promisify(execFile)(process.execPath, [...flags, PROBE, ...specifiers], {
      cwd: ROOT,
    });
    const samples = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { step: string; rssBytes: number; heapUsedBytes: number });
    if (samples.length !== specifiers.length + 1) throw new Error(`start-cost probe printed:\n${stdout}`);
    return samples;
  };
  const inOrder = await probe(STEPS.map((s) => s.specifier));
  const rows: StartCostRow[] = [];
  for (const [i, step] of STEPS.entries()) {
    const alone = step.alone ? await probe([step.specifier]) : undefined;
    rows.push({
      label: step.label,
      aloneRssBytes: alone ? alone[1]!.rssBytes - alone[0]!.rssBytes : undefined,
      rssBytes: inOrder[i + 1]!.rssBytes - inOrder[i]!.rssBytes,
      heapUsedBytes: inOrder[i + 1]!.heapUsedBytes - inOrder[i]!.heapUsedBytes,
      totalRssBytes: inOrder[i + 1]!.rssBytes,
    });
  }
  return { flags, nodeRssBytes: inOrder[0]!.rssBytes, rows };
}

export function startCostTable({ nodeRssBytes, rows }: StartCost): string {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const lines = [
    '| Loaded | RSS added alone (MB) | RSS added in load order (MB) | V8 heap added in load order (MB) | RSS after (MB) |',
    '|---|--:|--:|--:|--:|',
    `| node itself, empty script | — | ${mb(nodeRssBytes)} | — | ${mb(nodeRssBytes)} |`,
  ];
  for (const row of rows) {
    const alone = row.aloneRssBytes === undefined ? '—' : mb(row.aloneRssBytes);
    lines.push(
      `| ${row.label} | ${alone} | ${mb(row.rssBytes)} | ${mb(row.heapUsedBytes)} | ${mb(row.totalRssBytes)} |`,
    );
  }
  return lines.join('\n');
}
