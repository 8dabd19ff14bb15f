/**
 * @module The caches compared, each with an empty cache: pullcache (dist/cli.js) on disk, on S3 (RGW)
 * proxied and with redirects, and docker-registry in proxy mode on disk and with its S3 driver.
 */
import type { Rgw } from '../test/e2e/harness/ceph-rgw.js';
import type { ManagedProcess } from '../test/e2e/harness/process.js';
import { startPullcache } from '../test/e2e/harness/pullcache.js';
import { type Registry, startRegistry } from '../test/e2e/harness/registry.js';
import { rgwEnvironment } from '../test/e2e/harness/s3-admin.js';

export const PEER_NAMES = [
  'pullcache',
  'distribution',
  'pullcache-s3',
  'pullcache-s3-redirect',
  'distribution-s3',
] as const;
export type PeerName = (typeof PEER_NAMES)[number];

/** The peers that keep their cache in the bucket: the bench starts RGW only when one of them runs. */
export const S3_PEERS: readonly PeerName[] = ['pullcache-s3', 'pullcache-s3-redirect', 'distribution-s3'];

/** The bucket the S3 peers share, each under its own prefix. */
export const BENCH_BUCKET = 'bench';

export interface Peer {
  name: PeerName;
  /** http://127.0.0.1:PORT */
  url: string;
  process: ManagedProcess;
  /** Clients follow redirects (the bytes come from the bucket, not from the peer). */
  follow: boolean;
  /** Processes working for the peer (the RGW daemons), whose CPU is not "other processes'". */
  helperPids: number[];
  /** Stops it by pid and removes its cache folder. */
  stop(): Promise<void>;
}

/**
 * All answer `library/<name>` from the one upstream: pullcache routes names without a registry to
 * its default, docker.io, configured here as the upstream; distribution's proxy has only one.
 */
export async function startPeer(name: PeerName, upstream: Registry, rgw?: Rgw): Promise<Peer> {
  const registries = { 'docker.io': { url: upstream.url } };
  if (S3_PEERS.includes(name) && !rgw) throw new Error(`${name} needs the RADOS Gateway`);
  const helperPids = rgw ? Object.values(rgw.pids()) : [];
  const s3 = rgw && { bucket: BENCH_BUCKET, endpoint: rgw.endpoint, region: rgw.region, prefix: `${name}/` };
  if (name === 'pullcache' || name === 'pullcache-s3' || name === 'pullcache-s3-redirect') {
    const pullcache = await startPullcache({
      registries,
      ...(name === 'pullcache'
        ? {}
        : {
            storage: { s3: { ...s3, redirect: name === 'pullcache-s3-redirect' } },
            env: rgwEnvironment(rgw!),
          }),
    });
    return {
      name,
      url: pullcache.url,
      process: pullcache.process,
      follow: name === 'pullcache-s3-redirect',
      helperPids: name === 'pullcache' ? [] : helperPids,
      stop: () => pullcache.stop(),
    };
  }
  const registry = await startRegistry({
    proxy: { remoteurl: upstream.url },
    ...(name === 'distribution-s3'
      ? {
          s3: {
            regionendpoint: rgw!.endpoint,
            region: rgw!.region,
            bucket: BENCH_BUCKET,
            accesskey: rgw!.accessKeyId,
            secretkey: rgw!.secretAccessKey,
            rootdirectory: `/${name}`,
          },
        }
      : {}),
  });
  return {
    name,
    url: registry.url,
    process: registry.process,
    follow: false,
    helperPids: name === 'distribution' ? [] : helperPids,
    stop: () => registry.stop(),
  };
}

/** Throws with the tail of its output if the peer has exited. */
export function assertRunning(peer: Peer, during: string): void {
  const status = peer.process.exitStatus();
  if (status === undefined) return;
  throw new Error(`${peer.name} exited (${status}) during ${during}\n${peer.process.output().slice(-4_000)}`);
}
