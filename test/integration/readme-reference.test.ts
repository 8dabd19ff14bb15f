/**
 * The README's configuration reference and command line section against the code: every key the
 * schema accepts is documented and every documented key is accepted, the example is a valid config
 * showing the defaults, and the usage lines are the CLI's own. Docs and code cannot drift apart.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isPair, isScalar, type Pair, parseDocument, parse as parseYaml, visit } from 'yaml';
import { configKeys, parseConfig } from '../../src/config.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The first fenced block after a `## heading`, with the fence's info string. */
function firstBlock(heading: string): { info: string; body: string } {
  const start = README.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const next = README.indexOf('\n## ', start + 1);
  const section = README.slice(start, next < 0 ? undefined : next);
  const match = /\n```(\w*)\n([\s\S]*?)\n```/.exec(section);
  if (!match) throw new Error(`README's "${heading}" section has no code block`);
  return { info: match[1]!, body: match[2]! };
}

/** Paths of the leaves of a YAML document (arrays and scalars are leaves; mappings are walked). */
function leafPaths(value: unknown, path: string[] = []): string[][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([key, child]) => leafPaths(child, [...path, key]));
  }
  return [path];
}

interface Alternative {
  /** The alternative key's path, e.g. cluster.peers.static. */
  path: string[];
  /** The document with the alternative in place of the key above it. */
  document: unknown;
}

/**
 * `# or: key: value` comment lines: an alternative to the key right above them (dns or static),
 * documented without making the example invalid by giving both.
 */
function alternatives(text: string): Alternative[] {
  const found: Alternative[] = [];
  const doc = parseDocument(text);
  const keyOf = (pair: unknown) => String(((pair as Pair).key as { value: unknown }).value);
  const add = (comment: string | null | undefined, parents: string[], above: unknown) => {
    const alternative = /^\s*or:\s+(.*?)\s*(#.*)?$/s.exec(comment ?? '');
    if (!alternative || above === undefined) return;
    const [key, value] = Object.entries(parseYaml(alternative[1]!) as Record<string, unknown>)[0]!;
    const replaced = doc.clone();
    replaced.deleteIn([...parents, keyOf(above)]);
    replaced.setIn([...parents, key], value);
    found.push({ path: [...parents, key], document: replaced.toJS() });
  };
  visit(doc, {
    Map(_, map, ancestors) {
      const parents = ancestors.filter(isPair).map(keyOf);
      // Between two keys, the comment belongs to the next one; after the last key, to the mapping.
      map.items.forEach((pair, i) => {
        if (i > 0 && isScalar(pair.key)) add(pair.key.commentBefore, parents, map.items[i - 1]);
      });
      add(map.comment, parents, map.items.at(-1));
    },
  });
  return found;
}

/** Whether a document path is an instance of a schema key (`<name>` stands for any map key). */
const matches = (path: string[], key: string): boolean => {
  const parts = key.split('.');
  return parts.length === path.length && parts.every((part, i) => part === '<name>' || part === path[i]);
};

const at = (value: unknown, path: string[]): unknown =>
  path.reduce<unknown>((v, key) => (v as Record<string, unknown> | undefined)?.[key], value);

describe('the README configuration reference', () => {
  const block = firstBlock('Configuration reference');
  const document = parseYaml(block.body) as unknown;
  const alternates = alternatives(block.body);
  const documented = [...leafPaths(document), ...alternates.map((a) => a.path)];
  const keys = configKeys();
  const env = {
    DOCKERHUB_TOKEN: 'hub-token',
    PULLCACHE_TOKEN: 'a-client-token-of-32-characters!',
    PULLCACHE_PEER_SECRET: 'a-peer-secret-of-at-least-32-characters',
    PULLCACHE_PARENT_TOKEN: 'a-token-of-the-central-cache',
  };

  it('is a YAML block', () => {
    expect(block.info).toBe('yaml');
    expect(documented.length).toBeGreaterThan(10);
  });

  it('lists every key the schema accepts', () => {
    const undocumented = keys.filter((key) => !documented.some((path) => matches(path, key)));
    expect(undocumented, 'keys missing from the README configuration reference').toEqual([]);
  });

  it('lists only keys the schema accepts', () => {
    const unknown = documented
      .filter((path) => !keys.some((key) => matches(path, key)))
      .map((p) => p.join('.'));
    expect(unknown, 'README keys that the schema does not have').toEqual([]);
  });

  it('is itself a valid configuration', () => {
    expect(() => parseConfig(document, env)).not.toThrow();
  });

  it('is a valid configuration with each `# or:` alternative in place of the key above it', () => {
    expect(alternates.map((a) => a.path.join('.'))).toEqual(['cluster.peers.static']);
    for (const alternate of alternates) {
      const withAlternative = alternate.document;
      expect(() => parseConfig(withAlternative, env), alternate.path.join('.')).not.toThrow();
    }
  });

  it('shows each key that has a default with its default value', () => {
    const shown = parseConfig(document, env);
    const defaults = parseConfig(
      { registries: { 'docker.io': { url: 'https://registry-1.docker.io' } } },
      {},
    );
    const wrong = keys
      .filter((key) => !key.includes('<name>'))
      .map((key) => ({ key, path: key.split('.') }))
      .filter(({ path }) => at(defaults, path) !== undefined && at(defaults, path) !== null)
      .filter(({ path }) => JSON.stringify(at(shown, path)) !== JSON.stringify(at(defaults, path)))
      .map(
        ({ key, path }) =>
          `${key}: README shows ${JSON.stringify(at(shown, path))}, the default is ${JSON.stringify(at(defaults, path))}`,
      );
    expect(wrong).toEqual([]);
  });

  it('matches map keys by position only, so a misplaced or missing key is reported', () => {
    expect(matches(['registries', 'docker.io', 'url'], 'registries.<name>.url')).toBe(true);
    expect(matches(['registries', 'url'], 'registries.<name>.url')).toBe(false);
    expect(matches(['registries', 'docker.io', 'url', 'x'], 'registries.<name>.url')).toBe(false);
    expect(matches(['limits', 'url'], 'registries.<name>.url')).toBe(false);
    const paths = [
      ['registries', 'quay.io', 'url'],
      ['limits', 'shutdownGrace'],
    ];
    const schemaKeys = ['registries.<name>.url', 'limits.shutdownGrace', 'limits.somethingNew'];
    expect(schemaKeys.filter((key) => !paths.some((path) => matches(path, key)))).toEqual([
      'limits.somethingNew',
    ]);
  });
});

describe('the README command line section', () => {
  it('shows exactly the usage lines of `pullcache --help`', () => {
    const help = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--help'], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
      env: { ...process.env, PULLCACHE_CONFIG: '' },
    });
    expect(help.status).toBe(0);
    const usage = (text: string) =>
      text
        .split('\n')
        .map((line) => line.trim().replace(/\s+/g, ' '))
        .filter((line) => line.startsWith('pullcache '));
    const fromCli = usage(help.stdout);
    expect(fromCli.map((line) => line.split(' ')[1])).toEqual(
      expect.arrayContaining(['serve', 'resolve', 'warm']),
    );
    expect(usage(firstBlock('Command line').body)).toEqual(fromCli);
  }, 20_000);
});
