/**
 * @module A TCP relay in front of a server that passes its answers on at a fixed rate: a blob
 * download slow enough to kill a replica in the middle of it (this kernel has no netem). Requests
 * go through untouched; closing either side closes the other.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';

export interface ThrottleProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  host: string;
  /** Bytes per second passed to clients; may be changed while it runs. */
  rate: number;
  stop(): Promise<void>;
}

export async function startThrottleProxy(target: { host: string; port: number }, rate: number) {
  const sockets = new Set<Socket>();
  const proxy: ThrottleProxy = { url: '', host: '', rate, stop: async () => {} };
  const server = createServer((client) => {
    const upstream = createConnection(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.end());
    client.pipe(upstream);
    upstream.pipe(throttle(() => proxy.rate)).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  proxy.host = `127.0.0.1:${port}`;
  proxy.url = `http://${proxy.host}`;
  proxy.stop = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}

/** Delays each chunk until the bytes passed so far fit the rate since the first one. */
function throttle(rate: () => number): Transform {
  let started = 0;
  let passed = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      started ||= performance.now();
      passed += chunk.length;
      const due = started + (passed / rate()) * 1000;
      setTimeout(() => callback(null, chunk), Math.max(0, due - performance.now()));
    },
  });
}
