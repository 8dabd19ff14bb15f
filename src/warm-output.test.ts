import type { WriteStream } from 'node:tty';
import { describe, expect, it } from 'vitest';
import { jsonLines, progressBar } from './warm-output.js';

function fakeTerminal() {
  const writes: string[] = [];
  return { stream: { columns: 80, write: (s: string) => writes.push(s) } as unknown as WriteStream, writes };
}

describe('warm output', () => {
  it('draws one redrawn bar per image on a terminal, then a summary line', () => {
    const { stream, writes } = fakeTerminal();
    const output = progressBar(stream);
    output.report({ event: 'plan', reference: 'docker.io/library/demo:1.0', blobs: 2, bytes: 2048 });
    output.bytes(1024);
    output.report({ event: 'done', reference: 'demo:1.0', blobs: 2, bytes: 2048, ms: 1500 });
    expect(writes[0]).toMatch(/^\rdocker\.io\/library\/demo:1\.0 \[\.{30}\] 0% 0 B \/ 2\.0 KiB/);
    expect(writes.some((w) => /\[#{30}\] 100%|\[#{15}\.{15}\] 50%/.test(w))).toBe(true);
    expect(writes.at(-1)).toBe('\rdemo:1.0: done: 2 blobs, 2.0 KiB in 1.5s\n');
    expect(writes.every((w) => !w.includes('\n') || w.endsWith('\n'))).toBe(true);
  });

  it('says FAILED with the reason for an image that could not be warmed', () => {
    const { stream, writes } = fakeTerminal();
    progressBar(stream).report({
      event: 'error',
      reference: 'nope:1',
      message: 'not found at upstream registry docker.io',
    });
    expect(writes.at(-1)).toBe('\rnope:1: FAILED: not found at upstream registry docker.io\n');
  });

  it('writes one JSON object per line for machines', () => {
    const lines: string[] = [];
    const output = jsonLines((line) => lines.push(line));
    output.report({ event: 'blob', reference: 'r', digest: 'sha256:x', size: 3, cache: 'miss' });
    output.bytes(3);
    expect(lines).toEqual(['{"event":"blob","reference":"r","digest":"sha256:x","size":3,"cache":"miss"}\n']);
  });
});
