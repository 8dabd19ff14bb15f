/**
 * @module Run by bench/start-cost.ts as `node <the CLI's flags> start-cost-probe.mjs BUNDLE`:
 * imports the bundle, waits for what its loading started in the background (node's internal fetch
 * compiles its WebAssembly HTTP parser asynchronously), then prints VmRSS and the V8 heap in use as
 * one JSON line. Plain JavaScript, so that no loader is in the way.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const SETTLE_MS = 1000;

await import(process.argv[2]);
await sleep(SETTLE_MS);
const status = readFileSync('/proc/self/status', 'utf8');
const rssBytes = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]) * 1024;
process.stdout.write(`${JSON.stringify({ rssBytes, heapUsedBytes: process.memoryUsage().heapUsed })}\n`);
