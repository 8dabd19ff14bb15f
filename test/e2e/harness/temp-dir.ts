/** @module Temp folders under os.tmpdir(), named so a leftover one says who made it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function makeTempDir(role: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `pullcache-e2e-${role}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
