/**
 * @module The deployment recipes under config/examples and deploy/ as tests use them: read a file,
 * point its placeholder host at a test proxy, uncomment its optional parts, parse its TOML.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const PROJECT_ROOT = resolve(import.meta.dirname, '..', '..', '..');

/** The host:port every example names for pullcache. */
export const EXAMPLE_PROXY = 'pullcache.example.internal:5000';

/** The registries the examples send through pullcache, with their real upstream API. */
export const EXAMPLE_REGISTRIES: Record<string, string> = {
  'docker.io': 'https://registry-1.docker.io',
  'quay.io': 'https://quay.io',
  'ghcr.io': 'https://ghcr.io',
  'registry.k8s.io': 'https://registry.k8s.io',
};

/** A file of the project, by its path from the project root. */
export function readProjectFile(path: string): Promise<string> {
  return readFile(join(PROJECT_ROOT, path), 'utf8');
}

/** The example's text with pullcache at `proxyHost` (host:port) instead of the placeholder. */
export function withProxy(text: string, proxyHost: string): string {
  return text.replaceAll(EXAMPLE_PROXY, proxyHost);
}

/**
 * Uncomments the optional TOML lines that follow the first table (`# [host…]`, `#   key = …`), which
 * are the example's variants; prose comments and the header stay comments.
 */
export function uncommentVariants(toml: string): string {
  const lines = toml.split('\n');
  const firstTable = lines.findIndex((line) => line.startsWith('['));
  return lines
    .map((line, i) =>
      i > firstTable && /^\s*#\s*(\[|[A-Za-z_][\w-]* = )/.test(line) ? line.replace(/#\s?/, '') : line,
    )
    .join('\n');
}

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

/**
 * The subset of TOML that hosts.toml and registries.conf use: comments, `key = value` with basic
 * strings, numbers, booleans and one-line arrays, `[table."quoted key"]` and `[[array.of.tables]]`.
 * Anything else throws, so a recipe cannot drift outside what this reads.
 */
export function parseToml(text: string): TomlTable {
  const root: TomlTable = {};
  let current = root;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = stripComment(raw).trim();
    if (line === '') continue;
    const where = `line ${i + 1}: ${raw}`;
    const arrayTable = /^\[\[(.+)\]\]$/.exec(line);
    const table = /^\[(.+)\]$/.exec(line);
    if (arrayTable) {
      const path = parseKeyPath(arrayTable[1]!, where);
      const parent = descend(root, path.slice(0, -1), where);
      const key = path.at(-1)!;
      parent[key] ??= [];
      const list = parent[key];
      if (!Array.isArray(list)) throw new Error(`${where}: ${key} is not an array of tables`);
      current = {};
      list.push(current);
    } else if (table) {
      current = descend(root, parseKeyPath(table[1]!, where), where);
    } else {
      const eq = line.indexOf('=');
      if (eq < 1) throw new Error(`${where}: expected key = value`);
      const path = parseKeyPath(line.slice(0, eq), where);
      const parent = descend(current, path.slice(0, -1), where);
      const key = path.at(-1)!;
      if (key in parent) throw new Error(`${where}: ${key} is defined twice`);
      parent[key] = parseTomlValue(line.slice(eq + 1).trim(), where);
    }
  }
  return root;
}

function stripComment(line: string): string {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && inString) i++;
    else if (c === '"') inString = !inString;
    else if (c === '#' && !inString) return line.slice(0, i);
  }
  return line;
}

/** `host."http://x:5000".header` → ['host', 'http://x:5000', 'header']. */
function parseKeyPath(text: string, where: string): string[] {
  const parts = text.trim().match(/"(?:[^"\\]|\\.)*"|[A-Za-z0-9_-]+|\s*\.\s*/g) ?? [];
  if (parts.join('').trim() !== text.trim()) throw new Error(`${where}: unsupported key ${text.trim()}`);
  return parts
    .filter((part) => part.trim() !== '.')
    .map((part) => (part.startsWith('"') ? (JSON.parse(part) as string) : part));
}

/** Walks tables from `from`, creating missing ones; an array of tables continues at its last entry. */
function descend(from: TomlTable, path: string[], where: string): TomlTable {
  let table = from;
  for (const key of path) {
    table[key] ??= {};
    let next = table[key];
    if (Array.isArray(next)) next = next.at(-1) ?? {};
    if (typeof next !== 'object') throw new Error(`${where}: ${key} is not a table`);
    table = next as TomlTable;
  }
  return table;
}

// TOML basic strings, numbers, booleans and arrays of them read as JSON does.
function parseTomlValue(text: string, where: string): TomlValue {
  if (/^("|\[|true$|false$|-?\d)/.test(text)) {
    try {
      return JSON.parse(text) as TomlValue;
    } catch {}
  }
  throw new Error(`${where}: unsupported value ${text}`);
}
