/**
 * @module Headless Chromium from Debian's package (/usr/bin/chromium, installed by
 * scripts/install-e2e-deps.sh) driven by playwright-core, and the folder e2e tests leave artifacts
 * in (screenshots): $E2E_OUTPUT_DIR, else .ci/out/e2e.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..', '..');
export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // playwright-core adds its own --headless; these are the flags Debian's build needs as root here.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
}

/** The e2e output folder, created. */
export async function outputDir(): Promise<string> {
  const dir = process.env.E2E_OUTPUT_DIR ?? join(PROJECT_ROOT, '.ci', 'out', 'e2e');
  await mkdir(dir, { recursive: true });
  return dir;
}
