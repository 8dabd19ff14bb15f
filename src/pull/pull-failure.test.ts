import { describe, expect, it } from 'vitest';
import { VerificationError } from '../cache/temp-file.js';
import { notFound, RegistryError } from '../errors.js';
import { TooSlowError } from '../upstream/min-rate.js';
import { mapPullFailure, pullFailure } from './pull-failure.js';

const fsError = (syscall: string) =>
  Object.assign(new Error(`EIO: i/o error, ${syscall} '/data/blobs/x'`), {
    code: 'EIO',
    syscall,
    path: '/data/blobs/x',
  });

describe('pullFailure', () => {
  it('leaves RegistryErrors as they are', () => {
    const error = notFound();
    expect(pullFailure('docker.io', error)).toBe(error);
  });

  it('makes bytes that do not verify a 502 naming the registry', () => {
    const failure = pullFailure('quay.io', new VerificationError('content does not match sha256:ab'));
    expect(failure).toBeInstanceOf(RegistryError);
    expect(failure).toMatchObject({
      status: 502,
      code: 'DIGEST_INVALID',
      message: 'upstream registry quay.io sent a blob that does not verify: content does not match sha256:ab',
    });
  });

  it.each([
    [new TooSlowError('sent 5 B in 0.5s, below the minimum of 1.0 KiB/s'), 'PULLCACHE_UPSTREAM_TOO_SLOW'],
    [Object.assign(new Error('other side\nclosed'), { code: 'UND_ERR_SOCKET' }), 'UND_ERR_SOCKET'],
    [new Error('premature close'), 'Error'],
  ])('makes a plain transfer error a 502 with its message on one line (%s)', (error, reason) => {
    const failure = pullFailure('docker.io', error) as RegistryError;
    expect(failure).toBeInstanceOf(RegistryError);
    expect(failure.status).toBe(502);
    expect(failure.code).toBe('UNAVAILABLE');
    expect(failure.message).toBe(
      `transfer from upstream registry docker.io failed: ${error.message.replace(/\s+/g, ' ')}`,
    );
    expect(failure.detail).toMatchObject({ registry: 'docker.io', reason });
  });

  it('makes a file system error a 503 storage error, not the upstream’s fault', () => {
    const failure = pullFailure('docker.io', fsError('write')) as RegistryError;
    expect(failure).toMatchObject({
      status: 503,
      code: 'UNAVAILABLE',
      message: 'cache storage error: write failed',
    });
  });

  it('leaves our own bugs alone (the app logs them and answers 500)', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'size')");
    expect(pullFailure('docker.io', bug)).toBe(bug);
  });

  it('mapPullFailure passes results through and maps rejections', async () => {
    await expect(mapPullFailure('docker.io', Promise.resolve(7))).resolves.toBe(7);
    await expect(mapPullFailure('docker.io', Promise.reject(new Error('boom')))).rejects.toMatchObject({
      status: 502,
    });
  });
});
