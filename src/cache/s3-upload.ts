/**
 * @module A multipart upload of bytes kept in a local file that grows (the S3 store's spool): full
 * parts are sent as they fill, each read back from the file, so memory per upload is a few stream
 * buffers whatever the part size. The object appears under its key only at complete(); abort()
 * drops every part. It does not hash: its caller (the blob download) verified the bytes before it
 * calls complete(), and only then.
 */

// The multipart upload is the S3 counterpart of the disk store's temp file: its parts are invisible
// to GET and LIST until CompleteMultipartUpload. Content smaller than one part never starts one: it
// is sent with one PutObject at complete(). Part bodies are streams, which the SDK does not retry
// (it cannot rewind them), so each part is tried here, with a fresh stream for every try.
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CompletedPart, S3Client } from '@aws-sdk/client-s3';
import type { RegistryError } from '../errors.js';
import { S3_CONNECTION_DEFAULTS, type S3Connection, type S3Sdk } from './s3-connection.js';

export interface S3Upload {
  /** The object's full key (prefix included). */
  readonly key: string;
  /** Bytes `0..size` of the file are there now: the parts they fill start uploading (no waiting). */
  extend(size: number): void;
  /**
   * Sends what is left of the `size` bytes, waits for every part and makes the object visible.
   * Throws a storageUnavailable when S3 fails; nothing is left behind then (the upload is aborted).
   */
  complete(size: number): Promise<void>;
  /** Drops what was uploaded; safe to call more than once, after a failed complete and during one. */
  abort(): Promise<void>;
}

export interface S3UploadOptions {
  /** Bytes per part (S3 wants at least 5 MiB for all but the last). */
  partSize: number;
  /** Parts uploading at once. */
  concurrency: number;
  /** The expected size when known: the part size grows so the upload stays within S3's 10,000 parts. */
  sizeHint?: number | undefined;
  /** Bytes `start..end` (inclusive) of the file as a new stream, for each try of a part. */
  readRange(start: number, end: number): Readable;
  /** Told the upload's id once S3 gave it, so that a crash leaves a record to clean up by. */
  onStarted?: (uploadId: string) => void;
  /** Tries per part, the first included. */
  maxAttempts?: number | undefined;
}

const MIN_PART_SIZE = 5 * 1024 * 1024; // S3's minimum for every part but the last
const MAX_PARTS = 10_000; // S3's limit per upload
const RETRY_BASE_MS = 100; // doubled per try, as the SDK's own backoff

interface Part {
  number: number;
  start: number;
  end: number;
}

export function createS3Upload(connection: S3Connection, key: string, options: S3UploadOptions): S3Upload {
  const { bucket } = connection;
  const maxAttempts = options.maxAttempts ?? S3_CONNECTION_DEFAULTS.maxAttempts;
  const partSize = Math.max(
    MIN_PART_SIZE,
    options.partSize,
    Math.ceil((options.sizeHint ?? 0) / (MAX_PARTS - 1)),
  );
  let queued = 0; // bytes given to parts so far
  let nextPartNumber = 1;
  const waiting: Part[] = [];
  const inFlight = new Set<Promise<void>>();
  const completed: CompletedPart[] = [];
  let uploadId: Promise<string> | undefined;
  let failure: RegistryError | undefined;
  let state: 'open' | 'completing' | 'done' = 'open';
  let aborting: Promise<void> | undefined;

  /** Runs one request, trying again (with a fresh body) on what may pass: 5xx, throttling, sockets. */
  async function send<T>(what: string, request: (sdk: S3Sdk, client: S3Client) => Promise<T>): Promise<T> {
    const { sdk, client } = await connection.get();
    for (let attempt = 1; ; attempt++) {
      try {
        return await request(sdk, client);
      } catch (error) {
        if (attempt >= maxAttempts || !mayPass(error) || aborting) throw connection.failure(what, error);
        await sleep(RETRY_BASE_MS * 2 ** (attempt - 1));
      }
    }
  }

  const startUpload = async () => {
    const out = await send('create multipart upload', (sdk, client) =>
      client.send(new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key })),
    );
    if (!out.UploadId) throw connection.failure('create multipart upload', new Error('no UploadId'));
    options.onStarted?.(out.UploadId);
    return out.UploadId;
  };

  function enqueue(start: number, end: number): void {
    if (nextPartNumber > MAX_PARTS) {
      failure ??= connection.failure('upload', new Error(`more than ${MAX_PARTS} parts`));
      return;
    }
    waiting.push({ number: nextPartNumber++, start, end });
    queued = end + 1;
  }

  function pump(): void {
    while (inFlight.size < options.concurrency && waiting.length > 0 && !failure && !aborting) {
      const part = waiting.shift()!;
      uploadId ??= startUpload();
      const tracked: Promise<void> = uploadId
        .then((id) =>
          send(`upload part ${part.number}`, (sdk, client) =>
            client.send(
              new sdk.UploadPartCommand({
                Bucket: bucket,
                Key: key,
                UploadId: id,
                PartNumber: part.number,
                Body: options.readRange(part.start, part.end),
                ContentLength: part.end + 1 - part.start,
              }),
            ),
          ),
        )
        .then((out) => {
          completed.push({ PartNumber: part.number, ETag: out.ETag });
        })
        .catch((error: unknown) => {
          failure ??= connection.failure(`upload part ${part.number}`, error);
        })
        .finally(() => {
          inFlight.delete(tracked);
          pump();
        });
      inFlight.add(tracked);
    }
  }

  /** Waits until no part is uploading and none that may still start is waiting. */
  async function settle(): Promise<void> {
    while (inFlight.size > 0) await Promise.all(inFlight);
  }

  const abort = (): Promise<void> => {
    state = 'done';
    waiting.length = 0;
    aborting ??= (async () => {
      // Parts still uploading could land after the abort and keep storage: let them settle first.
      await settle();
      const id = await uploadId?.catch(() => undefined);
      if (id === undefined) return;
      await send('abort multipart upload', (sdk, client) =>
        client.send(new sdk.AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id })),
      );
    })();
    return aborting;
  };

  async function failAndAbort(error: unknown): Promise<never> {
    await abort().catch(() => {
      // The stale-upload cleanup takes what an abort could not; the first error is the one to report.
    });
    throw error;
  }

  return {
    key,

    extend(size) {
      if (state !== 'open') return;
      while (size - queued >= partSize && !failure) enqueue(queued, queued + partSize - 1);
      pump();
    },

    async complete(size) {
      if (state !== 'open') throw new Error('complete after complete or abort');
      state = 'completing';
      try {
        if (uploadId === undefined && waiting.length === 0) {
          // Smaller than a part: one request. Retried here too (a stream body), like a part.
          await send('put object', (sdk, client) =>
            client.send(
              new sdk.PutObjectCommand({
                Bucket: bucket,
                Key: key,
                Body: size === 0 ? Buffer.alloc(0) : options.readRange(0, size - 1),
                ContentLength: size,
              }),
            ),
          );
          state = 'done';
          return;
        }
        if (size > queued) enqueue(queued, size - 1);
        pump();
        while (inFlight.size > 0 || (waiting.length > 0 && !failure && !aborting)) await settle();
        if (failure) throw failure;
        // An abort() that came while the parts settled wins: it may have dropped the upload already.
        if (aborting) throw new Error('aborted during complete');
        const id = await uploadId!;
        const parts = [...completed].sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
        // RGW answers with an empty ETag here (a known bug), so nothing relies on it.
        await send('complete multipart upload', (sdk, client) =>
          client.send(
            new sdk.CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key: key,
              UploadId: id,
              MultipartUpload: { Parts: parts },
            }),
          ),
        );
        state = 'done';
      } catch (error) {
        return failAndAbort(error);
      }
    },

    abort,
  };
}

/** Whether trying again may succeed: no answer, 5xx, throttling (429, SlowDown is a 503), 408. */
function mayPass(error: unknown): boolean {
  const status = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return status === undefined || status >= 500 || status === 429 || status === 408;
}
