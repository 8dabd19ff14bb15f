/** @module Splits a `/v2/...` path into the repository name and the endpoint asked for. */
import { nameInvalid } from '../errors.js';

export type V2Endpoint =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'upload'; name: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'catalog' };

// The name is greedy, so the last `/manifests/` etc. ends it (a repository may have a component
// called "manifests" itself).
const PATTERNS: [RegExp, (m: RegExpExecArray) => V2Endpoint][] = [
  [/^\/v2\/?$/, () => ({ kind: 'base' })],
  [/^\/v2\/_catalog$/, () => ({ kind: 'catalog' })],
  [/^\/v2\/(.+)\/blobs\/uploads(?:\/[^/]*)?$/, (m) => ({ kind: 'upload', name: m[1]! })],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^\/v2\/(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

/**
 * The endpoint of a raw (not percent-decoded) request path, or null for a path the API does not have.
 * Percent-encoding and dot segments are refused outright: no valid name, tag or digest contains them,
 * and decoding them would let `..` reach a file path or an upstream URL.
 */
export function parseV2Path(rawPath: string): V2Endpoint | null {
  if (!rawPath.startsWith('/v2')) return null;
  if (rawPath.includes('%') || /(^|\/)\.\.?(\/|$)/.test(rawPath)) {
    throw nameInvalid('invalid repository name: percent-encoding and dot segments are not allowed', {
      path: rawPath.slice(0, 300),
    });
  }
  for (const [pattern, build] of PATTERNS) {
    const match = pattern.exec(rawPath);
    if (match) return build(match);
  }
  return null;
}
