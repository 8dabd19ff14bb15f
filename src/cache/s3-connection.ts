/**
 * @module The S3 client behind the S3 store: the AWS SDK is loaded with `import()` on first use, so a
 * disk-only process never loads it; configured for S3-compatible servers; failures as 503s naming the store.
 */
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { RegistryError, storageUnavailable } from '../errors.js';

export interface S3ConnectionOptions {
  bucket: string;
  region: string;
  /** An S3-compatible server (RGW, MinIO, ...); absent: AWS's own endpoint for the region. */
  endpoint?: string | undefined;
  /** Path-style URLs (`endpoint/bucket/key`); default: on when an endpoint is given (what RGW, MinIO want). */
  forcePathStyle?: boolean | undefined;
  /**
   * Where credentials come from; absent: the SDK's standard chain (AWS_ACCESS_KEY_ID and friends,
   * shared files, web identity, instance metadata). pullcache never reads or logs them itself.
   */
  credentials?: S3ClientConfig['credentials'];
  /** Tries per request, the first included; the SDK backs off between them. */
  maxAttempts?: number | undefined;
  /** How long a connection may take to open. */
  connectTimeoutMs?: number | undefined;
  /** How long a socket may stay silent mid-request or mid-body before the request fails. */
  idleTimeoutMs?: number | undefined;
}

// Three tries ride out a restarting gateway or a SlowDown burst without making a client wait long;
// the SDK's backoff between them is 100 ms-scale. A store in the same network accepts in well under
// 5 s, and 30 s of silence mid-transfer is a dead connection, as for the upstreams.
export const S3_CONNECTION_DEFAULTS = {
  maxAttempts: 3,
  connectTimeoutMs: 5_000, // 5s
  idleTimeoutMs: 30_000, // 30s
} as const;

export type S3Sdk = typeof import('@aws-sdk/client-s3');

const ignore = () => {};
const QUIET_LOGGER = { trace: ignore, debug: ignore, info: ignore, warn: ignore, error: ignore };

export interface S3Connection {
  readonly bucket: string;
  /** The endpoint as errors and logs name it: no user info, no query. */
  readonly endpointLabel: string;
  /** The SDK module and one client for this store, loaded and created on the first call. */
  get(): Promise<{ sdk: S3Sdk; client: S3Client }>;
  /** Runs one SDK call; any failure (after the SDK's own retries) becomes a storageUnavailable. */
  call<T>(what: string, fn: (sdk: S3Sdk, client: S3Client) => Promise<T>): Promise<T>;
  /** The error a failed call surfaces as: 503 UNAVAILABLE naming bucket and endpoint, never credentials. */
  failure(what: string, error: unknown): RegistryError;
  /** Closes the client's sockets; a later call opens new ones. */
  close(): void;
}

export function createS3Connection(options: S3ConnectionOptions): S3Connection {
  const endpointLabel = labelOf(options.endpoint, options.region);
  let loading: Promise<{ sdk: S3Sdk; client: S3Client }> | undefined;

  const failure = (what: string, error: unknown): RegistryError => {
    if (error instanceof RegistryError) return error;
    const reason = reasonOf(error);
    const status = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
    return storageUnavailable(
      `S3 bucket ${options.bucket} at ${endpointLabel}: ${what} failed (${reason}${status ? `, HTTP ${status}` : ''})`,
      error,
      { reason, store: 's3', bucket: options.bucket, endpoint: endpointLabel },
    );
  };

  const get = () => {
    loading ??= import('@aws-sdk/client-s3').then((sdk) => ({
      sdk,
      client: new sdk.S3Client({
        region: options.region,
        ...(options.endpoint !== undefined ? { endpoint: options.endpoint } : {}),
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
        ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
        // RGW 16 (and other S3-compatible servers) refuse aws-chunked bodies with trailing
        // checksums (a streamed PutObject fails with 411): checksums only where S3 requires them.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: options.maxAttempts ?? S3_CONNECTION_DEFAULTS.maxAttempts,
        // Without a logger the SDK warns on the console for every failed try of a stream body (which
        // it cannot retry); s3-upload.ts retries those itself and failures surface as our errors.
        logger: QUIET_LOGGER,
        retryMode: 'standard',
        requestHandler: {
          connectionTimeout: options.connectTimeoutMs ?? S3_CONNECTION_DEFAULTS.connectTimeoutMs,
          socketTimeout: options.idleTimeoutMs ?? S3_CONNECTION_DEFAULTS.idleTimeoutMs,
        },
      }),
    }));
    return loading;
  };

  return {
    bucket: options.bucket,
    endpointLabel,
    get,
    failure,
    async call(what, fn) {
      const { sdk, client } = await get();
      try {
        return await fn(sdk, client);
      } catch (error) {
        throw failure(what, error);
      }
    },
    close() {
      const current = loading;
      loading = undefined;
      void current?.then(({ client }) => client.destroy()).catch(() => {});
    },
  };
}

/** S3's answer for a key (or bucket) that is not there: NotFound for HEAD (no body), else NoSuchKey. */
export function isMissingKey(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.$metadata?.httpStatusCode === 404 && (e.name === 'NotFound' || e.name === 'NoSuchKey');
}

// A word for logs and metrics: the socket error code (ECONNREFUSED), else the S3 error code
// (SlowDown, AccessDenied) or the SDK's error name (TimeoutError, CredentialsProviderError).
function reasonOf(error: unknown): string {
  const e = error as { code?: unknown; Code?: unknown; name?: unknown } | undefined;
  for (const value of [e?.code, e?.Code, e?.name])
    if (typeof value === 'string' && value !== '') return value;
  return 'unknown';
}

function labelOf(endpoint: string | undefined, region: string): string {
  if (endpoint === undefined) return `s3.${region}.amazonaws.com`;
  try {
    const url = new URL(endpoint);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return '(invalid endpoint)';
  }
}
