/** @module The two images the e2e suites pull: an OCI index (demo) and a Docker list (demolist). */
import { join } from 'node:path';
import { type GeneratedImage, generateImage } from './images.js';
import type { Credentials } from './registry.js';
import { pushImage } from './skopeo.js';

export const DEMO_REF = 'library/demo:1.0';
export const DEMOLIST_REF = 'library/demolist:1.0';

export interface DemoImages {
  /** Two-platform OCI image index. */
  demo: GeneratedImage;
  /** Two-platform Docker manifest list with schema2 manifests. */
  demolist: GeneratedImage;
}

/** Distinct seeds, so the two images share no blob and upstream counts stay per image. */
export async function generateDemoImages(dir: string): Promise<DemoImages> {
  return {
    demo: await generateImage({ dir: join(dir, 'demo'), format: 'oci', seed: 'demo' }),
    demolist: await generateImage({ dir: join(dir, 'demolist'), format: 'docker', seed: 'demolist' }),
  };
}

/** Pushes both to `registryHost` (host:port) as library/demo:1.0 and library/demolist:1.0. */
export async function pushDemoImages(
  images: DemoImages,
  registryHost: string,
  creds?: Credentials,
): Promise<void> {
  await pushImage(images.demo, `${registryHost}/${DEMO_REF}`, creds);
  await pushImage(images.demolist, `${registryHost}/${DEMOLIST_REF}`, creds);
}
