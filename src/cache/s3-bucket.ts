/**
 * @module The S3 operations the S3 store is built on, for one bucket under one key prefix: head,
 * ranged reads, multipart uploads of a local file, small objects, listing, stale-upload cleanup,
 * presigned GETs.
 */

// Keys given here are relative to the prefix and come back so from list(). Nothing loads the AWS SDK
// until the first operation (see s3-connection.ts). Every S3 failure that outlasts the SDK's retries
// is a storageUnavailable naming bucket and endpoint; "not there" is null only where S3 says exactly
// that (a 404 for the key), never for a denied request or a server error.
import { Readable } from 'node:stream';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import type { ByteRange } from '../content.js';
import { createS3Connection, isMissingKey, type S3ConnectionOptions } from './s3-connection.js';
import { createS3Upload, type S3Upload, type S3UploadOptions } from './s3-upload.js';

export interface S3BucketOptions extends S3ConnectionOptions {
  /** Prepended to every key, e.g. `pullcache/` (a trailing `/` is added when missing). */
  prefix?: string | undefined;
  /** Bytes per multipart part. */
  partSize?: number | undefined;
  /** Parts uploading at once per writer. */
  partConcurrency?: number | undefined;
}

// 8 MiB parts, two at a time: a part on the wire while the next fills keeps a loopback or
// in-cluster link busy (parts are read back from the spool file, so they cost no memory). Presigned URLs live a minute: long enough for a client
// to follow a redirect, short enough that a leaked one is soon useless.
export const S3_BUCKET_DEFAULTS = {
  partSize: 8 * 1024 * 1024, // 8 MiB
  partConcurrency: 2,
  presignSeconds: 60, // 1 min
  listPageSize: 1_000, // S3's own maximum per page
} as const;

export interface ObjectRead {
  /** The bytes asked for; stream errors are storageUnavailable errors too. */
  body: Readable;
  /** Bytes in `body`. */
  length: number;
  /** The whole object's size. */
  size: number;
}

export interface ObjectInfo {
  size: number;
  lastModified: Date | undefined;
}

export interface ListedObject {
  /** Relative to the prefix. */
  key: string;
  size: number;
  lastModified: Date | undefined;
}

export type S3Bucket = ReturnType<typeof createS3Bucket>;

export function createS3Bucket(options: S3BucketOptions) {
  const connection = createS3Connection(options);
  const { bucket } = connection;
  const prefix = normalizePrefix(options.prefix);
  const full = (key: string) => `${prefix}${key}`;
  const partSize = options.partSize ?? S3_BUCKET_DEFAULTS.partSize;
  const partConcurrency = options.partConcurrency ?? S3_BUCKET_DEFAULTS.partConcurrency;

  /** The object's bytes (`range`: inclusive, within the object), or null when there is no such key. */
  function read(key: string, range?: ByteRange): Promise<ObjectRead | null> {
    const what = `get ${full(key)}`;
    return connection.call(what, async (sdk, client) => {
      let out: GetObjectCommandOutput;
      try {
        out = await client.send(
          new sdk.GetObjectCommand({
            Bucket: bucket,
            Key: full(key),
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
        );
      } catch (error) {
        if (isMissingKey(error) && (error as { name?: string }).name === 'NoSuchKey') return null;
        throw error;
      }
      const length = out.ContentLength ?? 0;
      const size = range ? totalOf(out.ContentRange) : length;
      if (size === null) throw new Error(`no size in Content-Range ${JSON.stringify(out.ContentRange)}`);
      const body = out.Body as Readable | undefined;
      return { body: guarded(body, length, (error) => connection.failure(what, error)), length, size };
    });
  }

  /**
   * The object's size and last change, or null when S3 answers 404. A HEAD has no body, so a missing
   * bucket is a 404 too: checkBucket() at start tells the two apart.
   */
  function stat(key: string): Promise<ObjectInfo | null> {
    return connection.call(`head ${full(key)}`, async (sdk, client) => {
      try {
        const out = await client.send(new sdk.HeadObjectCommand({ Bucket: bucket, Key: full(key) }));
        return { size: out.ContentLength ?? 0, lastModified: out.LastModified };
      } catch (error) {
        if (isMissingKey(error)) return null;
        throw error;
      }
    });
  }

  return {
    bucket,
    prefix,
    endpoint: connection.endpointLabel,

    /** Throws storageUnavailable unless the bucket exists and these credentials may use it. */
    checkBucket(): Promise<void> {
      return connection.call('head bucket', async (sdk, client) => {
        await client.send(new sdk.HeadBucketCommand({ Bucket: bucket }));
      });
    },

    stat,

    /** The object's size, or null when S3 answers 404 (see stat). */
    head: async (key: string): Promise<number | null> => (await stat(key))?.size ?? null,

    read,

    /**
     * A multipart upload to `key` of bytes the caller keeps in a file (`readRange` reads them back);
     * nothing is visible under the key until complete().
     */
    createUpload(
      key: string,
      upload: Pick<S3UploadOptions, 'readRange' | 'sizeHint' | 'onStarted'>,
    ): S3Upload {
      return createS3Upload(connection, full(key), {
        ...upload,
        partSize,
        concurrency: partConcurrency,
        maxAttempts: options.maxAttempts,
      });
    },

    /** Stores a small object (a manifest, a tag record) in one request. */
    put(key: string, bytes: Uint8Array, contentType?: string): Promise<void> {
      return connection.call(`put ${full(key)}`, async (sdk, client) => {
        await client.send(
          new sdk.PutObjectCommand({
            Bucket: bucket,
            Key: full(key),
            Body: bytes,
            ContentLength: bytes.length,
            ...(contentType !== undefined ? { ContentType: contentType } : {}),
          }),
        );
      });
    },

    /** A small object's bytes, or null when there is no such key; refuses objects over `maxBytes`. */
    async get(key: string, maxBytes: number): Promise<Buffer | null> {
      const found = await read(key);
      if (found === null) return null;
      if (found.size > maxBytes) {
        found.body.destroy();
        throw connection.failure(
          `get ${full(key)}`,
          new Error(`object of ${found.size} bytes over ${maxBytes}`),
        );
      }
      const chunks: Buffer[] = [];
      for await (const chunk of found.body) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },

    /** Removes the object; removing a key that is not there succeeds (S3's own semantics). */
    delete(key: string): Promise<void> {
      return connection.call(`delete ${full(key)}`, async (sdk, client) => {
        await client.send(new sdk.DeleteObjectCommand({ Bucket: bucket, Key: full(key) }));
      });
    },

    /** Every object whose key starts with `keyPrefix` (relative to the prefix), page by page. */
    async *list(
      keyPrefix = '',
      pageSize: number = S3_BUCKET_DEFAULTS.listPageSize,
    ): AsyncGenerator<ListedObject> {
      let token: string | undefined;
      do {
        const page = await connection.call(`list ${full(keyPrefix)}`, (sdk, client) =>
          client.send(
            new sdk.ListObjectsV2Command({
              Bucket: bucket,
              Prefix: full(keyPrefix),
              MaxKeys: pageSize,
              ...(token !== undefined ? { ContinuationToken: token } : {}),
            }),
          ),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined) continue;
          yield {
            key: object.Key.slice(prefix.length),
            size: object.Size ?? 0,
            lastModified: object.LastModified,
          };
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    },

    /**
     * Aborts multipart uploads under the prefix started before `now - olderThanMs`: what writers of a
     * crashed process left. Returns the keys (relative) whose uploads it aborted.
     */
    async abortStaleUploads(olderThanMs: number, now: Date = new Date()): Promise<string[]> {
      const cutoff = now.getTime() - olderThanMs;
      const aborted: string[] = [];
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await connection.call('list multipart uploads', (sdk, client) =>
          client.send(
            new sdk.ListMultipartUploadsCommand({
              Bucket: bucket,
              Prefix: prefix,
              ...(keyMarker !== undefined ? { KeyMarker: keyMarker } : {}),
              ...(uploadIdMarker !== undefined ? { UploadIdMarker: uploadIdMarker } : {}),
            }),
          ),
        );
        for (const upload of page.Uploads ?? []) {
          const { Key, UploadId, Initiated } = upload;
          if (Key === undefined || UploadId === undefined || Initiated === undefined) continue;
          if (Initiated.getTime() >= cutoff) continue;
          await connection.call(`abort multipart upload of ${Key}`, (sdk, client) =>
            client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId })),
          );
          aborted.push(Key.slice(prefix.length));
        }
        const more = page.IsTruncated === true;
        keyMarker = more ? page.NextKeyMarker : undefined;
        uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
      } while (keyMarker !== undefined);
      return aborted;
    },

    /** Aborts one multipart upload (a crashed writer's, from its record); one already gone is fine. */
    abortUpload(key: string, uploadId: string): Promise<void> {
      return connection.call(`abort multipart upload of ${full(key)}`, async (sdk, client) => {
        try {
          await client.send(
            new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: full(key), UploadId: uploadId }),
          );
        } catch (error) {
          // NoSuchUpload: completed, aborted or cleaned up already.
          if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404)
            throw error;
        }
      });
    },

    /** A URL that GETs the object without credentials for `expiresInSeconds`. */
    presignGet(key: string, expiresInSeconds: number = S3_BUCKET_DEFAULTS.presignSeconds): Promise<string> {
      return connection.call(`presign ${full(key)}`, async (sdk, client) => {
        const { getSignedUrl } = await import('@aws-sdk/s3-request-presigner');
        return getSignedUrl(client, new sdk.GetObjectCommand({ Bucket: bucket, Key: full(key) }), {
          expiresIn: expiresInSeconds,
        });
      });
    },

    /** Closes idle sockets; the next operation opens new ones. */
    close(): void {
      connection.close();
    },
  };
}

function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

function totalOf(contentRange: string | undefined): number | null {
  const match = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return match ? Number(match[1]) : null;
}

// The SDK's body is the HTTP response itself: its errors (a reset, the idle timeout) become the
// store's error, and a body that ends short of its length is an error rather than a quiet truncation.
function guarded(body: Readable | undefined, length: number, toError: (error: unknown) => Error): Readable {
  async function* chunks() {
    let seen = 0;
    try {
      if (body) {
        for await (const chunk of body) {
          seen += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      }
    } catch (error) {
      throw toError(error);
    }
    if (seen !== length) throw toError(new Error(`body ended after ${seen} of ${length} bytes`));
  }
  return Readable.from(chunks(), { objectMode: false });
}
