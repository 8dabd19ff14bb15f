/** configKeys(): the dotted keys read from the schema, which the README reference is checked against. */
import { describe, expect, it } from 'vitest';
import { configKeys } from './config.js';

describe('configKeys', () => {
  const keys = configKeys();

  it('lists leaves through defaults, optionals, transforms and maps', () => {
    expect(keys).toEqual(
      expect.arrayContaining([
        'listen', // a transformed string with a default
        'storage.maxSize', // nullable, defaulted, transformed
        'registries.<name>.url', // a map's entries: `<name>` for the key
        'registries.<name>.password',
        'tls.cert', // inside an optional object
        'auth.tokens', // an array is one key
        'allowedClients',
        'limits.shutdownGrace', // inside a prefaulted object
      ]),
    );
    expect(keys).not.toContain('storage'); // objects are not keys themselves
    expect(keys).not.toContain('registries.<name>');
    expect(new Set(keys).size).toBe(keys.length);
  });
});
