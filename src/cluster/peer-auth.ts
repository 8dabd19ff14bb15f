/**
 * @module How peers prove themselves on the internal endpoint: an HMAC-SHA256, keyed with the shared
 * `cluster.secret`, over method, request target, time and sender, in a header of its own.
 *
 * Why this scheme: the secret itself never crosses the wire (a captured request does not give it
 * away), the signature binds one method and path (it cannot be reused for another digest), and the
 * timestamp bounds replays to the allowed clock skew; a replay within it fetches the same content a
 * listener on the wire has just seen anyway. No state is kept (no nonces), so any replica can check
 * any other's requests. A header of its own, not `Authorization`: client credentials (Basic, Bearer)
 * and peer proofs can never be mistaken for each other. Use TLS where the network is not trusted:
 * this proves who asks, it does not hide what is sent.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { denied, unauthorized } from '../errors.js';
import type { Env } from '../http/env.js';
import { formatChallenge } from '../upstream/www-authenticate.js';

/** Every peer route lives under this prefix, and the middleware below guards all of it. */
export const PEER_PATH_PREFIX = '/_pullcache/peer';
export const PEER_AUTH_HEADER = 'x-pullcache-peer';
// 60s: NTP keeps nodes within milliseconds; a minute also covers a node whose clock has drifted
// for a while, and still makes a captured request useless soon.
export const DEFAULT_MAX_SKEW_MS = 60_000;

const SCHEME = 'PullcachePeer';
// Versioned, so the signed text can change without an old signature verifying against a new meaning.
const CONTEXT = 'pullcache-peer-v1';
const HEADER_RE = /^t=(\d{1,12}),from=([^\s,]{1,300}),sig=([0-9a-f]{64})$/;

interface SignedFields {
  method: string;
  /** Path and query exactly as sent, e.g. `/_pullcache/peer/blobs/sha256:ab...?ns=docker.io`. */
  target: string;
  /** Unix seconds. */
  time: number;
  /** The sender, as the members list it (`10.0.0.11:5000`): for logs, and bound by the signature. */
  from: string;
}

function signature(secret: string, fields: SignedFields): Buffer {
  const text = [CONTEXT, fields.method.toUpperCase(), fields.target, String(fields.time), fields.from].join(
    '\n',
  );
  return createHmac('sha256', secret).update(text).digest();
}

export interface PeerSignerOptions {
  secret: string;
  /** This replica's member address. */
  self: string;
  now?: () => number;
}

/** The client side: headers that prove a request to a peer comes from a member. */
export function createPeerSigner({ secret, self, now = Date.now }: PeerSignerOptions) {
  return function signPeerRequest(method: string, target: string): Record<string, string> {
    const time = Math.floor(now() / 1000);
    const sig = signature(secret, { method, target, time, from: self }).toString('hex');
    return { [PEER_AUTH_HEADER]: `t=${time},from=${self},sig=${sig}` };
  };
}

export interface PeerAuthOptions {
  secret: string;
  maxSkewMs?: number;
  now?: () => number;
}

export type PeerCheck =
  | { ok: true; from: string }
  | { ok: false; reason: 'missing' | 'malformed' | 'signature' | 'clock' };

/** Checks one request's proof; constant-time in the signature, whatever it is. */
export function verifyPeerRequest(
  header: string | undefined,
  method: string,
  target: string,
  { secret, maxSkewMs = DEFAULT_MAX_SKEW_MS, now = Date.now }: PeerAuthOptions,
): PeerCheck {
  if (header === undefined || header === '') return { ok: false, reason: 'missing' };
  const match = HEADER_RE.exec(header.trim());
  if (!match) return { ok: false, reason: 'malformed' };
  const time = Number(match[1]);
  const from = match[2]!;
  const expected = signature(secret, { method, target, time, from });
  // Signature first, clock second: an unsigned timestamp says nothing about the sender's clock.
  if (!timingSafeEqual(expected, Buffer.from(match[3]!, 'hex'))) return { ok: false, reason: 'signature' };
  if (Math.abs(now() - time * 1000) > maxSkewMs) return { ok: false, reason: 'clock' };
  return { ok: true, from };
}

/**
 * Guards the peer endpoint (`app.use(`${PEER_PATH_PREFIX}/*`, peerAuth(...))`): no proof is 401,
 * a proof that does not verify (another secret, a clock off by more than the skew) is 403, as the
 * sender's configuration is wrong and retrying the same request cannot help.
 */
export function peerAuth(options: PeerAuthOptions): MiddlewareHandler<Env> {
  const challenge = { 'www-authenticate': formatChallenge(SCHEME, { realm: 'pullcache-peer' }) };
  return async function peerAuthMiddleware(c, next) {
    const check = verifyPeerRequest(c.req.header(PEER_AUTH_HEADER), c.req.method, requestTarget(c), options);
    if (check.ok) {
      c.set('peer', check.from);
      return next();
    }
    switch (check.reason) {
      case 'missing':
        throw unauthorized('peer endpoint: a signed peer request is required', challenge, {
          reason: check.reason,
        });
      case 'malformed':
        throw unauthorized(`peer endpoint: malformed ${PEER_AUTH_HEADER} header`, challenge, {
          reason: check.reason,
        });
      case 'signature':
        throw denied('peer endpoint: the signature does not verify (is cluster.secret the same?)', {
          reason: check.reason,
        });
      case 'clock':
        throw denied('peer endpoint: the signature is too old or from the future (clock skew)', {
          reason: check.reason,
        });
    }
  };
}

/** The path and query as the client sent them: the text the signer signed, not a normalized form. */
function requestTarget(c: Context<Env>): string {
  const raw = c.env?.incoming?.url;
  if (raw?.startsWith('/')) return raw;
  const url = new URL(raw ?? c.req.url); // absolute-form, or an in-process request
  return url.pathname + url.search;
}
