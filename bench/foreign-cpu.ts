/**
 * @module User CPU time spent on the machine by anything other than the bench, its children and the
 * processes it watches: other work on the 2 cores skews every number, and this says by how much.
 */
import { readFileSync } from 'node:fs';

// USER_HZ: /proc reports CPU time in clock ticks, 100 per second on Linux.
const TICKS_PER_SECOND = 100;

export interface ForeignCpu {
  /** Seconds of user CPU used by other processes since the meter started. */
  stop(): number;
}

/**
 * Starts measuring. `pids` are processes the bench started and still runs (peer, upstream); the
 * bench's own time includes its children that have exited (curl, skopeo), so read this before
 * stopping `pids`, whose time would otherwise move into the bench's.
 */
export function meterForeignCpu(pids: number[]): ForeignCpu {
  const ours = () => ownTicks() + pids.reduce((sum, pid) => sum + processTicks(pid), 0);
  const machineStart = machineUserTicks();
  const oursStart = ours();
  return {
    stop() {
      const foreign = machineUserTicks() - machineStart - (ours() - oursStart);
      return Math.max(0, foreign) / TICKS_PER_SECOND;
    },
  };
}

/** user + nice of the aggregate `cpu` line (guest time is already inside user). */
function machineUserTicks(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  return Number(fields[1]) + Number(fields[2]);
}

/** Fields after the `(comm)`, which may itself hold spaces: utime is field 14, cutime 16. */
function statFields(pid: number | 'self'): number[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
}

function ownTicks(): number {
  const f = statFields('self');
  // utime and cutime (children waited for), 0-based after dropping pid and comm.
  return (f[11] ?? 0) + (f[13] ?? 0);
}

function processTicks(pid: number): number {
  try {
    const f = statFields(pid);
    return (f[11] ?? 0) + (f[13] ?? 0);
  } catch {
    return 0; // exited; the crash check reports it
  }
}
