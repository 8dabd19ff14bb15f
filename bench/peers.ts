/** @module The two caches compared: pullcache (dist/cli.js) and docker-registry in proxy mode, each with an empty cache. */
import type { ManagedProcess } from '../test/e2e/harness/process.js';
import { startPullcache } from '../test/e2e/harness/pullcache.js';
import { type Registry, startRegistry } from '../test/e2e/harness/registry.js';

export const PEER_NAMES = ['pullcache', 'distribution'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

export interface Peer {
  name: PeerName;
  /** http://127.0.0.1:PORT */
  url: string;
  process: ManagedProcess;
  /** Stops it by pid and removes its cache folder. */
  stop(): Promise<void>;
}

/**
 * Both answer `library/<name>` from the one upstream: pullcache routes names without a registry to
 * its default, docker.io, configured here as the upstream; distribution's proxy has only one.
 */
export async function startPeer(name: PeerName, upstream: Registry): Promise<Peer> {
  if (name === 'pullcache') {
    const pullcache = await startPullcache({ registries: { 'docker.io': { url: upstream.url } } });
    return { name, url: pullcache.url, process: pullcache.process, stop: () => pullcache.stop() };
  }
  const registry = await startRegistry({ proxy: { remoteurl: upstream.url } });
  return { name, url: registry.url, process: registry.process, stop: () => registry.stop() };
}

/** Throws with the tail of its output if the peer has exited. */
export function assertRunning(peer: Peer, during: string): void {
  const status = peer.process.exitStatus();
  if (status === undefined) return;
  throw new Error(`${peer.name} exited (${status}) during ${during}\n${peer.process.output().slice(-4_000)}`);
}
