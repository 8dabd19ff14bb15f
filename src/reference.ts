/** @module Image references (`[domain/]path[:tag][@digest]`): the distribution/reference grammar and Docker Hub normalization. */
import { parseDigest } from './digest.js';
import { nameInvalid, tagInvalid } from './errors.js';

export const DOCKER_HUB = 'docker.io';
/**
 * Limit on the repository path (without domain), after normalization, as distribution/reference
 * checks it since v0.6 (`len(repo.path) > RepositoryNameTotalLengthMax`): 'library/' counts,
 * the registry host does not, so the limit matches what the registry sees in `/v2/<name>/`.
 */
export const NAME_TOTAL_LENGTH_MAX = 255;
export const TAG_MAX = 128;

const DEFAULT_TAG = 'latest';
const OFFICIAL_PREFIX = 'library/';
// index.docker.io is upstream's legacy Hub domain; registry-1.docker.io (Hub's real API host) is
// our own addition, so that both spellings share one cache entry with docker.io.
const DOCKER_HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);

// The productions of distribution/reference regexp.go, kept as strings so they compose.
const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|-+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
// Compressed or full IPv6 in brackets; zones (%eth0) and IPv4-mapped forms are excluded upstream too.
const IPV6 = '\\[[a-fA-F0-9:]+\\]';

const PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const COMPONENT_RE = new RegExp(`^${PATH_COMPONENT}$`);
// The port is digits only; like upstream we do not range-check it (a dial would fail anyway).
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?$`);
// JS `\w` without the `u` flag is ASCII [A-Za-z0-9_], the same as Go's.
const TAG_RE = /^\w[\w.-]{0,127}$/;
// A bare image ID: upstream refuses it as a name so it is never mistaken for library/<hex>.
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;
// A bare digest would otherwise parse as docker.io/library/sha256:<hex> (a tag); refuse it instead.
const BARE_DIGEST_RE = /^sha(?:256|512):[a-fA-F0-9]{32,}$/;

export interface Reference {
  registry: string;
  repository: string;
  tag: string | null;
  digest: string | null;
}

// Error bodies echo user input; keep them bounded whatever the input size.
const clip = (s: string): string => (s.length > 300 ? `${s.slice(0, 300)}…` : s);

export function formatReference(ref: Reference): string {
  const tag = ref.tag === null ? '' : `:${ref.tag}`;
  const digest = ref.digest === null ? '' : `@${ref.digest}`;
  return `${ref.registry}/${ref.repository}${tag}${digest}`;
}

/**
 * Parses and normalizes a reference like `docker pull` does (ParseNormalizedNamed + TagNameOnly,
 * but a tag given alongside a digest is kept). Hosts get one spelling (normalizeRegistryHost).
 * Errors are reported name first, then tag, then digest.
 */
export function parseReference(input: string): Reference {
  if (input === '') throw nameInvalid('repository name must have at least one component', { reference: '' });
  if (IDENTIFIER_RE.test(input)) {
    throw nameInvalid(`invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`, {
      reference: input,
    });
  }
  if (BARE_DIGEST_RE.test(input)) {
    throw nameInvalid(
      `invalid repository name (${clip(input)}), a digest needs a name: use <name>@<digest>`,
      {
        reference: clip(input),
      },
    );
  }
  // Neither name nor tag may contain '@', so the first one starts the digest.
  const at = input.indexOf('@');
  const nameAndTag = at < 0 ? input : input.slice(0, at);
  // A ':' before the last '/' belongs to the domain's port; only one after it starts a tag.
  const colon = nameAndTag.indexOf(':', nameAndTag.lastIndexOf('/') + 1);
  const name = colon < 0 ? nameAndTag : nameAndTag.slice(0, colon);
  const tag = colon < 0 ? null : nameAndTag.slice(colon + 1);

  const { registry, repository } = splitDockerDomain(name);
  if (tag !== null) assertTag(tag);
  const digest = at < 0 ? null : parseDigest(input.slice(at + 1)).value;
  return { registry, repository, tag: tag ?? (digest === null ? DEFAULT_TAG : null), digest };
}

/**
 * Whether the first component of a name is a registry host, by distribution's rule
 * (normalize.go splitDockerDomain): it has a '.' or ':', is localhost, or has an uppercase letter
 * (repository paths are lowercase, so `LOCALDOMAIN/debian` can only mean a host).
 */
export function isRegistryComponent(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first;
}

export function splitDockerDomain(name: string): { registry: string; repository: string } {
  if (name === '') throw nameInvalid('repository name must have at least one component', { name: '' });
  let registry = DOCKER_HUB;
  let path = name;
  const slash = name.indexOf('/');
  if (slash >= 0) {
    const first = name.slice(0, slash);
    // A single component never is a domain ('localhost:5000' alone is library/localhost, tag 5000).
    if (isRegistryComponent(first)) {
      if (!isValidDomain(first)) {
        throw nameInvalid(`invalid registry host "${clip(first)}"`, { name: clip(name), host: clip(first) });
      }
      registry = normalizeRegistryHost(first);
      path = name.slice(slash + 1);
    }
  }
  // Official images live under library/ on Docker Hub, and only there.
  if (registry === DOCKER_HUB && path !== '' && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  assertRepositoryPath(path);
  return { registry, repository: path };
}

/**
 * One spelling per host, since DNS ignores case and the cache must not split on it: lowercase,
 * except a host that is one only by its uppercase letters (`Localdomain`, no '.' or ':'). Lowercased,
 * that would read back as a Docker Hub namespace, so its spelling is uppercase (`LOCALDOMAIN`) and
 * a formatted reference parses to the same registry again.
 */
export function normalizeRegistryHost(host: string): string {
  const lower = host.toLowerCase();
  if (DOCKER_HUB_ALIASES.has(lower)) return DOCKER_HUB;
  return isRegistryComponent(lower) ? lower : host.toUpperCase();
}

export function isValidRepositoryPath(s: string): boolean {
  return s.length <= NAME_TOTAL_LENGTH_MAX && PATH_RE.test(s);
}

export function assertRepositoryPath(s: string): void {
  const problem = repositoryPathProblem(s);
  if (problem !== null) throw nameInvalid(problem, { name: clip(s) });
}

// Returns null exactly when isValidRepositoryPath(s); otherwise the first problem a user should fix.
function repositoryPathProblem(s: string): string | null {
  if (s === '') return 'repository name must not be empty';
  // Checked before the grammar, as upstream does, because it is the most common mistake.
  if (/[A-Z]/.test(s)) return 'repository name must be lowercase';
  if (s.length > NAME_TOTAL_LENGTH_MAX) {
    return `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`;
  }
  if (PATH_RE.test(s)) return null;
  const bad = /[^a-z0-9._/-]/.exec(s);
  if (bad) return `repository name contains invalid character ${JSON.stringify(bad[0])}`;
  for (const component of s.split('/')) {
    if (component === '')
      return 'repository name must not have empty components (leading, trailing or double "/")';
    if (component.includes('..')) return `repository name component "${component}" must not contain ".."`;
    if (!/^[a-z0-9]/.test(component) || !/[a-z0-9]$/.test(component)) {
      return `repository name component "${component}" must start and end with a lowercase letter or digit`;
    }
    if (!COMPONENT_RE.test(component)) {
      return `repository name component "${component}" has an invalid separator (allowed: ".", "_", "__" or dashes)`;
    }
  }
  return 'invalid repository name'; // not reached: some component fails when the whole path does
}

export function isValidDomain(s: string): boolean {
  return DOMAIN_RE.test(s);
}

export function isValidTag(s: string): boolean {
  return TAG_RE.test(s);
}

export function assertTag(s: string): void {
  if (TAG_RE.test(s)) return;
  let reason: string;
  if (s === '') reason = 'tag must not be empty';
  else if (s.length > TAG_MAX) reason = `tag must not be more than ${TAG_MAX} characters`;
  else if (/^[.-]/.test(s)) reason = 'tag must not start with "." or "-"';
  else reason = 'tag may contain only letters, digits, "_", "." and "-"';
  throw tagInvalid(reason, { tag: clip(s) });
}
