/** `fallback: direct` against scripted clients: which failures skip the parent for a while, which only once. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { upstreamRateLimited, upstreamTimeout, upstreamUnavailable } from '../errors.js';
import { createParentHealth, withDirectFallback } from './parent-fallback.js';
import { createRateLimitBudget } from './rate-limit-budget.js';
import type { RegistryClient, UpstreamRequest, UpstreamResponse } from './registry-client.js';

const answer = (status: number): UpstreamResponse => ({ status, headers: {}, body: Readable.from([]) });

/** A client answering from a script; `sent` counts its requests. */
function scripted(name: string, next: () => UpstreamResponse | Error) {
  const client = {
    name,
    budget: createRateLimitBudget({ thresholds: [0.5], stretch: 4, wait: 60_000 }),
    sent: 0,
    async send(_req: UpstreamRequest) {
      client.sent++;
      const outcome = next();
      if (outcome instanceof Error) throw outcome;
      return outcome;
    },
    close: async () => {},
  };
  return client satisfies RegistryClient;
}

const req: UpstreamRequest = { method: 'GET', path: 'library/x/manifests/1', repository: 'library/x' };
const refused = () => upstreamUnavailable('docker.io', 'parent pullcache http://p:5000 is unreachable');

describe('withDirectFallback', () => {
  it('skips an unreachable parent for the cool-down, then lets one request probe it', async () => {
    let clock = 0;
    const events: string[] = [];
    const health = createParentHealth({
      now: () => clock,
      retryMs: 1000,
      onDown: (reason) => events.push(`down: ${reason}`),
      onUp: () => events.push('up'),
    });
    let parentDown = true;
    const parent = scripted('docker.io', () => (parentDown ? refused() : answer(200)));
    const direct = scripted('docker.io', () => answer(200));
    const client = withDirectFallback(parent, direct, health);

    expect((await client.send(req)).status).toBe(200);
    expect([parent.sent, direct.sent]).toEqual([1, 1]);
    await client.send(req);
    expect([parent.sent, direct.sent]).toEqual([1, 2]); // within the cool-down

    clock = 1000;
    expect(health.tryParent()).toBe(true); // the probe
    expect(health.tryParent()).toBe(false); // nobody else while it runs
    health.unreachable('still down');
    expect(health.tryParent()).toBe(false);
    clock = 2000;
    parentDown = false;
    await client.send(req);
    expect([parent.sent, direct.sent]).toEqual([2, 2]);
    await client.send(req);
    expect([parent.sent, direct.sent]).toEqual([3, 2]);
    expect(events).toEqual(['down: parent pullcache http://p:5000 is unreachable', 'up']);
  });

  it('sends a request the parent answered 5xx or timed out on to the registry, without skipping the parent', async () => {
    const fallbacks: string[] = [];
    const outcomes: (UpstreamResponse | Error)[] = [
      answer(503),
      upstreamTimeout('p', 'parent pullcache http://p:5000 did not answer in time', {
        reason: 'UND_ERR_HEADERS_TIMEOUT',
      }),
      answer(404),
    ];
    const parent = scripted('docker.io', () => outcomes.shift()!);
    const direct = scripted('docker.io', () => answer(200));
    const client = withDirectFallback(parent, direct, createParentHealth(), {
      onFallback: (registry, reason) => fallbacks.push(`${registry}: ${reason}`),
    });
    expect((await client.send(req)).status).toBe(200);
    expect((await client.send(req)).status).toBe(200);
    expect((await client.send(req)).status).toBe(404); // an answer, passed on
    expect([parent.sent, direct.sent]).toEqual([3, 2]);
    expect(fallbacks).toEqual([
      'docker.io: the parent answered 503',
      'docker.io: parent pullcache http://p:5000 did not answer in time',
    ]);
  });

  it('passes on a pull limit the parent reported spent, without spending the node’s own', async () => {
    const direct = scripted('docker.io', () => answer(200));
    const client = withDirectFallback(
      scripted('docker.io', () => upstreamRateLimited('docker.io', 600)),
      direct,
      createParentHealth(),
    );
    await expect(client.send({ ...req, limited: true })).rejects.toMatchObject({ status: 429 });
    expect(direct.sent).toBe(0);
  });

  it('does not go around the parent for a request we aborted, or for a bug', async () => {
    const abort = new AbortController();
    abort.abort();
    const direct = scripted('docker.io', () => answer(200));
    const aborted = withDirectFallback(scripted('docker.io', refused), direct, createParentHealth());
    await expect(aborted.send({ ...req, signal: abort.signal })).rejects.toThrow('unreachable');
    const buggy = withDirectFallback(
      scripted('docker.io', () => new TypeError('x is undefined')),
      direct,
      createParentHealth(),
    );
    await expect(buggy.send(req)).rejects.toThrow(TypeError);
    expect(direct.sent).toBe(0);
  });
});
