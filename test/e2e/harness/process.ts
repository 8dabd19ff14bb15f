/** @module Long-running children: output capture, readiness waits, stop by pid (TERM, then KILL). */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** stdout only (docker-registry writes its access log there). */
  stdout(): string;
  /** stdout and stderr interleaved as they arrived. */
  output(): string;
  /** The exit code or signal once it has exited, else undefined. */
  exitStatus(): string | undefined;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Also append everything it prints to this file, to read after a failed run. */
  logFile?: string;
}

// Children still running when the test worker exits (a crash, an aborted run) are killed here,
// by pid, so nothing outlives the run.
const running = new Map<number, ChildProcess>();
process.once('exit', () => {
  for (const pid of running.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
});

export function startProcess(
  name: string,
  command: string,
  args: string[],
  options: StartOptions = {},
): ManagedProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;
  running.set(pid, child);

  const all: string[] = [];
  const out: string[] = [];
  const log = options.logFile ? createWriteStream(options.logFile, { flags: 'a' }) : undefined;
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out.push(chunk);
    all.push(chunk);
    log?.write(chunk);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    all.push(chunk);
    log?.write(chunk);
  });

  let status: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      all.push(`\n[${name}] spawn error: ${error.message}\n`);
    });
    child.once('close', (code, signal) => {
      status = signal ?? `exit ${code}`;
      running.delete(pid);
      log?.end();
      resolve();
    });
  });

  return {
    name,
    pid,
    stdout: () => out.join(''),
    output: () => all.join(''),
    exitStatus: () => status,
    async stop(graceMs = 5_000) {
      if (status !== undefined) return;
      signal(pid, 'SIGTERM');
      const timer = setTimeout(() => signal(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Give up early, with its output, if this process exits while we wait. */
  process?: ManagedProcess;
}

/** Polls `check` until it returns true; the error says what was awaited and what the process printed. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 30_000, intervalMs = 100, process: proc }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (
      await Promise.resolve()
        .then(check)
        .catch(() => false)
    )
      return;
    const exited = proc?.exitStatus();
    if (exited !== undefined || Date.now() > deadline) {
      const why =
        exited !== undefined ? `${proc?.name} exited (${exited})` : `timed out after ${timeoutMs} ms`;
      const tail = proc ? `\n--- ${proc.name} output ---\n${proc.output().slice(-4_000)}` : '';
      throw new Error(`waiting for ${what}: ${why}${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Waits until `url` answers at all (or with one of `statuses`, when given). */
export function waitForHttp(url: string, options: WaitOptions & { statuses?: number[] } = {}): Promise<void> {
  return waitUntil(
    `${url} to answer`,
    async () => {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return options.statuses === undefined || options.statuses.includes(response.status);
    },
    options,
  );
}

/** Waits until a file or unix socket exists. */
export function waitForPath(path: string, options: WaitOptions = {}): Promise<void> {
  return waitUntil(`${path} to exist`, () => existsSync(path), options);
}
