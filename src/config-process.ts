/**
 * @module Loads the config in a short-lived child process (config-loader.ts) and hands back the
 * validated plain object. zod, yaml and the built schema then go away with that process instead
 * of staying resident for the life of the server, and unlike a worker thread the child leaves
 * nothing behind in this one (a worker's bootstrap and its malloc arena stayed: ~3.5 MB). About
 * 50 ms more at start (bench/RESULTS.md).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { deserialize } from 'node:v8';
import type { Config, ConfigOverrides } from './config.js';
import { ConfigError, FlagError } from './config-error.js';

export interface ConfigRequest {
  file: string | undefined;
  overrides: ConfigOverrides;
}

export type ConfigResult =
  | { config: Config; error?: undefined }
  | { config?: undefined; error: { name: string; message: string; stack: string | undefined } };

/**
 * The child's command line: dist/config-loader.js beside this file in the bundle; run from source
 * (the tests do), src/config-loader.ts under tsx's loader.
 */
function loaderArgs(): string[] {
  if (!import.meta.url.endsWith('.ts'))
    return [fileURLToPath(new URL('./config-loader.js', import.meta.url))];
  return [
    '--import',
    import.meta.resolve('tsx'),
    fileURLToPath(new URL('./config-loader.ts', import.meta.url)),
  ];
}

/**
 * loadConfig (config.ts) in a child process with `env` as its environment: the same config, or
 * the same ConfigError or FlagError. The request goes in on its stdin, the answer comes back on
 * its stdout (v8-serialized, as a worker's message would be); its stderr is this process's.
 */
export function loadConfigInChild(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
  overrides: ConfigOverrides,
): Promise<Config> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, loaderArgs(), { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const answer: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => answer.push(chunk));
    child.once('error', reject);
    child.stdin.end(JSON.stringify({ file, overrides } satisfies ConfigRequest));
    child.once('close', (code, signal) => {
      let result: ConfigResult;
      try {
        result = deserialize(Buffer.concat(answer)) as ConfigResult;
      } catch {
        return reject(new Error(`the config loader exited (${signal ?? code}) without an answer`));
      }
      const { config, error } = result;
      if (config) return resolve(config);
      if (error.name === 'FlagError') return reject(new FlagError(error.message));
      if (error.name === 'ConfigError') return reject(new ConfigError(error.message));
      reject(Object.assign(new Error(error.message), { name: error.name, stack: error.stack }));
    });
  });
}
