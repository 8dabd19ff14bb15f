/**
 * @module The peer endpoint's request targets: the `/v2` pull API's own paths under the peer prefix,
 * with the registry as `?ns=` (as containerd names it), so names, tags and digests are checked by the
 * same grammar as every client request.
 */
import type { Route } from '../routing.js';
import { PEER_PATH_PREFIX } from './peer-auth.js';

/** `/_pullcache/peer/v2/library/demo/blobs/sha256:…?ns=docker.io` */
export function peerBlobTarget(route: Pick<Route, 'registry' | 'repository'>, digest: string): string {
  return `${PEER_PATH_PREFIX}/v2/${route.repository}/blobs/${digest}?ns=${encodeURIComponent(route.registry)}`;
}

/** `/_pullcache/peer/v2/library/demo/manifests/1.0?ns=docker.io` (a tag or a digest) */
export function peerManifestTarget(route: Pick<Route, 'registry' | 'repository'>, reference: string): string {
  return `${PEER_PATH_PREFIX}/v2/${route.repository}/manifests/${reference}?ns=${encodeURIComponent(route.registry)}`;
}
