/**
 * @module Small tmpfs mounts for disk-fault tests (full, read-only): mounted by the test itself
 * (tests run as root) and unmounted after, so a full disk never touches the machine's own.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  path: string;
  unmount(): void;
}

export function mountTmpfs(options: { sizeMiB: number; readOnly?: boolean }): Tmpfs {
  const path = mkdtempSync(join(tmpdir(), 'pullcache-tmpfs-'));
  const flags = [`size=${options.sizeMiB}m`, ...(options.readOnly ? ['ro'] : [])].join(',');
  execFileSync('mount', ['-t', 'tmpfs', '-o', flags, 'tmpfs', path]);
  let mounted = true;
  return {
    path,
    unmount() {
      if (!mounted) return;
      mounted = false;
      execFileSync('umount', ['-l', path]);
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/** Fills the file system holding `dir` to the last byte with one file (removing it frees the space). */
export function fillUp(dir: string): string {
  const filler = join(dir, 'filler');
  // dd stops with "No space left on device", which is the point: ignore its exit status.
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M'], { stdio: 'ignore' });
  } catch {}
  return filler;
}
