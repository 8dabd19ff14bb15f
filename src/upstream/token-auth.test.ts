import { HttpResponse, http } from 'msw';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LoopbackServer, startLoopback } from '../../test/support/msw-loopback.js';
import { createTokenAuth, tokenLifetimeMs } from './token-auth.js';

describe('tokenLifetimeMs', () => {
  it.each([
    [undefined, 50_000], // the spec's 60 s default, minus the margin
    [0, 50_000],
    [300, 290_000], // Docker Hub: five minutes, refreshed 10 s early
    [20, 15_000], // short tokens keep three quarters of their life
    [3600, 3_590_000],
  ])('expires_in %s → %s ms', (expiresIn, ms) => {
    expect(tokenLifetimeMs(expiresIn)).toBe(ms);
  });
});

describe('createTokenAuth', () => {
  let server: LoopbackServer;
  let expiresIn = 300;
  let delayMs = 0;
  const agent = new Agent();
  beforeAll(async () => {
    server = await startLoopback(
      http.get('/token', async ({ request }) => {
        await new Promise((r) => setTimeout(r, delayMs));
        const scope = new URL(request.url).searchParams.get('scope');
        return HttpResponse.json({ token: `t-${server.requests.length}-${scope}`, expires_in: expiresIn });
      }),
      http.get('/broken', () => new HttpResponse('nope', { status: 500 })),
    );
  });
  afterAll(async () => {
    await server.close();
    await agent.close();
  });

  const make = (now: () => number) =>
    createTokenAuth({
      registry: 'test',
      dispatcher: agent,
      credentials: undefined,
      headersTimeout: 5000,
      bodyTimeout: 5000,
      now,
    });

  it('caches a token until shortly before it expires, per scope', async () => {
    let clock = 1_000_000;
    const auth = make(() => clock);
    const challenge = { realm: `${server.url}/token`, service: 'svc' };
    expiresIn = 60;
    const before = server.count('GET', '/token');
    const first = await auth.token(challenge, 'repository:a:pull');
    clock += 49_000;
    expect(await auth.token(challenge, 'repository:a:pull')).toBe(first);
    expect(server.count('GET', '/token') - before).toBe(1);
    await auth.token(challenge, 'repository:b:pull');
    expect(server.count('GET', '/token') - before).toBe(2);
    clock += 2_000; // 51 s: past 60 s minus the 10 s margin
    const second = await auth.token(challenge, 'repository:a:pull');
    expect(second).not.toBe(first);
    expect(server.count('GET', '/token') - before).toBe(3);
  });

  it('shares one fetch among concurrent callers of one scope', async () => {
    const auth = make(() => 5);
    const challenge = { realm: `${server.url}/token`, service: 'svc' };
    delayMs = 50;
    const before = server.count('GET', '/token');
    const tokens = await Promise.all(
      Array.from({ length: 20 }, () => auth.token(challenge, 'repository:c:pull')),
    );
    delayMs = 0;
    expect(new Set(tokens).size).toBe(1);
    expect(server.count('GET', '/token') - before).toBe(1);
  });

  it('forgets a refused token so the next call fetches anew', async () => {
    const auth = make(() => 5);
    const challenge = { realm: `${server.url}/token`, service: undefined };
    const first = await auth.token(challenge, 'repository:d:pull');
    auth.forget(challenge, 'repository:d:pull', first);
    expect(await auth.token(challenge, 'repository:d:pull')).not.toBe(first);
  });

  it('lets a fetch already under way finish when a request reports the old token refused', async () => {
    const auth = make(() => 5);
    const challenge = { realm: `${server.url}/token`, service: 'svc' };
    const old = await auth.token(challenge, 'repository:f:pull');
    auth.forget(challenge, 'repository:f:pull', old);
    delayMs = 50;
    const before = server.count('GET', '/token');
    const fresh = auth.token(challenge, 'repository:f:pull'); // under way
    // A second request that had sent the old token sees its 401 now.
    auth.forget(challenge, 'repository:f:pull', old);
    const waiting = auth.token(challenge, 'repository:f:pull');
    delayMs = 0;
    expect(await fresh).not.toBe(old);
    expect(await waiting).toBe(await fresh);
    expect(server.count('GET', '/token') - before).toBe(1);
  });

  it('fails with a 502 naming the registry when the endpoint errors', async () => {
    const auth = make(() => 5);
    await expect(
      auth.token({ realm: `${server.url}/broken`, service: 's' }, 'repository:e:pull'),
    ).rejects.toMatchObject({
      status: 502,
      code: 'UNAVAILABLE',
      message: expect.stringContaining('test'),
    });
  });
});
