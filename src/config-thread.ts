/**
 * @module Loads the config in a worker thread (config-worker.ts) and hands back the validated plain
 * object. zod, yaml and the built schema then go away with the worker's heap instead of staying
 * resident for the life of the process: ~3 MB less in every replica (bench/RESULTS.md).
 */
import { Worker } from 'node:worker_threads';
import type { Config, ConfigOverrides } from './config.js';
import { ConfigError, FlagError } from './config-error.js';

export interface ConfigRequest {
  file: string | undefined;
  env: NodeJS.ProcessEnv;
  overrides: ConfigOverrides;
}

export type ConfigResult =
  | { config: Config; error?: undefined }
  | { config?: undefined; error: { name: string; message: string; stack: string | undefined } };

/**
 * Beside this file: dist/config-worker.js in the bundle. Run from source with tsx (the tests do),
 * src/config-worker.ts, behind a line that first registers tsx: a worker does not inherit its hooks.
 */
function workerEntry(): URL {
  if (!import.meta.url.endsWith('.ts')) return new URL('./config-worker.js', import.meta.url);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const entry = JSON.stringify(new URL('./config-worker.ts', import.meta.url).href);
  const boot = `const { register } = await import(${tsx}); register(); await import(${entry});`;
  return new URL(`data:text/javascript,${encodeURIComponent(boot)}`);
}

/** loadConfig (config.ts) in a worker: the same config, or the same ConfigError or FlagError. */
export function loadConfigInWorker(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
  overrides: ConfigOverrides,
): Promise<Config> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerEntry(), {
      workerData: { file, env, overrides } satisfies ConfigRequest,
    });
    let result: ConfigResult | undefined;
    worker.once('message', (message: ConfigResult) => {
      result = message;
    });
    worker.once('error', reject);
    // Answered on exit, once the worker's heap is gone: the server then starts without it.
    worker.once('exit', (code) => {
      if (!result) return reject(new Error(`the config worker exited (${code}) without an answer`));
      const { config, error } = result;
      if (config) return resolve(config);
      if (error.name === 'FlagError') return reject(new FlagError(error.message));
      if (error.name === 'ConfigError') return reject(new ConfigError(error.message));
      reject(Object.assign(new Error(error.message), { name: error.name, stack: error.stack }));
    });
  });
}
