import { describe, expect, it } from 'vitest';
import { closedBeforeAnswer } from './http-agent.js';

const failure = (code: string) => Object.assign(new Error(code), { code });

describe('closedBeforeAnswer: a GET or HEAD that may go once more', () => {
  it.each(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])('%s: the connection closed under it', (code) => {
    expect(closedBeforeAnswer(failure(code))).toBe(true);
  });

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_ABORTED', 'ADDRESS_FORBIDDEN'])(
    '%s: not a closed connection',
    (code) => {
      expect(closedBeforeAnswer(failure(code))).toBe(false);
    },
  );

  it('anything without a code is not', () => {
    expect(closedBeforeAnswer(new Error('x'))).toBe(false);
    expect(closedBeforeAnswer(undefined)).toBe(false);
  });
});
