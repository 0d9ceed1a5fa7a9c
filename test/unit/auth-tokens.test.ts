import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT, decodeProtectedHeader, generateKeyPair } from 'jose';
import { KeyRing } from '../../src/registry/auth/keys.js';
import { TokenService, type TokenSettings } from '../../src/registry/auth/tokens.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const SETTINGS: TokenSettings = { issuer: 'layover', service: 'layover', accessTTLMs: 300_000, refreshTTLMs: 86_400_000, namespaceTTLMs: 30 * 86_400_000 };
const dirs: TempDir[] = [];
const rings: KeyRing[] = [];
async function ring(now?: () => number): Promise<{ keys: KeyRing; dir: string }> {
  const dir = makeTempDir();
  dirs.push(dir);
  const keys = await KeyRing.open(path.join(dir.path, 'keys'), { now });
  rings.push(keys);
  return { keys, dir: path.join(dir.path, 'keys') };
}
afterEach(() => {
  rings.splice(0).forEach((r) => r.close());
  dirs.splice(0).forEach((d) => d.cleanup());
});

describe('key ring', () => {
  it('creates one ES256 key in a 0600 file and reopens the same key', async () => {
    const { keys, dir } = await ring();
    const file = path.join(dir, 'signing-keys.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const again = await KeyRing.open(dir);
    expect(again.current().kid).toBe(keys.current().kid);
    expect(JSON.parse(await readFile(file, 'utf8')).keys).toHaveLength(1);
  });

  it('rotation keeps old keys verifying for the grace period only', async () => {
    let now = Date.now();
    const { keys } = await ring(() => now);
    const tokens = new TokenService(keys, SETTINGS, () => now);
    const old = await tokens.mintNamespaceToken('shop');
    const oldKid = keys.current().kid;
    const newKid = await keys.rotate(3_600_000);
    expect(newKid).not.toBe(oldKid);
    expect(tokens.currentKeyId()).toBe(newKid);
    expect((await tokens.verify(old.token, 'namespace')).subject).toBe('namespace:shop');
    now += 3_600_001;
    await expect(tokens.verify(old.token, 'namespace')).rejects.toThrow(/invalid token/);
    const fresh = await tokens.mintNamespaceToken('shop');
    expect(decodeProtectedHeader(fresh.token).kid).toBe(newKid);
    expect(fresh.keyId).toBe(newKid);
    await expect(tokens.verify(fresh.token, 'namespace')).resolves.toMatchObject({ subject: 'namespace:shop' });
  });

  it('rotation with no grace revokes at once, also in another process that reloads', async () => {
    const { keys, dir } = await ring();
    const tokens = new TokenService(keys, SETTINGS);
    const token = (await tokens.mintNamespaceToken('shop')).token;
    const other = await KeyRing.open(dir);
    rings.push(other);
    await new TokenService(other, SETTINGS).verify(token, 'namespace');
    await keys.rotate(0);
    await other.reload();
    await expect(new TokenService(other, SETTINGS).verify(token, 'namespace')).rejects.toThrow(/invalid token/);
  });
});

describe('tokens', () => {
  it('carry issuer, audience, expiry, issued-at, key id and the access claim', async () => {
    const { keys } = await ring();
    const tokens = new TokenService(keys, SETTINGS);
    const issued = await tokens.issueAccess('alice', [{ type: 'repository', name: 'alice/app', actions: ['pull'] }]);
    expect(issued.expiresAt.getTime() - issued.issuedAt.getTime()).toBe(300_000);
    const verified = await tokens.verify(issued.token, 'access');
    expect(verified.subject).toBe('alice');
    expect(verified.access).toEqual([{ type: 'repository', name: 'alice/app', actions: ['pull'] }]);
    expect(verified.claims).toMatchObject({ iss: 'layover', aud: 'layover' });
    expect(decodeProtectedHeader(issued.token)).toMatchObject({ alg: 'ES256', kid: keys.current().kid });
  });

  it('refuses expired, foreign, unsigned, mis-addressed and mis-used tokens', async () => {
    let now = Date.now();
    const { keys } = await ring(() => now);
    const tokens = new TokenService(keys, SETTINGS, () => now);
    const access = [{ type: 'repository', name: 'alice/app', actions: ['pull'] }];
    const good = (await tokens.issueAccess('alice', access)).token;

    // expired (beyond the 10 s clock tolerance)
    now += 300_000 + 11_000;
    await expect(tokens.verify(good, 'access')).rejects.toThrow(/ERR_JWT_EXPIRED/);
    now -= 300_000 + 11_000;

    // signed by a key that is not ours, under our kid
    const { privateKey: foreign } = await generateKeyPair('ES256');
    const claims = { access, use: 'access' };
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: keys.current().kid })
      .setIssuer('layover').setAudience('layover').setSubject('admin').setIssuedAt().setExpirationTime('5m').sign(foreign);
    await expect(tokens.verify(forged, 'access')).rejects.toThrow(/ERR_JWS_SIGNATURE_VERIFICATION_FAILED/);

    // alg: none
    const unsigned = new UnsecuredJWT(claims).setIssuer('layover').setAudience('layover').setSubject('admin').setIssuedAt().setExpirationTime('5m').encode();
    await expect(tokens.verify(unsigned, 'access')).rejects.toThrow(/invalid token/);
    const noneWithKid = `${Buffer.from(JSON.stringify({ alg: 'none', kid: keys.current().kid })).toString('base64url')}.${unsigned.split('.')[1]}.`;
    await expect(tokens.verify(noneWithKid, 'access')).rejects.toThrow(/invalid token/);

    // HS256 with the public key as secret (algorithm confusion)
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: keys.current().kid })
      .setIssuer('layover').setAudience('layover').setSubject('admin').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode('x'.repeat(32)));
    await expect(tokens.verify(hs, 'access')).rejects.toThrow(/invalid token/);

    // wrong audience and wrong issuer, properly signed with our key
    const { privateKey } = keys.current();
    const sign = (aud: string, iss: string) => new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: keys.current().kid })
      .setIssuer(iss).setAudience(aud).setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    await expect(tokens.verify(await sign('other-registry', 'layover'), 'access')).rejects.toThrow(/ERR_JWT_CLAIM_VALIDATION_FAILED/);
    await expect(tokens.verify(await sign('layover', 'someone-else'), 'access')).rejects.toThrow(/ERR_JWT_CLAIM_VALIDATION_FAILED/);
    expect((await tokens.verify(await sign('layover', 'layover'), 'access')).subject).toBe('alice');

    // unknown kid
    const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'nope' })
      .setIssuer('layover').setAudience('layover').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    await expect(tokens.verify(unknownKid, 'access')).rejects.toThrow(/invalid token/);

    // a namespace token is not an access token, and vice versa
    const ns = (await tokens.mintNamespaceToken('shop')).token;
    await expect(tokens.verify(ns, 'access')).rejects.toThrow(/namespace token used as access/);
    await expect(tokens.verify(good, 'namespace')).rejects.toThrow(/access token used as namespace/);
    // tampered payload
    const [h, , s] = good.split('.');
    const escalated = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(good.split('.')[1]!, 'base64url').toString()), sub: 'admin' })).toString('base64url');
    await expect(tokens.verify(`${h}.${escalated}.${s}`, 'access')).rejects.toThrow(/invalid token/);
  });
});
