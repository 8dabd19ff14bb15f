#!/usr/bin/env -S node --max-semi-space-size=1 --liftoff-only --no-sparkplug
/**
 * @module The command line: `pullcache serve | resolve | warm | ls | rm | prune | export | import`
 * (the cache inventory commands live in inventory-commands.ts, archives in archive/; each command's
 * modules are imported when it runs, so `serve` never loads the others: scripts/build.ts splits them
 * into chunks of their own).
 * The shebang's node flags keep memory low, as every node of a cluster pays it (bench/RESULTS.md):
 * 1 MiB semi-spaces make the young generation collect often, before the socket buffers it holds
 * pile up (serving reads into recycled buffers, so each collection finds little alive); Liftoff only
 * keeps V8 from optimizing undici's WebAssembly HTTP parser, a ~30 MB burst of compiler memory at the
 * first upstream download; no Sparkplug saves the baseline code compiled while loading.
 */
import './http/web-globals.js'; // first: @hono/node-server reads the globals it installs at import
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError } from './config-error.js';
import { loadConfigInChild } from './config-process.js';
import { RegistryError } from './errors.js';
import { formatReference, parseReference } from './reference.js';
import { createRuntime } from './runtime.js';
import { ListenError, startServer } from './server.js';
import { formatBytes, parseDuration, parseSize } from './units.js';

const USAGE = `usage:
  pullcache serve [--config FILE] [--listen HOST:PORT] [--storage DIR]
  pullcache resolve [--config FILE] REFERENCE
  pullcache warm [--config FILE] [--storage DIR] REFERENCE... [--platform OS/ARCH]... [--all-platforms]
  pullcache ls [--config FILE] [--storage DIR] [--registry R] [--json]
  pullcache rm [--config FILE] [--storage DIR] REFERENCE... [--dry-run] [--json]
  pullcache prune [--config FILE] [--storage DIR] [--unused-for 30d] [--to SIZE] [--dry-run] [--json]
  pullcache export [--config FILE] [--storage DIR] REFERENCE... -o FILE.tar [--platform OS/ARCH]... [--json]
  pullcache import [--config FILE] [--storage DIR] FILE.tar [--registry R] [--json]
  pullcache --version

The config file is --config, else $PULLCACHE_CONFIG, else the embedded default (Docker Hub, ./data).`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      listen: { type: 'string' },
      storage: { type: 'string' },
      platform: { type: 'string', multiple: true },
      'all-platforms': { type: 'boolean' },
      registry: { type: 'string' },
      json: { type: 'boolean' },
      'unused-for': { type: 'string' },
      to: { type: 'string' },
      'dry-run': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean' },
    },
  });
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const [command, ...rest] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const configFile = values.config ?? process.env.PULLCACHE_CONFIG;
  const config = await loadConfigInChild(configFile || undefined, process.env, {
    listen: values.listen,
    storage: values.storage,
  });

  switch (command) {
    case 'serve': {
      const logger = pino({ level: config.log.level, base: { service: 'pullcache' } });
      // Signal handlers go in before the server starts: a SIGTERM right after "listening" must
      // still shut down gracefully.
      const starting = startServer(config, logger);
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) {
          logger.warn({ signal }, 'second signal: exiting without waiting for transfers');
          process.exit(1);
        }
        stopping = true;
        logger.info({ signal, graceMs: config.limits.shutdownGrace }, 'shutting down');
        await (await starting).shutdown(config.limits.shutdownGrace);
        logger.info('stopped');
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
      process.on('SIGHUP', () => {
        starting
          .then(
            (server) => server.reloadTls(),
            () => {},
          )
          .catch((error: Error) => {
            logger.error({ error: error.message }, 'TLS reload failed: keeping the current certificate');
          });
      });
      await starting;
      return -1; // keep running
    }
    case 'resolve': {
      if (rest.length !== 1) throw new UsageError('resolve takes exactly one REFERENCE');
      const ref = parseReference(rest[0]!);
      // A valid reference to a registry this config does not allow is an answer, not an error:
      // scripts ask "would this be served?" and only a malformed reference fails.
      const upstream = config.registries[ref.registry];
      const target = ref.digest ?? ref.tag;
      process.stdout.write(
        `${JSON.stringify({
          reference: formatReference(ref),
          registry: ref.registry,
          repository: ref.repository,
          tag: ref.tag,
          digest: ref.digest,
          allowed: upstream !== undefined,
          upstream: upstream ? `${upstream.url}/v2/${ref.repository}/manifests/${target}` : null,
        })}\n`,
      );
      return 0;
    }
    case 'warm': {
      if (rest.length === 0) throw new UsageError('warm takes one or more REFERENCEs');
      const { warmImage } = await import('./warm.js');
      const { jsonLines, progressBar } = await import('./warm-output.js');
      const logger = pino({ level: 'warn' }, pino.destination(2));
      const output = process.stderr.isTTY ? progressBar(process.stderr) : jsonLines();
      const runtime = await createRuntime(config, logger);
      const failed: string[] = [];
      for (const reference of rest) {
        const started = Date.now();
        try {
          const result = await warmImage(
            runtime.puller,
            config,
            reference,
            { platforms: values.platform ?? [], allPlatforms: values['all-platforms'] ?? false },
            (event) => output.report(event),
            (bytes) => output.bytes(bytes),
          );
          output.report({ event: 'done', reference, ...result, ms: Date.now() - started });
        } catch (error) {
          failed.push(reference);
          output.report({ event: 'error', reference, message: (error as Error).message });
        }
      }
      // Every blob has been read by now; its commit (fsync + rename) may still be running.
      await runtime.close(Date.now() + config.limits.shutdownGrace);
      if (failed.length > 0) throw new UsageError(`could not warm ${failed.join(', ')}`);
      return 0;
    }
    case 'ls': {
      if (rest.length > 0) throw new UsageError('ls takes no REFERENCE (filter with --registry)');
      const { listCommand } = await import('./inventory-commands.js');
      await listCommand(config, { registry: values.registry, json: values.json ?? false }, print);
      return 0;
    }
    case 'rm': {
      if (rest.length === 0) throw new UsageError('rm takes one or more REFERENCEs');
      const { removeCommand } = await import('./inventory-commands.js');
      await removeCommand(
        config,
        rest,
        { json: values.json ?? false, dryRun: values['dry-run'] ?? false },
        print,
      );
      return 0;
    }
    case 'prune': {
      const unusedFor = optional(values['unused-for'], parseDuration, '--unused-for takes a duration (30d)');
      const to = optional(values.to, parseSize, '--to takes a size (20GiB)');
      if (unusedFor === undefined && to === undefined)
        throw new UsageError('prune needs --unused-for DURATION, --to SIZE or both');
      const { pruneCommand } = await import('./inventory-commands.js');
      const reached = await pruneCommand(
        config,
        { unusedFor, to, json: values.json ?? false, dryRun: values['dry-run'] ?? false },
        print,
      );
      return reached ? 0 : 1;
    }
    case 'export': {
      if (rest.length === 0) throw new UsageError('export takes one or more REFERENCEs');
      if (!values.output) throw new UsageError('export needs -o FILE.tar');
      const { exportImages } = await import('./archive/oci-export.js');
      const logger = pino({ level: 'warn' }, pino.destination(2));
      const runtime = await createRuntime(config, logger);
      try {
        const result = await exportImages({ ...runtime, config }, rest, resolve(values.output), {
          platforms: values.platform ?? [],
        });
        if (values.json) print(`${JSON.stringify({ file: resolve(values.output), ...result })}\n`);
        else {
          for (const image of result.images)
            print(
              `exported ${image.reference} ${image.digest}${image.platforms.length ? ` (${image.platforms.join(', ')})` : ''}\n`,
            );
          print(`wrote ${values.output}: ${result.blobs} blobs, ${formatBytes(result.bytes)}\n`);
        }
      } finally {
        await runtime.close(Date.now() + config.limits.shutdownGrace);
      }
      return 0;
    }
    case 'import': {
      if (rest.length !== 1) throw new UsageError('import takes exactly one FILE.tar');
      const { importArchive } = await import('./archive/oci-import.js');
      const { createConfiguredStore } = await import('./cache/store-from-config.js');
      // No maxSize here: a serve process evicts by its own limit; import does not drop content.
      const store = await createConfiguredStore(config, { maxSize: null });
      const result = await importArchive({ store, config }, rest[0]!, { registry: values.registry }).finally(
        () => store.close(),
      );
      if (values.json) print(`${JSON.stringify(result)}\n`);
      else {
        for (const image of result.images) print(`imported ${image.reference ?? image.digest}\n`);
        print(
          `${result.blobs.added} blobs added (${formatBytes(result.bytes)}), ${result.blobs.cached} already cached, ${result.manifests} manifests added\n`,
        );
      }
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${command}\n${USAGE}`);
  }
}

class UsageError extends Error {}

const print = (text: string) => process.stdout.write(text);

/** A flag's parsed value, undefined when absent; a UsageError when it does not parse. */
function optional<T>(
  value: string | undefined,
  parse: (s: string) => T | null,
  message: string,
): T | undefined {
  if (value === undefined) return undefined;
  const parsed = parse(value);
  if (parsed === null) throw new UsageError(message);
  return parsed;
}

/** package.json sits one folder above both src/cli.ts and dist/cli.js (and is in every install). */
function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    const known =
      error instanceof ConfigError ||
      error instanceof RegistryError ||
      error instanceof UsageError ||
      error instanceof ListenError ||
      // Archive errors (oci-import.ts, tar.ts), named so their modules load only for import/export.
      (error instanceof Error && (error.name === 'ImportError' || error.name === 'TarError')) ||
      Boolean((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'));
    // A reference error is one line (scripts read it); config errors list every bad key.
    const message =
      error instanceof RegistryError ? error.message.replace(/\s+/g, ' ') : (error as Error).message;
    process.stderr.write(`pullcache: ${known ? message : String((error as Error).stack ?? error)}\n`);
    process.exitCode = known ? 1 : 2;
  },
);
