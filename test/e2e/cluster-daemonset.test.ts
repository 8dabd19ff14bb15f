/**
 * deploy/kubernetes/daemonset.yaml on three nodes of the test's own (network namespaces on a bridge,
 * each with its own loopback), as the kubelet would run it: the init container's script, unchanged,
 * writes each node's containerd hosts.toml files into a temp root; the node's pullcache runs with
 * the ConfigMap's config (only the upstream and the member list swapped for the test's); containerd
 * pulls with exactly the files the script wrote. A multi-platform image pulled on node A, then on B
 * and C, costs B and C no upstream request at all, and every node keeps its own verified copy.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { createCleanup } from './harness/cleanup.js';
import { CLUSTER_SECRET } from './harness/cluster.js';
import { run } from './harness/command.js';
import { type Containerd, startContainerd } from './harness/containerd.js';
import { allDigests } from './harness/image-digests.js';
import { type GeneratedImage, generateImage } from './harness/images.js';
import { type InitContainerRun, runInitContainer } from './harness/init-container.js';
import { type NetworkNode, startNetwork, type TestNetwork } from './harness/netns.js';
import { waitUntil } from './harness/process.js';
import { type Pullcache, startPullcache } from './harness/pullcache.js';
import { EXAMPLE_REGISTRIES, readProjectFile } from './harness/recipes.js';
import { pushImage } from './harness/skopeo.js';
import { makeTempDir, removeDir } from './harness/temp-dir.js';
import { startUpstream, type Upstream } from './harness/upstream.js';

const MANIFEST = 'deploy/kubernetes/daemonset.yaml';
// What a slim image's shell script may call; the init container's script needs no more.
const TOOLS = ['sh', 'mkdir', 'cp', 'mv', 'chown'];

interface Node {
  network: NetworkNode;
  init: InitContainerRun;
  pullcache: Pullcache;
  containerd: Containerd;
}

// biome-ignore lint/suspicious/noExplicitAny: parsed Kubernetes objects
type K8sObject = any;

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

describe('the DaemonSet on three nodes sharing their caches', () => {
  const cleanup = createCleanup();
  let network: TestNetwork;
  let upstream: Upstream;
  let image: GeneratedImage;
  let configMap: K8sObject;
  const nodes: Node[] = [];

  beforeAll(async () => {
    const work = cleanup.add(await makeTempDir('daemonset'), removeDir);
    network = cleanup.add(await startNetwork(3), (n) => n.stop());
    // The registry and its token server outside the nodes, on the bridge they all reach.
    upstream = cleanup.add(await startUpstream('token', undefined, network.outside), (u) => u.stop());
    image = await generateImage({ dir: join(work, 'demo'), seed: 'daemonset' });
    await pushImage(image, `${upstream.registry.host}/library/demo:1.0`, upstream.creds);

    const manifest = await readProjectFile(MANIFEST);
    configMap = parseAllDocuments(manifest)
      .map((d) => d.toJS() as K8sObject)
      .find((o) => o?.kind === 'ConfigMap');
    // The shipped config, but for the upstream (the test's registry), the members (no cluster DNS
    // here: the nodes' addresses, as the headless Service would list them) and peerTimeout.
    const config = parseYaml(configMap.data['config.yaml']);
    const port = config.cluster.port as number;
    config.registries = { 'docker.io': { url: upstream.registry.url, ...upstream.creds } };
    config.cluster.peers = { static: network.nodes.map((n) => `${n.address}:${port}`) };
    // On these shared 2-core machines a live node can be starved past the shipped 500ms, and would
    // be taken for a dead one (costing a second upstream download): the one other setting changed.
    config.cluster.peerTimeout = '2s';

    for (const [i, node] of network.nodes.entries()) {
      const root = cleanup.add(await makeTempDir(`daemonset-node${i}`), removeDir);
      const init = await runInitContainer(manifest, 'containerd-hosts', root, TOOLS);
      const pullcache = cleanup.add(
        await startPullcache({
          registries: {},
          configText: stringify(config),
          listen: config.listen,
          reachAt: `${node.address}:${port}`,
          prefix: node.prefix,
          storageDir: init.hostPath('/var/lib/pullcache'),
          // What the pod gets: its (host network) address from the downward API, the Secret's value.
          env: { POD_IP: node.address, PULLCACHE_PEER_SECRET: CLUSTER_SECRET },
        }),
        (p) => p.stop(),
      );
      const containerd = cleanup.add(await startContainerd('e2e', node.prefix), (c) => c.stop());
      nodes.push({ network: node, init, pullcache, containerd });
    }
  });
  afterAll(() => cleanup.run());
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const node of nodes)
        console.error(
          `--- pullcache on ${node.network.address} (tail) ---\n${node.pullcache.output().slice(-5_000)}`,
        );
    });
  });

  /** The node's own view of its cache (the network allow-list admits the node itself only). */
  const stats = async (node: Node) =>
    JSON.parse(
      (
        await run(node.network.prefix[0]!, [
          ...node.network.prefix.slice(1),
          'curl',
          '-sf',
          'http://127.0.0.1:5000/_pullcache/stats',
        ])
      ).stdout,
    ) as { downloadsInFlight: number };

  const hostsDir = (node: Node) => node.init.hostPath('/etc/containerd/certs.d');
  const ref = 'docker.io/library/demo:1.0';

  it("writes each node's hosts.toml files exactly as the ConfigMap has them", async () => {
    for (const node of nodes) {
      for (const registry of Object.keys(EXAMPLE_REGISTRIES)) {
        const written = await readFile(join(hostsDir(node), registry, 'hosts.toml'), 'utf8');
        expect(written, registry).toBe(configMap.data[`${registry}.toml`]);
      }
      expect(existsSync(join(hostsDir(node), 'docker.io', 'hosts.toml.new'))).toBe(false);
    }
  });

  it('pulls on node A from the upstream, then on B and C from the nodes: no upstream request for B and C', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    await a.containerd.pull(ref, { hostsDir: hostsDir(a), allPlatforms: true });
    const blobGets = () => upstream.registry.countRequests('GET', /\/blobs\/sha256:/, 200);
    const blobs = [
      ...new Set(image.platforms.flatMap((p) => [p.config.digest, ...p.layers.map((l) => l.digest)])),
    ];
    // Every blob once from the upstream, by its owner, for the whole cluster.
    expect(blobGets()).toBe(blobs.length);
    const afterA = upstream.registry.accessLog().length;

    for (const node of [b, c]) {
      await node.containerd.pull(ref, { hostsDir: hostsDir(node), allPlatforms: true });
      expect(await node.containerd.imageTarget(ref)).toEqual({
        mediaType: image.index.mediaType,
        digest: image.index.digest,
      });
      expect(await node.containerd.contentDigests()).toEqual(expect.arrayContaining(allDigests(image)));
    }
    expect(upstream.registry.accessLog().slice(afterA)).toEqual([]);
    expect(blobGets()).toBe(blobs.length);

    // Each node keeps its own verified copy of every blob.
    for (const node of nodes) {
      await waitUntil(
        `${node.network.address} to commit its downloads`,
        async () => (await stats(node)).downloadsInFlight === 0,
      );
      for (const digest of blobs) {
        const file = join(node.pullcache.storageDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
        expect(await sha256File(file), `${node.network.address}: ${digest}`).toBe(digest);
      }
    }
  });
});
