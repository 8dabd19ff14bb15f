/** @module A token server for distribution's token auth that counts every token request. */

// Tokens are RS256 JWTs whose `x5c` header carries a self-signed certificate, which the registry
// trusts through `rootcertbundle`. It answers GET /token?service=S&scope=… (Basic credentials, as
// skopeo asks) and the OAuth2 form POST containerd sends when it has a password
// (grant_type=password, space-separated scopes).
import { createPrivateKey, createSign, type KeyObject, randomUUID, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { run } from './command.js';
import type { Credentials } from './registry.js';
import { makeTempDir, removeDir } from './temp-dir.js';

export interface TokenServerOptions {
  service?: string;
  issuer?: string;
  /** Refuse anonymous token requests; only these credentials get a token. */
  credentials?: Credentials;
  expiresInSeconds?: number;
  /** The address it listens on (default 127.0.0.1). */
  host?: string;
}

export interface TokenRequest {
  method: string;
  service: string | undefined;
  scopes: string[];
  /** The user who authenticated, if any. */
  username: string | undefined;
}

export interface TokenServer {
  /** The realm to configure: http://127.0.0.1:PORT/token */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate for the registry's `rootcertbundle`. */
  certFile: string;
  /** How many tokens were asked for (refused requests included). */
  tokenRequests(): number;
  requests(): TokenRequest[];
  stop(): Promise<void>;
}

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const {
    service = 'pullcache-e2e-registry',
    issuer = 'pullcache-e2e-issuer',
    expiresInSeconds = 300,
  } = options;
  const dir = await makeTempDir('token');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  // Self-signed: the certificate is its own root in the registry's rootcertbundle.
  const subject = ['-subj', '/CN=pullcache-e2e-token', '-keyout', keyFile, '-out', certFile];
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', ...subject]);
  const key = createPrivateKey(await readFile(keyFile));
  const x5c = new X509Certificate(await readFile(certFile)).raw.toString('base64');

  const requests: TokenRequest[] = [];
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token');
    if (url.pathname !== '/token') {
      res.writeHead(404).end();
      return;
    }
    const form = req.method === 'POST' ? new URLSearchParams(await readBody(req)) : undefined;
    const params = form ?? url.searchParams;
    const scopes = form
      ? (form.get('scope') ?? '').split(' ').filter(Boolean)
      : url.searchParams.getAll('scope');
    const user = form ? formUser(form) : basicUser(req.headers.authorization);
    requests.push({
      method: req.method ?? 'GET',
      service: params.get('service') ?? undefined,
      scopes,
      username: user?.username,
    });

    const wanted = options.credentials;
    if (wanted && (user?.username !== wanted.username || user.password !== wanted.password)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="pullcache-e2e-token"' }).end();
      return;
    }
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(key, x5c, {
      iss: issuer,
      sub: user?.username ?? '',
      aud: service,
      exp: now + expiresInSeconds,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access: scopes.map(parseScope).filter((a) => a !== undefined),
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token,
        access_token: token,
        expires_in: expiresInSeconds,
        issued_at: new Date(now * 1000).toISOString(),
      }),
    );
  }

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://${host}:${port}/token`,
    service,
    issuer,
    certFile,
    tokenRequests: () => requests.length,
    requests: () => [...requests],
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await removeDir(dir);
    },
  };
}

function signJwt(key: KeyObject, x5c: string, claims: object): string {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [x5c] };
  const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  const signature = createSign('RSA-SHA256').update(unsigned).sign(key);
  return `${unsigned}.${base64url(signature)}`;
}

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** `repository:library/demo:pull,push` → an access entry granting exactly what was asked. */
function parseScope(scope: string) {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(','),
  };
}

function basicUser(header: string | undefined): Credentials | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function formUser(form: URLSearchParams): Credentials | undefined {
  const username = form.get('username');
  const password = form.get('password');
  return username !== null && password !== null ? { username, password } : undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
