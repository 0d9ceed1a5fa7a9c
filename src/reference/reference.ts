// Parsing, normalising and formatting image references the way docker, containerd and kubelet
// read them: `nginx` is `docker.io/library/nginx` (tag `latest` when pulled), `index.docker.io`
// is `docker.io`, and a bad reference is reported with a reason rather than guessed at.
import { DIGEST_RE, DOMAIN_RE, IDENTIFIER_RE, NAME_MAX_LENGTH, REFERENCE_RE, TAG_RE } from './grammar.js';

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';

/** A parsed, normalised image reference: the domain is always present. */
export interface Reference {
  /** Registry host with an optional port: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  readonly domain: string;
  /** Repository path inside that registry: `library/nginx`, `a/b/c`. */
  readonly path: string;
  readonly tag?: string;
  /** `algorithm:hex`, kept exactly as written. */
  readonly digest?: string;
}

export type ReferenceErrorCode =
  | 'EMPTY'
  | 'INVALID_FORMAT'
  | 'UPPERCASE'
  | 'NAME_TOO_LONG'
  | 'IDENTIFIER'
  | 'NOT_CANONICAL'
  | 'DIGEST_INVALID'
  | 'DIGEST_UNSUPPORTED';

export class ReferenceError extends Error {
  constructor(readonly code: ReferenceErrorCode, readonly input: string, detail: string) {
    super(`invalid reference "${input.length > 300 ? `${input.slice(0, 300)}…` : input}": ${detail}`);
    this.name = 'ReferenceError';
  }
}

/** Lengths of the hex part for the digest algorithms registries accept. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** Checks a digest string (`sha256:…`): known algorithm, lower-case hex of the right length. */
export function validateDigest(digest: string, input = digest): void {
  if (!DIGEST_RE.test(digest)) throw new ReferenceError('DIGEST_INVALID', input, `"${digest}" is not a digest`);
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) throw new ReferenceError('DIGEST_UNSUPPORTED', input, `digest algorithm "${algorithm}" is not supported`);
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new ReferenceError('DIGEST_INVALID', input, `${algorithm} digest must be ${length} lower-case hex characters`);
  }
}

/**
 * Whether the first path component names a registry rather than a repository namespace:
 * it does when it has a dot or a port, is `localhost`, or has capitals (never legal in a path).
 */
export function looksLikeDomain(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.toLowerCase() !== component;
}

/** Splits a name (no tag or digest needed) into its registry domain and the rest, applying Docker Hub's defaults. */
export function splitDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  let domain = DEFAULT_DOMAIN;
  let remainder = name;
  if (slash !== -1 && looksLikeDomain(name.slice(0, slash))) {
    domain = name.slice(0, slash);
    remainder = name.slice(slash + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/**
 * Parses a reference as a user would write it and returns its fully-qualified form, without
 * adding a default tag. Throws ReferenceError when it is not a valid reference.
 */
export function parseNormalized(input: string): Reference {
  if (input === '') throw new ReferenceError('EMPTY', input, 'empty reference');
  if (IDENTIFIER_RE.test(input)) throw new ReferenceError('IDENTIFIER', input, 'a 64-character hex string is an image ID, not a repository name');
  const { domain, remainder } = splitDomain(input);
  // The repository path ends where a tag (":") or digest ("@") starts; only it must be lower case.
  const pathEnd = remainder.search(/[:@]/);
  const path = pathEnd === -1 ? remainder : remainder.slice(0, pathEnd);
  if (path.toLowerCase() !== path) throw new ReferenceError('UPPERCASE', input, `repository name "${path}" must be lower case`);
  return parseQualified(`${domain}/${remainder}`, input);
}

/** Parses a reference and fills in the default tag when it has neither tag nor digest. */
export function normalizeReference(input: string): Reference {
  return withDefaultTag(parseNormalized(input));
}

/**
 * Parses a reference that must already be fully qualified (`docker.io/library/nginx`, not
 * `nginx`). Throws NOT_CANONICAL for a familiar short form.
 */
export function parseCanonical(input: string): Reference {
  const ref = parseNormalized(input);
  const name = `${ref.domain}/${ref.path}`;
  if (!input.startsWith(name) || (input.length > name.length && !/^[:@]/.test(input.slice(name.length)))) {
    throw new ReferenceError('NOT_CANONICAL', input, `repository name must be canonical (${name})`);
  }
  return ref;
}

/** Parses `domain/path[:tag][@digest]` whose domain is already explicit. */
function parseQualified(qualified: string, input: string): Reference {
  const match = REFERENCE_RE.exec(qualified);
  if (!match) throw new ReferenceError('INVALID_FORMAT', input, 'does not match the reference grammar');
  const name = match[1] as string;
  if (name.length > NAME_MAX_LENGTH) throw new ReferenceError('NAME_TOO_LONG', input, `repository name is longer than ${NAME_MAX_LENGTH} characters`);
  const slash = name.indexOf('/');
  const domain = name.slice(0, slash);
  if (!DOMAIN_RE.test(domain)) throw new ReferenceError('INVALID_FORMAT', input, `"${domain}" is not a registry host`);
  const tag = match[2];
  const digest = match[3];
  if (digest !== undefined) validateDigest(digest, input);
  return {
    domain,
    path: name.slice(slash + 1),
    ...(tag !== undefined && { tag }),
    ...(digest !== undefined && { digest }),
  };
}

/** Like parseNormalized, but returns the error instead of throwing. */
export function tryParseNormalized(input: string): { ok: true; ref: Reference } | { ok: false; error: ReferenceError } {
  try {
    return { ok: true, ref: parseNormalized(input) };
  } catch (error) {
    if (error instanceof ReferenceError) return { ok: false, error };
    throw error;
  }
}

export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: DEFAULT_TAG } : ref;
}

/** `domain/path` */
export function repositoryName(ref: Pick<Reference, 'domain' | 'path'>): string {
  return `${ref.domain}/${ref.path}`;
}

/** The fully-qualified string: `docker.io/library/nginx:1.27@sha256:…`. */
export function formatReference(ref: Reference): string {
  return repositoryName(ref) + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

/** The short form people type: Docker Hub's domain and `library/` dropped. */
export function familiarString(ref: Reference): string {
  let name = repositoryName(ref);
  if (ref.domain === DEFAULT_DOMAIN) {
    name = ref.path.startsWith(OFFICIAL_REPO_PREFIX) && !ref.path.slice(OFFICIAL_REPO_PREFIX.length).includes('/')
      ? ref.path.slice(OFFICIAL_REPO_PREFIX.length)
      : ref.path;
  }
  return name + (ref.tag !== undefined ? `:${ref.tag}` : '') + (ref.digest !== undefined ? `@${ref.digest}` : '');
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}
