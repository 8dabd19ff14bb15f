/**
 * The status page in a real browser: headless Chromium loads `/_pullcache/` from a pullcache that
 * skopeo pulled an image through twice (once from the upstream, once from the cache); the page
 * shows the image, the hit ratio, the bytes from cache and upstream, charts with bars and the
 * upstream row, as the JSON API reports them. A screenshot goes to the e2e output folder.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/status/status-report.js';
import { launchChromium, outputDir } from './harness/browser.js';
import { createCleanup } from './harness/cleanup.js';
import { DEMO_REF, type DemoImages, generateDemoImages, pushDemoImages } from './harness/demo-images.js';
import { digestsOf } from './harness/image-digests.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { pullImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { startUpstream } from './harness/upstream.js';

async function settled(proxy: Pullcache): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    const stats = (await (await fetch(`${proxy.url}/_pullcache/stats`)).json()) as {
      downloadsInFlight: number;
    };
    if (stats.downloadsInFlight === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('downloads still in flight');
}

describe('the status page in Chromium', () => {
  const cleanup = createCleanup();
  let images: DemoImages;
  let proxy: Pullcache;
  let browser: Browser;

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('status-page'), removeDir);
    images = await generateDemoImages(join(work, 'images'));
    const upstream = cleanup.add(await startUpstream('none'), (u) => u.stop());
    await pushDemoImages(images, upstream.registry.host);
    proxy = cleanup.add(
      await startPullcache({ registries: { 'docker.io': { url: upstream.registry.url } } }),
      (p) => p.stop(),
    );
    expect(await pullImage(`${proxy.host}/${DEMO_REF}`, join(work, 'first'))).toEqual(digestsOf(images.demo));
    await settled(proxy);
    expect(await pullImage(`${proxy.host}/${DEMO_REF}`, join(work, 'second'))).toEqual(
      digestsOf(images.demo),
    );
    browser = cleanup.add(await launchChromium(), (b) => b.close());
  });
  afterAll(() => cleanup.run());

  it('shows the pulled image, what the cache saved, and the upstream, as the API says', async () => {
    const api = (await (await fetch(`${proxy.url}/_pullcache/api/status`)).json()) as StatusReport;
    const traffic = api.traffic['docker.io']!;
    expect(traffic.sinceStart.hits).toBeGreaterThan(0);
    expect(traffic.sinceStart.misses).toBeGreaterThan(0);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    const response = await page.goto(`${proxy.url}/_pullcache/`);
    expect(response?.status()).toBe(200);
    await page.waitForSelector('body[data-loaded="true"]');

    const row = page.locator('#traffic tbody tr', { hasText: 'docker.io' });
    const cells = await row.locator('td').allTextContents();
    const percent = (ratio: number | null) => (ratio === null ? '–' : `${(100 * ratio).toFixed(1)}%`);
    expect(cells.slice(0, 4)).toEqual([
      'docker.io',
      percent(traffic.hour.hitRatio),
      percent(traffic.day.hitRatio),
      percent(traffic.sinceStart.hitRatio),
    ]);
    expect(cells[6]).toMatch(/KiB|MiB|B$/); // bytes from the cache since start
    // Two charts in the row, each with bars for the minute (and hour) of the pulls.
    expect(await row.locator('svg.chart').count()).toBe(2);
    expect(await row.locator('svg.chart').first().locator('rect').count()).toBeGreaterThan(0);
    expect(await row.locator('svg.chart').nth(1).locator('rect').count()).toBeGreaterThan(0);

    const largest = page.locator('#largest tbody tr').first();
    const image = await largest.locator('td').allTextContents();
    expect(image[0]).toBe(`docker.io/${DEMO_REF}`);
    expect(image[1]).toBe('linux/amd64, linux/arm64');
    const mostPulled = await page.locator('#most-pulled tbody tr').first().locator('td').allTextContents();
    expect(mostPulled[0]).toBe(`docker.io/${DEMO_REF}`);
    expect(Number(mostPulled[3])).toBe(api.images.mostPulled[0]!.pulls);
    expect(Number(mostPulled[3])).toBeGreaterThanOrEqual(2);

    const upstream = await page
      .locator('#upstreams tbody tr', { hasText: 'docker.io' })
      .locator('td')
      .allTextContents();
    expect(upstream).toEqual(['docker.io', '0', '0', '–', 'answering · no pull limit stated']);
    expect(await page.locator('#downloads tbody tr.empty').textContent()).toBe('none');
    expect(await page.locator('#errors tbody tr.empty').textContent()).toBe('none');
    expect(await page.locator('#cache-summary').textContent()).toContain(`${api.cache.blobs} blobs`);

    const screenshot = join(await outputDir(), 'status-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect((await stat(screenshot)).size).toBeGreaterThan(10_000);
    expect(problems).toEqual([]);
    await page.close();
  });
});
