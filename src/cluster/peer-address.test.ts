/** Member names: one canonical HOST:PORT form, whatever way an address was written or found. */
import { describe, expect, it } from 'vitest';
import { deriveSelf, formatPeerAddress, isDnsServer, parsePeerAddress, selfAddress } from './peer-address.js';

describe('parsePeerAddress / formatPeerAddress', () => {
  it.each([
    ['10.0.0.11:5000', '10.0.0.11:5000'],
    ['[FD00:0:0::11]:5000', '[fd00::11]:5000'],
    ['[::ffff:10.0.0.1]:5000', '[::ffff:a00:1]:5000'],
    ['Pullcache-0.Peers.svc:5000', 'pullcache-0.peers.svc:5000'],
  ])('reads %s as %s', (input, canonical) => {
    const parsed = parsePeerAddress(input);
    expect(parsed).not.toBeNull();
    expect(formatPeerAddress(parsed!)).toBe(canonical);
    expect(formatPeerAddress(parsePeerAddress(canonical)!)).toBe(canonical);
  });

  it('formats what DNS answers (bare IPv6) the way the config writes it', () => {
    expect(formatPeerAddress({ host: 'fd00:0::11', port: 5000 })).toBe('[fd00::11]:5000');
    expect(formatPeerAddress({ host: '127.0.0.2', port: 5000 })).toBe('127.0.0.2:5000');
  });

  it.each([
    '10.0.0.11',
    '10.0.0.11:',
    '10.0.0.11:0',
    '10.0.0.11:65536',
    'fd00::11:5000',
    '[10.0.0.1]:5000',
    '[fd00::zz]:5000',
    'http://10.0.0.11:5000',
    'bad_name:5000',
    '-x:5000',
    ' 10.0.0.11:5000',
  ])('refuses %j', (input) => {
    expect(parsePeerAddress(input)).toBeNull();
  });
});

describe('isDnsServer', () => {
  it('takes what Resolver.setServers takes', () => {
    for (const ok of ['127.0.0.1', '127.0.0.1:5353', '::1', '[::1]:53']) expect(isDnsServer(ok)).toBe(true);
    for (const bad of ['dns.example.com', 'dns.example.com:53', '127.0.0.1:x', '']) {
      expect(isDnsServer(bad)).toBe(false);
    }
  });
});

describe('deriveSelf', () => {
  const iface = (address: string, family: 'IPv4' | 'IPv6', internal = false, scopeid = 0) => ({
    address,
    family,
    internal,
    netmask: '',
    mac: '00:00:00:00:00:00',
    cidr: null,
    ...(family === 'IPv6' ? { scopeid } : {}),
  });

  it('uses a specific listen address as it is', () => {
    expect(deriveSelf('10.0.0.11:5000', {})).toBe('10.0.0.11:5000');
    expect(deriveSelf('[FD00::11]:5000', {})).toBe('[fd00::11]:5000');
  });

  it('for a wildcard listen, takes the first non-internal IPv4 address with the listen port', () => {
    const interfaces = {
      lo: [iface('127.0.0.1', 'IPv4', true), iface('::1', 'IPv6', true)],
      eth0: [iface('fe80::1', 'IPv6', false, 2), iface('fd00::11', 'IPv6'), iface('10.0.0.11', 'IPv4')],
    } as never;
    expect(deriveSelf('0.0.0.0:5000', interfaces)).toBe('10.0.0.11:5000');
    expect(deriveSelf('[::]:6000', interfaces)).toBe('10.0.0.11:6000');
  });

  it('falls back to a global IPv6 address, never a link-local one, else null', () => {
    const v6 = { eth0: [iface('fe80::1', 'IPv6', false, 2), iface('fd00::11', 'IPv6')] } as never;
    expect(deriveSelf('0.0.0.0:5000', v6)).toBe('[fd00::11]:5000');
    const none = {
      lo: [iface('127.0.0.1', 'IPv4', true)],
      eth0: [iface('fe80::1', 'IPv6', false, 2)],
    } as never;
    expect(deriveSelf('0.0.0.0:5000', none)).toBeNull();
  });
});

describe('selfAddress', () => {
  const eth0 = {
    eth0: [{ address: '10.0.0.11', family: 'IPv4', internal: false, netmask: '', mac: '', cidr: null }],
  } as never;

  it('is cluster.self when set', () => {
    const cluster = { self: '10.0.0.12:5000', port: 5000, peers: { dns: 'peers' } };
    expect(selfAddress({ listen: '0.0.0.0:5000', cluster }, eth0)).toBe('10.0.0.12:5000');
  });

  it('with dns, is at cluster.port (where the others reach every member), whatever the listen port', () => {
    const cluster = { port: 5000, peers: { dns: 'peers' } };
    expect(selfAddress({ listen: '0.0.0.0:8080', cluster }, eth0)).toBe('10.0.0.11:5000');
    expect(selfAddress({ listen: '10.0.0.13:8080', cluster }, eth0)).toBe('10.0.0.13:5000');
  });

  it('with a static list, is at the listen port', () => {
    const cluster = { port: 5000, peers: {} };
    expect(selfAddress({ listen: '0.0.0.0:8080', cluster }, eth0)).toBe('10.0.0.11:8080');
  });
});
