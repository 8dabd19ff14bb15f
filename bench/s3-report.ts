/** @module The object-storage comparison: pullcache's S3 store (proxied, redirecting) beside its disk store and distribution's S3 driver. */
import type { BenchSettings, BlobUnderTest, PeerResult } from './peer-measurement.js';
import type { PeerName } from './peers.js';

const COLUMNS: { peer: PeerName; title: string }[] = [
  { peer: 'pullcache', title: 'pullcache, disk' },
  { peer: 'pullcache-s3', title: 'pullcache, S3' },
  { peer: 'pullcache-s3-redirect', title: 'pullcache, S3 + redirect' },
  { peer: 'distribution-s3', title: 'distribution, S3' },
];

interface Row {
  metric: string;
  show: (r: PeerResult) => string;
  /** For the ratio pullcache S3 / distribution S3. */
  value?: (r: PeerResult) => number;
}

/** Whether the run had a peer on the bucket at all. */
export function hasS3Results(results: PeerResult[]): boolean {
  return results.some((r) => COLUMNS.slice(1).some((c) => c.peer === r.peer));
}

export function s3Table(
  blob: BlobUnderTest,
  settings: Omit<BenchSettings, 'workDir'>,
  results: PeerResult[],
): string {
  const of = (peer: PeerName) => results.find((r) => r.peer === peer);
  const rows: Row[] = [
    {
      metric: `Cold: wall time, ${settings.clients} concurrent clients (s)`,
      show: (r) => r.cold.wallSeconds.toFixed(2),
      value: (r) => r.cold.wallSeconds,
    },
    {
      metric: 'Cold: upstream blob GETs, bytes (× blob size)',
      show: (r) => `${r.cold.upstream.gets}, ${(r.cold.upstream.bytes / blob.size).toFixed(2)}×`,
      value: (r) => r.cold.upstream.bytes,
    },
    {
      metric: `Warm: median throughput of ${settings.warmRuns} sequential runs (GB/s; min–max)`,
      show: (r) =>
        `${gbps(r.warm.medianBytesPerSecond)} (${gbps(Math.min(...r.warm.bytesPerSecond))}–${gbps(Math.max(...r.warm.bytesPerSecond))})`,
      value: (r) => r.warm.medianBytesPerSecond,
    },
    { metric: 'Warm: served with no upstream GET', show: (r) => (r.cached ? 'yes' : 'no') },
    {
      metric: 'Peak RSS, lifetime VmHWM (MB)',
      show: (r) => mb(r.hwmBytes),
      value: (r) => r.hwmBytes,
    },
    {
      metric: 'Peak RSS sampled every 50 ms, cold / warm (MB)',
      show: (r) => `${mb(r.cold.peakRssBytes)} / ${mb(r.warm.peakRssBytes)}`,
    },
    {
      metric: 'RSS after 12 s idle, before the first request (MB)',
      show: (r) => mb(r.settledRssBytes),
      value: (r) => r.settledRssBytes,
    },
    {
      metric: "Other processes' user CPU during the run (s; of its wall time)",
      show: (r) => `${r.foreignCpuSeconds.toFixed(1)} of ${r.seconds.toFixed(0)}`,
    },
  ];
  const s3 = of('pullcache-s3');
  const dist = of('distribution-s3');
  const lines = [
    `| Metric | ${COLUMNS.map((c) => c.title).join(' | ')} | ratio (pullcache S3 / distribution S3) |`,
    `|---|${COLUMNS.map(() => '--:|').join('')}--:|`,
  ];
  for (const row of rows) {
    const cells = COLUMNS.map(({ peer }) => {
      const r = of(peer);
      return r ? row.show(r) : '—';
    });
    const ratio =
      row.value && s3 && dist && row.value(dist) !== 0
        ? `${(row.value(s3) / row.value(dist)).toFixed(2)}×`
        : '—';
    lines.push(`| ${row.metric} | ${cells.join(' | ')} | ${ratio} |`);
  }
  return lines.join('\n');
}

/** The section of RESULTS.md, with how the S3 peers were set up. */
export function s3Section(
  blob: BlobUnderTest,
  settings: Omit<BenchSettings, 'workDir'>,
  results: PeerResult[],
): string {
  return `## Object storage (Ceph RADOS Gateway)

One RGW 16 (a one-node Ceph cluster with a memstore OSD, test/e2e/harness/ceph-rgw.ts) on the same
machine holds one bucket; each S3 peer starts with its own empty prefix in it. pullcache uses
\`storage.s3\` (the spool folder on local disk), with \`redirect: true\` for the redirect column (the
clients, \`curl --location\`, then take cached bytes from RGW: its throughput is RGW's, and the peer's
RSS does not see them); distribution 2.8 runs its proxy mode with \`storage: s3: {regionendpoint,
forcepathstyle: true, …}\` and \`redirect: disable: true\`, so that it serves the bytes itself like
pullcache without redirect. The disk column is the run above. RGW's own CPU counts as the peers'.

${s3Table(blob, settings, results)}

`;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const gbps = (bytesPerSecond: number) => (bytesPerSecond / 1e9).toFixed(2);
