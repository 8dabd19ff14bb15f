/** @module Reads one sample out of a Prometheus text exposition (`/metrics`). */

/** The value of the first sample of `name` whose labels include `labels`; NaN if there is none. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const line = text
    .split('\n')
    .find((l) =>
      l.startsWith(`${name}{`) || l.startsWith(`${name} `)
        ? Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))
        : false,
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}

/** The proxy's /metrics text. */
export async function metricsOf(proxyUrl: string): Promise<string> {
  return (await fetch(`${proxyUrl}/metrics`)).text();
}

/** The sum of every sample of `name` whose labels include `labels` (over the others); 0 if none. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
