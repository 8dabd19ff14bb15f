/** @module A real DNS server for cluster membership: dnsmasq answering A/AAAA from a hosts file it re-reads on SIGHUP. */

// Observed here (dnsmasq 2.90): with --no-resolv and no upstream, a question it cannot answer from
// the hosts file is REFUSED, even AAAA for a name that has only A records. `--local=/#/` makes it
// answer every name from its own data, as a cluster DNS server does: NODATA for the missing
// family, NXDOMAIN for an unknown name. --no-daemon keeps it in the foreground, logging to stderr,
// without a pid file or a change of user; each (re-)read of the file logs "read FILE - N names".
import { chmod, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { type ManagedProcess, startProcess, waitUntil } from './process.js';
import { makeTempDir, removeDir } from './temp-dir.js';

export interface Dnsmasq {
  /** `127.0.0.1:PORT`, as `cluster.peers.resolver` and `Resolver.setServers` take it. */
  server: string;
  port: number;
  /** Its temp folder (hosts file, log); removed by stop(). */
  dir: string;
  process: ManagedProcess;
  /** Makes `name` resolve to exactly `addresses` (IPv4 → A, IPv6 → AAAA; none: unknown), once dnsmasq has re-read its file. */
  setRecords(name: string, addresses: string[]): Promise<void>;
  stop(): Promise<void>;
}

const START_ATTEMPTS = 3; // the UDP port may be taken although the TCP probe found it free

export async function startDnsmasq(records: Record<string, string[]> = {}): Promise<Dnsmasq> {
  const dir = await makeTempDir('dnsmasq');
  // Readable by anyone: should dnsmasq ever run as another user, it must still read the file.
  await chmod(dir, 0o755);
  const hostsFile = join(dir, 'hosts');
  const names = new Map(Object.entries(records));
  await writeHosts(hostsFile, names);

  const reads = (proc: ManagedProcess) => proc.output().split(`read ${hostsFile} - `).length - 1;
  let last: Error | undefined;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const proc = startProcess(
      'dnsmasq',
      'dnsmasq',
      [
        '--no-daemon',
        '--no-resolv',
        '--no-hosts',
        '--local=/#/',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        `--addn-hosts=${hostsFile}`,
      ],
      { logFile: join(dir, 'dnsmasq.log') },
    );
    try {
      await waitUntil('dnsmasq to read its hosts file', () => reads(proc) >= 1, {
        process: proc,
        timeoutMs: 10_000,
      });
    } catch (error) {
      await proc.stop();
      last = error as Error;
      continue;
    }
    let reloads = 1;
    return {
      server: `127.0.0.1:${port}`,
      port,
      dir,
      process: proc,
      async setRecords(name, addresses) {
        if (addresses.length === 0) names.delete(name);
        else names.set(name, addresses);
        await writeHosts(hostsFile, names);
        reloads++;
        const expected = reloads;
        process.kill(proc.pid, 'SIGHUP');
        await waitUntil('dnsmasq to re-read its hosts file', () => reads(proc) >= expected, {
          process: proc,
          timeoutMs: 10_000,
          intervalMs: 20,
        });
      },
      async stop() {
        await proc.stop();
        await removeDir(dir);
      },
    };
  }
  await removeDir(dir);
  throw new Error(`dnsmasq did not start after ${START_ATTEMPTS} attempts: ${last?.message}`);
}

/** Whole-file replace (write, then rename): a re-read never sees half a file. */
async function writeHosts(file: string, names: Map<string, string[]>): Promise<void> {
  const lines = [...names].flatMap(([name, addresses]) => addresses.map((address) => `${address} ${name}`));
  await writeFile(`${file}.new`, lines.length === 0 ? '' : `${lines.join('\n')}\n`, { mode: 0o644 });
  await rename(`${file}.new`, file);
}
