/** @module A DNS lookup for tests that answers from a table, so names resolve without a DNS server. */
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';

/** Every name in `table` resolves to its addresses, any other is ENOTFOUND; `asked` records each name. */
export function tableLookup(table: Record<string, string[]>) {
  const asked: string[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    asked.push(hostname);
    const addresses = table[hostname];
    if (!addresses) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
      return;
    }
    const all: LookupAddress[] = addresses.map((address) => ({
      address,
      family: address.includes(':') ? 6 : 4,
    }));
    if (options.all) callback(null, all);
    else callback(null, all[0]!.address, all[0]!.family);
  };
  return { lookup, asked };
}
