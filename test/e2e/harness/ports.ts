/** @module Free loopback ports for servers the tests start. */
import { createServer } from 'node:net';

// Ports handed out by this process; the kernel may offer a just-closed port again before its
// server has started, so never give the same one twice.
const handedOut = new Set<number>();

/**
 * A port on 127.0.0.1 that nothing listens on right now (listen on port 0, read it, close); with
 * `host` 0.0.0.0, one free on every address (replicas listening on it at 127.0.0.2, .3, ...).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await ephemeralPort(host);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no unused loopback port after 20 attempts');
}

function ephemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('listening socket has no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
