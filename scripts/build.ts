/**
 * @module `npm run build`: src/cli.ts and everything it imports statically as one file, dist/cli.js, the
 * `pullcache` bin (scripts/bundle-options.ts says why one file), whose shebang with the node flags
 * stays its first line; and dist/config-loader.js, the config loader it runs in a child process.
 */
import { chmod, rm } from 'node:fs/promises';
import { build } from 'esbuild';
import { BUNDLE_OPTIONS } from './bundle-options.js';

const OUTFILE = 'dist/cli.js';

// Chunk names carry a hash: without a clean folder, every build would leave the last one's beside it.
await rm('dist', { recursive: true, force: true });

await build({
  ...BUNDLE_OPTIONS,
  // The config loader is a bundle of its own: zod and yaml stay out of the server's (config-process.ts).
  entryPoints: ['src/cli.ts', 'src/config-loader.ts'],
  outdir: 'dist',
  // What only some commands import (warm, ls/rm/prune, export/import) goes into chunks loaded when
  // they run: serve neither parses nor keeps their source.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  // Licence notices of the bundled packages and the source map go beside the file, not into memory.
  legalComments: 'linked',
  sourcemap: 'linked',
});
await chmod(OUTFILE, 0o755);
