// The blob lease between replicas (src/registry/proxy/cluster-lease.ts) on a real PostgreSQL: one
// replica leads a cold pull and the others are told whom to follow; the lease changes hands when
// given back or when its holder stops renewing; a peer that failed is not followed again; and a
// database out of reach never stops a pull (the replica downloads alone).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../src/database/database.js';
import { Leases } from '../../src/database/leases.js';
import { openDatabase } from '../../src/database/open.js';
import type { Digest } from '../../src/registry/digest.js';
import { peerOf, PullLeases, pullHolderId, type PullClaim } from '../../src/registry/proxy/cluster-lease.js';
import { startPostgres, type Postgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait-for.js';

let pg: Postgres;
let db: Database;
const SOURCE = 'a'.repeat(32);
const digest = (n: number) => `sha256:${String(n).padStart(64, '0')}` as Digest;

function replica(url: string, ttlMs = 30_000, database: Database = db): PullLeases {
  return new PullLeases(new Leases(database, pullHolderId(url, `host:${url.length}:${Math.random()}`)), undefined, ttlMs);
}

const peer = (claim: PullClaim) => (claim.kind === 'follow' ? claim.peer : undefined);

beforeAll(async () => {
  pg = await startPostgres();
  db = await openDatabase({ url: pg.url, maxConnections: 4, connectTimeoutMs: 2_000 }, { waitMs: 0 });
}, 60_000);

afterAll(async () => {
  await db?.close();
  await pg?.close();
});

describe('blob leases between replicas', () => {
  it('holder ids carry the URL the others reach the replica at', () => {
    expect(peerOf(pullHolderId('http://10.0.0.7:5000', 'pod-a:1:ab'))).toBe('http://10.0.0.7:5000');
    expect(peerOf(pullHolderId('https://[fd00::7]:5443', 'pod-a:1:ab'))).toBe('https://[fd00::7]:5443');
    // A lease some other code took (e.g. processHolderId() alone) names nobody to follow.
    expect(peerOf('pod-a:1:ab')).toBeUndefined();
    expect(peerOf('http://x:5000/path y')).toBeUndefined();
  });

  it('one replica leads; the others follow it until it gives the lease back, then one of them leads', async () => {
    const [a, b, c] = [replica('http://10.0.0.1:5000'), replica('http://10.0.0.2:5000'), replica('http://10.0.0.3:5000')];
    const claims = await Promise.all([a, b, c].map((r) => r.claim(SOURCE, digest(1))));
    const leaders = claims.filter((claim) => claim.kind === 'lead');
    expect(leaders).toHaveLength(1);
    const leaderUrl = ['http://10.0.0.1:5000', 'http://10.0.0.2:5000', 'http://10.0.0.3:5000'][claims.findIndex((claim) => claim.kind === 'lead')];
    for (const claim of claims) if (claim.kind === 'follow') expect(claim.peer).toBe(leaderUrl);
    // Another digest, or another upstream, is another lease.
    expect((await b.claim(SOURCE, digest(2))).kind).toBe('lead');
    expect((await c.claim('b'.repeat(32), digest(1))).kind).toBe('lead');
    const leader = leaders[0] as Extract<PullClaim, { kind: 'lead' }>;
    leader.release();
    await waitFor(async () => (await pg.query('SELECT 1 FROM leases WHERE key = $1', [`pull:${SOURCE}:${digest(1)}`])).rowCount === 0, 5_000);
    const next = await Promise.all([a, b, c].map((r) => r.claim(SOURCE, digest(1))));
    expect(next.filter((claim) => claim.kind === 'lead')).toHaveLength(1);
  });

  it('a live holder keeps its lease past its TTL by renewing it; a dead one loses it when it expires', async () => {
    const live = replica('http://10.0.1.1:5000', 3_000);
    const other = replica('http://10.0.1.2:5000', 3_000);
    const held = await live.claim(SOURCE, digest(3));
    expect(held.kind).toBe('lead');
    await new Promise((r) => setTimeout(r, 4_500));
    expect(peer(await other.claim(SOURCE, digest(3)))).toBe('http://10.0.1.1:5000');
    if (held.kind === 'lead') held.release();
    // A holder that died: its row stays, unrenewed, until it expires.
    await pg.query('INSERT INTO leases (key, holder, expires) VALUES ($1, $2, (extract(epoch from clock_timestamp()) * 1000)::bigint + 1500)', [`pull:${SOURCE}:${digest(4)}`, 'http://10.0.1.9:5000 dead:1:0']);
    expect(peer(await other.claim(SOURCE, digest(4)))).toBe('http://10.0.1.9:5000');
    await new Promise((r) => setTimeout(r, 2_000));
    expect((await other.claim(SOURCE, digest(4))).kind).toBe('lead');
  }, 20_000);

  it('a peer that just failed us is not followed again: the replica downloads alone, the lease left to its holder', async () => {
    const holder = replica('http://10.0.2.1:5000');
    const follower = replica('http://10.0.2.2:5000');
    expect((await holder.claim(SOURCE, digest(5))).kind).toBe('lead');
    const avoided = await follower.claim(SOURCE, digest(5), 'http://10.0.2.1:5000');
    expect(avoided.kind).toBe('lead');
    if (avoided.kind === 'lead') avoided.release();
    // The follower's "lead" took nothing: the holder still holds the lease.
    expect(peer(await replica('http://10.0.2.3:5000').claim(SOURCE, digest(5)))).toBe('http://10.0.2.1:5000');
  });

  it('a database out of reach makes the replica download alone instead of failing the pull', async () => {
    const gone = new Database('postgres://layover@127.0.0.1:1/layover', { maxConnections: 1, connectTimeoutMs: 500 });
    try {
      const claim = await replica('http://10.0.3.1:5000', 30_000, gone).claim(SOURCE, digest(6));
      expect(claim.kind).toBe('lead');
      if (claim.kind === 'lead') claim.release();
    } finally {
      await gone.close();
    }
  });
});
