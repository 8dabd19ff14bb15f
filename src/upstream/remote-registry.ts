/**
 * @module One upstream registry seen as content: manifests (verified against their digest), blobs,
 * tag lists and referrers. Upstream error answers become RegistryErrors with the upstream's status,
 * OCI error body and rate-limit headers.
 */
import { parseContentRange } from '../byte-range.js';
import {
  type BlobPart,
  MANIFEST_MAX_BYTES,
  type Manifest,
  type ManifestHead,
  MEDIA_TYPES,
  PASSED_ON_HEADERS,
} from '../content.js';
import { createDigester, parseDigest } from '../digest.js';
import { type OciErrorCode, type RegistryError, upstreamAnswered, upstreamInvalid } from '../errors.js';
import { guardMinRate, type MinRate } from './min-rate.js';
import { BodyTooLargeError, readLimited } from './read-limited.js';
import type { RegistryClient, UpstreamResponse } from './registry-client.js';
import { transportError } from './transport-error.js';

/** What we ask for when the client states no preference: every manifest type a runtime can use. */
export const DEFAULT_MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerList,
  MEDIA_TYPES.dockerManifest,
].join(', ');

const ERROR_BODY_MAX_BYTES = 64 * 1024; // 64 KiB: an OCI error body is a few hundred bytes

export interface Passed {
  /** Upstream headers the client should see (rate limits). */
  passed: Record<string, string>;
}

/** A tag list or referrers answer: its bytes, and the query of its next page, if any. */
export interface Listing extends Passed {
  contentType: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The query of the upstream's `Link: <...>; rel="next"` page. */
  next: URLSearchParams | null;
}

export interface RemoteRegistry {
  readonly name: string;
  /** How many times longer its tags are served from cache now: its rate-limit budget is running low. */
  tagTTLFactor(): number;
  headManifest(
    repository: string,
    reference: string,
    accept: string | undefined,
  ): Promise<ManifestHead & Passed>;
  getManifest(repository: string, reference: string, accept: string | undefined): Promise<Manifest & Passed>;
  /** The blob's size (a HEAD request: cheap, and not counted by rate limits). */
  statBlob(repository: string, digest: string): Promise<{ size: number } & Passed>;
  /** The blob's bytes from `offset` on (a Range request when not 0; the upstream may ignore it). */
  openBlob(
    repository: string,
    digest: string,
    options?: { offset?: number; signal?: AbortSignal },
  ): Promise<BlobPart & Passed>;
  tags(repository: string, query: URLSearchParams): Promise<Listing>;
  referrers(repository: string, digest: string, query: URLSearchParams): Promise<Listing>;
  close(): Promise<void>;
}

export interface RemoteRegistryOptions {
  /** The slowest a blob body may arrive; null: no floor (bodyTimeout still catches silence). */
  minRate?: MinRate | null;
}

export function createRemoteRegistry(
  client: RegistryClient,
  options: RemoteRegistryOptions = {},
): RemoteRegistry {
  const registry = client.name;
  const minRate = options.minRate ?? null;

  async function manifestRequest(
    method: 'GET' | 'HEAD',
    repository: string,
    reference: string,
    accept?: string,
  ) {
    const response = await client.send({
      method,
      path: `${repository}/manifests/${reference}`,
      headers: { accept: accept || DEFAULT_MANIFEST_ACCEPT },
      repository,
      limited: true,
    });
    if (response.status !== 200) throw await upstreamError(registry, response, 'MANIFEST_UNKNOWN');
    return response;
  }

  async function blobRequest(
    method: 'GET' | 'HEAD',
    repository: string,
    digest: string,
    options: { range?: string; signal?: AbortSignal } = {},
  ) {
    const response = await client.send({
      method,
      path: `${repository}/blobs/${digest}`,
      headers: options.range ? { range: options.range } : {},
      repository,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (response.status !== 200 && response.status !== 206) {
      throw await upstreamError(registry, response, 'BLOB_UNKNOWN');
    }
    return response;
  }

  return {
    name: registry,
    tagTTLFactor: () => client.budget.tagTTLFactor(),

    async headManifest(repository, reference, accept) {
      const response = await manifestRequest('HEAD', repository, reference, accept);
      response.body.resume();
      const digest = header(response, 'docker-content-digest');
      const size = Number(header(response, 'content-length'));
      const mediaType = header(response, 'content-type');
      if (!digest || !mediaType || !Number.isSafeInteger(size)) {
        // Some registries leave these out of HEAD answers; a GET tells us for sure.
        const manifest = await this.getManifest(repository, reference, accept);
        return {
          mediaType: manifest.mediaType,
          digest: manifest.digest,
          size: manifest.size,
          passed: manifest.passed,
        };
      }
      assertUpstreamDigest(registry, digest);
      if (reference.includes(':') && digest !== reference) {
        throw invalidUpstream(registry, `answered digest ${digest} for ${reference}`);
      }
      assertMediaType(registry, mediaType);
      return { mediaType, digest, size, passed: passedHeaders(response) };
    },

    async getManifest(repository, reference, accept) {
      const response = await manifestRequest('GET', repository, reference, accept);
      let bytes: Buffer;
      try {
        bytes = await readLimited(response.body, MANIFEST_MAX_BYTES);
      } catch (error) {
        if (error instanceof BodyTooLargeError) throw invalidUpstream(registry, 'sent a manifest over 4 MiB');
        throw transportError(registry, error);
      }
      const mediaType = header(response, 'content-type') ?? mediaTypeOf(bytes);
      assertMediaType(registry, mediaType);
      const claimed = header(response, 'docker-content-digest');
      if (claimed !== undefined) assertUpstreamDigest(registry, claimed);
      // By digest: the bytes must hash to it. By tag: they must match what the registry claims, if it does.
      const expected = reference.includes(':') ? reference : claimed;
      const algorithm = expected ? parseDigest(expected).algorithm : 'sha256';
      const digest = `${algorithm}:${createDigester(algorithm).update(bytes).digest('hex')}`;
      if (expected && digest !== expected) {
        throw invalidUpstream(registry, `sent a manifest whose digest is ${digest}, not ${expected}`);
      }
      return { mediaType, digest, size: bytes.length, bytes, passed: passedHeaders(response) };
    },

    async statBlob(repository, digest) {
      const response = await blobRequest('HEAD', repository, digest);
      response.body.resume();
      const size = Number(header(response, 'content-length'));
      if (!Number.isSafeInteger(size) || size < 0)
        throw upstreamInvalid(registry, 'sent no blob length', 'UNAVAILABLE');
      return { size, passed: passedHeaders(response) };
    },

    async openBlob(repository, digest, options = {}) {
      const offset = options.offset ?? 0;
      const response = await blobRequest('GET', repository, digest, {
        ...(offset > 0 ? { range: `bytes=${offset}-` } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const stream = minRate ? guardMinRate(response.body, minRate) : response.body;
      const passed = passedHeaders(response);
      if (response.status === 206) {
        const contentRange = parseContentRange(header(response, 'content-range') ?? '');
        if (!contentRange) {
          response.body.destroy();
          throw upstreamInvalid(registry, 'sent an invalid range', 'UNAVAILABLE');
        }
        return { total: contentRange.size, startsAt: contentRange.range.start, stream, passed };
      }
      const length = Number(header(response, 'content-length'));
      return { total: Number.isSafeInteger(length) ? length : null, startsAt: 0, stream, passed };
    },

    tags: (repository, query) =>
      raw(client, { path: `${repository}/tags/list`, repository, query }, 'NAME_UNKNOWN'),

    referrers: (repository, digest, query) =>
      raw(client, { path: `${repository}/referrers/${digest}`, repository, query }, 'MANIFEST_UNKNOWN'),

    close: () => client.close(),
  };
}

async function raw(
  client: RegistryClient,
  req: { path: string; repository: string; query: URLSearchParams },
  notFoundCode: string,
): Promise<Listing> {
  const response = await client.send({ method: 'GET', headers: { accept: 'application/json' }, ...req });
  if (response.status !== 200) throw await upstreamError(client.name, response, notFoundCode);
  let body: Buffer;
  try {
    body = await readLimited(response.body, MANIFEST_MAX_BYTES);
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw invalidUpstream(client.name, 'sent a listing over 4 MiB');
    throw transportError(client.name, error);
  }
  const link = response.headers.link;
  return {
    contentType: header(response, 'content-type'),
    headers: response.headers,
    body,
    next: nextPageQuery(Array.isArray(link) ? link.join(', ') : link),
    passed: passedHeaders(response),
  };
}

/** The query of the `rel="next"` target of a Link header (`</v2/x/tags/list?n=10&last=b>; rel="next"`). */
export function nextPageQuery(link: string | undefined): URLSearchParams | null {
  if (!link) return null;
  for (const part of link.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /\brel\s*=\s*"?next"?/i.test(match[2]!)) {
      return new URL(match[1]!, 'http://upstream.invalid').searchParams;
    }
  }
  return null;
}

function header(response: UpstreamResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function passedHeaders(response: UpstreamResponse): Record<string, string> {
  const passed: Record<string, string> = {};
  for (const name of PASSED_ON_HEADERS) {
    const value = header(response, name);
    if (value !== undefined) passed[name] = value;
  }
  return passed;
}

function mediaTypeOf(bytes: Buffer): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    if (typeof parsed.mediaType === 'string') return parsed.mediaType;
  } catch {
    // not JSON: fall through
  }
  return 'application/octet-stream';
}

/**
 * A media type is stored as a line before the manifest and sent back as a header: one with a line
 * break or another control character (a manifest's own `mediaType` field can hold anything) is refused.
 */
function assertMediaType(registry: string, mediaType: string): void {
  // Header values are visible ASCII, spaces, tabs and Latin-1 (what Node's http accepts).
  if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(mediaType)) {
    throw invalidUpstream(
      registry,
      `sent a manifest media type that is not a valid header value: ${JSON.stringify(mediaType.slice(0, 200))}`,
    );
  }
}

/** A Docker-Content-Digest the upstream sent: a malformed one is its fault (502), not the client's (400). */
function assertUpstreamDigest(registry: string, digest: string): void {
  try {
    parseDigest(digest);
  } catch {
    throw invalidUpstream(
      registry,
      `sent an invalid Docker-Content-Digest header: ${JSON.stringify(digest.slice(0, 200))}`,
    );
  }
}

const STATUS_CODES: Record<number, string> = {
  401: 'UNAUTHORIZED',
  403: 'DENIED',
  405: 'UNSUPPORTED',
  429: 'TOOMANYREQUESTS',
};

/** An upstream's non-success answer, with its status and error body, as a RegistryError. */
export async function upstreamError(
  registry: string,
  response: UpstreamResponse,
  notFoundCode: string,
): Promise<RegistryError> {
  let upstreamErrors: { code: string; message: string; detail?: unknown }[] | undefined;
  try {
    const body = await readLimited(response.body, ERROR_BODY_MAX_BYTES);
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (Array.isArray(parsed.errors)) {
      upstreamErrors = parsed.errors
        .filter(
          (e): e is { code: string; message?: unknown; detail?: unknown } => typeof e?.code === 'string',
        )
        .map((e) => ({
          code: e.code,
          message: typeof e.message === 'string' ? e.message : e.code,
          detail: e.detail,
        }));
    }
  } catch {
    response.body.destroy(); // not an OCI error body (an HTML error page, a HEAD answer): ours below
  }
  const status = response.status;
  const code =
    status === 404 ? notFoundCode : (STATUS_CODES[status] ?? (status >= 500 ? 'UNAVAILABLE' : 'UNKNOWN'));
  return upstreamAnswered(registry, status, code as OciErrorCode, {
    headers: passedHeaders(response),
    ...(upstreamErrors ? { upstreamErrors } : {}),
  });
}

const invalidUpstream = (registry: string, what: string) => upstreamInvalid(registry, what);
