/**
 * @module The worker config-thread.ts starts: reads and validates the config (config.ts, with zod
 * and yaml) and posts back the result or the error. Nothing else runs here.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from './config.js';
import type { ConfigRequest, ConfigResult } from './config-thread.js';

const { file, env, overrides } = workerData as ConfigRequest;
let result: ConfigResult;
try {
  result = { config: loadConfig(file, env, overrides) };
} catch (error) {
  const { name, message, stack } = error as Error;
  result = { error: { name, message, stack } };
}
parentPort!.postMessage(result);
