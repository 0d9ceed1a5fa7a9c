// Who may do what where: the access model of DESIGN.md plus the configuration's ordered rules.
// Pure and synchronous, so the routes can filter a catalog with it and tests can tabulate it.
import type { Action, Config } from '../../config/config.js';
import type { Principal } from './access.js';
import { namespaceOf } from './names.js';

const ALL_ACTIONS: Action[] = ['pull', 'push', 'delete'];

interface CompiledRule {
  repositories: RegExp[];
  principals: string[];
  actions: Set<Action>;
  allow: boolean;
}

/**
 * Repository globs: `*` and `?` stay inside one path component, `**` crosses slashes.
 * Everything else is literal.
 */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      out += '.*';
      i++;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

function principalMatches(pattern: string, p: Principal): boolean {
  switch (pattern) {
    case '$anonymous':
      return p.kind === 'anonymous';
    case '$authenticated':
      return p.kind !== 'anonymous';
    default:
      break;
  }
  if (pattern.startsWith('team:')) return p.kind === 'user' && p.teams.includes(pattern.slice(5));
  if (pattern.startsWith('namespace:')) return p.kind === 'namespace' && p.name === pattern.slice(10);
  const user = pattern.startsWith('user:') ? pattern.slice(5) : pattern;
  return p.kind === 'user' && p.name === user;
}

export interface MirrorNamespace { pushable: boolean }

export class Policy {
  private readonly rules: CompiledRule[];
  private readonly mirrors = new Map<string, MirrorNamespace>();

  constructor(private readonly config: Pick<Config, 'auth' | 'upstreams'>) {
    this.rules = config.auth.rules.map((rule) => ({
      repositories: [rule.repositories].flat().map(globToRegExp),
      principals: [rule.principals].flat(),
      actions: new Set(rule.actions.flatMap((a) => (a === '*' ? ALL_ACTIONS : [a]))),
      allow: rule.effect !== 'deny',
    }));
    for (const upstream of config.upstreams) {
      for (const name of [upstream.prefix, ...upstream.aliases]) this.mirrors.set(name, { pushable: upstream.pushable });
    }
  }

  isMirrorNamespace(namespace: string): boolean {
    return this.mirrors.has(namespace);
  }

  mirrorNamespaces(): string[] {
    return [...this.mirrors.keys()];
  }

  allows(principal: Principal, repository: string, action: Action): boolean {
    if (principal.admin) return true;
    for (const rule of this.rules) {
      if (!rule.actions.has(action)) continue;
      if (!rule.repositories.some((re) => re.test(repository))) continue;
      if (!rule.principals.some((pattern) => principalMatches(pattern, principal))) continue;
      return rule.allow;
    }
    return this.builtIn(principal, repository, action);
  }

  /** The subset of `actions` allowed, in a stable order. */
  allowed(principal: Principal, repository: string, actions: Iterable<Action>): Action[] {
    const wanted = new Set(actions);
    return ALL_ACTIONS.filter((a) => wanted.has(a) && this.allows(principal, repository, a));
  }

  private builtIn(p: Principal, repository: string, action: Action): boolean {
    const namespace = namespaceOf(repository);
    const mirror = this.mirrors.get(namespace);
    if (mirror) {
      if (action === 'pull') return p.kind !== 'anonymous' || this.config.auth.anonymous;
      return action === 'push' && mirror.pushable && p.kind === 'user';
    }
    if (p.kind === 'user') return namespace === p.name || p.teams.includes(namespace);
    if (p.kind === 'namespace') {
      return action === 'pull' && (namespace === p.name || (this.config.auth.namespaceGrants[p.name] ?? []).includes(namespace));
    }
    return false;
  }
}
