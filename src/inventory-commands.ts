/**
 * @module `pullcache ls | rm | prune`: the cache's images as a table or JSON, and removal by name or
 * by age and size. They work on the store directly, the storage folder or the bucket (no server
 * needed), and are safe while serve processes use it (see cache/removal.ts).
 */
import { type CachedImage, type Inventory, takeInventory } from './cache/inventory.js';
import {
  imageName,
  PRUNE_GRACE_MS,
  planPrune,
  planRemoval,
  type RemovalPlan,
  removePlanned,
  selectByReference,
} from './cache/removal.js';
import { type ConfiguredStore, createConfiguredStore } from './cache/store-from-config.js';
import type { Config } from './config.js';
import { formatBytes } from './units.js';

type Write = (text: string) => void;

/** Runs `work` on the configured store, then closes it (a bucket's connections). */
async function withStore<T>(
  config: Pick<Config, 'storage'>,
  work: (store: ConfiguredStore) => Promise<T>,
): Promise<T> {
  // No init() and no maxSize: it would evict and take the index this command does not need.
  const store = await createConfiguredStore(config, { maxSize: null });
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z'));

/** An image as `ls --json` shows it. */
function imageJson(image: CachedImage) {
  const { contents: _, lastPulled, ...rest } = image;
  return { ...rest, lastPulled: iso(lastPulled) };
}

export async function listCommand(
  config: Pick<Config, 'storage'>,
  options: { registry?: string; json: boolean },
  write: Write,
): Promise<void> {
  const inventory = await withStore(config, (store) => takeInventory(store, config.storage.maxSize));
  const images = inventory.images.filter(
    (image) => options.registry === undefined || image.registry === options.registry,
  );
  if (options.json) {
    write(`${JSON.stringify({ images: images.map(imageJson), totals: inventory.totals })}\n`);
    return;
  }
  const rows = [
    ['REGISTRY', 'REPOSITORY', 'TAG', 'DIGEST', 'PLATFORMS', 'SIZE', 'LAST PULLED', 'PULLS'],
    ...images.map((image) => [
      image.registry ?? '-',
      image.repository ?? '-',
      image.tag ?? '-',
      image.digest.slice(0, 19),
      image.platforms.join(',') || '-',
      formatBytes(image.bytes),
      iso(image.lastPulled) ?? '-',
      image.pulls === null ? '-' : String(image.pulls),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows)
    write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()}\n`,
    );
  write(`${footer(inventory, images.length)}\n`);
}

function footer({ totals }: Inventory, shown: number): string {
  const limit =
    totals.maxSize === null
      ? 'no maxSize'
      : `${((100 * totals.bytes) / totals.maxSize).toFixed(1)}% of maxSize ${formatBytes(totals.maxSize)}`;
  return `${shown} image${shown === 1 ? '' : 's'}; cache: ${totals.blobs} blobs, ${totals.manifests} manifests, ${formatBytes(totals.bytes)} (${limit})`;
}

export async function removeCommand(
  config: Pick<Config, 'storage'>,
  references: string[],
  options: { json: boolean; dryRun: boolean },
  write: Write,
): Promise<void> {
  const done = await withStore(config, async (store) => {
    const inventory = await takeInventory(store, null);
    const plan = planRemoval(inventory, selectByReference(inventory, references));
    return options.dryRun ? plan : await removePlanned(store, plan);
  });
  report(done, options, write);
}

export async function pruneCommand(
  config: Pick<Config, 'storage'>,
  options: { unusedFor?: number; to?: number; json: boolean; dryRun: boolean },
  write: Write,
): Promise<boolean> {
  const { plan, done } = await withStore(config, async (store) => {
    const inventory = await takeInventory(store, null);
    const now = Date.now();
    const plan = planPrune(inventory, {
      now,
      ...(options.unusedFor !== undefined ? { unusedBefore: now - options.unusedFor } : {}),
      ...(options.to !== undefined ? { targetBytes: options.to } : {}),
    });
    return { plan, done: options.dryRun ? plan : await removePlanned(store, plan) };
  });
  report(done, options, write);
  if (!plan.reached)
    write(
      `the cache is still above ${formatBytes(options.to!)}: what is left was used in the last ${PRUNE_GRACE_MS / 60_000} minutes\n`,
    );
  return plan.reached;
}

function report(plan: RemovalPlan, options: { json: boolean; dryRun: boolean }, write: Write): void {
  const blobs = plan.files.filter((f) => f.kind === 'blob').length;
  const manifests = plan.files.length - blobs;
  if (options.json) {
    write(
      `${JSON.stringify({
        dryRun: options.dryRun,
        images: plan.images.map(imageName),
        blobs,
        manifests,
        bytes: plan.bytes,
      })}\n`,
    );
    return;
  }
  const verb = options.dryRun ? 'would remove' : 'removed';
  for (const image of plan.images) write(`${verb} ${imageName(image)}\n`);
  write(
    `${options.dryRun ? 'would free' : 'freed'} ${formatBytes(plan.bytes)} (${blobs} blobs, ${manifests} manifests)\n`,
  );
}
