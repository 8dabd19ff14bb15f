/** @module One-shot commands (skopeo, ctr, openssl, htpasswd): run to completion, fail with their output. */
import { spawn } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: CommandResult & { code: number | null },
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

export function run(command: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const { timeoutMs = 110_000 } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // Killed by its own pid: a hung pull must not hold the suite until vitest's timeout.
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const line = [command, ...args].join(' ');
      const why = signal ? `killed by ${signal}` : `exit ${code}`;
      reject(
        new CommandError(`${line}: ${why}\n${stderr.slice(-4_000)}${stdout.slice(-2_000)}`, {
          stdout,
          stderr,
          code,
        }),
      );
    });
  });
}
