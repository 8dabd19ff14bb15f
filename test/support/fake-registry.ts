/**
 * @module Upstream registries described as msw handlers: content (manifests, blobs, tags), auth
 * (Bearer with a token realm, Basic), blob redirects to a CDN, and ways to fail.
 */
import { createHash } from 'node:crypto';
import { HttpResponse, http, type RequestHandler } from 'msw';

export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export const sha256 = (bytes: Buffer | string) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** What a fake registry holds: shared by its registry, CDN and test assertions. */
export class RegistryContent {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { mediaType: string; bytes: Buffer }>();
  readonly tags = new Map<string, Map<string, string>>(); // repository → tag → digest
  readonly referrers = new Map<string, object[]>(); // subject digest → descriptors

  addBlob(bytes: Buffer | string): string {
    const buffer = Buffer.from(bytes);
    const digest = sha256(buffer);
    this.blobs.set(digest, buffer);
    return digest;
  }

  addManifest(repository: string, mediaType: string, document: object, tag?: string): string {
    const bytes = Buffer.from(JSON.stringify(document, null, 2)); // pretty-printed: byte-for-byte matters
    const digest = sha256(bytes);
    this.manifests.set(digest, { mediaType, bytes });
    if (tag) this.tag(repository, tag, digest);
    return digest;
  }

  tag(repository: string, tag: string, digest: string): void {
    const tags = this.tags.get(repository) ?? new Map<string, string>();
    this.tags.set(repository, tags.set(tag, digest));
  }

  /**
   * An artifact (a signature, an SBOM) whose `subject` is `subject`: an empty config, one layer of
   * `payload`, listed by the referrers API. Returns the artifact manifest's descriptor as the
   * referrers list shows it, and its layer's digest.
   */
  addReferrer(repository: string, subject: string, artifactType: string, payload: string) {
    const config = this.addBlob('{}');
    const layer = this.addBlob(payload);
    const subjectManifest = this.manifests.get(subject)!;
    const annotations = { 'org.example.payload': payload };
    const manifest = this.addManifest(repository, OCI_MANIFEST, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: 2 },
      layers: [{ mediaType: 'application/octet-stream', digest: layer, size: Buffer.from(payload).length }],
      subject: { mediaType: subjectManifest.mediaType, digest: subject, size: subjectManifest.bytes.length },
      annotations,
    });
    const size = this.manifests.get(manifest)!.bytes.length;
    const descriptor = { mediaType: OCI_MANIFEST, digest: manifest, size, artifactType, annotations };
    this.referrers.set(subject, [...(this.referrers.get(subject) ?? []), descriptor]);
    return { descriptor, layer };
  }

  /** What a client without the referrers API pushes: the referrers of `subject` as an index, tagged `sha256-<hex>`. */
  tagReferrers(repository: string, subject: string): string {
    const manifests = this.referrers.get(subject) ?? [];
    const tag = subject.replace(':', '-');
    return this.addManifest(
      repository,
      OCI_INDEX,
      { schemaVersion: 2, mediaType: OCI_INDEX, manifests },
      tag,
    );
  }

  /** A one-layer image (config + layer + manifest) tagged `tag`; returns its digests. */
  addImage(repository: string, tag: string, layer: Buffer | string = `layer of ${repository}:${tag}`) {
    const config = this.addBlob(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
    const layerDigest = this.addBlob(layer);
    const manifest = this.addManifest(
      repository,
      OCI_MANIFEST,
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: config,
          size: this.blobs.get(config)!.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar',
            digest: layerDigest,
            size: Buffer.from(layer).length,
          },
        ],
      },
      tag,
    );
    return { manifest, config, layer: layerDigest };
  }
}

export type FakeAuth =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; realm: string; service: string; tokens: TokenIssuer };

export interface RegistryOptions {
  auth: FakeAuth;
  /** Answer blob GETs with 307 to this origin (`<cdn>/blobs/<digest>`), like Docker Hub. */
  blobRedirect?: string;
  /** Extra response headers on every answer (rate limits). */
  headers?: Record<string, string>;
  /** `none`: no referrers API, a 404 like distribution 2.8's; a number: referrers pages of that size. */
  referrers?: 'none' | number;
}

export function registryHandlers(content: RegistryContent, options: RegistryOptions): RequestHandler[] {
  const authorize = (request: Request, repository: string): Response | undefined => {
    const header = request.headers.get('authorization') ?? '';
    const { auth } = options;
    if (auth.kind === 'basic') {
      const expected = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
      if (header === expected) return undefined;
      return ociError(401, 'UNAUTHORIZED', 'authentication required', {
        'www-authenticate': 'Basic realm="fake"',
      });
    }
    if (auth.kind === 'bearer') {
      const token = header.startsWith('Bearer ') ? header.slice(7) : '';
      if (auth.tokens.allows(token, repository)) return undefined;
      return ociError(401, 'UNAUTHORIZED', 'authentication required', {
        'www-authenticate': `Bearer realm="${auth.realm}",service="${auth.service}",scope="repository:${repository}:pull"`,
      });
    }
    return undefined;
  };

  const withHeaders = (response: Response) => {
    for (const [k, v] of Object.entries(options.headers ?? {})) response.headers.set(k, v);
    return response;
  };

  const route =
    (handle: (request: Request, repository: string, rest: string[]) => Response) =>
    ({ request }: { request: Request }) => {
      const path = new URL(request.url).pathname;
      const match = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/(.+)$/.exec(path);
      if (!match) return withHeaders(ociError(404, 'NAME_UNKNOWN', 'no such path'));
      const denied = authorize(request, match[1]!);
      if (denied) return withHeaders(denied);
      return withHeaders(handle(request, match[1]!, [match[2]!, match[3]!]));
    };

  const serve = route((request, repository, [kind, ref]) => {
    if (kind === 'manifests') {
      const digest = ref!.includes(':') ? ref! : content.tags.get(repository)?.get(ref!);
      const manifest = digest ? content.manifests.get(digest) : undefined;
      if (!digest || !manifest) return ociError(404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      const headers = {
        'content-type': manifest.mediaType,
        'content-length': String(manifest.bytes.length),
        'docker-content-digest': digest,
      };
      return new HttpResponse(request.method === 'HEAD' ? null : manifest.bytes, { headers });
    }
    if (kind === 'blobs') {
      const blob = content.blobs.get(ref!);
      if (!blob) return ociError(404, 'BLOB_UNKNOWN', 'blob unknown');
      if (options.blobRedirect && request.method === 'GET') {
        return new HttpResponse(null, {
          status: 307,
          headers: { location: `${options.blobRedirect}/blobs/${ref}` },
        });
      }
      return serveBytes(request, blob);
    }
    if (kind === 'tags' && ref === 'list') {
      const url = new URL(request.url);
      const all = [...(content.tags.get(repository)?.keys() ?? [])].sort();
      if (all.length === 0) return ociError(404, 'NAME_UNKNOWN', 'repository name not known to registry');
      const last = url.searchParams.get('last');
      const n = Number(url.searchParams.get('n') ?? all.length);
      const after = last ? all.filter((t) => t > last) : all;
      const page = after.slice(0, n);
      const headers: Record<string, string> = {};
      if (after.length > n)
        headers.link = `</v2/${repository}/tags/list?last=${page.at(-1)}&n=${n}>; rel="next"`;
      return HttpResponse.json({ name: repository, tags: page }, { headers });
    }
    if (kind === 'referrers') {
      if (options.referrers === 'none')
        return new HttpResponse('404 page not found\n', {
          status: 404,
          headers: { 'content-type': 'text/plain' },
        });
      const url = new URL(request.url);
      const type = url.searchParams.get('artifactType');
      let manifests = content.referrers.get(ref!) ?? [];
      if (type) manifests = manifests.filter((m) => (m as { artifactType?: string }).artifactType === type);
      const headers: Record<string, string> = {
        'content-type': OCI_INDEX,
        ...(type ? { 'oci-filters-applied': 'artifactType' } : {}),
      };
      if (typeof options.referrers === 'number') {
        const size = options.referrers;
        const page = Number(url.searchParams.get('page') ?? 1);
        if (manifests.length > page * size) {
          const next = new URLSearchParams({
            ...(type ? { artifactType: type } : {}),
            page: String(page + 1),
          });
          headers.link = `</v2/${repository}/referrers/${ref}?${next}>; rel="next"`;
        }
        manifests = manifests.slice((page - 1) * size, page * size);
      }
      return HttpResponse.json({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }, { headers });
    }
    return ociError(404, 'NAME_UNKNOWN', 'no such path');
  });

  return [
    http.get('/v2/', () => withHeaders(HttpResponse.json({}))),
    http.get('/v2/*', serve),
    http.head('/v2/*', serve),
  ];
}

/** A CDN host serving blobs by digest, with Range support; it never needs credentials. */
export function cdnHandlers(content: RegistryContent): RequestHandler[] {
  const serve = ({ request }: { request: Request }) => {
    const digest = new URL(request.url).pathname.replace(/^\/blobs\//, '');
    const blob = content.blobs.get(digest);
    return blob ? serveBytes(request, blob) : new HttpResponse('no such blob', { status: 404 });
  };
  return [http.get('/blobs/*', serve), http.head('/blobs/*', serve)];
}

export function serveBytes(request: Request, bytes: Buffer): Response {
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.get('range') ?? '');
  const head = request.method === 'HEAD';
  if (range) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
    if (start >= bytes.length) return new HttpResponse(null, { status: 416 });
    return new HttpResponse(head ? null : bytes.subarray(start, end + 1), {
      status: 206,
      headers: {
        'content-range': `bytes ${start}-${end}/${bytes.length}`,
        'content-length': String(end - start + 1),
        'content-type': 'application/octet-stream',
      },
    });
  }
  return new HttpResponse(head ? null : bytes, {
    headers: { 'content-length': String(bytes.length), 'content-type': 'application/octet-stream' },
  });
}

export function ociError(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
) {
  return HttpResponse.json({ errors: [{ code, message }] }, { status, headers });
}

/** A token endpoint (`GET /token?service=&scope=`) issuing opaque tokens for the scopes asked. */
export class TokenIssuer {
  private readonly issued = new Map<string, Set<string>>();
  private counter = 0;
  constructor(
    readonly options: { expiresIn?: number; credentials?: { username: string; password: string } } = {},
  ) {}

  allows(token: string, repository: string): boolean {
    return this.issued.get(token)?.has(repository) ?? false;
  }

  /** Revokes every token issued so far (the registry then answers 401 again). */
  revokeAll(): void {
    this.issued.clear();
  }

  handlers(): RequestHandler[] {
    return [
      http.get('/token', ({ request }) => {
        const { credentials } = this.options;
        if (credentials) {
          const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
          if (request.headers.get('authorization') !== expected)
            return ociError(401, 'UNAUTHORIZED', 'bad credentials');
        }
        const url = new URL(request.url);
        const repositories = url.searchParams
          .getAll('scope')
          .map((scope) => /^repository:(.+):[a-z,*]+$/.exec(scope)?.[1])
          .filter((r): r is string => r !== undefined);
        const token = `token-${++this.counter}`;
        this.issued.set(token, new Set(repositories));
        return HttpResponse.json({
          token,
          ...(this.options.expiresIn !== undefined ? { expires_in: this.options.expiresIn } : {}),
        });
      }),
    ];
  }
}
