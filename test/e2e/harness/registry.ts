/** @module The upstream: docker-registry 2.8.2, open, behind htpasswd or token auth, or in proxy mode. */

// Observed here: the access log ("GET /v2/… HTTP/1.1" 200 …) goes to stdout, everything else
// (logrus) to stderr. Behind auth, a client's first request is logged as a 401 and its retry with
// credentials as a 200, so counts of served requests filter by status. The config is YAML; JSON
// strings are valid YAML scalars, so values go through JSON.stringify instead of YAML escaping.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './command.js';
import { freePort } from './ports.js';
import { type ManagedProcess, startProcess, waitForHttp } from './process.js';
import { makeTempDir, removeDir } from './temp-dir.js';
import type { TokenServer } from './token-server.js';

export interface Credentials {
  username: string;
  password: string;
}

export type RegistryAuth = 'none' | { htpasswd: Credentials } | { token: TokenServer };

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** Distribution's pull-through mode (one upstream only; see FIELD-NOTES for its limits). */
  proxy?: { remoteurl: string; username?: string; password?: string };
  /** The address it listens on (default 127.0.0.1), e.g. a bridge address network namespaces reach. */
  host?: string;
  /** Its S3 storage driver instead of the filesystem (a benchmark peer on the same RGW). */
  s3?: {
    regionendpoint: string;
    region: string;
    bucket: string;
    accesskey: string;
    secretkey: string;
    rootdirectory?: string;
  };
}

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** host:port, as image references name it. */
  host: string;
  dir: string;
  process: ManagedProcess;
  /** Lines of its access log, oldest first. */
  accessLog(): string[];
  /**
   * Access log lines with this method whose path (query included) matches `path`, and whose status
   * is `status` when given: with auth, a client's first try of a request is often a 401.
   */
  countRequests(method: string, path: RegExp, status?: number): number;
  stop(): Promise<void>;
}

// `127.0.0.1 - - [date] "GET /v2/library/demo/manifests/1.0 HTTP/1.1" 200 …`
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3})/;

export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const dir = await makeTempDir('registry');
  const host = options.host ?? '127.0.0.1';
  const port = await freePort(host === '127.0.0.1' ? host : '0.0.0.0');
  const config = [
    'version: 0.1',
    'log:',
    '  level: info',
    'storage:',
    ...(options.s3
      ? [
          `  s3: ${JSON.stringify({ ...options.s3, forcepathstyle: true })}`,
          // Its default with S3 answers blob GETs with 307s to the bucket: here it serves the bytes.
          '  redirect: { disable: true }',
        ]
      : [`  filesystem: { rootdirectory: ${JSON.stringify(join(dir, 'data'))} }`]),
    '  delete: { enabled: true }',
    // The default health check polls storage every 10 s and logs; nothing here needs it.
    'health:',
    '  storagedriver: { enabled: false }',
    'http:',
    `  addr: ${host}:${port}`,
    `  secret: e2e-${port}`,
    ...(await authSection(dir, options.auth ?? 'none')),
    ...proxySection(options.proxy),
  ].join('\n');
  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, `${config}\n`);

  // With the S3 driver, an AWS_CA_BUNDLE in the environment makes distribution 2.8 panic at start
  // (its AWS SDK cannot load a bundle into the transport distribution gives it): RGW here is plain http.
  const { AWS_CA_BUNDLE: _bundle, ...withoutBundle } = process.env;
  const proc = startProcess('docker-registry', 'docker-registry', ['serve', configFile], {
    logFile: join(dir, 'registry.log'),
    ...(options.s3 ? { env: withoutBundle } : {}),
  });
  const url = `http://${host}:${port}`;
  try {
    await waitForHttp(`${url}/v2/`, { process: proc });
  } catch (error) {
    await proc.stop();
    await removeDir(dir);
    throw error;
  }

  const accessLog = () =>
    proc
      .stdout()
      .split('\n')
      .filter((line) => ACCESS_LINE.test(line));
  return {
    url,
    port,
    host: `${host}:${port}`,
    dir,
    process: proc,
    accessLog,
    countRequests(method, path, status) {
      return accessLog().filter((line) => {
        const m = ACCESS_LINE.exec(line);
        if (m === null || m[1] !== method.toUpperCase() || !path.test(m[2] ?? '')) return false;
        return status === undefined || Number(m[3]) === status;
      }).length;
    },
    async stop() {
      await proc.stop();
      await removeDir(dir);
    },
  };
}

/** The Authorization header value for Basic credentials. */
export function basicAuth({ username, password }: Credentials): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

async function authSection(dir: string, auth: RegistryAuth): Promise<string[]> {
  if (auth === 'none') return [];
  if ('htpasswd' in auth) {
    const { username, password } = auth.htpasswd;
    // Distribution 2.8 accepts bcrypt entries only.
    const { stdout } = await run('htpasswd', ['-Bbn', username, password]);
    const file = join(dir, 'htpasswd');
    await writeFile(file, stdout);
    return ['auth:', `  htpasswd: { realm: e2e, path: ${JSON.stringify(file)} }`];
  }
  const t = auth.token;
  return [
    'auth:',
    '  token:',
    `    realm: ${JSON.stringify(t.realm)}`,
    `    service: ${JSON.stringify(t.service)}`,
    `    issuer: ${JSON.stringify(t.issuer)}`,
    `    rootcertbundle: ${JSON.stringify(t.certFile)}`,
  ];
}

function proxySection(proxy: RegistryOptions['proxy']): string[] {
  if (!proxy) return [];
  const lines = ['proxy:', `  remoteurl: ${JSON.stringify(proxy.remoteurl)}`];
  if (proxy.username !== undefined) lines.push(`  username: ${JSON.stringify(proxy.username)}`);
  if (proxy.password !== undefined) lines.push(`  password: ${JSON.stringify(proxy.password)}`);
  return lines;
}
