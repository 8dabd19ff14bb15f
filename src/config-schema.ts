/**
 * @module The configuration's schema (zod): every key, its default and what it accepts, the value
 * types (durations, sizes, rates, HOST:PORT, CIDRs, peer addresses) and the sections (cluster,
 * storage.s3, registries, parent). config.ts reads a file and validates it against this.
 */
import { z } from 'zod';
import { parseCidr } from './cidr.js';
import { formatPeerAddress, isDnsServer, isHostName, parsePeerAddress } from './cluster/peer-address.js';
import { isValidDomain, normalizeRegistryHost } from './reference.js';
import { parseDuration, parseSize } from './units.js';
import { isForbiddenAddress } from './upstream/address-guard.js';

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration such as "30s" or "5m", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === null) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size such as "50GiB", got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

/** A transfer rate such as "32KiB/s" (a bare number is bytes per second); 0 or null turns it off. */
const rate = z
  .union([z.string(), z.number()])
  .nullable()
  .transform((value, ctx) => {
    if (value === null) return null;
    const perSecond = typeof value === 'number' ? value : /^(.*)\/\s*s\s*$/i.exec(value)?.[1];
    const bytes = perSecond === undefined ? null : parseSize(perSecond);
    if (bytes === null) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a rate such as "32KiB/s", got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }
    return bytes === 0 ? null : bytes;
  });

const positive = (schema: typeof duration) =>
  schema.refine((ms) => ms > 0, { message: 'must be longer than 0' });

export const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:/]*):\d{1,5}$/, 'expected HOST:PORT, e.g. 0.0.0.0:5000')
  .refine((value) => Number(/:(\d+)$/.exec(value)?.[1] ?? 0) <= 65535, {
    message: 'the port must be between 0 and 65535',
  });

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const cidr = z.string().refine((value) => parseCidr(value) !== null, {
  message: 'expected a CIDR such as 10.0.0.0/8 or fd00::/8',
});

/** A host name or IP address alone (no scheme, port or path), as `tokenRealms` lists them. */
const realmHost = z
  .string()
  .refine(
    (value) => {
      try {
        const url = new URL(`http://${value}`);
        return url.port === '' && url.host === value.toLowerCase() && value !== '';
      } catch {
        return false;
      }
    },
    { message: 'expected a host name such as auth.example.com (no scheme, port or path)' },
  )
  .transform((value) => value.toLowerCase());

/** A cluster member, `HOST:PORT`, in the canonical form membership and rendezvous compare. */
const peerAddress = z.string().transform((value, ctx) => {
  const parsed = parsePeerAddress(value);
  if (parsed === null) {
    ctx.addIssue({
      code: 'custom',
      message: `expected HOST:PORT such as 10.0.0.11:5000 or [fd00::11]:5000, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return formatPeerAddress(parsed);
});

// The member list and the owner of each digest; absent: a single replica with its own cache.
const clusterSchema = z
  .strictObject({
    peers: z
      .strictObject({
        // A headless Service's name: its A/AAAA records are the members (at cluster.port).
        dns: z
          .string()
          // A trailing dot is allowed and dropped: node's resolve4/resolve6 apply no search list anyway.
          .transform((name) => name.toLowerCase().replace(/\.$/, ''))
          .refine(isHostName, { message: 'expected a DNS name such as pullcache-peers.pullcache.svc' })
          .optional(),
        static: z.array(peerAddress).min(1).optional(),
        // Absent: the system resolver (/etc/resolv.conf), which is what a pod should use. Tests name dnsmasq.
        resolver: z
          .string()
          .refine(isDnsServer, { message: 'expected a DNS server address: IP, IPv4:PORT or [IPv6]:PORT' })
          .optional(),
      })
      // A resolver beside static is allowed (unused): switching dns for static is then a one-line edit.
      .refine((p) => (p.dns === undefined) !== (p.static === undefined), {
        message: 'expected exactly one of dns and static',
      }),
    port: z.number().int().min(1).max(65_535).default(5000), // the default listen port
    // Absent: derived from listen (or, for 0.0.0.0, the machine's address) when the cluster starts.
    self: peerAddress.optional(),
    // HMAC key of the peer endpoint: 32 characters at least (`openssl rand -hex 32` gives 64).
    secret: z.string().min(32, 'secret must be at least 32 characters'),
    // 5s: a replica that joins or leaves is seen within seconds, at one small DNS query per refresh.
    refresh: duration.default(5_000).refine((ms) => ms >= 100, { message: 'refresh must be at least 100ms' }),
    // 500ms: a live peer on a LAN accepts and answers headers in milliseconds; a dead one must not
    // cost a client more than this before the upstream is tried instead.
    peerTimeout: duration.default(500).refine((ms) => ms > 0, { message: 'peerTimeout must be positive' }),
  })
  // Every replica must compute owners over the same list: a self missing from it splits the views.
  .refine((c) => c.self === undefined || c.peers.static === undefined || c.peers.static.includes(c.self), {
    message: 'self must be one of peers.static',
    path: ['self'],
  })
  // With dns the others list this replica at cluster.port; another port would make it two members.
  .refine((c) => c.self === undefined || c.peers.dns === undefined || c.self.endsWith(`:${c.port}`), {
    message: 'self must use cluster.port with peers.dns',
    path: ['self'],
  });

// An S3-compatible bucket every replica shares. Credentials come from the AWS SDK's standard chain
// only (environment, shared files, web identity), never from this file.
const s3Schema = z.strictObject({
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name'),
  // Absent: AWS's regional endpoint. Ceph RGW, MinIO, R2 and the like name theirs.
  endpoint: z
    .url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://s3.example.internal' })
    .optional(),
  // us-east-1: what S3-compatible servers accept whatever their zone; AWS buckets name their own.
  region: z.string().min(1).default('us-east-1'),
  prefix: z.string().default(''), // keys under `<prefix>`: several caches can share one bucket
  // Absent: path-style URLs with an endpoint (what RGW and MinIO want), virtual-hosted on AWS.
  forcePathStyle: z.boolean().optional(),
  // Off: clients must be able to reach the bucket for a redirect to work, which is not a given.
  redirect: z.boolean().default(false),
});

const registrySchema = z
  .strictObject({
    url: z
      .url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://registry-1.docker.io' })
      // The API's own /v2 is added to every request path: a URL that already ends in it is the base.
      .transform((u) => u.replace(/\/+$/, '').replace(/\/v2$/i, '')),
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    // Absent: credentials go only to a token realm on the registry's host or registrable domain.
    tokenRealms: z.array(realmHost).min(1).optional(),
  })
  .refine((r) => (r.username === undefined) === (r.password === undefined), {
    message: 'username and password go together',
  })
  // Every upstream connection refuses these (address-guard.ts): say so at start, not at first pull.
  .refine((r) => !isForbiddenAddress(new URL(r.url).hostname), {
    message: 'is a link-local or cloud metadata address, which pullcache never connects to',
    path: ['url'],
  });

// Another pullcache that every upstream request goes to (with ?ns=<registry>); absent: the registries.
const parentSchema = z.strictObject({
  url: z
    .url({ protocol: /^https?$/, error: 'expected an http(s) URL such as http://pullcache-central:5000' })
    .transform((u) => u.replace(/\/+$/, '').replace(/\/v2$/i, ''))
    .refine((u) => !isForbiddenAddress(new URL(u).hostname), {
      message: 'is a link-local or cloud metadata address, which pullcache never connects to',
    }),
  // The parent's client auth (one of its auth.tokens), sent as a Bearer token to the parent only.
  token: z.string().min(1).optional(),
  // direct: while the parent is down, go to the registry itself (a node keeps pulling); none: fail.
  fallback: z.enum(['direct', 'none']).default('direct'),
});

export const configSchema = z
  .strictObject({
    listen: hostPort.default('0.0.0.0:5000'),
    storage: z
      .strictObject({
        path: z.string().min(1).default('./data'),
        // No limit by default: a cache that silently drops content surprises more than a full disk.
        maxSize: size.nullable().default(null),
        // Absent: the cache lives in `path`. Present: in this bucket, and `path` only holds spool files
        // of downloads in flight.
        s3: s3Schema.optional(),
      })
      .prefault({}),
    defaultRegistry: z.string().default('docker.io'),
    cache: z
      .strictObject({
        // Five minutes: a moved tag (or a new signature) is seen soon, and a burst of node pulls costs
        // one upstream HEAD. Referrers lists share it: signatures are added around pushes, as tags move.
        tagTTL: duration.default(5 * 60_000),
        // Off: a tag deleted upstream should disappear from the mirror too.
        serveDeletedTags: z.boolean().default(false),
      })
      .prefault({}),
    upstream: z
      .strictObject({
        connectTimeout: duration.default(10_000), // 10s: a registry that does not accept in 10s is down
        headersTimeout: duration.default(30_000), // 30s: token endpoints and manifest lookups can be slow
        bodyTimeout: duration.default(30_000), // 30s of silence mid-body means a stalled transfer
        maxRedirects: z.number().int().min(0).max(10).default(5),
        // 32 KiB/s averaged over 30s: far below any working registry or CDN link, yet a drip (a few
        // bytes now and then, which bodyTimeout never sees as silence) cannot hold a download slot and
        // its clients for hours. A body slower than this is resumed with a Range request, then failed.
        minRate: rate.default(32 * 1024),
        minRateWindow: positive(duration).default(30_000),
        failFast: z
          .strictObject({
            // 3 in a row: one lost connection is not an outage, and a rollout's burst of cold requests
            // trips it within one timeout rather than each of them waiting out its own.
            failures: z.number().int().min(1).default(3),
            // 10s: clients fall back at once meanwhile, and a registry that is back is used again soon.
            coolDown: duration
              .default(10_000)
              .refine((ms) => ms >= 1000, { message: 'coolDown must be at least 1s' }),
          })
          .prefault({}),
        rateLimit: z
          .strictObject({
            // Half, a quarter, a tenth left: revalidate less and less as the budget runs low.
            thresholds: z
              .array(z.number().gt(0).lt(1))
              .default([0.5, 0.25, 0.1])
              .refine((t) => new Set(t).size === t.length, { message: 'thresholds must differ' }),
            // 4× per threshold: a 5m tagTTL becomes 20m, 80m, then 5h20m, below Docker Hub's 6h window.
            stretch: z.number().min(1).default(4),
            // 60s after a 429 that says neither Retry-After nor a window: long enough not to hammer it.
            wait: positive(duration).default(60_000),
          })
          .prefault({}),
      })
      .prefault({}),
    registries: z
      .record(z.string(), registrySchema)
      .refine((r) => Object.keys(r).length > 0, { message: 'at least one registry is needed' }),
    log: z
      .strictObject({
        // PULLCACHE_LOG_LEVEL in the environment wins (see loadConfig).
        level: logLevel.default('info'),
      })
      .prefault({}),
    // HTTPS when set; SIGHUP reloads the files (certificate rotation without a restart).
    tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
    // Client authentication for the proxy itself; absent: anyone who can connect may pull.
    auth: z
      .strictObject({
        htpasswd: z.string().min(1).optional(), // a file of user:bcrypt-hash lines (htpasswd -B)
        tokens: z.array(z.string().min(16, 'tokens must be at least 16 characters')).optional(),
        realm: z.string().default('pullcache'),
      })
      .refine((a) => a.htpasswd !== undefined || (a.tokens?.length ?? 0) > 0, {
        message: 'auth needs htpasswd and/or tokens',
      })
      .optional(),
    // Client addresses allowed to connect (CIDRs); absent: all. Health endpoints are always open.
    allowedClients: z.array(cidr).min(1).optional(),
    limits: z
      .strictObject({
        maxHeaderSize: size.default(16 * 1024), // 16 KiB, Node's default: registry requests are small
        downloadsPerRegistry: z.number().int().min(1).default(16), // concurrent blob downloads per upstream
        manifestTimeout: duration.default(60_000), // 60s for a manifest or listing answer, all retries included
        shutdownGrace: duration.default(30_000), // 30s for running transfers to finish on SIGTERM
        // 10s: a registry request is a few hundred bytes of headers; a connection that has not sent
        // them by then is idle or a slowloris, and is closed (408) rather than holding a connection.
        headersTimeout: positive(duration).default(10_000),
        // 30s for the whole request to arrive. Pulls have no request body, so this only bounds a client
        // trickling one; it never limits how long a blob body takes to send.
        requestTimeout: positive(duration).default(30_000),
        // 65s: longer than the 60s idle timeout of common load balancers (AWS ALB, nginx), so one
        // never sends a request on a connection we are just closing; short enough to free idle sockets.
        keepAliveTimeout: positive(duration).default(65_000),
        // 4096 open client connections: a rollout of a thousand nodes pulling a few layers each. Beyond
        // it, new connections are closed at once, before they cost memory or file descriptors.
        maxConnections: z.number().int().min(1).default(4096),
      })
      .refine((l) => l.headersTimeout <= l.requestTimeout, {
        message: 'headersTimeout must not be longer than requestTimeout',
      })
      .prefault({}),
    prefetch: z
      .strictObject({
        // On: containerd fetches three blobs at a time, so each cold layer after the third waits for
        // a turn; started when the image manifest is served, all of them download at once.
        layers: z.boolean().default(true),
        // 10 GiB: bigger than almost any image a node runs; beyond it a pull that stops early (a
        // client that already has most layers) would cost too much unasked-for traffic.
        maxBytes: size.default(10 * 2 ** 30),
      })
      .prefault({}),
    cluster: clusterSchema.optional(),
    parent: parentSchema.optional(),
  })
  .superRefine((config, ctx) => {
    for (const host of Object.keys(config.registries)) {
      if (!isValidDomain(host)) {
        ctx.addIssue({
          code: 'custom',
          path: ['registries', host],
          message: `"${host}" is not a registry host name`,
        });
      }
    }
    const registries = Object.keys(config.registries).map(normalizeRegistryHost);
    if (!registries.includes(normalizeRegistryHost(config.defaultRegistry))) {
      ctx.addIssue({
        code: 'custom',
        path: ['defaultRegistry'],
        message: `"${config.defaultRegistry}" is not one of the configured registries (${registries.join(', ')})`,
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type RegistryConfig = Config['registries'][string];
export type ClusterConfig = NonNullable<Config['cluster']>;
export type ParentConfig = NonNullable<Config['parent']>;
