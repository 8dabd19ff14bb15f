/**
 * @module Names of temp files, and whose they are: `.tmp-<label>-<host>-<pid>-<process>-<random>`.
 * The name says which host and process wrote it, so a start can tell a crash leftover (this host, a
 * pid that is gone or a previous process that had our pid) from a live writer sharing the folder.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Temp files start with this; nothing else in storage does. */
export const TEMP_PREFIX = '.tmp-';

// One per process: in containers the pid repeats across restarts (often 1), so pid alone cannot
// tell this process's files from those of the previous one.
const PROCESS_TAG = randomBytes(4).toString('hex');

export interface TempOwner {
  host: string;
  pid: number;
  process: string;
}

/** A fresh temp file name; `label` (letters and digits) says what it is for, for people reading a listing. */
export function tempName(label: string): string {
  return `${TEMP_PREFIX}${label}-${hostname()}-${process.pid}-${PROCESS_TAG}-${randomBytes(4).toString('hex')}`;
}

/** Who wrote a temp file, or null for a name not made by tempName (an older format). */
export function tempOwner(name: string): TempOwner | null {
  const match = /^\.tmp-[0-9a-z]+-(.+)-(\d+)-([0-9a-f]{8})-[0-9a-f]{8}$/.exec(name);
  return match ? { host: match[1]!, pid: Number(match[2]), process: match[3]! } : null;
}

/**
 * Whether the writer of a temp file is certainly gone: written on this host by a process that no
 * longer runs (or by an earlier process that had this process's pid). Other hosts cannot be asked.
 */
export function writerIsGone(owner: TempOwner): boolean {
  if (owner.host !== hostname()) return false;
  if (owner.pid === process.pid) return owner.process !== PROCESS_TAG;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
