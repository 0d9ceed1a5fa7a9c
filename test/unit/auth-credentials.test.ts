import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword, isPasswordHash, verifyPassword } from '../../src/registry/auth/password.js';
import { clientAddress, LoginLimiter } from '../../src/registry/auth/rate-limit.js';
import { readUsersFile, writeUsersFile, UsersFileError } from '../../src/registry/auth/users-file.js';
import { FileAccountsStore } from '../../src/registry/auth/accounts-store.js';
import { UserStore } from '../../src/registry/auth/users.js';
import { isAccountName } from '../../src/registry/auth/names.js';
import { parseScopes, requestedActions } from '../../src/registry/auth/scope.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const dirs: TempDir[] = [];
afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()));
function tmp(): string {
  const d = makeTempDir();
  dirs.push(d);
  return d.path;
}

describe('passwords', () => {
  it('hash with scrypt in a self-describing format and verify', async () => {
    const hash = await hashPassword('s3cret');
    expect(hash).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(hash).not.toContain('s3cret');
    expect(isPasswordHash(hash)).toBe(true);
    expect(await verifyPassword('s3cret', hash)).toBe(true);
    expect(await verifyPassword('s3cret ', hash)).toBe(false);
    expect(await hashPassword('s3cret')).not.toBe(hash);
  });
  it('refuse malformed or abusive parameters', async () => {
    for (const bad of ['', 'plain', 'scrypt$3$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'scrypt$1073741824$8$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'bcrypt$x']) {
      expect(isPasswordHash(bad), bad).toBe(false);
      expect(await verifyPassword('x', bad)).toBe(false);
    }
  });
});

describe('names and scopes', () => {
  it('accept only names that are valid namespaces and not reserved', () => {
    for (const ok of ['alice', 'a.b', 'team-1', 'x_y']) expect(isAccountName(ok), ok).toBe(true);
    for (const bad of ['Alice', '', '-a', 'a/b', '../x', 'namespace', 'a:b', 'a'.repeat(65)]) expect(isAccountName(bad), bad).toBe(false);
  });
  it('parse repeated and space-separated scopes', () => {
    expect(parseScopes(['repository:a/b:pull,push', 'repository:c:pull registry:catalog:*', 'bogus', 'repository(plugin):d:pull', 'repository::pull'])).toEqual([
      { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
      { type: 'repository', name: 'c', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
      { type: 'repository', name: 'd', actions: ['pull'] },
    ]);
    expect(requestedActions(['*'])).toEqual(['pull', 'push', 'delete']);
    expect(requestedActions(['pull', 'admin', 'push'])).toEqual(['pull', 'push']);
  });
});

describe('login limiter', () => {
  it('locks a user at one address after too many failures, refuses there during the lock, then lets the right password through', () => {
    let now = 0;
    const limiter = new LoginLimiter({ perUser: 3, perClient: 10, windowMs: 1000 }, () => now);
    limiter.fail('1.1.1.1', 'alice');
    limiter.fail('1.1.1.1', 'alice');
    expect(limiter.retryAfter('1.1.1.1', 'alice')).toBe(0);
    limiter.fail('1.1.1.1', 'alice');
    expect(limiter.retryAfter('1.1.1.1', 'alice')).toBe(1000);
    expect(limiter.retryAfter('1.1.1.1', 'bob')).toBe(0);
    now = 999;
    expect(limiter.retryAfter('1.1.1.1', 'alice')).toBe(1);
    now = 1000;
    expect(limiter.retryAfter('1.1.1.1', 'alice')).toBe(0);
  });
  it('never locks a user out of other addresses: failures spread over addresses do not add up', () => {
    const limiter = new LoginLimiter({ perUser: 3, perClient: 10, windowMs: 1000 }, () => 0);
    for (let i = 0; i < 3; i++) limiter.fail('1.1.1.1', 'admin');
    limiter.fail('2.2.2.2', 'admin');
    limiter.fail('3.3.3.3', 'admin');
    expect(limiter.retryAfter('1.1.1.1', 'admin')).toBe(1000);
    expect(limiter.retryAfter('2.2.2.2', 'admin')).toBe(0);
    expect(limiter.retryAfter('4.4.4.4', 'admin')).toBe(0);
    limiter.succeed('2.2.2.2', 'admin');
    expect(limiter.retryAfter('1.1.1.1', 'admin')).toBe(1000);
  });
  it('locks a client address across user names, and a success does not unlock it', () => {
    let now = 0;
    const limiter = new LoginLimiter({ perUser: 100, perClient: 3, windowMs: 1000 }, () => now);
    for (const u of ['a', 'b', 'c']) limiter.fail('9.9.9.9', u);
    limiter.succeed('9.9.9.9', 'a');
    expect(limiter.retryAfter('9.9.9.9', 'zed')).toBe(1000);
    expect(limiter.retryAfter('8.8.8.8', 'zed')).toBe(0);
  });
  it('counts an IPv4 client of a dual-stack socket as its IPv4 address, and an IPv6 client by its /64', () => {
    expect(clientAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(clientAddress('10.1.2.3')).toBe('10.1.2.3');
    expect(clientAddress('2001:db8:0:1::5')).toBe('2001:db8:0:1::/64');
    expect(clientAddress('2001:0db8:0000:0001:ffff:1:2:3')).toBe('2001:db8:0:1::/64');
    expect(clientAddress('::1')).toBe('0:0:0:0::/64');
    const limiter = new LoginLimiter({ perUser: 100, perClient: 3, windowMs: 1000 }, () => 0);
    // An attacker cycling through the addresses of its own /64 is one client.
    for (const ip of ['2001:db8:0:1::a', '2001:db8:0:1::b', '2001:db8:0:1:1:2:3:4']) limiter.fail(ip, 'x');
    expect(limiter.retryAfter('2001:db8:0:1::ffff', 'y')).toBe(1000);
    expect(limiter.retryAfter('2001:db8:0:2::a', 'y')).toBe(0);
    limiter.fail('::ffff:10.9.9.9', 'x');
    limiter.fail('10.9.9.9', 'x');
    limiter.fail('10.9.9.9', 'x');
    expect(limiter.retryAfter('::ffff:10.9.9.9', 'y')).toBe(1000);
  });
  it('forgets failures outside the window', () => {
    let now = 0;
    const limiter = new LoginLimiter({ perUser: 2, perClient: 10, windowMs: 1000 }, () => now);
    limiter.fail('c', 'u');
    now = 1500;
    limiter.fail('c', 'u');
    expect(limiter.retryAfter('c', 'u')).toBe(0);
  });
});

describe('users file', () => {
  it('round-trips with mode 0600 and an absent file is empty', async () => {
    const file = path.join(tmp(), 'auth', 'users.yaml');
    expect(await readUsersFile(file)).toEqual({ users: [], teams: [] });
    const hash = await hashPassword('pw');
    await writeUsersFile(file, { users: [{ name: 'alice', passwordHash: hash, admin: false, teams: ['dev'] }], teams: ['dev', 'ops'] });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await readUsersFile(file)).toEqual({ users: [{ name: 'alice', passwordHash: hash, admin: false, teams: ['dev'] }], teams: ['dev', 'ops'] });
  });
  it('names the bad key of an invalid file', async () => {
    const file = path.join(tmp(), 'users.yaml');
    const cases: [string, RegExp][] = [
      ['users: [{name: alice, password: plain}]', /users\.0\.password: unknown key/],
      ['users: [{name: "../x", passwordHash: "scrypt$x"}]', /users\.0\.name: not a valid user name/],
      ['users: [{name: alice, passwordHash: nope}]', /users\.0\.passwordHash: not a scrypt hash/],
      ['teams: [alice]\nusers: [{name: alice, passwordHash: "scrypt$16$1$1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}]', /already a user or team/],
      ['groups: []', /groups: unknown key/],
      ['users: [', /not valid YAML/],
    ];
    for (const [text, problem] of cases) {
      writeFileSync(file, text);
      await expect(readUsersFile(file), text).rejects.toThrow(problem);
      await expect(readUsersFile(file)).rejects.toBeInstanceOf(UsersFileError);
    }
  });
  it('is reloaded when it changes; an invalid edit keeps the previous users', async () => {
    const file = path.join(tmp(), 'users.yaml');
    const hash = await hashPassword('pw');
    await writeUsersFile(file, { users: [{ name: 'alice', passwordHash: hash }], teams: [] });
    const store = new UserStore([{ name: 'admin', password: 'x', admin: true }], new FileAccountsStore(file));
    await store.load();
    const events: (string | undefined)[] = [];
    store.watch((err) => events.push(err?.message), 50);
    try {
      expect(store.get('alice')).toBeDefined();
      expect(store.get('admin')?.source).toBe('config');
      await writeUsersFile(file, { users: [{ name: 'bob', passwordHash: hash, teams: ['ops'] }], teams: ['qa'] });
      await waitFor(() => store.get('bob') !== undefined, 5000);
      expect(store.get('alice')).toBeUndefined();
      expect(store.teams()).toEqual(['ops', 'qa']);
      writeFileSync(file, 'users: [');
      await waitFor(() => events.some((e) => e !== undefined), 5000);
      expect(store.get('bob')).toBeDefined();
    } finally {
      store.close();
    }
  });
});
