/** @module What a peer fetched from the upstream, read from docker-registry's access log (requests and bytes). */
import type { Registry } from '../test/e2e/harness/registry.js';

export interface Traffic {
  gets: number;
  heads: number;
  /** Response body bytes the upstream sent for the blob. */
  bytes: number;
  /** Requests for anything else (distribution's proxy pings `/v2/` before each upstream call). */
  other: number;
}

// Apache combined format, written by gorilla/handlers after the handler returns:
// `127.0.0.1 - - [date] "GET /v2/library/bench/blobs/sha256:… HTTP/1.1" 200 268440576 "" "ua"`.
// The size is what the handler actually wrote, so a transfer cut short counts what was sent.
const LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

/** Every logged request, whatever its status, since the upstream started: the blob's, and the rest. */
export function blobTraffic(upstream: Registry, repository: string, digest: string): Traffic {
  const path = `/v2/${repository}/blobs/${digest}`;
  const traffic: Traffic = { gets: 0, heads: 0, bytes: 0, other: 0 };
  for (const line of upstream.accessLog()) {
    const m = LINE.exec(line);
    if (!m) continue;
    if ((m[2] ?? '').split('?')[0] !== path) {
      traffic.other++;
      continue;
    }
    if (m[1] === 'GET') traffic.gets++;
    else if (m[1] === 'HEAD') traffic.heads++;
    traffic.bytes += m[4] === '-' ? 0 : Number(m[4]);
  }
  return traffic;
}

export function trafficSince(before: Traffic, after: Traffic): Traffic {
  return {
    gets: after.gets - before.gets,
    heads: after.heads - before.heads,
    bytes: after.bytes - before.bytes,
    other: after.other - before.other,
  };
}

/**
 * A line is logged when its response is complete, so a peer's last upstream transfer may still be
 * under way when its clients are done: wait until the log has been quiet for `quietMs`.
 */
export async function settledTraffic(
  read: () => Traffic,
  { quietMs = 1_500, timeoutMs = 30_000 } = {},
): Promise<Traffic> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  let quietSince = Date.now();
  while (Date.now() - quietSince < quietMs && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = read();
    if (now.gets !== last.gets || now.heads !== last.heads || now.other !== last.other) {
      last = now;
      quietSince = Date.now();
    }
  }
  return last;
}
