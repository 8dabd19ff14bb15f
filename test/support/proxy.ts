/** @module Starts pullcache in process on a loopback port, with a config built for the test. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';
import { parseConfig } from '../../src/config.js';
import { type RunningServer, type ServerHooks, startServer } from '../../src/server.js';

export interface TestProxy extends RunningServer {
  storage: string;
  /** Stops the server but keeps the storage folder (to start another proxy on it). */
  stop(): Promise<void>;
}

export interface ProxyOptions extends ServerHooks {
  /** Reuse a storage folder (a restart); a fresh temp folder otherwise. */
  storage?: string;
  /** Where logs go; silent otherwise. */
  logger?: Logger;
}

/** A logger whose JSON lines the test can read back. */
export function captureLogs(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    }),
  );
  return { logger, lines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** `config` is the YAML document as an object; listen and storage are filled in. */
export async function startProxy(
  config: Record<string, unknown>,
  options: ProxyOptions = {},
): Promise<TestProxy> {
  const { storage = mkdtempSync(join(tmpdir(), 'pullcache-test-')), logger, ...hooks } = options;
  const { storage: storageConfig, ...rest } = config as { storage?: Record<string, unknown> };
  const parsed = parseConfig(
    { listen: '127.0.0.1:0', ...rest, storage: { ...storageConfig, path: storage } },
    {},
  );
  const server = await startServer(parsed, logger ?? pino({ level: 'silent' }), hooks);
  return {
    ...server,
    storage,
    stop: () => server.close(),
    async close() {
      await server.close();
      rmSync(storage, { recursive: true, force: true });
    },
  };
}

/**
 * Waits until the proxy has no download in flight: every verified blob is committed to disk.
 * `headers` carry credentials for a proxy with client auth; `get` is the fetch (one trusting its
 * certificate, for HTTPS).
 */
export async function settled(
  url: string,
  timeoutMs = 10_000,
  headers: Record<string, string> = {},
  get: (url: string, init: { headers: Record<string, string> }) => Promise<Response> = fetch,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await get(`${url}/_pullcache/stats`, { headers });
    if (response.status !== 200) throw new Error(`${url}/_pullcache/stats answered ${response.status}`);
    const stats = (await response.json()) as { downloadsInFlight: number };
    if (stats.downloadsInFlight === 0) return;
    if (Date.now() > deadline) throw new Error(`downloads still in flight after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
