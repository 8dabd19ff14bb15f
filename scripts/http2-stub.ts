/**
 * @module What the bundle gets for `node:http2` (scripts/bundle-options.ts): pullcache speaks
 * HTTP/1.1 to clients and upstreams, and loading node's http2 (with tls under it) costs every
 * process ~0.8 MB it never uses. @hono/node-server only asks `instanceof Http2ServerRequest` of
 * requests node's http/https servers made (always false here); undici only connects with HTTP/2 when
 * a dispatcher has `allowH2`, which pullcache never sets.
 */
export class Http2ServerRequest {}

export const constants = {};

export function connect(): never {
  throw new Error('HTTP/2 is not in this build of pullcache (scripts/http2-stub.ts)');
}
