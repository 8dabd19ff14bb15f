/**
 * @module `npm run build`: src/cli.ts and everything it imports as one ESM file, dist/cli.js.
 * One file instead of ~400 modules (ours, zod's, yaml's, undici's, ...) is ~4 MB less resident in
 * every process: no per-module loader records, and one source string with its comments and
 * indentation stripped (bench/RESULTS.md, "Start cost"). Identifiers are kept, so stack traces in
 * the logs still name their functions. What only some configs use stays a package of its own,
 * loaded from node_modules on first use (S3 SDK, bcryptjs, tldts).
 */
import { chmod } from 'node:fs/promises';
import { build } from 'esbuild';

const OUTFILE = 'dist/cli.js';

await build({
  entryPoints: ['src/cli.ts'],
  outfile: OUTFILE,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['@aws-sdk/*', 'bcryptjs', 'tldts'],
  minifyWhitespace: true,
  minifySyntax: true,
  // Licence notices of the bundled packages, beside the file rather than in memory.
  legalComments: 'linked',
  sourcemap: 'linked',
  // CommonJS packages inside an ESM bundle call require() for node's own modules.
  banner: {
    js: "import{createRequire as __pullcacheRequire}from'node:module';const require=__pullcacheRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
// The entry's shebang (node and its flags) is kept on the first line: the file is the `pullcache` bin.
await chmod(OUTFILE, 0o755);
