/**
 * @module How pullcache is bundled (scripts/build.ts for dist/cli.js, bench/start-cost.ts for its
 * per-dependency rows): everything in one ESM file instead of ~400 modules (ours, zod's, yaml's,
 * undici's, ...), ~4 MB less resident in every process: no per-module loader records, and one
 * source string with its comments and indentation stripped. Identifiers are kept, so stack traces
 * in the logs still name their functions (mangling them saved only ~0.2 MB more).
 */
import { fileURLToPath } from 'node:url';
import type { BuildOptions, Plugin } from 'esbuild';

/**
 * Packages only some configs use stay outside, loaded from node_modules on first use: the S3 SDK
 * (an S3 store), bcryptjs (client htpasswd auth), tldts (upstream credentials with a foreign realm).
 */
export const LAZY_PACKAGES = ['@aws-sdk/*', 'bcryptjs', 'tldts'];

/** `node:http2` → scripts/http2-stub.ts, for @hono/node-server and undici alike (that file says why). */
const withoutHttp2: Plugin = {
  name: 'without-http2',
  setup(build) {
    const stub = fileURLToPath(new URL('./http2-stub.ts', import.meta.url));
    build.onResolve({ filter: /^(node:)?http2$/ }, () => ({ path: stub }));
  },
};

export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: LAZY_PACKAGES,
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS packages inside an ESM bundle call require() for node's own modules.
  banner: {
    js: "import{createRequire as __pullcacheRequire}from'node:module';const require=__pullcacheRequire(import.meta.url);",
  },
  plugins: [withoutHttp2],
  logLevel: 'warning',
} satisfies BuildOptions;
