/**
 * @module Nodes of a test's own: one network namespace per node (its own loopback, so each node's
 * cache is at 127.0.0.1:5000 as in the DaemonSet) with a veth into a bridge of the test's own, on
 * addresses from the 198.18.0.0/15 benchmarking range. The bridge side is the "outside" (the
 * upstream registry listens there); the nodes reach each other across the bridge. Needs root.
 */
import { run } from './command.js';

export interface NetworkNode {
  /** The namespace's name. */
  namespace: string;
  /** The node's address on the bridge, e.g. 198.19.7.10. */
  address: string;
  /** Runs a command inside the node: `[...prefix, command, ...args]` (ip netns exec keeps the pid). */
  prefix: string[];
}

export interface TestNetwork {
  /** The bridge's own address: servers of the test listen there to be reached from the nodes. */
  outside: string;
  nodes: NetworkNode[];
  stop(): Promise<void>;
}

export async function startNetwork(count: number): Promise<TestNetwork> {
  // Unique per test process: names (15 characters at most for interfaces) and a /24 of 198.19.0.0/16.
  const id = process.pid % 100_000;
  const subnet = await freeSubnet(process.pid % 256);
  const bridge = `pcb${id}`;
  const nodes: NetworkNode[] = [];
  const ip = (...args: string[]) => run('ip', args);
  const stop = async () => {
    for (const node of nodes) await ip('netns', 'del', node.namespace).catch(() => {});
    await ip('link', 'del', bridge).catch(() => {});
  };
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    for (let i = 0; i < count; i++) {
      const node: NetworkNode = {
        namespace: `pullcache-e2e-${id}-n${i}`,
        address: `${subnet}.${10 + i}`,
        prefix: ['ip', 'netns', 'exec', `pullcache-e2e-${id}-n${i}`],
      };
      const [outer, inner] = [`pcv${id}n${i}`, `pcp${id}n${i}`];
      await ip('netns', 'add', node.namespace);
      nodes.push(node);
      await ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner);
      await ip('link', 'set', inner, 'netns', node.namespace);
      await ip('link', 'set', outer, 'master', bridge, 'up');
      const inside = (...args: string[]) => ip('-n', node.namespace, ...args);
      await inside('addr', 'add', `${node.address}/24`, 'dev', inner);
      await inside('link', 'set', inner, 'up');
      await inside('link', 'set', 'lo', 'up');
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { outside: `${subnet}.1`, nodes, stop };
}

/** `198.19.N` for the first N from `start` whose /24 no route on this machine uses yet. */
async function freeSubnet(start: number): Promise<string> {
  const routes = (await run('ip', ['-4', 'route', 'show'])).stdout;
  for (let n = 0; n < 256; n++) {
    const subnet = `198.19.${(start + n) % 256}`;
    if (!routes.includes(`${subnet}.`)) return subnet;
  }
  throw new Error('no free /24 in 198.19.0.0/16');
}
