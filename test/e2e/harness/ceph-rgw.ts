/**
 * @module A real S3 server for the S3 store's tests: Ceph's RADOS Gateway (16.x) on a private
 * one-node cluster (one monitor, one memstore OSD), every path in a temp folder, every port free.
 */

// Why each setting (measured here, see FIELD-NOTES): `auth … = none` with `ms mon client mode = crc`
// (radosgw's default `secure` mode cannot be met without cephx and it retries forever with -13);
// pool size 1 and chooseleaf type 0 so one OSD makes every placement group active; the short paxos
// intervals take `radosgw-admin user create` from ~9 s to well under one; memstore keeps the OSD in
// RAM, so it starts in seconds and leaves nothing on disk. No manager daemon: nothing here needs one
// (autoscaling is off). Two instances never meet: each has its own fsid, monitor ports, beast port
// and folder (sockets, logs, data); the OSD picks free ports in 6800-7300 itself.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandError, run } from './command.js';
import { freePort } from './ports.js';
import { type ManagedProcess, startProcess, waitForHttp } from './process.js';
import { makeTempDir, removeDir } from './temp-dir.js';

export interface Rgw {
  /** http://127.0.0.1:PORT (path-style buckets). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Any region signs for RGW's default zone group; this is the one the SDK is given. */
  region: string;
  dir: string;
  /** Milliseconds from the first command to radosgw answering. */
  startupMs: number;
  pids(): { mon: number; osd: number; rgw: number };
  /** radosgw's output so far (its request log among it), for a failing test's message. */
  output(): string;
  /** Stops radosgw only (by pid); the cluster keeps its data. */
  stopGateway(): Promise<void>;
  /** Starts radosgw again on the same port and waits until it answers. */
  startGateway(): Promise<void>;
  /** stopGateway() then startGateway(): "the object store went away and came back". */
  restart(): Promise<void>;
  /** Stops every daemon by pid and removes the folder. */
  stop(): Promise<void>;
}

const RGW_NAME = 'client.rgw.a';
// Cluster commands against a monitor that is starting or an OSD that is not up yet retry inside
// ceph; these bound them so a broken cluster fails the suite instead of hanging it.
const COMMAND_TIMEOUT_MS = 60_000;

export async function startRgw(): Promise<Rgw> {
  const started = Date.now();
  const dir = await makeTempDir('ceph');
  const [monV1, monV2, rgwPort] = [await freePort(), await freePort(), await freePort()];
  const fsid = randomUUID();
  const conf = join(dir, 'ceph.conf');
  for (const sub of ['run', 'mon', 'osd', 'rgw', 'crash']) await mkdir(join(dir, sub));
  await writeFile(conf, cephConf({ dir, fsid, monV1, monV2, rgwPort }));

  const procs: ManagedProcess[] = [];
  const daemon = (name: string, command: string, args: string[]) => {
    const proc = startProcess(name, command, ['--conf', conf, ...args], {
      logFile: join(dir, `${name}.log`),
    });
    procs.push(proc);
    return proc;
  };
  const ceph = async (command: string, args: string[]) =>
    (await run(command, ['--conf', conf, ...args], { timeoutMs: COMMAND_TIMEOUT_MS })).stdout;

  const accessKeyId = `E2E${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(30).toString('base64url');

  try {
    const monmap = join(dir, 'monmap');
    await run('monmaptool', [
      '--create',
      '--fsid',
      fsid,
      '--addv',
      'a',
      `[v2:127.0.0.1:${monV2},v1:127.0.0.1:${monV1}]`,
      monmap,
    ]);
    await ceph('ceph-mon', ['--mkfs', '-i', 'a', '--monmap', monmap]);
    const mon = daemon('ceph-mon', 'ceph-mon', ['-f', '-i', 'a']);

    // `ceph osd new` waits for the monitor itself; the timeout bounds a monitor that never forms.
    const osdUuid = randomUUID();
    const osdId = (await ceph('ceph', ['--connect-timeout', '30', 'osd', 'new', osdUuid])).trim();
    await mkdir(join(dir, 'osd', osdId));
    await ceph('ceph-osd', ['--mkfs', '-i', osdId, '--osd-uuid', osdUuid]);
    const osd = daemon('ceph-osd', 'ceph-osd', ['-f', '-i', osdId]);

    // Creates the zone, its pools (which waits for the OSD to be up) and the user.
    await createUser(ceph, accessKeyId, secretAccessKey).catch((error: unknown) => {
      throw withOutputs(error, [mon, osd]);
    });

    const endpoint = `http://127.0.0.1:${rgwPort}`;
    let rgw = await launchGateway();

    async function stopGateway(): Promise<void> {
      await rgw.stop();
    }
    async function restartGateway(): Promise<void> {
      if (rgw.exitStatus() === undefined) throw new Error('radosgw is already running');
      rgw = await launchGateway();
    }
    async function launchGateway(): Promise<ManagedProcess> {
      const proc = daemon('radosgw', 'radosgw', ['-f', '-n', RGW_NAME]);
      await waitForHttp(`${endpoint}/`, { process: proc, timeoutMs: COMMAND_TIMEOUT_MS });
      return proc;
    }

    return {
      endpoint,
      accessKeyId,
      secretAccessKey,
      region: 'us-east-1',
      dir,
      startupMs: Date.now() - started,
      pids: () => ({ mon: mon.pid, osd: osd.pid, rgw: rgw.pid }),
      output: () => rgw.output(),
      stopGateway,
      startGateway: restartGateway,
      async restart() {
        await stopGateway();
        await restartGateway();
      },
      async stop() {
        await stopAll(procs);
        await removeDir(dir);
      },
    };
  } catch (error) {
    await stopAll(procs);
    await removeDir(dir);
    throw error;
  }
}

function cephConf(o: { dir: string; fsid: string; monV1: number; monV2: number; rgwPort: number }): string {
  const d = o.dir;
  return `${[
    '[global]',
    `fsid = ${o.fsid}`,
    'mon initial members = a',
    `mon host = [v2:127.0.0.1:${o.monV2},v1:127.0.0.1:${o.monV1}]`,
    'public addr = 127.0.0.1',
    'cluster addr = 127.0.0.1',
    'auth cluster required = none',
    'auth service required = none',
    'auth client required = none',
    'ms mon client mode = crc',
    'osd pool default size = 1',
    'osd pool default min size = 1',
    'osd pool default pg num = 8',
    'osd pool default pgp num = 8',
    'osd pool default pg autoscale mode = off',
    'osd crush chooseleaf type = 0',
    'mon allow pool size one = true',
    'mon max pg per osd = 1000',
    'paxos propose interval = 0.05',
    'paxos min wait = 0.01',
    'osd objectstore = memstore',
    // Everything a daemon writes stays in the folder: no /var/lib/ceph, /var/run/ceph, /var/log/ceph.
    `run dir = ${d}/run`,
    `admin socket = ${d}/run/$name.asok`,
    `pid file = ${d}/run/$name.pid`,
    `crash dir = ${d}/crash`,
    `mon data = ${d}/mon/$id`,
    `osd data = ${d}/osd/$id`,
    `keyring = ${d}/$name.keyring`,
    // Logs go to the daemons' stderr, which the harness captures (and copies to DIR/NAME.log).
    'log to file = false',
    'log to stderr = true',
    'err to stderr = true',
    'mon cluster log to file = false',
    '',
    `[${RGW_NAME}]`,
    `rgw frontends = beast endpoint=127.0.0.1:${o.rgwPort}`,
    `rgw data = ${d}/rgw`,
  ].join('\n')}\n`;
}

async function createUser(
  ceph: (command: string, args: string[]) => Promise<string>,
  accessKeyId: string,
  secretAccessKey: string,
): Promise<void> {
  try {
    await ceph('radosgw-admin', [
      'user',
      'create',
      '--uid',
      'e2e',
      '--display-name',
      'e2e',
      '--access-key',
      accessKeyId,
      '--secret-key',
      secretAccessKey,
    ]);
  } catch (error) {
    // Its command line holds the secret key and its stdout the user's keys: keep them out of the message.
    if (error instanceof CommandError) {
      throw new Error(
        `radosgw-admin user create failed (exit ${error.result.code})\n${redact(error.result.stderr, secretAccessKey).slice(-4_000)}`,
      );
    }
    throw error;
  }
}

function redact(text: string, secret: string): string {
  return text.split(secret).join('<secret>');
}

function withOutputs(error: unknown, procs: ManagedProcess[]): Error {
  const tails = procs.map((p) => `\n--- ${p.name} output ---\n${p.output().slice(-3_000)}`).join('');
  return new Error(`${error instanceof Error ? error.message : String(error)}${tails}`);
}

// radosgw first (it talks to the OSD), then the OSD, then the monitor; memstore OSDs write their RAM
// to disk on a clean stop, which nobody needs here, so the grace is short.
async function stopAll(procs: ManagedProcess[]): Promise<void> {
  for (const proc of [...procs].reverse()) await proc.stop(2_000);
}
