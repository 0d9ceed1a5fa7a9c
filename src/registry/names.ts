// The distribution-spec grammars for repository names and tags. Everything that reaches the
// filesystem has passed one of these first.
import { RegistryError } from './errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Docker Distribution's limit; longer names also risk the filesystem's path limits. */
export const MAX_NAME_LENGTH = 255;

export function isRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function assertRepositoryName(name: string): string {
  if (!isRepositoryName(name)) throw new RegistryError('NAME_INVALID', 'invalid repository name', { name: name.slice(0, 300) });
  return name;
}

export function assertTag(tag: string): string {
  if (!isTag(tag)) throw new RegistryError('TAG_INVALID', 'invalid tag', { tag: tag.slice(0, 200) });
  return tag;
}

/** The first path component: the namespace that access rules and mirrors key on. */
export function namespaceOf(name: string): string {
  const slash = name.indexOf('/');
  return slash === -1 ? name : name.slice(0, slash);
}
