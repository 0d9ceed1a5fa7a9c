import { describe, expect, it } from 'vitest';
import { ANONYMOUS, type Action, type Principal } from '../../src/registry/auth/access.js';
import { globToRegExp, Policy } from '../../src/registry/auth/policy.js';
import { authConfig } from '../fixtures/auth/config.js';

const admin: Principal = { kind: 'user', name: 'admin', admin: true, teams: [] };
const alice: Principal = { kind: 'user', name: 'alice', admin: false, teams: ['dev'] };
const bob: Principal = { kind: 'user', name: 'bob', admin: false, teams: ['ops'] };
const shop: Principal = { kind: 'namespace', name: 'shop', admin: false, teams: [] };

function can(policy: Policy, p: Principal, repo: string): string {
  return (['pull', 'push', 'delete'] as Action[]).map((a) => (policy.allows(p, repo, a) ? a[0] : '-')).join('');
}

describe('policy', () => {
  const policy = new Policy(authConfig('/tmp/x'));

  it('follows the access model of DESIGN.md', () => {
    const table: [Principal, string, string][] = [
      [admin, 'alice/app', 'ppd'], [admin, 'docker.io/library/nginx', 'ppd'],
      [alice, 'alice/app', 'ppd'], [alice, 'alice', 'ppd'], [alice, 'alice/a/b/c', 'ppd'],
      [alice, 'bob/app', '---'], [alice, 'dev/tool', 'ppd'], [alice, 'ops/tool', '---'],
      [alice, 'docker.io/library/nginx', 'p--'], [alice, 'dockerhub/library/nginx', 'p--'],
      [alice, 'alicex/app', '---'], [alice, 'docker.iox/a', '---'],
      [bob, 'ops/tool', 'ppd'], [bob, 'dev/tool', '---'],
      [shop, 'shop/web', 'p--'], [shop, 'dev/tool', 'p--'], [shop, 'ops/tool', '---'], [shop, 'docker.io/library/nginx', 'p--'],
      [ANONYMOUS, 'docker.io/library/nginx', '---'], [ANONYMOUS, 'alice/app', '---'],
    ];
    for (const [p, repo, expected] of table) expect(`${p.kind}:${p.name} ${repo} ${can(policy, p, repo)}`).toBe(`${p.kind}:${p.name} ${repo} ${expected}`);
  });

  it('lets anonymous pull mirrors only when auth.anonymous is on', () => {
    const open = new Policy(authConfig('/tmp/x', { anonymous: true }));
    expect(can(open, ANONYMOUS, 'docker.io/library/nginx')).toBe('p--');
    expect(can(open, ANONYMOUS, 'alice/app')).toBe('---');
  });

  it('applies ordered rules, first match wins, before the built-in grants', () => {
    const ruled = new Policy(authConfig('/tmp/x', {
      rules: [
        { repositories: 'alice/secret/**', principals: 'alice', actions: ['push'], effect: 'deny' },
        { repositories: 'public/*', principals: ['$anonymous', '$authenticated'], actions: ['pull'] },
        { repositories: 'public/*', principals: 'team:ops', actions: ['*'] },
        { repositories: 'releases/**', principals: ['namespace:shop', 'user:carol'], actions: ['pull'] },
        { repositories: 'docker.io/**', principals: '$authenticated', actions: ['pull'], effect: 'deny' },
        { repositories: 'docker.io/**', principals: '$authenticated', actions: ['pull'] },
      ],
    }));
    const carol: Principal = { kind: 'user', name: 'carol', admin: false, teams: [] };
    expect(can(ruled, alice, 'alice/secret/x')).toBe('p-d');
    expect(can(ruled, alice, 'alice/other')).toBe('ppd');
    expect(can(ruled, ANONYMOUS, 'public/x')).toBe('p--');
    expect(can(ruled, ANONYMOUS, 'public/x/y')).toBe('---');
    // the pull rule matched first for bob; push/delete fall to the team:ops rule
    expect(can(ruled, bob, 'public/x')).toBe('ppd');
    expect(can(ruled, shop, 'releases/a/b')).toBe('p--');
    expect(can(ruled, carol, 'releases/a')).toBe('p--');
    expect(can(ruled, alice, 'releases/a')).toBe('---');
    expect(can(ruled, alice, 'docker.io/library/nginx')).toBe('---');
    expect(can(ruled, admin, 'docker.io/library/nginx')).toBe('ppd');
  });

  it('allows push into a pushable mirror for users only', () => {
    const config = authConfig('/tmp/x');
    config.upstreams[0]!.pushable = true;
    const pushable = new Policy(config);
    expect(can(pushable, alice, 'docker.io/a/b')).toBe('pp-');
    expect(can(pushable, shop, 'docker.io/a/b')).toBe('p--');
  });

  it('compiles globs with component-bound * and crossing **', () => {
    expect(globToRegExp('a/*').test('a/b')).toBe(true);
    expect(globToRegExp('a/*').test('a/b/c')).toBe(false);
    expect(globToRegExp('a/**').test('a/b/c')).toBe(true);
    expect(globToRegExp('a.b/?').test('a.b/c')).toBe(true);
    expect(globToRegExp('a.b/?').test('axb/c')).toBe(false);
    expect(globToRegExp('(x)+').test('(x)+')).toBe(true);
  });
});
