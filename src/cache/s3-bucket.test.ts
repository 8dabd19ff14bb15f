/**
 * The S3 bucket's behaviour that a real S3 server cannot be made to show on demand: the SDK loaded only
 * when used, what counts as "not there", retries of server errors, timeouts, errors without secrets.
 * Served by msw over loopback, which records every request; test/e2e/s3-bucket.test.ts runs the rest
 * against a real RADOS Gateway.
 */
import { Readable } from 'node:stream';
import { delay, HttpResponse, http } from 'msw';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type LoopbackServer, startLoopback } from '../../test/support/msw-loopback.js';
import { RegistryError } from '../errors.js';
import { createS3Bucket, type S3BucketOptions } from './s3-bucket.js';

// vi.mock factories run when a module is first imported: this records which SDK packages were loaded.
const loaded = vi.hoisted(() => [] as string[]);
vi.mock('@aws-sdk/client-s3', async (original) => {
  loaded.push('@aws-sdk/client-s3');
  return original();
});
vi.mock('@aws-sdk/s3-request-presigner', async (original) => {
  loaded.push('@aws-sdk/s3-request-presigner');
  return original();
});

const credentials = {
  accessKeyId: 'AKIAUNITTESTKEY00001',
  secretAccessKey: 'unit-test-secret-key-not-for-logs',
};
const xmlError = (code: string, status: number) =>
  new HttpResponse(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>m</Message></Error>`,
    {
      status,
      headers: { 'content-type': 'application/xml' },
    },
  );

describe('S3 bucket', () => {
  let server: LoopbackServer;
  const opened: ReturnType<typeof createS3Bucket>[] = [];
  const open = (extra: Partial<S3BucketOptions> = {}) => {
    const bucket = createS3Bucket({
      bucket: 'bkt',
      region: 'us-east-1',
      endpoint: server.url,
      credentials,
      prefix: 'pc',
      ...extra,
    });
    opened.push(bucket);
    return bucket;
  };

  beforeAll(async () => {
    vi.stubEnv('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'true');
    server = await startLoopback();
  });
  afterEach(() => {
    for (const bucket of opened.splice(0)) bucket.close();
    server.requests.length = 0;
  });
  afterAll(async () => {
    await server.close();
    vi.unstubAllEnvs();
  });

  it('loads the AWS SDK on its first operation, not on import or creation; the presigner only to presign', async () => {
    expect(loaded).toEqual([]);
    const bucket = open();
    expect(loaded).toEqual([]);

    server.use(http.head(`${server.url}/bkt/pc/k`, () => new HttpResponse(null, { status: 404 })));
    expect(await bucket.head('k')).toBeNull();
    expect(loaded).toEqual(['@aws-sdk/client-s3']);

    const url = new URL(await bucket.presignGet('k', 30));
    expect(url.pathname).toBe('/bkt/pc/k');
    expect(url.searchParams.get('X-Amz-Expires')).toBe('30');
    expect(loaded).toEqual(['@aws-sdk/client-s3', '@aws-sdk/s3-request-presigner']);
  });

  it('answers a HEAD with the size, or null on 404 only', async () => {
    server.use(
      http.head(
        `${server.url}/bkt/pc/there`,
        () => new HttpResponse(null, { headers: { 'content-length': '1234' } }),
      ),
      http.head(`${server.url}/bkt/pc/missing`, () => new HttpResponse(null, { status: 404 })),
      http.head(`${server.url}/bkt/pc/denied`, () => new HttpResponse(null, { status: 403 })),
    );
    const bucket = open();
    expect(await bucket.head('there')).toBe(1234);
    expect(await bucket.head('missing')).toBeNull();
    await expect(bucket.head('denied')).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    // A refusal is not retried: it will not change.
    expect(server.count('HEAD', '/bkt/pc/denied')).toBe(1);
  });

  it('answers a GET of a missing key with null, of a missing bucket with an error', async () => {
    server.use(
      http.get(`${server.url}/bkt/pc/missing`, () => xmlError('NoSuchKey', 404)),
      http.get(`${server.url}/bkt/pc/nobucket`, () => xmlError('NoSuchBucket', 404)),
    );
    const bucket = open();
    expect(await bucket.get('missing', 100)).toBeNull();
    await expect(bucket.get('nobucket', 100)).rejects.toMatchObject({ detail: { reason: 'NoSuchBucket' } });
  });

  it('retries server errors and SlowDown, then fails with a 503 naming the store and no credentials', async () => {
    server.use(
      http.head(`${server.url}/bkt/pc/broken`, () => new HttpResponse(null, { status: 500 })),
      http.get(`${server.url}/bkt/pc/busy`, () => xmlError('SlowDown', 503)),
    );
    const bucket = open({ maxAttempts: 3 });

    const error = await bucket.head('broken').catch((e: unknown) => e);
    expect(server.count('HEAD', '/bkt/pc/broken')).toBe(3);
    expect(error).toBeInstanceOf(RegistryError);
    expect(error).toMatchObject({
      status: 503,
      code: 'UNAVAILABLE',
      detail: { store: 's3', bucket: 'bkt', endpoint: server.url },
    });
    const e = error as RegistryError;
    expect(e.message).toContain(`S3 bucket bkt at ${server.url}: head pc/broken failed`);
    const shown = `${e.message} ${JSON.stringify(e.toBody())}`;
    expect(shown).not.toContain(credentials.secretAccessKey);
    expect(shown).not.toContain(credentials.accessKeyId);

    await expect(bucket.read('busy')).rejects.toMatchObject({ status: 503, detail: { reason: 'SlowDown' } });
    expect(server.count('GET', '/bkt/pc/busy')).toBe(3);
  });

  it('gives up on a server that accepts and never answers, within its idle timeout per try', async () => {
    server.use(
      http.head(`${server.url}/bkt/pc/silent`, async () => {
        await delay('infinite');
        return new HttpResponse(null);
      }),
    );
    const bucket = open({ idleTimeoutMs: 200, maxAttempts: 2 });
    await expect(bucket.head('silent')).rejects.toMatchObject({
      status: 503,
      detail: { reason: 'TimeoutError' },
    });
    expect(server.count('HEAD', '/bkt/pc/silent')).toBe(2);
  });

  it('aborts the multipart upload, and never completes it, when a part cannot be stored', async () => {
    server.use(
      http.post(`${server.url}/bkt/pc/blob`, ({ request }) =>
        new URL(request.url).searchParams.has('uploads')
          ? HttpResponse.xml(
              '<InitiateMultipartUploadResult><Bucket>bkt</Bucket><Key>pc/blob</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>',
            )
          : HttpResponse.xml('<CompleteMultipartUploadResult></CompleteMultipartUploadResult>'),
      ),
      http.put(`${server.url}/bkt/pc/blob`, () => xmlError('InternalError', 500)),
      http.delete(`${server.url}/bkt/pc/blob`, () => new HttpResponse(null, { status: 204 })),
    );
    const bucket = open({ maxAttempts: 2, partSize: 5 * 1024 * 1024 });
    const bytes = Buffer.alloc(6 * 1024 * 1024, 1);
    const upload = bucket.createUpload('blob', {
      readRange: (start, end) => Readable.from([bytes.subarray(start, end + 1)]),
    });
    upload.extend(5 * 1024 * 1024);
    upload.extend(bytes.length);

    await expect(upload.complete(bytes.length)).rejects.toMatchObject({ status: 503, code: 'UNAVAILABLE' });
    const calls = server.requests.map((r) => {
      const query = new URLSearchParams(r.search);
      return `${r.method} ${['uploads', 'uploadId', 'partNumber'].filter((p) => query.has(p)).join('+')}`;
    });
    expect(calls.filter((c) => c === 'POST uploads')).toHaveLength(1);
    // Both parts, each tried maxAttempts times (a fresh body each time); then the abort, and no
    // CompleteMultipartUpload.
    expect(calls.filter((c) => c === 'PUT uploadId+partNumber')).toHaveLength(4);
    expect(calls.filter((c) => c === 'DELETE uploadId')).toHaveLength(1);
    expect(calls.filter((c) => c === 'POST uploadId')).toEqual([]);
    expect(server.requests.find((r) => r.method === 'DELETE')?.search).toContain('uploadId=up-1');
  });

  it('names its endpoint without user info', () => {
    const bucket = open({ endpoint: 'http://someone:pw@127.0.0.1:9/base/' });
    expect(bucket.endpoint).toBe('http://127.0.0.1:9/base/');
    expect(open({ endpoint: undefined, region: 'eu-west-1' }).endpoint).toBe('s3.eu-west-1.amazonaws.com');
  });
});
