/** @module Starts pullcache in process on a loopback port, with a config built for the test. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseConfig } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server.js';

export interface TestProxy extends RunningServer {
  storage: string;
}

/** `config` is the YAML document as an object; listen and storage are filled in. */
export async function startProxy(config: Record<string, unknown>): Promise<TestProxy> {
  const storage = mkdtempSync(join(tmpdir(), 'pullcache-test-'));
  const parsed = parseConfig({ listen: '127.0.0.1:0', storage: { path: storage }, ...config }, {});
  const server = await startServer(parsed, pino({ level: 'silent' }));
  return {
    ...server,
    storage,
    async close() {
      await server.close();
      rmSync(storage, { recursive: true, force: true });
    },
  };
}
