/**
 * @module Wires config → store → upstreams → pull layer → HTTP app with metrics, serves it over HTTP
 * or HTTPS on the configured address, and shuts it down gracefully.
 */
import './http/web-globals.js'; // first: @hono/node-server reads the globals it installs at import
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { ConfigError } from './config-error.js';
import { createApp } from './http/app.js';
import { createRuntime, type RuntimeHooks } from './runtime.js';

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:5000 */
  url: string;
  /** Re-reads the TLS certificate and key (SIGHUP); a no-op without TLS. */
  reloadTls(): void;
  /**
   * Stops accepting connections, lets running transfers finish for up to `graceMs`, then closes
   * what is left and aborts unfinished downloads (their temp files are removed, nothing is stored).
   * Blobs already verified are committed within the same grace; past it their temp files are removed.
   */
  shutdown(graceMs: number): Promise<void>;
  /** Shutdown without grace. */
  close(): Promise<void>;
}

export type ServerHooks = RuntimeHooks;

export function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(listen.slice(colon + 1)) };
}

/** Why the address cannot be listened on, in one line: an operator's mistake, not a crash. */
function listenError(listen: string, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is already in use',
    EADDRNOTAVAIL: 'the address is not one of this host',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    ENOTFOUND: 'the host name does not resolve',
    EAI_AGAIN: 'the host name does not resolve (DNS lookup failed)',
  };
  const reason = (code && why[code]) ?? (error as Error).message;
  return new ListenError(`cannot listen on ${listen}: ${reason}${code ? ` (${code})` : ''}`, {
    cause: error,
  });
}

/** The server could not start listening; the CLI prints it as one line. */
export class ListenError extends Error {
  override name = 'ListenError';
}

function readTls(tls: NonNullable<Config['tls']>): { cert: Buffer; key: Buffer } {
  try {
    return { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
  } catch (error) {
    throw new ConfigError(`tls: cannot read certificate or key: ${(error as Error).message}`);
  }
}

export async function startServer(
  config: Config,
  logger: Logger,
  hooks: ServerHooks = {},
): Promise<RunningServer> {
  const runtime = await createRuntime(config, logger, hooks);
  const { metrics, store, puller, close: closeRuntime } = runtime;
  const app = createApp({
    config,
    puller,
    logger,
    metrics,
    probeStorage: () => store.probeWritable(),
    status: runtime.status,
    onAnswered: runtime.answered,
  });

  const { host, port } = splitHostPort(config.listen);
  const tls = config.tls ? readTls(config.tls) : null;
  const { limits } = config;
  const serverOptions = {
    maxHeaderSize: limits.maxHeaderSize,
    // Node's timeouts for receiving a request; a response (a blob body) being sent is not bound by them.
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    // Node enforces the two above by checking every connection at this interval (30s by default, which
    // would let a silent connection live up to 30s past its timeout).
    connectionsCheckingInterval: Math.min(1000, Math.max(10, limits.headersTimeout / 4)),
  };
  // node:https (and tls with it) loads only when the config serves HTTPS.
  const options = tls
    ? { createServer: (await import('node:https')).createServer, serverOptions: { ...tls, ...serverOptions } }
    : { serverOptions };
  let server: ReturnType<typeof serve>;
  try {
    server = await new Promise<ReturnType<typeof serve>>((done, fail) => {
      const s = serve({ fetch: app.fetch, hostname: host, port, ...options }, () => done(s));
      s.once('error', fail);
      s.maxConnections = limits.maxConnections; // beyond it Node closes new connections at once
    });
  } catch (error) {
    await closeRuntime();
    throw listenError(config.listen, error);
  }
  server.on('drop', (peer?: { remoteAddress?: string }) => {
    logger.debug(
      { client: peer?.remoteAddress, maxConnections: limits.maxConnections },
      'connection refused: limits.maxConnections reached',
    );
  });
  const address = server.address() as AddressInfo;
  const scheme = tls ? 'https' : 'http';
  const url = `${scheme}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info({ address: url, registries: Object.keys(config.registries) }, 'listening');

  let stopping: Promise<void> | null = null;
  async function shutdown(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    const http = server as import('node:http').Server;
    // A request that still arrives on a kept-alive connection is answered, with `Connection: close`,
    // so that the client does not send another one. (This listener runs after the app's, which
    // writes its headers asynchronously.)
    http.on('request', (_request, response: import('node:http').ServerResponse) => {
      response.shouldKeepAlive = false;
    });
    const closed = new Promise<void>((done) => http.close(() => done()));
    // Connections finishing a transfer become idle later: keep closing idle ones until all are gone.
    const idle = setInterval(() => http.closeIdleConnections(), 100);
    const connectionsDeadline = setTimeout(() => {
      logger.warn({ graceMs }, 'shutdown grace period over: closing remaining connections');
      http.closeAllConnections();
    }, graceMs);
    http.closeIdleConnections();
    await closed;
    clearInterval(idle);
    clearTimeout(connectionsDeadline);
    await closeRuntime(deadline);
  }

  return {
    url,
    reloadTls() {
      if (!config.tls) return;
      (server as HttpsServer).setSecureContext(readTls(config.tls));
      logger.info('TLS certificate reloaded');
    },
    shutdown(graceMs) {
      stopping ??= shutdown(graceMs);
      return stopping;
    },
    close() {
      stopping ??= shutdown(0);
      return stopping;
    },
  };
}
