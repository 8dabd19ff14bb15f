/**
 * The deployment recipes agree with the code and with each other: the container image, compose,
 * Kubernetes manifests, client examples and Grafana dashboard name the same port, paths, health
 * endpoints, registries and metrics that pullcache actually has, and every config they carry passes
 * its validation. (test/e2e/docker-engine.test.ts and client-recipes.test.ts run them for real.)
 */
import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { type Config, parseConfig } from '../../src/config.js';
import { createMetrics } from '../../src/metrics.js';
import { resolveRoute } from '../../src/routing.js';
import { parseDuration, parseSize } from '../../src/units.js';
import {
  EXAMPLE_PROXY,
  EXAMPLE_REGISTRIES,
  PROJECT_ROOT,
  parseToml,
  readProjectFile,
  type TomlTable,
  uncommentVariants,
} from '../e2e/harness/recipes.js';

// What the recipes' ${...} placeholders stand for; any value will do for validation.
const DOCKERHUB_ENV = { DOCKERHUB_USERNAME: 'me', DOCKERHUB_TOKEN: 'dckr_pat_placeholder' };
const PLACEHOLDER_ENV = {
  ...DOCKERHUB_ENV,
  POD_IP: '10.0.0.11',
  PULLCACHE_PEER_SECRET: 'a-placeholder-peer-secret-of-32-characters',
};

/** The config a recipe carries, validated as pullcache validates it. */
function validConfig(yamlText: string): Config {
  return parseConfig(parseYaml(yamlText), PLACEHOLDER_ENV);
}

const portOf = (config: Config) => Number(config.listen.slice(config.listen.lastIndexOf(':') + 1));

/** `5m`, `45`, `1m30s`-free durations from compose/Kubernetes, in milliseconds. */
function durationMs(value: unknown): number {
  const ms = parseDuration(value as string | number);
  if (ms === null) throw new Error(`not a duration: ${String(value)}`);
  return ms;
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile, read as Docker does: continuation lines joined, comments dropped.

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

function dockerInstructions(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  let stage = -1;
  const result: Instruction[] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const op = match[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    result.push({ op, args: match[2]!.trim(), stage });
  }
  return result;
}

/** `ENV A=1 B=2` → { A: '1', B: '2' }. */
function envOf(instructions: Instruction[]): Record<string, string> {
  return Object.fromEntries(
    instructions
      .filter((i) => i.op === 'ENV')
      .flatMap((i) => i.args.split(/\s+/).map((pair) => pair.split('=', 2) as [string, string])),
  );
}

describe('Dockerfile', () => {
  let all: Instruction[];
  let runtime: Instruction[];
  let env: Record<string, string>;
  let baked: Config;
  const one = (op: string) => {
    const found = runtime.filter((i) => i.op === op);
    expect(found, op).toHaveLength(1);
    return found[0]!.args;
  };

  beforeAll(async () => {
    all = dockerInstructions(await readProjectFile('Dockerfile'));
    const last = Math.max(...all.map((i) => i.stage));
    runtime = all.filter((i) => i.stage === last);
    env = envOf(runtime);
    baked = validConfig(await readProjectFile('config/examples/container.yaml'));
  });

  it('builds every stage FROM ${NODE_IMAGE}, a Node LTS slim image that meets package.json engines', async () => {
    const arg = all.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
    expect(arg?.stage).toBe(-1); // before the first FROM, so every FROM can use it
    const [, major] = /^node:(\d+)-slim$/.exec(arg!.args.slice('NODE_IMAGE='.length)) ?? [];
    expect(Number(major) % 2).toBe(0); // even majors become LTS
    const engines = JSON.parse(await readProjectFile('package.json')).engines.node as string;
    expect(Number(major)).toBeGreaterThanOrEqual(Number(/\d+/.exec(engines)![0]));
    const froms = all.filter((i) => i.op === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from.args).toMatch(/^\$\{NODE_IMAGE\}( AS \w+)?$/);
  });

  it('builds with every dependency and ships production dependencies only', () => {
    const runs = all.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs).toContain('npm ci --no-audit --no-fund');
    expect(runs).toContain('npm run build');
    expect(runs).toContain('npm ci --omit=dev --no-audit --no-fund');
    const copies = runtime.filter((i) => i.op === 'COPY').map((i) => i.args);
    expect(copies).toContain('--from=deps /app/node_modules ./node_modules');
    expect(copies).toContain('--from=build /app/dist ./dist');
    expect(copies).toContain('config/default.yaml ./config/default.yaml');
  });

  it('bakes config/examples/container.yaml in at $PULLCACHE_CONFIG', () => {
    expect(env.PULLCACHE_CONFIG).toBe('/etc/pullcache/config.yaml');
    expect(runtime.map((i) => `${i.op} ${i.args}`)).toContain(
      `COPY config/examples/container.yaml ${env.PULLCACHE_CONFIG}`,
    );
  });

  it('keeps the cache on a VOLUME at storage.path, writable by its non-root USER', () => {
    expect(one('VOLUME')).toBe(baked.storage.path);
    const user = one('USER');
    // Numeric, so Kubernetes' runAsNonRoot can check it without an /etc/passwd lookup.
    expect(user).toMatch(/^[1-9]\d*:\d+$/);
    expect(one('RUN')).toBe(`mkdir -p ${baked.storage.path} && chown ${user} ${baked.storage.path}`);
    const order = runtime.map((i) => i.op);
    expect(order.indexOf('USER')).toBeGreaterThan(order.indexOf('RUN'));
  });

  it('EXPOSEs the listen port and health-checks /healthz on it with node (no curl in slim images)', () => {
    const port = portOf(baked);
    expect(one('EXPOSE')).toBe(String(port));
    const healthcheck = /^(?:--\S+\s+)*CMD\s+(\[.*\])$/.exec(one('HEALTHCHECK'));
    const command = JSON.parse(healthcheck![1]!) as string[];
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    expect(command[2]).toContain(`fetch('http://127.0.0.1:${port}/healthz')`);
  });

  it('runs the package bin in exec form (node is PID 1 and gets SIGTERM), with the node flags of its shebang', async () => {
    const bin = JSON.parse(await readProjectFile('package.json')).bin.pullcache as string;
    const shebang = (await readProjectFile('src/cli.ts')).split('\n')[0]!;
    const flags = shebang.split(/\s+/).slice(shebang.split(/\s+/).indexOf('node') + 1);
    expect(JSON.parse(one('ENTRYPOINT'))).toEqual(['node', ...flags, posix.join(one('WORKDIR'), bin)]);
    expect(JSON.parse(one('CMD'))).toEqual(['serve']);
  });

  it('has a build context (.dockerignore) with what it copies and without node_modules, dist, data, .git', async () => {
    const patterns = (await readProjectFile('.dockerignore'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(patterns[0]).toBe('*'); // an allow-list: everything else stays out
    const allowed = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
    for (const name of ['node_modules', 'dist', 'data', '.git', '.env', 'coverage'])
      expect(allowed.some((a) => a.startsWith(name))).toBe(false);
    const sources = all
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const source of sources) {
      expect(
        allowed.some((a) => source === a.replace(/\/$/, '') || source.startsWith(a)),
        source,
      ).toBe(true);
      expect(existsSync(posix.join(PROJECT_ROOT, source)), source).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('config/examples/container.yaml', () => {
  it('is config/default.yaml with the cache on the volume', async () => {
    const container = validConfig(await readProjectFile('config/examples/container.yaml'));
    const defaults = validConfig(await readProjectFile('config/default.yaml'));
    expect(container.storage.path).toBe('/var/lib/pullcache');
    expect({ ...container, storage: { ...container.storage, path: defaults.storage.path } }).toEqual(
      defaults,
    );
  });

  it('has a commented Docker Hub credentials line that works with the env file compose.yaml describes', async () => {
    const text = await readProjectFile('config/examples/container.yaml');
    const commented = text.split('\n').find((l) => /^\s*# docker\.io: .*\$\{DOCKERHUB_TOKEN\}/.test(l));
    // It replaces the docker.io line above it.
    const plain = text.split('\n').find((l) => /^\s*docker\.io: /.test(l));
    const withCredentials = validConfig(
      text.replace(plain!, '').replace(commented!, commented!.replace('# ', '')),
    );
    expect(withCredentials.registries['docker.io']).toEqual({
      url: 'https://registry-1.docker.io',
      username: PLACEHOLDER_ENV.DOCKERHUB_USERNAME,
      password: PLACEHOLDER_ENV.DOCKERHUB_TOKEN,
    });
  });
});

describe('compose.yaml', () => {
  // biome-ignore lint/suspicious/noExplicitAny: a parsed compose document
  let service: any;
  // biome-ignore lint/suspicious/noExplicitAny: a parsed compose document
  let compose: any;
  let config: Config;
  let pullcacheConfig: string;

  beforeAll(async () => {
    compose = parseYaml(await readProjectFile('compose.yaml'));
    service = compose.services.pullcache;
    pullcacheConfig = envOf(dockerInstructions(await readProjectFile('Dockerfile'))).PULLCACHE_CONFIG!;
    const mount = (service.volumes as string[]).find((v) => v.split(':')[1] === pullcacheConfig);
    const [source, , mode] = mount!.split(':');
    expect(mode).toBe('ro');
    config = validConfig(await readProjectFile(source!));
  });

  it('builds the Dockerfile as pullcache:local', () => {
    expect(service.build).toBe('.');
    expect(service.image).toBe('pullcache:local');
  });

  it("publishes the config's listen port and health-checks /healthz on it", () => {
    const port = portOf(config);
    expect(service.ports).toContain(`${port}:${port}`);
    expect(service.healthcheck.test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    expect(service.healthcheck.test[3]).toContain(`http://127.0.0.1:${port}/healthz`);
  });

  it('keeps storage.path in a named volume', () => {
    const named = (service.volumes as string[]).find((v) => v.split(':')[1] === config.storage.path);
    const [volume] = named!.split(':');
    expect(volume).not.toMatch(/^[./]/);
    expect(compose.volumes).toHaveProperty(volume!);
  });

  it('gives the server longer than limits.shutdownGrace to stop', () => {
    expect(durationMs(service.stop_grace_period)).toBeGreaterThan(config.limits.shutdownGrace);
  });

  it('shows Docker Hub credentials from an env file', async () => {
    const text = await readProjectFile('compose.yaml');
    expect(text).toMatch(/^\s*# env_file: \.env$/m);
    for (const name of Object.keys(DOCKERHUB_ENV)) expect(text).toMatch(new RegExp(`#\\s+${name}=`));
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

// biome-ignore lint/suspicious/noExplicitAny: parsed Kubernetes objects
type K8sObject = any;

async function manifests(path: string): Promise<K8sObject[]> {
  return parseAllDocuments(await readProjectFile(path))
    .map((doc) => doc.toJS() as K8sObject)
    .filter(Boolean);
}

/** A probe's or Service's port: a number, or a container port's name. */
function resolvePort(port: number | string, container: K8sObject): number {
  if (typeof port === 'number') return port;
  const named = (container.ports as K8sObject[]).find((p) => p.name === port);
  if (!named) throw new Error(`no container port named ${port}`);
  return named.containerPort;
}

/** Bytes from a Kubernetes quantity such as 100Gi. */
function quantityBytes(quantity: string): number {
  const bytes = parseSize(quantity.replace(/([KMGT])i$/, '$1iB'));
  if (bytes === null) throw new Error(`not a quantity: ${quantity}`);
  return bytes;
}

describe.each([
  ['deploy/kubernetes/central.yaml', 'Deployment'],
  ['deploy/kubernetes/central-s3.yaml', 'Deployment'],
  ['deploy/kubernetes/daemonset.yaml', 'DaemonSet'],
])('%s', (file, kind) => {
  let objects: K8sObject[];
  let workload: K8sObject;
  let pod: K8sObject;
  let container: K8sObject;
  let config: Config;
  let pullcacheConfig: string;
  let imageUser: string;
  const volume = (name: string) => (pod.volumes as K8sObject[]).find((v) => v.name === name);
  const mountAt = (path: string) =>
    (container.volumeMounts as K8sObject[]).find((m) => m.mountPath === path) as K8sObject;

  beforeAll(async () => {
    objects = await manifests(file);
    workload = objects.find((o) => o.kind === kind);
    pod = workload.spec.template.spec;
    container = (pod.containers as K8sObject[]).find((c) => c.name === 'pullcache');
    const dockerfile = dockerInstructions(await readProjectFile('Dockerfile'));
    pullcacheConfig = envOf(dockerfile).PULLCACHE_CONFIG!;
    imageUser = dockerfile.findLast((i) => i.op === 'USER')!.args;
    // The ConfigMap mounted where the image looks for its config.
    const mount = mountAt(posix.dirname(pullcacheConfig));
    const source = volume(mount.name).configMap;
    const items = source.items as { key: string; path: string }[] | undefined;
    const key = items ? items.find((i) => i.path === posix.basename(pullcacheConfig))!.key : 'config.yaml';
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === source.name);
    config = validConfig(configMap.data[key]);
  });

  it('puts every object in one namespace, which it creates', () => {
    const namespace = objects.find((o) => o.kind === 'Namespace').metadata.name;
    for (const o of objects.filter((o) => o.kind !== 'Namespace'))
      expect(o.metadata.namespace).toBe(namespace);
  });

  it('passes PULLCACHE_CONFIG as the image does and mounts the ConfigMap there, read-only', () => {
    const env = (container.env as K8sObject[]).find((e) => e.name === 'PULLCACHE_CONFIG');
    expect(env.value).toBe(pullcacheConfig);
    expect(mountAt(posix.dirname(pullcacheConfig)).readOnly).toBe(true);
  });

  it("serves on the config's listen port and probes /healthz (liveness) and /readyz (readiness) there", () => {
    const port = portOf(config);
    expect(container.ports.map((p: K8sObject) => p.containerPort)).toEqual([port]);
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(resolvePort(container.livenessProbe.httpGet.port, container)).toBe(port);
    expect(resolvePort(container.readinessProbe.httpGet.port, container)).toBe(port);
  });

  it('mounts a volume at storage.path', () => {
    expect(mountAt(config.storage.path)).toBeDefined();
  });

  it('waits longer than limits.shutdownGrace before SIGKILL', () => {
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(config.limits.shutdownGrace);
  });

  it("runs the server as the image's non-root user, read-only, without privilege escalation or capabilities", () => {
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(`${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`).toBe(imageUser);
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('sets resource requests and limits', () => {
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      expect(Object.keys(c.resources.requests).sort(), c.name).toEqual(['cpu', 'memory']);
      expect(Object.keys(c.resources.limits).sort(), c.name).toEqual(['cpu', 'memory']);
    }
  });

  it('allows the registries the client recipes send to it, with their real upstreams', () => {
    for (const [registry, url] of Object.entries(EXAMPLE_REGISTRIES))
      expect(config.registries[registry]?.url).toBe(url);
  });

  if (kind === 'Deployment') {
    it('has a Service whose targetPort is the listen port, selecting the pods', () => {
      const service = objects.find((o) => o.kind === 'Service');
      expect(service.spec.selector).toEqual(workload.spec.selector.matchLabels);
      expect(workload.spec.template.metadata.labels).toMatchObject(service.spec.selector);
      const [port] = service.spec.ports;
      expect(resolvePort(port.targetPort, container)).toBe(portOf(config));
    });
  }

  if (file.endsWith('/central.yaml')) {
    it('keeps the cache on a PersistentVolumeClaim larger than storage.maxSize, one pod at a time', () => {
      const claim = objects.find((o) => o.kind === 'PersistentVolumeClaim');
      const data = volume(mountAt(config.storage.path).name);
      expect(data.persistentVolumeClaim.claimName).toBe(claim.metadata.name);
      expect(quantityBytes(claim.spec.resources.requests.storage)).toBeGreaterThan(config.storage.maxSize!);
      expect(workload.spec.replicas).toBe(1);
      expect(workload.spec.strategy.type).toBe('Recreate');
      expect(pod.securityContext.fsGroup).toBe(pod.securityContext.runAsGroup);
    });
  }

  if (file.endsWith('/central-s3.yaml')) {
    it('keeps the cache in the bucket, with storage.path on an emptyDir and no PersistentVolumeClaim', () => {
      expect(config.storage.s3?.bucket).toBeTruthy();
      expect(config.storage.maxSize).not.toBeNull();
      expect(objects.filter((o) => o.kind === 'PersistentVolumeClaim')).toEqual([]);
      expect(volume(mountAt(config.storage.path).name).emptyDir).toBeDefined();
    });

    it('runs several replicas on different nodes, replaced one at a time, at most one disrupted', () => {
      expect(workload.spec.replicas).toBeGreaterThanOrEqual(3);
      expect(workload.spec.strategy).toEqual({
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
      });
      const [term] = pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
      expect(term.topologyKey).toBe('kubernetes.io/hostname');
      expect(term.labelSelector.matchLabels).toEqual(workload.spec.selector.matchLabels);
      const budget = objects.find((o) => o.kind === 'PodDisruptionBudget');
      expect(budget.spec.selector).toEqual(workload.spec.selector);
      expect(budget.spec.maxUnavailable).toBe(1);
    });

    it('takes S3 credentials from a Secret or the ServiceAccount (IRSA), never from the ConfigMap', async () => {
      expect(container.envFrom).toEqual([{ secretRef: { name: 'pullcache-s3' } }]);
      const account = objects.find((o) => o.kind === 'ServiceAccount');
      expect(pod.serviceAccountName).toBe(account.metadata.name);
      const text = await readProjectFile(file);
      expect(text).toMatch(/^\s*#\s+eks\.amazonaws\.com\/role-arn: /m);
      expect(text).toContain('create secret generic pullcache-s3');
      // The peer secret is a placeholder filled from its own Secret (checked below).
      const configMap = JSON.stringify(objects.filter((o) => o.kind === 'ConfigMap')).replace(
        'secret: \\"${PULLCACHE_PEER_SECRET}\\"',
        '',
      );
      expect(configMap).not.toMatch(/AWS_|accessKey|secret/i);
    });
  }

  if (file !== 'deploy/kubernetes/central.yaml') {
    it("is one cluster: a headless Service selecting the pods names the members, self is the pod's address", () => {
      const cluster = config.cluster!;
      const namespace = workload.metadata.namespace;
      const service = objects.find((o) => o.kind === 'Service' && o.spec.clusterIP === 'None');
      expect(cluster.peers.dns).toBe(`${service.metadata.name}.${namespace}.svc.cluster.local`);
      expect(service.spec.clusterIP).toBe('None');
      expect(service.spec.selector).toEqual(workload.spec.selector.matchLabels);
      expect(workload.spec.template.metadata.labels).toMatchObject(service.spec.selector);
      // The members reach each other's listener: the peer endpoint is on the /v2 port.
      expect(cluster.port).toBe(portOf(config));
      expect(resolvePort(service.spec.ports[0].targetPort, container)).toBe(cluster.port);
      // self: the pod's address (the node's on the host network) from the downward API, at the cluster port.
      expect(cluster.self).toBe(`${PLACEHOLDER_ENV.POD_IP}:${cluster.port}`);
      const podIp = (container.env as K8sObject[]).find((e) => e.name === 'POD_IP');
      expect(podIp.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
      // Looked up through the cluster's DNS, also from pods on the host network.
      expect(pod.dnsPolicy).toBe(pod.hostNetwork ? 'ClusterFirstWithHostNet' : undefined);
    });

    it('takes the peer secret from the Secret its header tells how to create', async () => {
      const text = await readProjectFile(file);
      const configMap = objects.find((o) => o.kind === 'ConfigMap');
      expect(configMap.data['config.yaml']).toContain('secret: "${PULLCACHE_PEER_SECRET}"');
      const env = (container.env as K8sObject[]).find((e) => e.name === 'PULLCACHE_PEER_SECRET');
      const { name, key } = env.valueFrom.secretKeyRef;
      const namespace = workload.metadata.namespace;
      const lines = text.split('\n');
      const at = lines.findIndex((l) =>
        l.includes(`kubectl -n ${namespace} create secret generic ${name} \\`),
      );
      expect(at).toBeGreaterThan(0);
      expect(lines[at + 1]).toContain(`--from-literal=${key}="$(openssl rand -hex 32)"`);
      expect(objects.some((o) => o.kind === 'Secret')).toBe(false); // no secret value in the manifest
    });
  }

  if (kind === 'DaemonSet') {
    it('listens on the node (host network, hostPort) and serves /v2 to the node itself only', () => {
      expect(pod.hostNetwork).toBe(true);
      expect(container.ports[0].hostPort).toBe(portOf(config));
      expect(config.allowedClients).toEqual(['127.0.0.1/32', '::1/128']);
    });

    it("writes each registry's hosts.toml into the node's /etc/containerd/certs.d from an init container", () => {
      const init = (pod.initContainers as K8sObject[])[0];
      const certs = (init.volumeMounts as K8sObject[]).map((m) => ({ ...m, volume: volume(m.name) }));
      const hostDir = certs.find((m) => m.volume.hostPath?.path === '/etc/containerd/certs.d');
      const tomls = certs.find((m) => m.volume.configMap);
      const script = init.command.join(' ');
      const configMap = objects.find(
        (o) => o.kind === 'ConfigMap' && o.metadata.name === tomls.volume.configMap.name,
      );
      for (const [registry, url] of Object.entries(EXAMPLE_REGISTRIES)) {
        expect(script).toContain(registry);
        const hosts = parseToml(configMap.data[`${registry}.toml`]);
        expect(hosts, registry).toEqual({
          server: url,
          host: { [`http://127.0.0.1:${portOf(config)}`]: { capabilities: ['pull', 'resolve'] } },
        });
        // The mirror's upstream is the registry containerd would otherwise use.
        expect(config.registries[registry]?.url).toBe(url);
      }
      expect(script).toContain(`${tomls.mountPath}/$registry.toml`);
      expect(script).toContain(`${hostDir.mountPath}/$registry/hosts.toml`);
      // It writes root-owned host paths: root, with CHOWN only (for the cache folder).
      expect(init.securityContext).toMatchObject({
        runAsUser: 0,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'], add: ['CHOWN'] },
      });
      expect(script).toContain(`chown ${imageUser} ${config.storage.path}`);
    });

    it('admits the peer port from the node network only (NetworkPolicy)', () => {
      const policy = objects.find((o) => o.kind === 'NetworkPolicy');
      expect(policy.spec.podSelector.matchLabels).toEqual(workload.spec.selector.matchLabels);
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      const [rule, ...more] = policy.spec.ingress as K8sObject[];
      expect(more).toEqual([]);
      expect(rule.ports).toEqual([{ protocol: 'TCP', port: config.cluster!.port }]);
      expect(rule.from.length).toBeGreaterThan(0);
      for (const from of rule.from) expect(Object.keys(from)).toEqual(['ipBlock']);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Client recipes

const PROXY_PORT = Number(EXAMPLE_PROXY.split(':')[1]);

describe('client recipes in config/examples', () => {
  let containerConfig: Config;
  beforeAll(async () => {
    containerConfig = validConfig(await readProjectFile('config/examples/container.yaml'));
  });

  it("name pullcache on the container's listen port", () => {
    expect(PROXY_PORT).toBe(portOf(containerConfig));
  });

  describe.each(Object.entries(EXAMPLE_REGISTRIES))('containerd hosts.toml for %s', (registry, upstream) => {
    let text: string;
    beforeAll(async () => {
      text = await readProjectFile(`config/examples/containerd/certs.d/${registry}/hosts.toml`);
    });

    it('mirrors the real registry through pullcache for pull and resolve', () => {
      expect(parseToml(text)).toEqual({
        server: upstream,
        host: { [`http://${EXAMPLE_PROXY}`]: { capabilities: ['pull', 'resolve'] } },
      });
      // pullcache allows this registry and routes containerd's ?ns= to it.
      expect(containerConfig.registries[registry]?.url).toBe(upstream);
      expect(resolveRoute('library/demo', registry, containerConfig).registry).toBe(registry);
    });

    it('has commented variants: an Authorization header, and HTTPS with a ca', () => {
      const variants = parseToml(uncommentVariants(text)).host as TomlTable;
      expect(variants[`http://${EXAMPLE_PROXY}`]).toEqual({
        capabilities: ['pull', 'resolve'],
        header: { Authorization: expect.stringMatching(/^Bearer /) },
      });
      expect(variants[`https://${EXAMPLE_PROXY}`]).toEqual({
        capabilities: ['pull', 'resolve'],
        ca: expect.stringMatching(/^\/etc\/containerd\/certs\.d\/.+\.crt$/),
      });
    });
  });

  it('registries.conf mirrors the four registries through pullcache, which routes each to its upstream', async () => {
    const conf = parseToml(await readProjectFile('config/examples/registries.conf'));
    const entries = conf.registry as TomlTable[];
    expect(entries.map((r) => r.prefix)).toEqual(Object.keys(EXAMPLE_REGISTRIES));
    for (const entry of entries) {
      const registry = entry.prefix as string;
      expect(entry.location).toBe(registry);
      const [mirror, ...more] = entry.mirror as TomlTable[];
      expect(more).toEqual([]);
      expect(mirror!.insecure).toBe(true);
      const location = mirror!.location as string;
      expect(location.startsWith(EXAMPLE_PROXY)).toBe(true);
      // The clients ask the mirror for <location path>/<repository>: pullcache must route that back.
      const name = posix.join(location.slice(EXAMPLE_PROXY.length + 1), 'library/demo');
      const route = resolveRoute(name, undefined, containerConfig);
      expect(route).toMatchObject({ registry, repository: 'library/demo' });
      expect(route.upstream.url).toBe(EXAMPLE_REGISTRIES[registry]);
    }
  });

  it('daemon.json makes pullcache the Docker Hub mirror over plain HTTP', async () => {
    const daemon = JSON.parse(await readProjectFile('config/examples/daemon.json'));
    expect(daemon).toEqual({
      'registry-mirrors': [`http://${EXAMPLE_PROXY}`],
      'insecure-registries': [EXAMPLE_PROXY],
    });
  });

  it('the GitHub Actions job merges the same mirror into daemon.json and pulls', async () => {
    const workflow = parseYaml(await readProjectFile('config/examples/github-actions.yml'));
    const [job] = Object.values(workflow.jobs) as K8sObject[];
    expect(job.env.PULLCACHE).toBe(EXAMPLE_PROXY);
    const script = (job.steps as K8sObject[]).map((s) => s.run ?? '').join('\n');
    expect(script).toContain('--arg mirror "http://$PULLCACHE"');
    expect(script).toContain('systemctl restart docker');
    expect(script).toMatch(/docker pull node:/);
    // Its inline registries.conf is a subset of the example's.
    const inline = /<<EOF\n([\s\S]*?)\nEOF/.exec(script)![1]!.replaceAll('$PULLCACHE', EXAMPLE_PROXY);
    const example = parseToml(await readProjectFile('config/examples/registries.conf'));
    for (const entry of parseToml(inline).registry as TomlTable[])
      expect(example.registry).toContainEqual(entry);
  });

  it('the GitLab CI job starts Docker-in-Docker with the same mirror', async () => {
    const pipeline = parseYaml(await readProjectFile('config/examples/gitlab-ci.yml'));
    expect(pipeline.variables.PULLCACHE).toBe(EXAMPLE_PROXY);
    const [service] = pipeline['docker-build'].services;
    expect(service.command).toEqual([
      `--registry-mirror=http://${EXAMPLE_PROXY}`,
      `--insecure-registry=${EXAMPLE_PROXY}`,
    ]);
    const script = (pipeline['skopeo-copy'].script as string[]).join('\n');
    const inline = /<<EOF\n([\s\S]*?)\nEOF/.exec(script)![1]!.replaceAll('$PULLCACHE', EXAMPLE_PROXY);
    const example = parseToml(await readProjectFile('config/examples/registries.conf'));
    for (const entry of parseToml(inline).registry as TomlTable[])
      expect(example.registry).toContainEqual(entry);
  });
});

// ---------------------------------------------------------------------------------------------

describe('deploy/grafana-dashboard.json', () => {
  // biome-ignore lint/suspicious/noExplicitAny: a parsed Grafana dashboard
  let dashboard: any;
  let queries: string[];
  let registered: Set<string>;

  beforeAll(async () => {
    dashboard = JSON.parse(await readProjectFile('deploy/grafana-dashboard.json'));
    queries = [
      ...dashboard.panels.flatMap((p: K8sObject) => p.targets.map((t: K8sObject) => t.expr as string)),
      ...dashboard.templating.list
        .filter((v: K8sObject) => v.type === 'query')
        .map((v: K8sObject) => v.definition),
    ];
    // What a scrape can contain: histograms as _bucket, _sum and _count series. (prom-client types
    // `type` as a numeric enum; at run time it is the type's name.)
    const metrics = await createMetrics().registry.getMetricsAsJSON();
    registered = new Set(
      metrics.flatMap((m) =>
        String(m.type) === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => `${m.name}${s}`) : [m.name],
      ),
    );
  });

  const namesIn = (query: string) => query.match(/\bpullcache_\w+/g) ?? [];

  it('queries only metrics that pullcache registers', () => {
    expect(queries.length).toBeGreaterThan(0);
    for (const query of queries) for (const name of namesIn(query)) expect(registered, query).toContain(name);
  });

  it('charts requests, cache hits, bytes, upstream latency, errors, limits and health, downloads, size, evictions, tokens, peers', () => {
    const used = new Set(queries.flatMap(namesIn));
    for (const name of [
      'pullcache_http_requests_total',
      'pullcache_cache_results_total',
      'pullcache_served_from_cache_bytes_total',
      'pullcache_upstream_fetched_bytes_total',
      'pullcache_upstream_request_duration_seconds_bucket',
      'pullcache_upstream_errors_total',
      'pullcache_downloads_in_flight',
      'pullcache_cache_size_bytes',
      'pullcache_cache_max_size_bytes',
      'pullcache_cache_evictions_total',
      'pullcache_token_fetches_total',
      'pullcache_peer_bytes_total',
      'pullcache_peer_fallbacks_total',
      'pullcache_cluster_members',
      'pullcache_upstream_ratelimit_remaining',
      'pullcache_upstream_ratelimit_limit',
      'pullcache_upstream_cooling_down',
    ])
      expect(used).toContain(name);
  });

  it('takes p95s from buckets by le, and has distinct, non-overlapping panels', () => {
    for (const query of queries.filter((q) => q.includes('histogram_quantile')))
      expect(query).toMatch(/histogram_quantile\(0\.95, sum by \([\w, ]*\ble\) \(rate\(pullcache_\w+_bucket/);
    const panels = dashboard.panels as {
      id: number;
      gridPos: { x: number; y: number; w: number; h: number };
    }[];
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const [i, a] of panels.entries()) {
      for (const b of panels.slice(i + 1)) {
        const apart =
          a.gridPos.x + a.gridPos.w <= b.gridPos.x ||
          b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
          a.gridPos.y + a.gridPos.h <= b.gridPos.y ||
          b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        expect(apart, `panels ${a.id} and ${b.id} overlap`).toBe(true);
      }
    }
  });
});
