/**
 * @module Just enough tar for OCI image layout archives: a writer (ustar headers, a PAX record for
 * names over 100 bytes, base-256 sizes past 8 GiB) and a reader of a tar file by positions (ustar,
 * PAX and GNU long names, as skopeo, containerd and GNU tar write them). Entry bodies stay in the
 * file: the reader gives their offset and size, so a 10 GiB layer is never held in memory.
 */
import type { FileHandle } from 'node:fs/promises';

const BLOCK = 512;
// A fixed mtime: the same cache exports to the same bytes (2024-01-01T00:00:00Z).
const MTIME = 1_704_067_200;
const OCTAL_SIZE_MAX = 0o77777777777; // 11 octal digits: 8 GiB - 1

export class TarError extends Error {
  override name = 'TarError';
}

/** Appends tar entries to a file handle, in order. */
export class TarWriter {
  private position = 0;

  constructor(private readonly handle: FileHandle) {}

  async directory(name: string): Promise<void> {
    await this.header(`${name.replace(/\/$/, '')}/`, 0, '5');
  }

  /** A file whose bytes `body` writes through `write` (exactly `size` of them). */
  async file(
    name: string,
    size: number,
    body: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
  ) {
    await this.header(name, size, '0');
    let written = 0;
    await body(async (chunk) => {
      written += chunk.length;
      if (written > size) throw new TarError(`${name}: more than its ${size} bytes`);
      await this.write(chunk);
    });
    if (written !== size) throw new TarError(`${name}: ${written} bytes instead of ${size}`);
    await this.pad(size);
  }

  async bytes(name: string, content: Uint8Array): Promise<void> {
    await this.file(name, content.length, (write) => write(content));
  }

  /** Two zero blocks end the archive. */
  async end(): Promise<void> {
    await this.write(Buffer.alloc(2 * BLOCK));
  }

  private async header(name: string, size: number, type: '0' | '5'): Promise<void> {
    if (Buffer.byteLength(name) > 100) {
      // A PAX extended header carries the long name for the entry after it.
      const record = paxRecord('path', name);
      await this.write(headerBlock('PaxHeader', record.length, 'x'));
      await this.write(record);
      await this.pad(record.length);
    }
    await this.write(headerBlock(name, size, type));
  }

  private async pad(size: number): Promise<void> {
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (padding > 0) await this.write(Buffer.alloc(padding));
  }

  private async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset, this.position);
      offset += bytesWritten;
      this.position += bytesWritten;
    }
  }
}

/** `<length> key=value\n`, the length counting itself. */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length++;
  return Buffer.from(`${length}${body}`);
}

function headerBlock(name: string, size: number, type: string): Buffer {
  const header = Buffer.alloc(BLOCK);
  header.write(name.slice(0, 100), 0, 100, 'utf8');
  octal(header, 100, 8, type === '5' ? 0o755 : 0o644);
  octal(header, 108, 8, 0);
  octal(header, 116, 8, 0);
  if (size > OCTAL_SIZE_MAX) {
    // GNU base-256: the high bit of the first byte set, the size big-endian in the rest.
    header[124] = 0x80;
    let rest = BigInt(size);
    for (let i = 135; i > 124; i--) {
      header[i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  } else octal(header, 124, 12, size);
  octal(header, 136, 12, MTIME);
  header.write(type, 156, 1, 'ascii');
  header.write('ustar\u000000', 257, 8, 'ascii');
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return header;
}

function octal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'ascii');
}

export interface TarEntry {
  /** Without a leading `./` or `/`. */
  name: string;
  type: 'file' | 'directory' | 'other';
  size: number;
  /** Where the entry's bytes start in the file. */
  offset: number;
}

/** The entries of a tar file, read by position (the bodies are not read). */
export async function* readTarEntries(handle: FileHandle): AsyncGenerator<TarEntry> {
  const fileSize = (await handle.stat()).size;
  const block = Buffer.alloc(BLOCK);
  let position = 0;
  let longName: string | null = null;
  let longSize: number | null = null;
  while (position + BLOCK <= fileSize) {
    await readExactly(handle, block, position);
    if (block.every((byte) => byte === 0)) return; // the end (two zero blocks; one is enough here)
    checkChecksum(block, position);
    const type = String.fromCharCode(block[156]!);
    const size =
      type === 'x' || type === 'L'
        ? parseSize(block.subarray(124, 136), position)
        : (longSize ?? parseSize(block.subarray(124, 136), position));
    if (type !== 'x' && type !== 'L') longSize = null;
    const offset = position + BLOCK;
    if (offset + size > fileSize) throw new TarError(`the archive ends inside an entry at byte ${position}`);
    position = offset + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L') {
      if (size > 1024 * 1024)
        throw new TarError(`an extended header of ${size} bytes at byte ${offset - BLOCK}`);
      const body = Buffer.alloc(size);
      await readExactly(handle, body, offset);
      if (type === 'L') longName = cString(body);
      else {
        const pax = paxFields(body);
        longName = pax.path ?? longName;
        longSize = pax.size ?? longSize;
      }
      continue;
    }
    if (type === 'g' || type === 'K') continue; // global PAX headers, GNU long link names
    const prefix =
      block.subarray(257, 263).toString('ascii') === 'ustar\u0000' ? cString(block.subarray(345, 500)) : '';
    const short = cString(block.subarray(0, 100));
    const name = (longName ?? (prefix ? `${prefix}/${short}` : short)).replace(/^(\.\/|\/)+/, '');
    longName = null;
    const kind =
      type === '0' || type === '\u0000' || type === '7' ? 'file' : type === '5' ? 'directory' : 'other';
    yield { name: kind === 'directory' ? name.replace(/\/$/, '') : name, type: kind, size, offset };
  }
}

/** Fills `buffer` from `position`; the file ending first is an error. */
export async function readExactly(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) throw new TarError('the archive ends early');
    filled += bytesRead;
  }
}

function checkChecksum(block: Buffer, position: number): void {
  const stored = Number.parseInt(cString(block.subarray(148, 156)).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (stored !== sum) throw new TarError(`not a tar archive (bad header checksum at byte ${position})`);
}

function parseSize(field: Buffer, position: number): number {
  if (field[0]! & 0x80) {
    let size = 0n;
    for (let i = 1; i < field.length; i++) size = (size << 8n) | BigInt(field[i]!);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarError(`an entry too large at byte ${position}`);
    return Number(size);
  }
  const text = cString(field).trim();
  const size = text === '' ? 0 : Number.parseInt(text, 8);
  if (!Number.isSafeInteger(size) || size < 0) throw new TarError(`a bad entry size at byte ${position}`);
  return size;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

/** The `path` and `size` of PAX records (`<length> key=value\n`, the length in bytes). */
function paxFields(body: Buffer): { path: string | null; size: number | null } {
  const fields = { path: null as string | null, size: null as number | null };
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString('ascii'));
    if (space < 0 || !Number.isSafeInteger(length) || length <= 0) break;
    const record = body.subarray(space + 1, at + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    const [key, value] = [record.slice(0, equals), record.slice(equals + 1)];
    if (key === 'path') fields.path = value;
    if (key === 'size' && /^\d+$/.test(value)) fields.size = Number(value);
    at += length;
  }
  return fields;
}
