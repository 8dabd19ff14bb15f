/**
 * @module The bytes of a pass-through download (its store failed) that some attached client has not
 * taken yet: a few socket chunks, dropped as the slowest client moves past them. Memory stays
 * bounded because the download reads no more from the upstream until every client is close behind.
 */

export class MemoryWindow {
  private chunks: Buffer[] = [];
  /** Blob offset of the first byte held. */
  start: number;
  /** Bytes held. */
  bytes = 0;
  /** The most ever held at once (tests and logs: proof that memory stayed bounded). */
  peak = 0;

  constructor(start: number) {
    this.start = start;
  }

  /** Blob offset just past the last byte held. */
  get end(): number {
    return this.start + this.bytes;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.peak = Math.max(this.peak, this.bytes);
  }

  /** Drops whole chunks that end at or before `offset` (nobody needs them any more). */
  dropBefore(offset: number): void {
    while (this.chunks.length > 0 && this.start + this.chunks[0]!.length <= offset) {
      const first = this.chunks.shift()!;
      this.start += first.length;
      this.bytes -= first.length;
    }
  }

  /** Copies `length` bytes at blob offset `position` into `buffer` at `into`; they must be held. */
  copy(buffer: Buffer, into: number, length: number, position: number): void {
    if (position < this.start || position + length > this.end)
      throw new Error('pass-through bytes are no longer held');
    let offset = this.start;
    let copied = 0;
    for (const chunk of this.chunks) {
      const chunkEnd = offset + chunk.length;
      const at = position + copied;
      if (at < chunkEnd) {
        const n = Math.min(chunkEnd - at, length - copied);
        chunk.copy(buffer, into + copied, at - offset, at - offset + n);
        copied += n;
        if (copied === length) return;
      }
      offset = chunkEnd;
    }
  }
}
