/** @module The prefetch scenario as a RESULTS.md section, and that section put in place in an existing file. */
import type { MachineInfo } from './machine-info.js';
import type { PrefetchReport, PrefetchResult } from './prefetch-pull.js';

const HEADING = '## Prefetch: a cold containerd pull through a throttled upstream';

export function prefetchTable({ image, results }: PrefetchReport): string {
  const prefetching = results.find((r) => r.setup === 'pullcache');
  const lines = [
    '| Setup | Wall time, median (s; each run) | pullcache ÷ this | Upstream blob GETs | Upstream blob bytes (× image) |',
    '|---|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    const ratio = prefetching ? `${(prefetching.medianSeconds / r.medianSeconds).toFixed(2)}×` : '—';
    lines.push(
      `| ${label(r)} | ${r.medianSeconds.toFixed(2)} (${r.seconds.map((s) => s.toFixed(2)).join(', ')}) | ${ratio} | ${r.upstreamBlobGets.toFixed(1)} | ${(r.upstreamBlobBytes / 1e6).toFixed(1)} MB (${(r.upstreamBlobBytes / image.bytes).toFixed(2)}×) |`,
    );
  }
  return lines.join('\n');
}

function label(r: PrefetchResult): string {
  if (r.setup === 'direct') return 'containerd → registry (no cache)';
  if (r.setup === 'distribution') return 'containerd → docker-registry proxy → registry';
  if (r.setup === 'pullcache') return 'containerd → pullcache (prefetch on, the default) → registry';
  return 'containerd → pullcache (`prefetch: { layers: false }`) → registry';
}

export function prefetchSection(report: PrefetchReport, date: Date, machine: MachineInfo): string {
  const { settings, image } = report;
  const { latencyMs, bytesPerSecond } = settings.throttle;
  return `${HEADING}

Measured on ${date.toISOString()} (bench/prefetch-pull.ts; \`BENCH_SCENARIOS=prefetch npm run bench\` runs it alone), with
the machine's CPU ${(machine.busyBeforeStart * 100).toFixed(0)}% busy in the 2 s before the bench started; pullcache ${machine.pullcache}.

${prefetchTable(report)}

- Image: one platform, a config and ${settings.layerSizesMiB.length} incompressible layers of ${settings.layerSizesMiB.join(', ')} MiB in this order (${image.blobs} blobs, ${(image.bytes / 1e6).toFixed(1)} MB).
- Upstream: docker-registry behind bench/throttled-upstream.ts, which holds each request ${latencyMs} ms and sends each response body at ${(bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s: a registry far away, where one connection gets a fraction of the link.
- Client: \`ctr images pull --platform linux/amd64 --max-concurrent-downloads ${settings.concurrentDownloads}\` (the CRI plugin's default), the image removed (and its content collected) after each run, so each pull is cold; the wall time includes unpacking. Each run has a fresh mirror with an empty cache; the median of ${settings.runs} runs is shown.
- Upstream blob GETs and bytes come from the registry's access log, read once it has been quiet for 1.5 s.
`;
}

/** `text` (an existing RESULTS.md) with its prefetch section replaced by `section`, or `section` appended. */
export function withPrefetchSection(text: string, section: string): string {
  const start = text.indexOf(`\n${HEADING}\n`);
  if (start < 0) return `${text.trimEnd()}\n\n${section}`;
  const next = text.indexOf('\n## ', start + 1);
  return `${text.slice(0, start + 1)}${section}${next < 0 ? '' : `\n${text.slice(next + 1)}`}`;
}
