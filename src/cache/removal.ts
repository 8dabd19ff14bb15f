/**
 * @module Removing images from a cache that may be serving (`rm`, `prune`): which images go, which
 * of their files no other image uses, and the removal itself. The rule: a file goes only when no
 * image that stays uses it. Tag records go first, then the folder is taken stock of again, so an
 * image a serve process cached meanwhile keeps its files; a file being read stays readable through
 * the reader's open descriptor, and writes in progress (temp files) are never touched.
 */
import { parseDigest } from '../digest.js';
import { notFound } from '../errors.js';
import { parseReference } from '../reference.js';
import type { ContentStore } from './content-store.js';
import { type CachedImage, type Inventory, takeInventory } from './inventory.js';
import type { ContentFile, InventoryStore } from './inventory-store.js';

/**
 * `prune` leaves alone what was used this recently: a pull in progress has touched its manifest
 * (within the store's one-minute touch interval) and may not have asked for its blobs yet.
 */
export const PRUNE_GRACE_MS = 10 * 60_000;

export interface RemovalPlan {
  images: CachedImage[];
  /** The files that go, with their keys: those no staying image uses. */
  files: (ContentFile & { key: string })[];
  /** Bytes on disk the files take. */
  bytes: number;
}

/** How an image is named in plans and output: `registry/repository:tag`, or `@digest` alone. */
export function imageName(image: CachedImage): string {
  return image.tag === null ? `@${image.digest}` : `${image.registry}/${image.repository}:${image.tag}`;
}

/** The plan for removing `images` and the orphan files `orphans` (keys). */
export function planRemoval(
  inventory: Inventory,
  images: CachedImage[],
  orphans: string[] = [],
): RemovalPlan {
  const going = new Set(images);
  const kept = new Set<string>();
  for (const image of inventory.images)
    if (!going.has(image)) for (const key of image.contents) kept.add(key);
  const keys = new Set<string>(orphans);
  for (const image of images) for (const key of image.contents) if (!kept.has(key)) keys.add(key);
  const files = [...keys].flatMap((key) => {
    const file = inventory.files.get(key);
    return file ? [{ ...file, key }] : [];
  });
  return { images, files, bytes: files.reduce((sum, f) => sum + f.size, 0) };
}

/** The images each reference names (`name:tag`, `name@digest` or a bare digest); every one must match. */
export function selectByReference(inventory: Inventory, references: string[]): CachedImage[] {
  const chosen = new Set<CachedImage>();
  for (const input of references) {
    const matches = inventory.images.filter(matcher(input));
    if (matches.length === 0) throw notFound(`not in the cache: ${input}`);
    for (const image of matches) chosen.add(image);
  }
  return [...chosen];
}

function matcher(input: string): (image: CachedImage) => boolean {
  if (/^sha(256|512):/.test(input)) {
    const digest = parseDigest(input).value;
    return (image) => image.digest === digest;
  }
  const ref = parseReference(input);
  if (ref.digest !== null) {
    const digest = ref.digest;
    // Digest-only images have no name in the store: the digest alone identifies them.
    return (image) =>
      image.digest === digest &&
      (image.registry === null || (image.registry === ref.registry && image.repository === ref.repository));
  }
  return (image) =>
    image.registry === ref.registry && image.repository === ref.repository && image.tag === ref.tag;
}

export interface PruneOptions {
  /** Remove images and orphan files last used before this (ms since epoch). */
  unusedBefore?: number;
  /** Then remove least recently used ones until the cache takes at most this many bytes. */
  targetBytes?: number;
  now: number;
  graceMs?: number;
}

/** What prune removes: the images and orphan files by the options, oldest use first. */
export function planPrune(inventory: Inventory, options: PruneOptions): RemovalPlan & { reached: boolean } {
  const recent = options.now - (options.graceMs ?? PRUNE_GRACE_MS);
  const used = new Set<string>();
  for (const image of inventory.images) for (const key of image.contents) used.add(key);
  type Candidate = { lastUsed: number; image?: CachedImage; orphan?: string };
  const candidates: Candidate[] = [
    ...inventory.images.map((image) => ({ lastUsed: image.lastPulled ?? 0, image })),
    ...[...inventory.files.entries()]
      .filter(([key]) => !used.has(key))
      .map(([key, file]) => ({ lastUsed: file.lastUsed, orphan: key })),
  ]
    .filter((c) => c.lastUsed < recent)
    .sort((a, b) => a.lastUsed - b.lastUsed);

  // How many staying images use each file: a file is freed when its count reaches zero.
  const users = new Map<string, number>();
  for (const image of inventory.images)
    for (const key of image.contents) users.set(key, (users.get(key) ?? 0) + 1);
  let total = inventory.totals.bytes;
  const images: CachedImage[] = [];
  const orphans: string[] = [];
  const take = (candidate: Candidate) => {
    if (candidate.orphan) {
      orphans.push(candidate.orphan);
      total -= inventory.files.get(candidate.orphan)!.size;
      return;
    }
    const image = candidate.image!;
    images.push(image);
    for (const key of image.contents) {
      const left = users.get(key)! - 1;
      users.set(key, left);
      if (left === 0) total -= inventory.files.get(key)!.size;
    }
  };
  const rest: Candidate[] = [];
  for (const candidate of candidates) {
    if (options.unusedBefore !== undefined && candidate.lastUsed < options.unusedBefore) take(candidate);
    else rest.push(candidate);
  }
  if (options.targetBytes !== undefined) {
    for (const candidate of rest) {
      if (total <= options.targetBytes) break;
      take(candidate);
    }
  }
  const plan = planRemoval(inventory, images, orphans);
  return { ...plan, reached: options.targetBytes === undefined || total <= options.targetBytes };
}

type RemovalStore = Pick<
  InventoryStore,
  'listTags' | 'listContent' | 'peekManifest' | 'peekBlob' | 'removeContent' | 'noteRemovals'
> &
  Pick<ContentStore, 'deleteTag'>;

/**
 * Carries out a plan: removes the images' tag records, takes stock again, and removes the planned
 * files that no image uses now (one cached meanwhile keeps its files). Returns what was removed.
 */
export async function removePlanned(store: RemovalStore, plan: RemovalPlan): Promise<RemovalPlan> {
  for (const image of plan.images) {
    if (image.tag !== null) await store.deleteTag(image.registry!, image.repository!, image.tag);
  }
  // Without its tag record a removed image's manifest looks digest-only: it goes, unless a tag that
  // stays still names it.
  const going = new Set(plan.images.map((i) => i.digest));
  const now = await takeInventory(store, null);
  const used = new Set<string>();
  for (const image of now.images) {
    if (image.tag === null && going.has(image.digest)) continue;
    for (const key of image.contents) used.add(key);
  }
  const files = plan.files.filter((file) => !used.has(file.key));
  for (const file of files) await store.removeContent(file.kind, file.digest);
  if (files.length > 0) await store.noteRemovals();
  return { images: plan.images, files, bytes: files.reduce((sum, f) => sum + f.size, 0) };
}
