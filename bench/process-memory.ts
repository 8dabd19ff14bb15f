/** @module Resident memory of a peer process from /proc/<pid>/status: current, peak, and sampled while serving. */
import { readFileSync } from 'node:fs';

export interface Memory {
  /** VmRSS: resident now. */
  rssBytes: number;
  /** VmHWM: the highest VmRSS since the process started. */
  hwmBytes: number;
}

export function readMemory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssBytes: field(status, 'VmRSS'), hwmBytes: field(status, 'VmHWM') };
}

function field(status: string, name: string): number {
  const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!match) throw new Error(`/proc status has no ${name} line`);
  return Number(match[1]) * 1024;
}

export interface RssSampler {
  /** Stops sampling (again is harmless); returns the highest VmRSS seen. */
  stop(): number;
}

/**
 * Samples VmRSS every `intervalMs`: per-phase peaks, which the lifetime VmHWM cannot give. A read is
 * a few microseconds of the bench's own loop, which meanwhile only waits for curl processes.
 */
export function sampleRss(pid: number, intervalMs = 50): RssSampler {
  let peak = readMemory(pid).rssBytes;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, readMemory(pid).rssBytes);
    } catch {
      // The process exited; the caller's crash check reports it.
    }
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}
