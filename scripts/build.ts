/**
 * @module `npm run build`: src/cli.ts and everything it imports as one file, dist/cli.js, the
 * `pullcache` bin (scripts/bundle-options.ts says why one file). The entry's shebang, with the node
 * flags, stays its first line.
 */
import { chmod } from 'node:fs/promises';
import { build } from 'esbuild';
import { BUNDLE_OPTIONS } from './bundle-options.js';

const OUTFILE = 'dist/cli.js';

await build({
  ...BUNDLE_OPTIONS,
  entryPoints: ['src/cli.ts'],
  outfile: OUTFILE,
  // Licence notices of the bundled packages and the source map go beside the file, not into memory.
  legalComments: 'linked',
  sourcemap: 'linked',
});
await chmod(OUTFILE, 0o755);
