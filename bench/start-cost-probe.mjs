/**
 * @module Run by bench/start-cost.ts as `node <the CLI's flags> start-cost-probe.mjs SPEC...`:
 * imports each specifier in turn, as `pullcache serve` first loads them, and prints VmRSS and the
 * V8 heap in use after each, one JSON line apiece. Plain JavaScript, so that no loader is in the way.
 */
import { readFileSync } from 'node:fs';

const report = (step) => {
  const status = readFileSync('/proc/self/status', 'utf8');
  const rssBytes = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
  process.stdout.write(
    `${JSON.stringify({ step, rssBytes, heapUsedBytes: process.memoryUsage().heapUsed })}\n`,
  );
};

report('node');
for (const specifier of process.argv.slice(2)) {
  await import(specifier);
  report(specifier);
}
