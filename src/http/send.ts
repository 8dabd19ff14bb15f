/**
 * @module Writes a streamed body straight to Node's response (no web-stream detour on the hot path).
 * When the source fails mid-body the connection is destroyed, so the client sees a broken transfer,
 * never a complete-looking short one.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { Env } from './env.js';

export function sendStream(
  c: Context<Env>,
  status: number,
  headers: Record<string, string>,
  stream: Readable | null,
): Response {
  const outgoing = c.env?.outgoing;
  if (!outgoing) {
    // In-process requests (app.request in unit tests) have no Node response to write to.
    return new Response(stream ? (Readable.toWeb(stream) as ReadableStream) : null, { status, headers });
  }
  outgoing.writeHead(status, { ...headers, 'x-request-id': c.get('requestId') ?? '' });
  if (!stream) {
    outgoing.end();
    return RESPONSE_ALREADY_SENT;
  }
  pipeline(stream, outgoing).catch(() => {
    // A client that went away, or a source that failed: either way the socket must not look complete.
    if (!outgoing.destroyed) outgoing.destroy();
    stream.destroy();
  });
  return RESPONSE_ALREADY_SENT;
}

/** The request path exactly as the client sent it (the URL parser would resolve `..` silently). */
export function rawPath(c: Context<Env>): string {
  const raw = c.env?.incoming?.url ?? new URL(c.req.url).pathname + new URL(c.req.url).search;
  const path = raw.startsWith('/') ? raw : new URL(raw).pathname;
  const query = path.indexOf('?');
  return query === -1 ? path : path.slice(0, query);
}

/** Every value of a header the client may have sent several times (Docker sends one Accept per type). */
export function headerValues(c: Context<Env>, name: string): string[] {
  const distinct = c.env?.incoming?.headersDistinct?.[name];
  if (distinct) return distinct;
  const value = c.req.header(name);
  return value === undefined ? [] : [value];
}
