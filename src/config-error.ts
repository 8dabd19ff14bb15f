/**
 * @module The errors of a bad configuration, apart from the schema (config.ts): modules that only
 * throw or recognize them need not load zod (the CLI validates in a child process, config-process.ts).
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A bad command-line override (`--listen`): named as the flag, not as a key of the config file. */
export class FlagError extends ConfigError {
  override name = 'FlagError';
}
