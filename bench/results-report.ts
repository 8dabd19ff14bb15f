/** @module The comparison as a markdown table with targets, and RESULTS.md around it. */
import { type ClusterResult, clusterTable } from './cluster-measurement.js';
import type { MachineInfo } from './machine-info.js';
import {
  type BenchSettings,
  type BlobUnderTest,
  CACHE_PROBES,
  IDLE_SETTLE_MS,
  type PeerResult,
} from './peer-measurement.js';
import { hasS3Results, s3Section, s3Table } from './s3-report.js';
import { type StartCost, startCostTable } from './start-cost.js';

export interface Report {
  date: Date;
  machine: MachineInfo;
  blob: BlobUnderTest;
  settings: Omit<BenchSettings, 'workDir'>;
  results: PeerResult[];
  /** Per-dependency start cost of pullcache (absent when only distribution ran). */
  startCost?: StartCost;
  /** Three replicas as one cluster and as independent caches (absent when skipped). */
  cluster?: ClusterResult[];
}

// The targets pullcache is held to. Memory is paid on every node of a cluster (a DaemonSet), so
// both the idle and the peak figure count.
const WARM_RATIO_TARGET = 1.0;
const PEAK_RSS_TARGET_MB = 100;
const IDLE_RSS_TARGET_MB = 60;

type Verdict = 'met' | 'not met' | 'n/a';

interface Row {
  metric: string;
  /** The peer's value as shown. */
  show: (r: PeerResult) => string;
  /** The number the ratio column divides, when a ratio makes sense. */
  value?: (r: PeerResult) => number;
  target?: string;
  verdict?: (pc: PeerResult | undefined, dist: PeerResult | undefined) => Verdict;
}

/** The tables printed at the end of a run: on disk, and on the bucket when S3 peers ran. */
export function resultsTables(report: Report): string {
  const { blob, settings, results } = report;
  const disk = results.some((r) => r.peer === 'pullcache' || r.peer === 'distribution');
  return [
    ...(disk ? [resultsTable(report)] : []),
    ...(hasS3Results(results) ? [s3Table(blob, settings, results)] : []),
  ].join('\n\n');
}

export function resultsTable({ blob, settings, results }: Report): string {
  const pc = results.find((r) => r.peer === 'pullcache');
  const dist = results.find((r) => r.peer === 'distribution');
  const coldGBps = (r: PeerResult) => (settings.clients * blob.size) / r.cold.wallSeconds / 1e9;
  const rows: Row[] = [
    {
      metric: `Cold: wall time, ${settings.clients} concurrent clients (s)`,
      show: (r) => r.cold.wallSeconds.toFixed(2),
      value: (r) => r.cold.wallSeconds,
    },
    {
      metric: 'Cold: aggregate throughput to the clients (GB/s)',
      show: (r) => coldGBps(r).toFixed(2),
      value: coldGBps,
    },
    {
      metric: 'Cold: upstream requests (blob GET, blob HEAD, other)',
      show: (r) => `${r.cold.upstream.gets}, ${r.cold.upstream.heads}, ${r.cold.upstream.other}`,
      value: (r) => r.cold.upstream.gets,
    },
    {
      metric: 'Cold: upstream bytes (× blob size)',
      show: (r) => `${mb(r.cold.upstream.bytes)} MB (${times(r.cold.upstream.bytes / blob.size)})`,
      value: (r) => r.cold.upstream.bytes,
      target: 'pullcache = 1×',
      verdict: (p) => (p ? verdict(p.cold.upstream.bytes === blob.size) : 'n/a'),
    },
    {
      metric: 'Warm: served with no upstream GET',
      show: (r) => (r.cached ? 'yes' : 'no'),
    },
    {
      metric: `Warm: median throughput of ${settings.warmRuns} sequential runs (GB/s; min–max)`,
      show: (r) =>
        `${gbps(r.warm.medianBytesPerSecond)} (${gbps(Math.min(...r.warm.bytesPerSecond))}–${gbps(Math.max(...r.warm.bytesPerSecond))})`,
      value: (r) => r.warm.medianBytesPerSecond,
      target: `ratio ≥ ${WARM_RATIO_TARGET.toFixed(1)}×`,
      verdict: (p, d) =>
        p && d
          ? verdict(p.warm.medianBytesPerSecond / d.warm.medianBytesPerSecond >= WARM_RATIO_TARGET)
          : 'n/a',
    },
    {
      metric: 'Warm: upstream GETs during the timed runs',
      show: (r) => String(r.warm.upstream.gets),
    },
    {
      metric: `Peak RSS, lifetime VmHWM: start, ${settings.clients} cold clients, warm runs (MB)`,
      show: (r) => mb(r.hwmBytes),
      value: (r) => r.hwmBytes,
      target: `pullcache ≤ ${PEAK_RSS_TARGET_MB} MB`,
      verdict: (p) => (p ? verdict(p.hwmBytes / 1e6 <= PEAK_RSS_TARGET_MB) : 'n/a'),
    },
    {
      metric: 'Peak RSS sampled every 50 ms, cold / warm (MB)',
      show: (r) => `${mb(r.cold.peakRssBytes)} / ${mb(r.warm.peakRssBytes)}`,
    },
    {
      metric: 'RSS before the first request, as soon as it is ready (MB)',
      show: (r) => mb(r.idleRssBytes),
      value: (r) => r.idleRssBytes,
      target: `pullcache ≤ ${IDLE_RSS_TARGET_MB} MB`,
      verdict: (p) => (p ? verdict(p.idleRssBytes / 1e6 <= IDLE_RSS_TARGET_MB) : 'n/a'),
    },
    {
      metric: `RSS before the first request, after ${IDLE_SETTLE_MS / 1000} s idle (MB)`,
      show: (r) => mb(r.settledRssBytes),
      value: (r) => r.settledRssBytes,
      target: `pullcache ≤ ${IDLE_RSS_TARGET_MB} MB`,
      verdict: (p) => (p ? verdict(p.settledRssBytes / 1e6 <= IDLE_RSS_TARGET_MB) : 'n/a'),
    },
    {
      metric: "Other processes' user CPU during the peer's run (s; of its wall time)",
      show: (r) => `${r.foreignCpuSeconds.toFixed(1)} of ${r.seconds.toFixed(0)}`,
      target: '≈ 0, else skewed',
    },
  ];

  const lines = [
    '| Metric | pullcache | distribution | ratio (pullcache / distribution) | target | |',
    '|---|--:|--:|--:|---|---|',
  ];
  for (const row of rows) {
    const ratio =
      row.value && pc && dist && row.value(dist) !== 0 ? times(row.value(pc) / row.value(dist)) : '—';
    const v = row.verdict?.(pc, dist);
    const mark = v === 'met' ? '✅ met' : v === 'not met' ? '❌ not met' : v === 'n/a' ? 'n/a' : '';
    lines.push(
      `| ${row.metric} | ${pc ? row.show(pc) : '—'} | ${dist ? row.show(dist) : '—'} | ${ratio} | ${row.target ?? ''} | ${mark} |`,
    );
  }
  return lines.join('\n');
}

export function resultsMarkdown(report: Report): string {
  const { date, machine: m, blob, settings, results } = report;
  return `# pullcache benchmark results

Written by \`npm run bench\` (bench/run.ts) on ${date.toISOString()}.

- Blob: one layer of ${(blob.size / 2 ** 20).toFixed(2)} MiB (${blob.size} bytes), \`${blob.repository}\` \`${blob.digest}\`
- Peers: ${results.map((r) => r.peer).join(', ')}; ${settings.clients} concurrent cold clients, ${settings.warmRuns} warm runs
- Machine: ${m.nproc} cores (${m.cpu}), ${m.memoryGB} GB RAM, Linux ${m.kernel}; CPU ${(m.busyBeforeStart * 100).toFixed(0)}% busy in the 2 s before the bench started
- Versions: node ${m.node}, docker-registry ${m.dockerRegistry}, curl ${m.curl}, pullcache ${m.pullcache}

${results.some((r) => r.peer === 'pullcache' || r.peer === 'distribution') ? `${resultsTable(report)}\n\n` : ''}## Observations

${observations(report)
  .map((line) => `- ${line}`)
  .join('\n')}

${report.cluster ? clusterSection(report.cluster, blob) : ''}${hasS3Results(results) ? s3Section(blob, settings, results) : ''}${report.startCost ? startCostSection(report.startCost) : ''}## How measured

One docker-registry (no auth) is the upstream; the image \`library/bench:1.0\` with the generated
layer is pushed to it with skopeo. Each peer is then started alone with an empty cache folder (the
previous one is stopped by pid first) and configured with that upstream.

- **Cold**: ${settings.clients} \`curl\` processes GET \`/v2/${blob.repository}/blobs/<digest>\` at once; the wall
  time runs from starting the first to the exit of the last. Each body is written to a file and
  checked for status 200, its length and its sha256; a mismatch fails the bench.
- **Upstream requests and bytes** come from the upstream's access log: every logged request for the
  blob's path, and the response size field of each, which counts the bytes its handler actually
  wrote (an aborted transfer counts what was sent, a HEAD counts 0). "Other" is every request for
  any other path. The log is read once it has been quiet for 1.5 s, because a line is written only
  when its response completes.
- **Warm**: up to ${CACHE_PROBES} verified probe downloads, until one causes no upstream GET ("served with
  no upstream GET"), then ${settings.warmRuns} sequential \`curl -o /dev/null\` runs; throughput is curl's
  size_download / time_total, and the median is reported.
- **RSS**: VmRSS read from \`/proc/<pid>/status\` as soon as the peer answers its readiness probe,
  again after ${IDLE_SETTLE_MS / 1000} s without requests (V8's memory reducer returns the young
  generation it grew while loading), every 50 ms during each phase, and VmHWM (the kernel's lifetime
  peak, which no sampling misses) after the runs. RSS includes the pages of the executable itself
  (for node, ~35 MB of its ~100 MB binary are resident before any script runs).
- **Other processes' CPU**: the machine's user CPU time (/proc/stat) minus that of the bench, its
  exited children (curl), the peer and the upstream, over each peer's run.

GB/s and MB are decimal (10⁹, 10⁶ bytes). Clients, upstream and peer share the machine's ${m.nproc}
cores, so the cold figures include the upstream's and curl's own CPU use.
`;
}

function clusterSection(results: ClusterResult[], blob: BlobUnderTest): string {
  const [first] = results;
  return `## Three replicas: one cluster, or three independent caches

Three pullcache processes on one port at 127.0.0.2, .3 and .4 (bench/cluster-measurement.ts), each
with an empty cache, and ${first?.clientsPerReplica} \`curl\` clients per replica started at once on the cold blob
(${first ? first.replicas * first.clientsPerReplica : 0} in all; each body piped through \`sha256sum\` and checked). "One cluster": members
read from dnsmasq, each replica asks the digest's owner before the upstream. "3 independent
replicas": the same processes without \`cluster:\`, which is what replicas of distribution or Harbor
behind a load balancer are. Upstream bytes come from the upstream's access log as above.

${clusterTable(results, blob)}

`;
}

function startCostSection(cost: StartCost): string {
  return `## Start cost by dependency

Fresh \`node ${cost.flags.join(' ')}\` processes (the flags of dist/cli.js's shebang; bench/start-cost.ts)
run bundles made as dist/cli.js is made (scripts/bundle-options.ts), the median of three each.
"Alone": the resident memory a node running an empty bundle gains by running a bundle of only that
package (which includes node's own modules it loads, and parser and compiler pages that any
sizeable script faults in). "In load order": bundles of the first one, two, … steps in the order
\`serve\` loads them, so what packages share is counted once and the rows add up to the total (V8
heap pages are committed in steps, so a row can read a step high and the next one low). The running
server adds its heap, sockets and buffers on top (the table above).

${startCostTable(cost)}

`;
}

function observations({ blob, settings, results }: Report): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const up = r.cold.upstream;
    lines.push(
      `${r.peer}: for ${settings.clients} concurrent cold clients it sent the upstream ${up.gets} GET and ` +
        `${up.heads} HEAD requests for the blob (${times(up.bytes / blob.size)} its size) and ${up.other} ` +
        'requests for other paths; ' +
        (r.cached
          ? 'afterwards it served the blob from its cache.'
          : `afterwards it still fetched it upstream on every download (pass-through, ${r.warm.upstream.gets} upstream GETs in ${settings.warmRuns} warm runs).`),
    );
  }
  return lines;
}

function verdict(ok: boolean): Verdict {
  return ok ? 'met' : 'not met';
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const gbps = (bytesPerSecond: number) => (bytesPerSecond / 1e9).toFixed(2);
const times = (ratio: number) => `${ratio.toFixed(2)}×`;
