/** @module What the numbers were measured on: cores, CPU, memory, kernel, and the versions of each program involved. */
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { run } from '../test/e2e/harness/command.js';

export interface MachineInfo {
  nproc: number;
  cpu: string;
  memoryGB: number;
  kernel: string;
  /** Share of all cores busy just before the bench started (0–1): anything else running skews every number. */
  busyBeforeStart: number;
  node: string;
  dockerRegistry: string;
  curl: string;
  /** package.json version and the git commit of the tree (marked dirty when src/ has edits). */
  pullcache: string;
}

const PROJECT_ROOT = resolve(import.meta.dirname, '..');

export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const pkg = JSON.parse(readFileSync(resolve(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  return {
    nproc: availableParallelism(),
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memoryGB: Math.round(totalmem() / 1e9),
    kernel: release(),
    busyBeforeStart: await cpuBusy(2_000),
    node: process.version,
    dockerRegistry: (await output('docker-registry', ['--version'])).replace(/^\S+\s+/, ''),
    curl: (await output('curl', ['--version'])).split('\n')[0]?.split(' ')[1] ?? 'unknown',
    pullcache: `${pkg.version} (${await output('git', ['-C', PROJECT_ROOT, 'describe', '--always', '--dirty'])})`,
  };
}

async function output(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args, { timeoutMs: 10_000 })).stdout.trim();
  } catch {
    return 'unknown';
  }
}

/** Busy share of all cores over `ms`, from /proc/stat's aggregate line (idle and iowait count as idle). */
async function cpuBusy(ms: number): Promise<number> {
  const sample = () => {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n')[0]!
      .trim()
      .split(/\s+/)
      // user nice system idle iowait irq softirq steal; guest time is already inside user.
      .slice(1, 9)
      .map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { idle, total: fields.reduce((a, b) => a + b, 0) };
  };
  const a = sample();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = sample();
  return b.total === a.total ? 0 : 1 - (b.idle - a.idle) / (b.total - a.total);
}
