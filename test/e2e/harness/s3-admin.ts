/**
 * @module A look at an RGW bucket behind pullcache's back: the SDK with the harness user's keys,
 * to create buckets and list what they hold (objects and multipart uploads in progress).
 */
import { createHash } from 'node:crypto';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import type { Rgw } from './ceph-rgw.js';

export interface S3Admin {
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Every object key under `prefix`, sorted. */
  objectKeys(bucket: string, prefix?: string): Promise<string[]>;
  /** Every object under `prefix` with its size, sorted by key. */
  objects(bucket: string, prefix?: string): Promise<{ key: string; size: number }[]>;
  /** `sha256:<hex>` of an object's bytes, read back from the bucket. */
  objectDigest(bucket: string, key: string): Promise<string>;
  /** Keys of multipart uploads in progress under `prefix`, sorted. */
  uploadKeys(bucket: string, prefix?: string): Promise<string[]>;
  close(): void;
}

export function createS3Admin(rgw: Rgw): S3Admin {
  const client = new S3Client({
    endpoint: rgw.endpoint,
    region: rgw.region,
    forcePathStyle: true,
    credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async objectKeys(bucket, prefix = '') {
      return (await this.objects(bucket, prefix)).map((o) => o.key);
    },
    async objects(bucket, prefix = '') {
      const found: { key: string; size: number }[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        for (const object of page.Contents ?? [])
          if (object.Key) found.push({ key: object.Key, size: object.Size ?? 0 });
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return found.sort((a, b) => a.key.localeCompare(b.key));
    },
    async objectDigest(bucket, key) {
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const hash = createHash('sha256');
      for await (const chunk of object.Body as AsyncIterable<Uint8Array>) hash.update(chunk);
      return `sha256:${hash.digest('hex')}`;
    },
    async uploadKeys(bucket, prefix = '') {
      const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (page.Uploads ?? []).flatMap((u) => (u.Key ? [u.Key] : [])).sort();
    },
    close: () => client.destroy(),
  };
}

/** The environment that gives pullcache (or the SDK's default chain in this process) the RGW user. */
export function rgwEnvironment(rgw: Rgw): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: rgw.accessKeyId,
    AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
    // Node 20 is supported until 2027; the SDK's notice about it is noise in test output.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
}
