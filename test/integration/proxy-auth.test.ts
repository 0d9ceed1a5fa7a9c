// Pull-through from upstreams that demand credentials: docker-registry behind htpasswd (Basic),
// the same through a credential helper, and a second layover with auth on (the Docker token flow).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.js';
import { startDockerRegistry, type DockerRegistry } from '../helpers/docker-registry.js';
import { startLayover, type InProcessLayover } from '../helpers/layover.js';
import { computeDigest } from '../helpers/oci-content.js';
import { makeOciImage, type OciImage } from '../helpers/oci-layout.js';
import { getBytes } from '../helpers/registry-client.js';
import { skopeoCopy, skopeoInspect } from '../helpers/skopeo.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';
import { writeFileSync } from 'node:fs';

let tmp: TempDir;
const CREDS = { user: 'puller', password: 'pull-secret-1' };

beforeAll(() => {
  tmp = makeTempDir('layover-proxy-auth-');
});
afterAll(() => tmp?.cleanup());

describe('docker-registry upstream behind htpasswd (Basic)', () => {
  let upstream: DockerRegistry;
  let image: OciImage;

  beforeAll(async () => {
    upstream = await startDockerRegistry({ htpasswd: CREDS });
    image = await makeOciImage(`${tmp.path}/basic`, { layers: 2, tag: 'v1', seed: 'proxy-basic' });
    await skopeoCopy(image.ref, `docker://${upstream.host}/team/basic:v1`, { destCreds: CREDS });
  }, 60_000);
  afterAll(async () => upstream?.close());

  it('pulls with username and password', async () => {
    const mirror = await startLayover({ upstreams: [{ prefix: 'priv', url: upstream.url, username: CREDS.user, password: CREDS.password }] });
    try {
      await skopeoCopy(`docker://${mirror.host}/priv/team/basic:v1`, `oci:${tmp.path}/basic-out:v1`);
      const raw = await skopeoInspect(`docker://${mirror.host}/priv/team/basic:v1`, { raw: true });
      expect(raw.equals(image.manifest.bytes)).toBe(true);
      expect(mirror.log()).not.toContain(CREDS.password);
    } finally {
      await mirror.close();
    }
  });

  it('pulls with a passwordFile and with a credential helper printing user:secret', async () => {
    const file = `${tmp.path}/upstream-password`;
    writeFileSync(file, `${CREDS.password}\n`, { mode: 0o600 });
    const helper = `${tmp.path}/helper.sh`;
    writeFileSync(helper, `#!/bin/sh\necho run >> ${tmp.path}/helper-runs\nprintf '%s' '${CREDS.user}:${CREDS.password}'\n`, { mode: 0o700 });
    const mirror = await startLayover({
      upstreams: [
        { prefix: 'viafile', url: upstream.url, username: CREDS.user, passwordFile: file },
        { prefix: 'viahelper', url: upstream.url, credentialHelper: helper, credentialTTL: '10m' },
      ],
    });
    try {
      for (const prefix of ['viafile', 'viahelper']) {
        const res = await getBytes(`${mirror.url}/v2/${prefix}/team/basic/manifests/v1`, { headers: { accept: image.manifest.mediaType } });
        expect(res.status).toBe(200);
        expect(computeDigest(res.body)).toBe(image.manifest.digest);
      }
      await skopeoCopy(`docker://${mirror.host}/viahelper/team/basic:v1`, `oci:${tmp.path}/helper-out:v1`);
      // Cached until credentialTTL: one run however many requests.
      const { readFileSync } = await import('node:fs');
      expect(readFileSync(`${tmp.path}/helper-runs`, 'utf8').trim().split('\n')).toHaveLength(1);
      expect(mirror.log()).not.toContain(CREDS.password);
    } finally {
      await mirror.close();
    }
  });

  it('wrong credentials: the client is denied, with the upstream named and no secret in the log', async () => {
    const mirror = await startLayover({ upstreams: [{ prefix: 'priv', url: upstream.url, username: CREDS.user, password: 'wrong-password-9' }] });
    try {
      const res = await getBytes(`${mirror.url}/v2/priv/team/basic/manifests/v1`);
      expect(res.status).toBe(403);
      expect(res.body.toString()).toMatch(/upstream priv/);
      expect(mirror.log()).not.toContain('wrong-password-9');
    } finally {
      await mirror.close();
    }
  });
});

describe('layover upstream with auth on (Docker token flow)', () => {
  let upstream: InProcessLayover;
  let relay: CountingProxy;
  let image: OciImage;
  const USER = { user: 'mirrorbot', password: 'mirror-bot-pw-1' };

  beforeAll(async () => {
    upstream = await startLayover({ auth: { enabled: true, users: [{ name: USER.user, password: USER.password }] } });
    relay = await startCountingProxy(upstream.url);
    image = await makeOciImage(`${tmp.path}/token`, { layers: 2, tag: 'v1', seed: 'proxy-token' });
    await skopeoCopy(image.ref, `docker://${upstream.host}/mirrorbot/app:v1`, { destCreds: USER });
  }, 60_000);
  afterAll(async () => {
    await relay?.close();
    await upstream?.close();
  });

  it('gets a token for repository:<name>:pull and reuses it until it expires', async () => {
    const challenge = await getBytes(`${upstream.url}/v2/`);
    expect(challenge.status).toBe(401);
    expect(String(challenge.headers['www-authenticate'])).toMatch(/^Bearer realm=/);

    const mirror = await startLayover({ upstreams: [{ prefix: 'corp', url: relay.url, username: USER.user, password: USER.password }] });
    try {
      await skopeoCopy(`docker://${mirror.host}/corp/mirrorbot/app:v1`, `oci:${tmp.path}/token-out:v1`);
      const raw = await skopeoInspect(`docker://${mirror.host}/corp/mirrorbot/app:v1`, { raw: true });
      expect(raw.equals(image.manifest.bytes)).toBe(true);
      const tokenRequests = relay.requests().filter((r) => r.path === '/token');
      expect(tokenRequests.length).toBe(1);
      expect(new URLSearchParams(tokenRequests[0]?.query).get('scope')).toBe('repository:mirrorbot/app:pull');
      // Every upstream registry request after discovery carried the token: none was refused.
      expect(relay.requests().filter((r) => r.path.startsWith('/v2/mirrorbot/') && r.status === 401)).toEqual([]);
    } finally {
      await mirror.close();
    }
  });

  it('without credentials the upstream denies, and the client sees DENIED', async () => {
    const mirror = await startLayover({ upstreams: [{ prefix: 'corp', url: relay.url }] });
    try {
      const res = await getBytes(`${mirror.url}/v2/corp/mirrorbot/app/manifests/v1`);
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body.toString()).errors[0].code).toBe('DENIED');
    } finally {
      await mirror.close();
    }
  });
});
