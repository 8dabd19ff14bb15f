/** @module A minimal ustar writer: enough for image layers that containerd can unpack. */

const BLOCK = 512;
// A fixed mtime keeps layers byte-identical from run to run (2024-01-01T00:00:00Z).
const MTIME = 1_704_067_200;

export interface TarEntry {
  /** Relative path without a leading slash; directories without a trailing one. */
  name: string;
  /** File bytes; a directory when absent. */
  content?: Buffer;
  mode?: number;
}

/** The 512-byte header of one entry. */
export function tarHeader(name: string, size: number, kind: 'file' | 'directory', mode?: number): Buffer {
  const path = kind === 'directory' ? `${name}/` : name;
  if (Buffer.byteLength(path) > 100) throw new Error(`tar name longer than 100 bytes: ${path}`);
  const header = Buffer.alloc(BLOCK);
  header.write(path, 0, 100, 'utf8');
  octal(header, 100, 8, mode ?? (kind === 'directory' ? 0o755 : 0o644));
  octal(header, 108, 8, 0); // uid
  octal(header, 116, 8, 0); // gid
  octal(header, 124, 12, kind === 'directory' ? 0 : size);
  octal(header, 136, 12, MTIME);
  header.write(kind === 'directory' ? '5' : '0', 156, 1, 'ascii');
  header.write('ustar\u000000', 257, 8, 'ascii'); // POSIX magic "ustar\0" + version "00"
  header.write('root', 265, 32, 'ascii');
  header.write('root', 297, 32, 'ascii');
  // The checksum is computed with its own field read as eight spaces.
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return header;
}

/** Zero bytes that round an entry's content up to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** Two zero blocks end an archive. */
export const tarEnd = (): Buffer => Buffer.alloc(2 * BLOCK);

export function tarArchive(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const size = entry.content?.length ?? 0;
    parts.push(tarHeader(entry.name, size, entry.content ? 'file' : 'directory', entry.mode));
    if (entry.content) parts.push(entry.content, tarPadding(size));
  }
  parts.push(tarEnd());
  return Buffer.concat(parts);
}

function octal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'ascii');
}
