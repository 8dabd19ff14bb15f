/**
 * @module Requests to other members' peer endpoints over one undici Agent, each signed with the
 * cluster secret. Until the answer's headers arrive a request is bounded by `cluster.peerTimeout`;
 * every `102 Processing` the peer sends while its own upstream has not answered restarts that bound
 * (up to `maxWait` in all), so a member that is gone, refuses or hangs costs a client at most
 * `peerTimeout` before the next source is asked, while a live owner waiting on a slow upstream is
 * waited for. Blob answers are BlobParts, as the upstream's are (the download verifies the bytes); a
 * tag's manifest must hash to the digest the peer names. Every failure is a PeerError with a reason.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { parseContentRange } from '../byte-range.js';
import { type BlobPart, MANIFEST_MAX_BYTES, type Manifest } from '../content.js';
import { createDigester, parseDigest } from '../digest.js';
import type { Route } from '../routing.js';
import { createAgent, request } from '../upstream/http-agent.js';
import { BodyTooLargeError, readLimited } from '../upstream/read-limited.js';
import { createPeerSigner } from './peer-auth.js';
import { peerBlobTarget, peerManifestTarget } from './peer-paths.js';

/** Why a peer could not serve: gone or refusing, silent too long, an error answer, an unusable answer. */
export type PeerFailure = 'unreachable' | 'timeout' | 'answer' | 'invalid';

export class PeerError extends Error {
  override name = 'PeerError';
  constructor(
    readonly peer: string,
    readonly reason: PeerFailure,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(`peer ${peer} ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
  }
  /** The peer's status, for reason `answer`. */
  readonly status: number | undefined;
}

export interface PeerClientOptions {
  secret: string;
  /** This replica's member address: the signed sender. */
  self: string;
  /** Longest wait for a connection, and then for each sign of life until the answer's headers. */
  peerTimeout: number;
  /** Longest wait for the headers in all, however many 102s the peer sends (its upstream's bounds). */
  maxWait: number;
  /** Longest silence in a blob body (the owner streams at its upstream's pace). */
  bodyTimeout: number;
  /**
   * HTTPS, when the members serve TLS: their listener's certificate is trusted as the CA. Members are
   * reached by address, which a certificate rarely names: the chain is checked, the host name not.
   */
  tls?: { ca: Buffer } | undefined;
}

export interface PeerClient {
  openBlob(peer: string, route: Route, digest: string, offset: number): Promise<BlobPart>;
  statBlob(peer: string, route: Route, digest: string): Promise<number>;
  /** A manifest by tag or digest, which must hash to its digest (for a tag, the one the peer names). */
  getManifest(peer: string, route: Route, reference: string, accept: string | undefined): Promise<Manifest>;
  close(): Promise<void>;
}

export function createPeerClient(options: PeerClientOptions): PeerClient {
  const { peerTimeout, maxWait, tls } = options;
  const sign = createPeerSigner({ secret: options.secret, self: options.self });
  const agent = createAgent({
    connect: {
      timeout: peerTimeout,
      ...(tls ? { ca: tls.ca, checkServerIdentity: () => undefined } : {}),
    },
    keepAliveTimeout: 30_000, // 30s: the members talk all the time during a rollout
    // The bounds below are ours (undici's timers tick about once a second); these are backstops.
    headersTimeout: maxWait + 1_000,
    bodyTimeout: options.bodyTimeout,
  });
  const scheme = tls ? 'https' : 'http';

  async function send(
    peer: string,
    method: 'GET' | 'HEAD',
    target: string,
    headers: Record<string, string> = {},
  ): Promise<Dispatcher.ResponseData> {
    const controller = new AbortController();
    const deadline = Date.now() + maxWait;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () => {
          timedOut = true;
          controller.abort();
        },
        Math.max(0, Math.min(peerTimeout, deadline - Date.now())),
      );
    };
    arm();
    let response: Dispatcher.ResponseData;
    try {
      response = await request(new URL(`${scheme}://${peer}${target}`), {
        dispatcher: agent,
        method,
        headers: { ...headers, ...sign(method, target) },
        signal: controller.signal,
        onInfo: arm, // a 102 Processing: alive, still waiting on its upstream
      });
    } catch (error) {
      if (timedOut) throw new PeerError(peer, 'timeout', `sent no answer within ${peerTimeout} ms`);
      const code = (error as { code?: string }).code ?? (error as Error).name;
      throw new PeerError(peer, 'unreachable', `cannot be reached (${code})`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) {
      discard(response.body as unknown as Readable);
      throw new PeerError(peer, 'answer', `answered ${response.statusCode}`, { status: response.statusCode });
    }
    return response;
  }

  const invalid = (peer: string, body: Readable, what: string) => {
    discard(body);
    return new PeerError(peer, 'invalid', what);
  };

  return {
    async openBlob(peer, route, digest, offset) {
      const response = await send(
        peer,
        'GET',
        peerBlobTarget(route, digest),
        offset > 0 ? { range: `bytes=${offset}-` } : {},
      );
      const body = response.body as unknown as Readable;
      if (response.statusCode === 206) {
        const contentRange = parseContentRange(header(response, 'content-range'));
        if (contentRange?.size == null) throw invalid(peer, body, 'sent an invalid Content-Range');
        return { total: contentRange.size, startsAt: contentRange.range.start, stream: body };
      }
      const length = Number(header(response, 'content-length'));
      if (!Number.isSafeInteger(length)) throw invalid(peer, body, 'sent a blob without its length');
      return { total: length, startsAt: 0, stream: body };
    },

    async statBlob(peer, route, digest) {
      const response = await send(peer, 'HEAD', peerBlobTarget(route, digest));
      discard(response.body as unknown as Readable);
      const length = Number(header(response, 'content-length'));
      if (!Number.isSafeInteger(length) || length < 0) {
        throw new PeerError(peer, 'invalid', 'sent no blob length');
      }
      return length;
    },

    async getManifest(peer, route, reference, accept) {
      const response = await send(
        peer,
        'GET',
        peerManifestTarget(route, reference),
        accept ? { accept } : {},
      );
      const body = response.body as unknown as Readable;
      const claimed = header(response, 'docker-content-digest');
      const mediaType = header(response, 'content-type');
      let digest: ReturnType<typeof parseDigest>;
      try {
        digest = parseDigest(claimed ?? '');
      } catch {
        throw invalid(peer, body, 'sent a manifest without a valid Docker-Content-Digest');
      }
      if (reference.includes(':') && digest.value !== reference)
        throw invalid(peer, body, `answered ${digest.value} for ${reference}`);
      // What the store writes as a header line later: visible ASCII, spaces, tabs and Latin-1.
      if (!mediaType || !/^[\t\x20-\x7e\x80-\xff]*$/.test(mediaType)) {
        throw invalid(peer, body, 'sent a manifest without a valid media type');
      }
      let bytes: Buffer;
      try {
        bytes = await readLimited(body, MANIFEST_MAX_BYTES);
      } catch (error) {
        if (error instanceof BodyTooLargeError)
          throw new PeerError(peer, 'invalid', 'sent a manifest over 4 MiB');
        throw new PeerError(peer, 'unreachable', `broke off a manifest (${(error as Error).message})`, {
          cause: error,
        });
      }
      const actual = createDigester(digest.algorithm).update(bytes).digest('hex');
      if (actual !== digest.hex) {
        throw new PeerError(peer, 'invalid', `sent a manifest that is not ${digest.value}`);
      }
      return { mediaType, digest: digest.value, size: bytes.length, bytes };
    },

    close: () => agent.close(),
  };
}

/** Drops a body we will not read; undici reports that as an error nobody needs to hear. */
function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

function header(response: Dispatcher.ResponseData, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
