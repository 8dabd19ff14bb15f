/**
 * @module A far-away registry in front of a local one: a node:http reverse proxy that holds every
 * request for a fixed latency (round trips, token and CDN hops) and sends each response body at a
 * fixed rate (what one TCP connection gets over a long path), so parallel downloads gain and
 * serial ones wait.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ThrottleSettings {
  /** Added before each request is passed on. */
  latencyMs: number;
  /** Bytes per second of each response body. */
  bytesPerSecond: number;
}

export interface ThrottledUpstream {
  /** http://127.0.0.1:PORT */
  url: string;
  stop(): Promise<void>;
}

export async function startThrottledUpstream(
  target: string,
  settings: ThrottleSettings,
): Promise<ThrottledUpstream> {
  const origin = new URL(target);
  const server = createServer(async (req, res) => {
    await sleep(settings.latencyMs);
    const upstream = request(
      {
        host: origin.hostname,
        port: origin.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: origin.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        pipeline(answer, throttle(settings.bytesPerSecond), res).catch(() => res.destroy());
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Passes bytes on no faster than `bytesPerSecond`, measured from the first byte. */
function throttle(bytesPerSecond: number): Transform {
  let started = 0;
  let sent = 0;
  return new Transform({
    async transform(chunk: Buffer, _encoding, callback) {
      started ||= performance.now();
      sent += chunk.length;
      const due = started + (sent / bytesPerSecond) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      callback(null, chunk);
    },
  });
}
