import { describe, expect, it } from 'vitest';
import { type Admission, createUpstreamHealth, type HealthPass } from './upstream-health.js';

const policy = { failures: 3, coolDown: 10_000 };

function setup(p = policy) {
  let clock = 1_000_000;
  const health = createUpstreamHealth(p, () => clock);
  return { health, advance: (ms: number) => (clock += ms) };
}

function admitted(admission: Admission): HealthPass {
  if (!admission.admitted) throw new Error(`refused for ${admission.retryAfterSeconds}s`);
  return admission.pass;
}

function refusal(admission: Admission): number {
  if (admission.admitted) throw new Error('admitted');
  return admission.retryAfterSeconds;
}

describe('upstream health', () => {
  it('lets every request through while the upstream answers', () => {
    const { health } = setup();
    for (let i = 0; i < 10; i++) {
      const pass = admitted(health.admit());
      expect(pass.probe).toBe(false);
      expect(pass.answered()).toBeNull();
    }
    expect(health.coolingDown()).toBe(false);
  });

  it('cools down after `failures` consecutive requests without an answer, not before', () => {
    const { health } = setup();
    expect(admitted(health.admit()).failed()).toBeNull();
    expect(admitted(health.admit()).failed()).toBeNull();
    expect(health.coolingDown()).toBe(false);
    expect(admitted(health.admit()).failed()).toEqual({ kind: 'down', failures: 3, coolDownSeconds: 10 });
    expect(health.coolingDown()).toBe(true);
    expect(refusal(health.admit())).toBe(10);
  });

  it('counts only consecutive failures: an answer in between starts the count again', () => {
    const { health } = setup();
    admitted(health.admit()).failed();
    admitted(health.admit()).failed();
    admitted(health.admit()).answered();
    admitted(health.admit()).failed();
    admitted(health.admit()).failed();
    expect(health.coolingDown()).toBe(false);
    expect(admitted(health.admit()).failed()?.kind).toBe('down');
  });

  it('counts concurrent requests that fail together (a burst of cold requests) and reports down once', () => {
    const { health } = setup();
    const passes = [1, 2, 3, 4, 5].map(() => admitted(health.admit()));
    const notices = passes.map((p) => p.failed());
    expect(notices.filter((n) => n !== null)).toEqual([{ kind: 'down', failures: 3, coolDownSeconds: 10 }]);
  });

  it('tells refused requests the rest of the cool-down, rounded up to whole seconds', () => {
    const { health, advance } = setup();
    for (let i = 0; i < 3; i++) admitted(health.admit()).failed();
    advance(2_500);
    expect(refusal(health.admit())).toBe(8);
    advance(7_400);
    expect(refusal(health.admit())).toBe(1);
  });

  it('lets one probe through after the cool-down and refuses the others while it is out', () => {
    const { health, advance } = setup();
    for (let i = 0; i < 3; i++) admitted(health.admit()).failed();
    advance(10_000);
    const probe = admitted(health.admit());
    expect(probe.probe).toBe(true);
    expect(refusal(health.admit())).toBe(10);
    expect(refusal(health.admit())).toBe(10);
    expect(probe.answered()).toEqual({ kind: 'up', downForSeconds: 10 });
    expect(health.coolingDown()).toBe(false);
    expect(admitted(health.admit()).probe).toBe(false);
  });

  it('starts another cool-down when the probe gets no answer either', () => {
    const { health, advance } = setup();
    for (let i = 0; i < 3; i++) admitted(health.admit()).failed();
    advance(10_000);
    advance(30_000); // the probe waits out a headers timeout
    expect(admitted(health.admit()).failed()).toBeNull();
    expect(refusal(health.admit())).toBe(10);
    advance(10_000);
    const next = admitted(health.admit());
    expect(next.probe).toBe(true);
    expect(next.answered()).toEqual({ kind: 'up', downForSeconds: 50 });
  });

  it('gives the probe turn to the next request when a probe ends without a verdict (aborted)', () => {
    const { health, advance } = setup();
    for (let i = 0; i < 3; i++) admitted(health.admit()).failed();
    advance(10_000);
    const probe = admitted(health.admit());
    probe.released();
    expect(health.coolingDown()).toBe(true);
    const next = admitted(health.admit());
    expect(next.probe).toBe(true);
  });

  it('takes a late answer to a request from before the cool-down as proof it is back', () => {
    const { health } = setup();
    const slow = admitted(health.admit());
    for (let i = 0; i < 3; i++) admitted(health.admit()).failed();
    expect(health.coolingDown()).toBe(true);
    expect(slow.answered()?.kind).toBe('up');
    expect(admitted(health.admit()).probe).toBe(false);
  });

  it('ignores a second verdict on one pass', () => {
    const { health } = setup({ failures: 1, coolDown: 10_000 });
    const pass = admitted(health.admit());
    expect(pass.answered()).toBeNull();
    expect(pass.failed()).toBeNull();
    expect(health.coolingDown()).toBe(false);
  });

  it('with failures: 1, the first request without an answer starts the cool-down', () => {
    const { health } = setup({ failures: 1, coolDown: 2_000 });
    expect(admitted(health.admit()).failed()).toEqual({ kind: 'down', failures: 1, coolDownSeconds: 2 });
    expect(refusal(health.admit())).toBe(2);
  });
});
