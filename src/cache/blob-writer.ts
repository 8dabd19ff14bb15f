/**
 * @module What a store gives a blob download to write into: append, read back what is written
 * (clients of the download follow it), commit (durable, then visible) or abort (nothing visible).
 * The download hashes and verifies the bytes itself, so every store stores only verified blobs and
 * a download can go on verifying when its store fails (pass-through).
 */

export interface BlobWriter {
  /** Bytes accepted so far. */
  readonly size: number;
  /**
   * Appends the chunks. When it rejects (ENOSPC, EIO, ...) none of them counts: `size` is unchanged
   * and the same chunks may be written again.
   */
  write(chunks: Buffer[]): Promise<void>;
  /**
   * Fills `buffer[0..length)` with the bytes at `position` (below `size`). Works before and after
   * commit and after abort, until release(): readers behind the download finish what was written.
   */
  read(buffer: Buffer, length: number, position: number): Promise<void>;
  /** Makes the verified blob durable, then visible. On failure nothing is visible and nothing is left. */
  commit(): Promise<void>;
  /** Discards what was written; nothing becomes visible. Safe more than once, and while commit runs. */
  abort(): Promise<void>;
  /** Frees what reads hold (descriptors, space of a discarded file); read() fails afterwards. */
  release(): Promise<void>;
}

/** Whether a local write error may go away when room is made (eviction). */
export function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
