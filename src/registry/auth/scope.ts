// Docker token scopes: `repository:NAME:pull,push`, `registry:catalog:*`, several per request.
import type { Action } from '../../config/config.js';
import type { AccessEntry } from './tokens.js';

export interface RequestedScope { type: string; name: string; actions: string[] }

/** Parses scope parameters (each may hold several space-separated scopes); malformed ones are dropped. */
export function parseScopes(values: string[]): RequestedScope[] {
  const scopes: RequestedScope[] = [];
  for (const value of values) {
    for (const item of value.split(' ')) {
      const first = item.indexOf(':');
      const last = item.lastIndexOf(':');
      if (first <= 0 || last === first) continue;
      // `repository(plugin)` is an old docker spelling of the repository type.
      const type = item.slice(0, first).replace(/\(.*\)$/, '');
      const name = item.slice(first + 1, last);
      const actions = item.slice(last + 1).split(',').filter(Boolean);
      if (name && actions.length) scopes.push({ type, name, actions });
    }
  }
  return scopes;
}

/** A requested repository action list as registry actions; `*` asks for all of them. */
export function requestedActions(actions: string[]): Action[] {
  const out = new Set<Action>();
  for (const a of actions) {
    if (a === '*') ['pull', 'push', 'delete'].forEach((x) => out.add(x as Action));
    else if (a === 'pull' || a === 'push' || a === 'delete') out.add(a);
  }
  return [...out];
}

export function formatScope(repository: string, actions: string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

/** Whether a token's access claim grants `action` on `repository` (a `*` grant counts for all). */
export function tokenGrants(access: AccessEntry[], repository: string, action: Action): boolean {
  return access.some((e) => e.type === 'repository' && e.name === repository && (e.actions.includes(action) || e.actions.includes('*')));
}
