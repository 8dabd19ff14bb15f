/**
 * @module Whether an upstream is worth waiting for (fail fast). After `failures` consecutive requests
 * that got no answer (connection failures, timeouts), the upstream cools down: requests are refused
 * at once for `coolDown`, so clients fall back to their next host instead of waiting out the
 * timeouts. Then one request at a time is let through as a probe: an answer ends the cool-down, no
 * answer starts another. A state machine on an injected clock; the registry client feeds it.
 */

export interface HealthPolicy {
  /** Consecutive requests without an answer that start a cool-down. */
  failures: number;
  /** Milliseconds a cool-down lasts before the next probe. */
  coolDown: number;
}

/** A request let through; exactly one of its methods is called when it ends. */
export interface HealthPass {
  /** Whether this request checks an upstream that is cooling down. */
  readonly probe: boolean;
  /** It got an answer (any status): the upstream is there. */
  answered(): HealthNotice | null;
  /** It got no answer: connection refused or unreachable, or timed out. */
  failed(): HealthNotice | null;
  /** It ended without telling either way (aborted by its client): a probe's turn goes to the next request. */
  released(): void;
}

export type Admission = { admitted: true; pass: HealthPass } | { admitted: false; retryAfterSeconds: number };

/** A change worth a log line and a metric. */
export type HealthNotice =
  | { kind: 'down'; failures: number; coolDownSeconds: number }
  | { kind: 'up'; downForSeconds: number };

export interface UpstreamHealth {
  /** Lets a request through, or refuses it with the seconds until the next probe. */
  admit(): Admission;
  /** Whether requests are being refused (a cool-down or a probe in progress). */
  coolingDown(): boolean;
}

export function createUpstreamHealth(policy: HealthPolicy, now: () => number = Date.now): UpstreamHealth {
  let consecutive = 0;
  /** While set, the upstream is down: requests are refused until then, and then one probes. */
  let coolingUntil: number | null = null;
  let downSince = 0;
  let probing = false;
  const coolDownSeconds = Math.max(1, Math.ceil(policy.coolDown / 1000));

  function pass(probe: boolean): HealthPass {
    let ended = false;
    const end = () => {
      if (ended) return false;
      ended = true;
      if (probe) probing = false;
      return true;
    };
    return {
      probe,
      answered() {
        if (!end()) return null;
        consecutive = 0;
        if (coolingUntil === null) return null;
        // Any answer proves it is back, a late one from before the cool-down as much as the probe's.
        coolingUntil = null;
        return { kind: 'up', downForSeconds: Math.round((now() - downSince) / 1000) };
      },
      failed() {
        if (!end()) return null;
        consecutive++;
        if (probe && coolingUntil !== null) {
          coolingUntil = now() + policy.coolDown; // still down: another cool-down before the next probe
          return null;
        }
        if (coolingUntil !== null || consecutive < policy.failures) return null;
        downSince = now();
        coolingUntil = downSince + policy.coolDown;
        return { kind: 'down', failures: consecutive, coolDownSeconds };
      },
      released() {
        end();
      },
    };
  }

  return {
    admit() {
      if (coolingUntil === null) return { admitted: true, pass: pass(false) };
      const at = now();
      if (at < coolingUntil)
        return { admitted: false, retryAfterSeconds: Math.max(1, Math.ceil((coolingUntil - at) / 1000)) };
      // The probe in flight may take a whole timeout: the others are told a cool-down.
      if (probing) return { admitted: false, retryAfterSeconds: coolDownSeconds };
      probing = true;
      return { admitted: true, pass: pass(true) };
    },
    coolingDown: () => coolingUntil !== null,
  };
}
