/**
 * @module The child process config-process.ts starts: reads the request from stdin, reads and
 * validates the config (config.ts, with zod and yaml) and writes back the result or the error,
 * v8-serialized, on stdout. Nothing else runs here.
 */
import { readFileSync } from 'node:fs';
import { serialize } from 'node:v8';
import { loadConfig } from './config.js';
import type { ConfigRequest, ConfigResult } from './config-process.js';

const { file, overrides } = JSON.parse(readFileSync(0, 'utf8')) as ConfigRequest;
let result: ConfigResult;
try {
  result = { config: loadConfig(file, process.env, overrides) };
} catch (error) {
  const { name, message, stack } = error as Error;
  result = { error: { name, message, stack } };
}
process.stdout.write(serialize(result));
