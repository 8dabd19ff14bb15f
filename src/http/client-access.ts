/**
 * @module Who may use the proxy: an optional allow-list of client networks, and optional client
 * credentials (htpasswd bcrypt entries for Basic, static bearer tokens), answered with the Basic
 * challenge that `docker login`, skopeo `--creds` and containerd `hosts.toml` headers expect.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import { LRUCache } from 'lru-cache';
import { createAllowList } from '../cidr.js';
import { PEER_PATH_PREFIX } from '../cluster/peer-auth.js';
import type { Config } from '../config.js';
import { ConfigError } from '../config-error.js';
import { denied, unauthorized } from '../errors.js';
import { formatChallenge } from '../upstream/www-authenticate.js';
import type { Env } from './env.js';

/** Paths open to anyone who can connect: orchestrators probe them without credentials. */
const OPEN_PATHS = new Set(['/healthz', '/readyz']);
/** Paths that need no credentials (but do respect the network allow-list): Prometheus scrapes these. */
const NO_CREDENTIALS_PATHS = new Set(['/metrics']);
// bcrypt takes tens of milliseconds by design; remember good credentials for a while.
const VERIFIED_TTL_MS = 5 * 60_000;

/** Reads `user:hash` lines; only bcrypt hashes (htpasswd -B) are accepted. */
export function readHtpasswd(path: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`auth.htpasswd: cannot read ${path}: ${(error as Error).message}`);
  }
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const hash = line.slice(colon + 1).trim();
    if (colon < 1 || !/^\$2[aby]\$\d\d\$/.test(hash)) {
      throw new ConfigError(
        `auth.htpasswd: line ${i + 1} of ${path} is not a bcrypt entry (use htpasswd -B)`,
      );
    }
    users.set(line.slice(0, colon), hash);
  });
  return users;
}

export function clientAccess(
  config: Pick<Config, 'auth' | 'allowedClients' | 'cluster'>,
): MiddlewareHandler<Env> | null {
  const allowed = config.allowedClients ? createAllowList(config.allowedClients) : null;
  const auth = config.auth;
  if (!allowed && !auth) return null;
  const users = auth?.htpasswd ? readHtpasswd(auth.htpasswd) : new Map<string, string>();
  const tokens = (auth?.tokens ?? []).map(sha256);
  const verified = new LRUCache<string, true>({ max: 1000, ttl: VERIFIED_TTL_MS });
  const challenge = { 'www-authenticate': formatChallenge('Basic', { realm: auth?.realm ?? 'pullcache' }) };
  // In a cluster the peer endpoint has a guard of its own (peerAuth): the other members are neither
  // allowed clients (a DaemonSet lets in its node only) nor holders of client credentials.
  const peerPrefix = config.cluster ? `${PEER_PATH_PREFIX}/` : null;

  async function authorized(header: string | undefined): Promise<boolean> {
    if (!header) return false;
    const space = header.indexOf(' ');
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === 'bearer') {
      const presented = sha256(value); // equal-length digests: a timing-safe comparison is possible
      return tokens.some((token) => timingSafeEqual(token, presented));
    }
    if (scheme !== 'basic') return false;
    const key = sha256(header).toString('hex');
    if (verified.has(key)) return true;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const hash = users.get(decoded.slice(0, colon));
    if (colon < 1 || !hash) return false;
    // Loaded on first use: most deployments have no client auth and need not carry it in memory.
    const bcrypt = (await import('bcryptjs')).default;
    if (!(await bcrypt.compare(decoded.slice(colon + 1), hash))) return false;
    verified.set(key, true);
    return true;
  }

  return async function clientAccessMiddleware(c, next) {
    if (OPEN_PATHS.has(c.req.path) || (peerPrefix && c.req.path.startsWith(peerPrefix))) return next();
    if (allowed && !allowed(c.env?.incoming?.socket.remoteAddress)) {
      throw denied('client address not allowed');
    }
    if (auth && !NO_CREDENTIALS_PATHS.has(c.req.path) && !(await authorized(c.req.header('authorization')))) {
      throw unauthorized('authentication required', challenge);
    }
    return next();
  };
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
