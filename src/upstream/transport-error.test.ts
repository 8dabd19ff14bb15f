import { describe, expect, it } from 'vitest';
import { upstreamAnswered, upstreamCoolingDown, upstreamInvalid, upstreamRateLimited } from '../errors.js';
import { ADDRESS_FORBIDDEN } from './address-guard.js';
import { answerOf, transportError } from './transport-error.js';

const failure = (code: string, name = 'Error') => Object.assign(new Error(code), { code, name });

describe('answerOf: what a failed request says about its upstream', () => {
  it.each([
    'ECONNREFUSED',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ENOTFOUND',
    'EAI_AGAIN',
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'ETIMEDOUT',
  ])('%s: nobody answered', (code) => {
    expect(answerOf(transportError('docker.io', failure(code)))).toBe('none');
  });

  it.each(['ECONNRESET', 'UND_ERR_SOCKET'])('%s: something was there and hung up', (code) => {
    expect(answerOf(transportError('docker.io', failure(code)))).toBe('answered');
  });

  it('an answer that is not HTTP, an error answer or bad content: it answered', () => {
    const parser = Object.assign(new Error('bad header'), { name: 'HTTPParserError', code: 'HPE_INVALID' });
    expect(answerOf(transportError('docker.io', parser))).toBe('answered');
    expect(answerOf(upstreamAnswered('docker.io', 500, 'UNAVAILABLE'))).toBe('answered');
    expect(answerOf(upstreamInvalid('docker.io', 'sent garbage'))).toBe('answered');
  });

  it('an aborted request, a refused address or something that is not a RegistryError: no verdict', () => {
    expect(answerOf(transportError('docker.io', failure('UND_ERR_ABORTED')))).toBe('unknown');
    expect(answerOf(transportError('docker.io', failure('ABORT_ERR', 'AbortError')))).toBe('unknown');
    const forbidden = Object.assign(new Error('forbidden'), {
      code: ADDRESS_FORBIDDEN,
      host: 'metadata',
      address: '169.254.169.254',
    });
    expect(answerOf(transportError('docker.io', forbidden))).toBe('unknown');
    expect(answerOf(new TypeError('a bug'))).toBe('unknown');
  });

  it('our own refusals carry their Retry-After and are recognisable as ours', () => {
    const cooling = upstreamCoolingDown('docker.io', 7);
    expect(cooling.status).toBe(503);
    expect(cooling.headers['retry-after']).toBe('7');
    const limited = upstreamRateLimited('docker.io', 3600, { 'ratelimit-remaining': '0;w=21600' });
    expect(limited.status).toBe(429);
    expect(limited.code).toBe('TOOMANYREQUESTS');
    expect(limited.headers).toEqual({ 'ratelimit-remaining': '0;w=21600', 'retry-after': '3600' });
  });
});
