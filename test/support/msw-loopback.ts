/**
 * @module Serves msw handlers over real loopback HTTP, so the production undici path is exercised
 * (undici's own `request` is not seen by msw's interceptors). Records every request it receives,
 * and destroys the socket when a handler's body stream fails, as a dropped upstream connection would.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { handleRequest, type RequestHandler } from 'msw';
import { Emitter } from 'strict-event-emitter';

export interface RecordedRequest {
  method: string;
  path: string;
  search: string;
  headers: IncomingMessage['headers'];
}

export interface LoopbackServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** How many recorded requests match the method and path pattern. */
  count(method: string, path: RegExp | string): number;
  use(...handlers: RequestHandler[]): void;
  close(): Promise<void>;
}

export async function startLoopback(...initial: RequestHandler[]): Promise<LoopbackServer> {
  let handlers = [...initial];
  const requests: RecordedRequest[] = [];
  const emitter = new Emitter<never>();
  const server: Server = createServer(async (req, res) => {
    const base = `http://${req.headers.host}`;
    const url = new URL(req.url ?? '/', base);
    requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      search: url.search,
      headers: req.headers,
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (Array.isArray(value)) for (const v of value) headers.append(name, v);
      else if (value !== undefined) headers.set(name, value);
    }
    const request = new Request(url, { method: req.method ?? 'GET', headers });
    try {
      const response = await handleRequest(
        request,
        randomUUID(),
        handlers,
        { onUnhandledRequest: 'bypass' },
        emitter as never,
        { resolutionContext: { baseUrl: base } },
      );
      if (!response) {
        res
          .writeHead(599, { 'content-type': 'text/plain' })
          .end(`no handler for ${req.method} ${url.pathname}`);
        return;
      }
      const outHeaders: Record<string, string | string[]> = {};
      response.headers.forEach((value, name) => {
        outHeaders[name] = value;
      });
      res.writeHead(response.status, outHeaders);
      if (!response.body || req.method === 'HEAD') {
        res.end();
        return;
      }
      const body = Readable.fromWeb(response.body as never);
      body.on('error', () => res.destroy());
      body.pipe(res);
    } catch {
      res.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count(method, path) {
      return requests.filter(
        (r) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path)),
      ).length;
    },
    use(...more) {
      handlers = [...more, ...handlers];
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
