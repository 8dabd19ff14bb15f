import type { LookupAddress } from 'node:dns';
import { createServer, type LookupFunction, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { tableLookup } from '../../test/support/dns-table.js';
import {
  ADDRESS_FORBIDDEN,
  createGuardedConnector,
  guardedLookup,
  isForbiddenAddress,
} from './address-guard.js';

describe('isForbiddenAddress', () => {
  it('refuses IPv4 link-local and metadata addresses', () => {
    for (const address of ['169.254.169.254', '169.254.0.1', '169.254.255.255', '100.100.100.200']) {
      expect(isForbiddenAddress(address), address).toBe(true);
    }
  });

  it('allows loopback, private and public IPv4', () => {
    for (const address of [
      '127.0.0.1',
      '10.0.0.1',
      '192.168.1.1',
      '172.17.0.2',
      '8.8.8.8',
      '169.253.255.255',
    ]) {
      expect(isForbiddenAddress(address), address).toBe(false);
    }
    expect(isForbiddenAddress('100.100.100.201')).toBe(false);
    expect(isForbiddenAddress('169.255.0.0')).toBe(false);
  });

  it('refuses IPv6 link-local (fe80::/10, with or without zone and brackets) and the AWS IPv6 metadata address', () => {
    for (const address of [
      'fe80::1',
      'FE80::abcd:1',
      'febf::1',
      'fe80::1%eth0',
      '[fe80::1]',
      'fd00:ec2::254',
    ]) {
      expect(isForbiddenAddress(address), address).toBe(true);
    }
    expect(isForbiddenAddress('fd00:ec2:0:0:0:0:0:254')).toBe(true);
  });

  it('allows IPv6 loopback, ULA and global addresses', () => {
    for (const address of ['::1', '::', 'fd00::1', 'fd00:ec2::253', 'fec0::1', '2001:db8::1', '[::1]']) {
      expect(isForbiddenAddress(address), address).toBe(false);
    }
  });

  it('sees IPv4 addresses inside IPv6 ones (mapped, compatible, NAT64), in dotted and hex notation', () => {
    for (const address of [
      '::ffff:169.254.169.254',
      '::FFFF:a9fe:a9fe',
      '0:0:0:0:0:ffff:a9fe:a9fe',
      '::ffff:100.100.100.200',
      '::169.254.169.254',
      '64:ff9b::169.254.169.254',
      '64:ff9b::a9fe:a9fe',
    ]) {
      expect(isForbiddenAddress(address), address).toBe(true);
    }
    expect(isForbiddenAddress('::ffff:127.0.0.1')).toBe(false);
    expect(isForbiddenAddress('::ffff:10.0.0.1')).toBe(false);
  });

  it('does not judge what is not an IP address', () => {
    expect(isForbiddenAddress('metadata.google.internal')).toBe(false);
    expect(isForbiddenAddress('')).toBe(false);
  });
});

const lookupOnce = (lookup: LookupFunction, host: string, all: boolean) =>
  new Promise<{ error: NodeJS.ErrnoException | null; address: string | LookupAddress[] }>((resolve) =>
    lookup(host, { all }, (error, address) => resolve({ error, address })),
  );

describe('guardedLookup', () => {
  const { lookup } = tableLookup({
    'registry.test': ['127.0.0.1', '::1'],
    'metadata.test': ['169.254.169.254'],
    'mixed.test': ['10.0.0.1', 'fe80::1'],
  });
  const guarded = guardedLookup(lookup);

  it('passes allowed answers through, single and all', async () => {
    expect(await lookupOnce(guarded, 'registry.test', false)).toEqual({ error: null, address: '127.0.0.1' });
    const all = await lookupOnce(guarded, 'registry.test', true);
    expect(all.error).toBeNull();
    expect((all.address as LookupAddress[]).map((a) => a.address)).toEqual(['127.0.0.1', '::1']);
  });

  it('fails a name that resolves to a forbidden address, naming both', async () => {
    const { error } = await lookupOnce(guarded, 'metadata.test', false);
    expect(error).toMatchObject({
      code: ADDRESS_FORBIDDEN,
      host: 'metadata.test',
      address: '169.254.169.254',
    });
  });

  it('fails a name when any of its addresses is forbidden', async () => {
    const { error } = await lookupOnce(guarded, 'mixed.test', true);
    expect(error).toMatchObject({ code: ADDRESS_FORBIDDEN, host: 'mixed.test', address: 'fe80::1' });
  });

  it('passes DNS errors on unchanged', async () => {
    expect((await lookupOnce(guarded, 'nowhere.test', true)).error).toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('createGuardedConnector', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const connectOnce = (
    connector: ReturnType<typeof createGuardedConnector>,
    hostname: string,
    port: string,
  ) =>
    new Promise<{ error: Error | null; socket: Socket | null }>((resolve) =>
      connector({ hostname, protocol: 'http:', port }, (error, socket) =>
        resolve({ error, socket: socket as Socket | null }),
      ),
    );

  it('refuses a forbidden IP literal before any socket connects', async () => {
    const connect = vi.spyOn(Socket.prototype, 'connect');
    const connector = createGuardedConnector({ timeout: 1000 });
    for (const hostname of ['169.254.169.254', '[fe80::1]', '[::ffff:169.254.169.254]', '100.100.100.200']) {
      const { error, socket } = await connectOnce(connector, hostname, '80');
      expect(error, hostname).toMatchObject({ code: ADDRESS_FORBIDDEN });
      expect(socket).toBeNull();
    }
    expect(connect).not.toHaveBeenCalled();
  });

  it('refuses a name that resolves to a metadata address, and connects to one that resolves to loopback', async () => {
    const accepted: Socket[] = [];
    const server = createServer((socket) => accepted.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = String((server.address() as { port: number }).port);
    const { lookup, asked } = tableLookup({
      'registry.test': ['127.0.0.1'],
      'metadata.test': ['127.0.0.1', '169.254.169.254'],
    });
    const connector = createGuardedConnector({ timeout: 1000, lookup });
    try {
      const refused = await connectOnce(connector, 'metadata.test', port);
      expect(refused.error).toMatchObject({ code: ADDRESS_FORBIDDEN, host: 'metadata.test' });
      expect(asked).toEqual(['metadata.test']);
      const ok = await connectOnce(connector, 'registry.test', port);
      expect(ok.error).toBeNull();
      ok.socket!.destroy();
      // Only the allowed name got a connection, though both resolve to the listening address.
      await vi.waitFor(() => expect(accepted).toHaveLength(1));
    } finally {
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
