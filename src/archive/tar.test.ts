import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readExactly, readTarEntries, TarWriter } from './tar.js';

const dir = mkdtempSync(join(tmpdir(), 'pullcache-tar-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tar', () => {
  it('reads back what it writes: directories, files, a name longer than 100 bytes', async () => {
    const file = join(dir, 'a.tar');
    const long = `blobs/sha512/${'ab'.repeat(64)}`;
    const handle = await open(file, 'w+');
    const tar = new TarWriter(handle);
    await tar.directory('blobs');
    await tar.bytes('index.json', Buffer.from('{}'));
    await tar.bytes(long, Buffer.alloc(1000, 7));
    await tar.bytes('empty', Buffer.alloc(0));
    await tar.end();
    const entries = [];
    for await (const entry of readTarEntries(handle)) entries.push(entry);
    expect(entries.map(({ name, type, size }) => [name, type, size])).toEqual([
      ['blobs', 'directory', 0],
      ['index.json', 'file', 2],
      [long, 'file', 1000],
      ['empty', 'file', 0],
    ]);
    const body = Buffer.alloc(1000);
    await readExactly(handle, body, entries[2]!.offset);
    expect(body.equals(Buffer.alloc(1000, 7))).toBe(true);
    await handle.close();
  });

  it('refuses a file that is not tar, and a body that claims more bytes than it holds', async () => {
    const file = join(dir, 'b.tar');
    const handle = await open(file, 'w+');
    await handle.write(Buffer.alloc(1024, 'x'));
    await expect(readTarEntries(handle).next()).rejects.toThrow(/bad header checksum/);
    await handle.close();

    const cut = join(dir, 'c.tar');
    const writing = await open(cut, 'w+');
    await new TarWriter(writing).bytes('x', Buffer.alloc(5000));
    await writing.truncate(512 + 100);
    await expect(readTarEntries(writing).next()).rejects.toThrow(/ends inside an entry/);
    await writing.close();
  });
});
