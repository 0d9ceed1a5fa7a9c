// A data directory in the file layout of layover before the SQL metadata (repositories/ trees of
// small files, sources/ markers, uploads/<id>/info.json) is imported into metadata.db on first
// start, once and atomically, and the old trees are moved into legacy-metadata/. The fixture is
// written here exactly as that code wrote it (see git history: storage/filesystem.ts, layout.ts).
import { existsSync, mkdirSync, readdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, type Digest } from '../../src/registry/digest.js';
import { collectGarbage } from '../../src/registry/gc/collector.js';
import { openEmbeddedStore } from '../../src/registry/storage/embedded.js';
import { LEGACY_DIR } from '../../src/registry/storage/legacy-import.js';
import { makeTempDir, type TempDir } from '../helpers/temp-dir.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const SOURCE = 'a'.repeat(32);
const UPLOAD_ID = '0b5e3a7e-1111-4222-8333-444455556666';

let tmp: TempDir;
let root: string;

beforeEach(() => {
  tmp = makeTempDir('layover-migrate-');
  root = path.join(tmp.path, 'data');
});
afterEach(() => tmp.cleanup());

const hexOf = (d: string) => d.slice('sha256:'.length);

function write(file: string, data: string | Buffer, mtime?: Date): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, data);
  if (mtime) utimesSync(file, mtime, mtime);
}

function blob(bytes: Buffer | string): { digest: Digest; size: number; bytes: Buffer } {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const digest = digestOf(b);
  write(path.join(root, 'blobs', 'sha256', hexOf(digest).slice(0, 2), hexOf(digest)), b);
  return { digest, size: b.length, bytes: b };
}

const repoDir = (name: string) => path.join(root, 'repositories', ...name.split('/'));

function revision(repo: string, m: { digest: Digest; size: number }, mediaType: string, extra: Record<string, unknown> = {}, mtime?: Date): void {
  write(path.join(repoDir(repo), '_manifests', 'revisions', 'sha256', hexOf(m.digest)), JSON.stringify({ digest: m.digest, mediaType, size: m.size, ...extra }), mtime);
}
const tag = (repo: string, t: string, d: Digest, mtime?: Date) => write(path.join(repoDir(repo), '_manifests', 'tags', t), d, mtime);
const link = (repo: string, d: Digest) => write(path.join(repoDir(repo), '_layers', 'sha256', hexOf(d)), d);

/** An image (config + one layer) and what its tree holds. */
function image(seed: string) {
  const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layer = blob(`layer ${seed}`);
  const manifest = blob(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size }, layers: [{ mediaType: LAYER, digest: layer.digest, size: layer.size }] }),
  );
  return { config, layer, manifest };
}

const PUSHED = new Date('2026-01-02T03:04:05Z');
const PULLED = new Date('2026-02-03T04:05:06Z');

/** team/app: tagged image v1, an index (tag multi) over it, a signature referring to v1, an untagged image; mirror/lib/x cached from SOURCE. */
function writeLegacyTree() {
  const v1 = image('v1');
  const old = image('old');
  const index = blob(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: v1.manifest.digest, size: v1.manifest.size, platform: { os: 'linux', architecture: 'amd64' } }] }));
  const sig = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/example.sig',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: digestOf('{}'), size: 2 },
      layers: [],
      subject: { mediaType: OCI_MANIFEST, digest: v1.manifest.digest, size: v1.manifest.size },
    }),
  );
  blob('{}');
  for (const im of [v1, old]) {
    revision('team/app', im.manifest, OCI_MANIFEST, {}, PUSHED);
    link('team/app', im.config.digest);
    link('team/app', im.layer.digest);
  }
  revision('team/app', index, OCI_INDEX, {}, PUSHED);
  revision('team/app', sig, OCI_MANIFEST, { subject: v1.manifest.digest, artifactType: 'application/example.sig' }, PUSHED);
  const referrer = { mediaType: OCI_MANIFEST, digest: sig.digest, size: sig.size, artifactType: 'application/example.sig' };
  write(path.join(repoDir('team/app'), '_referrers', 'sha256', hexOf(v1.manifest.digest), `sha256-${hexOf(sig.digest)}`), JSON.stringify(referrer));
  tag('team/app', 'v1', v1.manifest.digest, PUSHED);
  tag('team/app', 'multi', index.digest, PUSHED);
  write(path.join(repoDir('team/app'), '_manifests', 'pulled', 'sha256', hexOf(v1.manifest.digest)), '', PULLED);
  // a nested repository and a mirror
  const nested = image('nested');
  revision('team/app/sub', nested.manifest, OCI_MANIFEST);
  tag('team/app/sub', 'latest', nested.manifest.digest);
  link('team/app/sub', nested.layer.digest);
  const cached = image('cached');
  revision('mirror/lib/x', cached.manifest, OCI_MANIFEST);
  tag('mirror/lib/x', '1.0', cached.manifest.digest);
  link('mirror/lib/x', cached.layer.digest);
  write(path.join(root, 'sources', SOURCE, 'sha256', hexOf(cached.layer.digest)), '');
  // an upload session in progress (3 bytes so far)
  write(path.join(root, 'uploads', UPLOAD_ID, 'info.json'), JSON.stringify({ repository: 'team/app', startedAt: new Date().toISOString() }));
  write(path.join(root, 'uploads', UPLOAD_ID, 'data'), 'abc');
  return { v1, old, index, sig, referrer, nested, cached };
}

describe('import of the file metadata of an older layover', () => {
  it('imports repositories, revisions, tags, links, referrers, pull times, provenance and uploads, then moves the old trees away', async () => {
    const f = writeLegacyTree();
    const store = await openEmbeddedStore(root);
    expect(await store.listRepositories()).toEqual(['mirror/lib/x', 'team/app', 'team/app/sub']);
    expect(await store.listTags('team/app')).toEqual(['multi', 'v1']);
    expect(await store.resolveTag('team/app', 'v1')).toBe(f.v1.manifest.digest);
    const details = await store.listTagDetails('team/app');
    expect(details?.find((t) => t.tag === 'v1')?.modified.getTime()).toBe(PUSHED.getTime());
    expect((await store.listManifests('team/app')).map((m) => m.digest).sort()).toEqual([f.v1.manifest.digest, f.old.manifest.digest, f.index.digest, f.sig.digest].sort());
    expect(await store.statManifest('team/app', f.sig.digest)).toEqual({ digest: f.sig.digest, mediaType: OCI_MANIFEST, size: f.sig.size, subject: f.v1.manifest.digest, artifactType: 'application/example.sig' });
    expect((await store.getManifest('team/app', f.index.digest))?.bytes.equals(f.index.bytes)).toBe(true);
    expect(await store.listReferrers('team/app', f.v1.manifest.digest)).toEqual([f.referrer]);
    expect((await store.lastPulled('team/app', f.v1.manifest.digest))?.getTime()).toBe(PULLED.getTime());
    expect((await store.revisionModified('team/app', f.v1.manifest.digest))?.getTime()).toBe(PUSHED.getTime());
    expect(await store.blobLinked('team/app', f.v1.layer.digest)).toBe(true);
    expect(await store.blobLinked('team/app/sub', f.v1.layer.digest)).toBe(false);
    expect(await store.blobFromSource(f.cached.layer.digest, SOURCE)).toBe(true);
    expect(await store.blobFromSource(f.v1.layer.digest, SOURCE)).toBe(false);
    expect(await store.statBlob(f.v1.layer.digest)).toEqual({ digest: f.v1.layer.digest, size: f.v1.layer.size });
    // the upload session resumes where it was, and completes
    const upload = await store.getUpload('team/app', UPLOAD_ID);
    expect(upload?.size).toBe(3);
    const more = await store.appendUpload(upload!, Readable.from([Buffer.from('def')]), 3);
    expect(await store.completeUpload(more, digestOf('abcdef'))).toEqual({ digest: digestOf('abcdef'), size: 6 });
    // the old trees are out of the way, the content stays
    expect(existsSync(path.join(root, 'repositories'))).toBe(false);
    expect(existsSync(path.join(root, 'sources'))).toBe(false);
    expect(readdirSync(path.join(root, LEGACY_DIR)).sort()).toEqual(['repositories', 'sources']);
    // GC reads the imported references: the untagged image goes, everything tagged (and the index's child, the signature) stays
    const report = await collectGarbage(store, { dryRun: false, keepUntagged: false, graceMs: 0, now: () => Date.now() + 10_000 });
    expect(report.manifests.deletedList).toEqual([{ repository: 'team/app', digest: f.old.manifest.digest }]);
    // (and the blob the resumed upload made, which nothing references)
    expect(new Set(report.blobs.deletedList)).toEqual(new Set([f.old.manifest.digest, f.old.config.digest, f.old.layer.digest, digestOf('abcdef')]));
    expect(await store.statBlob(f.v1.layer.digest)).toBeDefined();
    expect(await store.statBlob(f.cached.layer.digest)).toBeDefined();
    await store.close();
  });

  it('runs once: changes made after the import survive a restart', async () => {
    writeLegacyTree();
    const first = await openEmbeddedStore(root);
    expect(await first.deleteTag('team/app', 'v1')).toBe(true);
    await first.close();
    const second = await openEmbeddedStore(root);
    expect(await second.listTags('team/app')).toEqual(['multi']);
    await second.close();
  });

  it('a crash before the commit leaves nothing imported and the trees in place; the next start imports it all', async () => {
    const f = writeLegacyTree();
    // An unreadable revision makes the import fail after reading part of the tree (as a crash would).
    const broken = path.join(repoDir('team/app/sub'), '_manifests', 'revisions', 'sha256', hexOf(f.nested.manifest.digest));
    const good = readdirSync(path.dirname(broken)).length;
    writeFileSync(broken, '{ torn');
    await expect(openEmbeddedStore(root)).rejects.toThrow();
    expect(existsSync(path.join(root, 'repositories'))).toBe(true);
    expect(existsSync(path.join(root, LEGACY_DIR))).toBe(false);
    revision('team/app/sub', f.nested.manifest, OCI_MANIFEST);
    expect(good).toBe(1);
    const store = await openEmbeddedStore(root);
    expect(await store.listRepositories()).toEqual(['mirror/lib/x', 'team/app', 'team/app/sub']);
    expect(await store.listTags('team/app/sub')).toEqual(['latest']);
    expect((await store.listManifests('team/app')).length).toBe(4);
    await store.close();
  });

  it('a crash after the commit but before the trees moved: the next start only moves them, it does not import again', async () => {
    writeLegacyTree();
    const first = await openEmbeddedStore(root);
    expect(await first.deleteTag('team/app', 'multi')).toBe(true);
    await first.close();
    // Put the trees back where they were, as if the renames had not happened.
    for (const tree of ['repositories', 'sources']) renameSync(path.join(root, LEGACY_DIR, tree), path.join(root, tree));
    const second = await openEmbeddedStore(root);
    expect(await second.listTags('team/app')).toEqual(['v1']);
    expect(existsSync(path.join(root, 'repositories'))).toBe(false);
    expect(readdirSync(path.join(root, LEGACY_DIR)).sort()).toEqual(['repositories', 'sources']);
    await second.close();
  });

  it('a new data directory has nothing to import and no legacy directory', async () => {
    const store = await openEmbeddedStore(root);
    expect(await store.listRepositories()).toEqual([]);
    expect(readdirSync(root).sort()).toEqual(['_tmp', 'blobs', 'metadata.db', 'metadata.db-shm', 'metadata.db-wal', 'uploads']);
    await store.close();
  });
});
