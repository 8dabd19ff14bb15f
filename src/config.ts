/**
 * @module The configuration: a YAML file (or the embedded default), `${ENV}` substitution, validation
 * against the schema (config-schema.ts), and the command-line overrides.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, FlagError } from './config-error.js';
import { type Config, configSchema, hostPort, logLevel } from './config-schema.js';
import { normalizeRegistryHost } from './reference.js';

/** The config shipped with the package: Docker Hub upstream, cache in ./data. */
export const DEFAULT_CONFIG_FILE = fileURLToPath(new URL('../config/default.yaml', import.meta.url));

export type { ClusterConfig, Config, ParentConfig, RegistryConfig } from './config-schema.js';
export { ConfigError, FlagError };

/**
 * Every key the config accepts, dotted, with `<name>` for a map's own keys (`storage.maxSize`,
 * `registries.<name>.url`): read from the schema, so the README's reference can be checked against it.
 */
export function configKeys(): string[] {
  return keysOf(configSchema, '');
}

function keysOf(type: z.core.$ZodType, prefix: string): string[] {
  const join = (key: string) => (prefix === '' ? key : `${prefix}.${key}`);
  if (type instanceof z.ZodObject) {
    return Object.entries(type.shape).flatMap(([key, value]) => keysOf(value, join(key)));
  }
  if (type instanceof z.ZodRecord) return keysOf(type.valueType, join('<name>'));
  if (
    type instanceof z.ZodOptional ||
    type instanceof z.ZodNullable ||
    type instanceof z.ZodDefault ||
    type instanceof z.ZodPrefault
  ) {
    return keysOf(type.unwrap(), prefix);
  }
  if (type instanceof z.ZodPipe) return keysOf(type.in, prefix); // a transform's input is what the file holds
  // A value or an object (`x: 5s` or `x: { ... }`): the keys of every alternative.
  if (type instanceof z.ZodUnion)
    return [...new Set(type.options.flatMap((option) => keysOf(option, prefix)))];
  return [prefix];
}

export interface ConfigOverrides {
  listen?: string | undefined;
  storage?: string | undefined;
}

/** Replaces `${NAME}` in every string value; a variable that is not set is an error naming the key. */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name];
      if (found === undefined) {
        throw new ConfigError(`${path.join('.') || 'config'}: environment variable ${name} is not set`);
      }
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, [...path, String(i)]));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, [...path, k])]),
    );
  }
  return value;
}

/** Validates an already-parsed config document; throws ConfigError listing each bad key. */
export function parseConfig(
  document: unknown,
  env: NodeJS.ProcessEnv = process.env,
  overrides: ConfigOverrides = {},
): Config {
  const listen = overrides.listen === undefined ? undefined : hostPort.safeParse(overrides.listen);
  if (listen?.success === false) {
    const portOnly = /^\d+$/.test(overrides.listen!) ? ` (all interfaces: 0.0.0.0:${overrides.listen})` : '';
    throw new FlagError(
      `--listen: ${listen.error.issues[0]?.message ?? 'expected HOST:PORT'}, got ${JSON.stringify(overrides.listen)}${portOnly}`,
    );
  }
  const raw = substituteEnv(document ?? {}, env) as Record<string, unknown>;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError('config: expected a YAML mapping');
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `${issue.path.join('.') || 'config'}: ${issue.message}`);
    // One bad key is one line (what a start-up script logs); several are listed one per line.
    throw new ConfigError(
      lines.length === 1
        ? `invalid configuration: ${lines[0]}`
        : `invalid configuration:\n  ${lines.join('\n  ')}`,
    );
  }
  const config = result.data;
  // Registry keys are compared in normalized form (index.docker.io is docker.io).
  config.registries = Object.fromEntries(
    Object.entries(config.registries).map(([host, registry]) => [normalizeRegistryHost(host), registry]),
  );
  config.defaultRegistry = normalizeRegistryHost(config.defaultRegistry);
  const level = logLevel.safeParse(env.PULLCACHE_LOG_LEVEL);
  if (env.PULLCACHE_LOG_LEVEL !== undefined) {
    if (!level.success)
      throw new ConfigError(`PULLCACHE_LOG_LEVEL: expected one of ${logLevel.options.join(', ')}`);
    config.log.level = level.data;
  }
  if (listen?.success) config.listen = listen.data;
  if (overrides.storage !== undefined) config.storage.path = overrides.storage;
  return config;
}

/** Reads and validates a config file; the embedded default when `file` is undefined. */
export function loadConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  overrides: ConfigOverrides = {},
): Config {
  const path = file ?? DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(error as Error).message}`);
  }
  try {
    return parseConfig(document, env, overrides);
  } catch (error) {
    if (error instanceof FlagError) throw error;
    if (error instanceof ConfigError) throw new ConfigError(`${path}: ${error.message}`);
    throw error;
  }
}
