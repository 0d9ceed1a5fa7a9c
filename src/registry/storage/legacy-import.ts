// Imports a data directory written by layover before its SQL metadata: repositories as trees of
// small files (repositories/<name>/_manifests/{revisions,tags,pulled}, _layers, _referrers),
// provenance markers (sources/<id>/<alg>/<hex>) and upload sessions' info.json. Blob files and
// upload data stay where they are: that layout is the filesystem content driver's.
//
// Once and atomically: everything is read first, then written in one transaction that also
// records that the import is done; only then are the old trees renamed into legacy-metadata/.
// A crash before the commit leaves the database as it was (the next start imports again from the
// untouched trees); a crash after it only leaves renames to finish, which the next start does
// without importing again.
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseDigest, type Digest } from '../digest.js';
import type { Descriptor } from '../manifest.js';
import { isRepositoryName, isTag } from '../names.js';
import { manifestRefs } from './composed-store.js';
import { isNotFound, listDir, unlessMissing } from './content/filesystem.js';
import { isSourceId, isUploadId, Layout } from './layout.js';
import type { SqliteMetadata } from './metadata/sqlite.js';
import type { BlobRecord, ManifestRef, RevisionRecord, UploadRecord } from './metadata/types.js';

/** Where the old trees go once imported (kept, not deleted: an operator may check and remove them). */
export const LEGACY_DIR = 'legacy-metadata';
const TREES = ['repositories', 'sources'] as const;

interface Imported {
  repositories: { name: string; createdAt: number }[];
  revisions: { revision: RevisionRecord; refs: ManifestRef[]; referrer?: Descriptor }[];
  tags: { repository: string; tag: string; digest: Digest; at: number }[];
  links: { repository: string; digest: Digest; at: number }[];
  sources: { digest: Digest; source: string }[];
  uploads: UploadRecord[];
  blobs: BlobRecord[];
}

const readIfExists = (file: string): Promise<Buffer | undefined> => unlessMissing(readFile(file), undefined);
const statIfExists = (file: string) => unlessMissing(stat(file), undefined);

/** The digests named by a `<base>/<algorithm>/<hex>` tree; stray names are skipped. */
async function digestsUnder(base: string): Promise<Digest[]> {
  const out: Digest[] = [];
  for (const algorithm of await listDir(base)) {
    for (const hex of await listDir(path.join(base, algorithm))) {
      const digest = `${algorithm}:${hex}`;
      if (parseDigest(digest)) out.push(digest as Digest);
    }
  }
  return out;
}

async function legacyRepositories(layout: Layout): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = await listDir(dir);
    if (prefix && (entries.includes('_manifests') || entries.includes('_layers'))) out.push(prefix);
    for (const entry of entries) {
      if (entry.startsWith('_')) continue;
      const name = prefix ? `${prefix}/${entry}` : entry;
      if (isRepositoryName(name)) await walk(path.join(dir, entry), name);
    }
  };
  await walk(layout.repositories, '');
  return out.sort();
}

async function readLegacy(root: string): Promise<Imported> {
  const layout = new Layout(root);
  const out: Imported = { repositories: [], revisions: [], tags: [], links: [], sources: [], uploads: [], blobs: [] };
  const blobBytes = async (digest: Digest) => readIfExists(layout.blob(digest));

  for (const name of await legacyRepositories(layout)) {
    const dir = layout.repository(name);
    const created = (await statIfExists(dir))?.mtimeMs ?? Date.now();
    out.repositories.push({ name, createdAt: Math.floor(created) });
    const referrers = new Map<Digest, Descriptor>();
    for (const subjectDigest of await digestsUnder(path.join(dir, '_referrers'))) {
      const subjectDir = layout.referrers(name, subjectDigest);
      for (const entry of await listDir(subjectDir)) {
        const raw = await readIfExists(path.join(subjectDir, entry));
        if (!raw) continue;
        const descriptor = JSON.parse(raw.toString('utf8')) as Descriptor;
        referrers.set(descriptor.digest as Digest, descriptor);
      }
    }
    for (const digest of await digestsUnder(layout.revisions(name))) {
      const file = layout.revision(name, digest);
      const raw = await readIfExists(file);
      const info = await statIfExists(file);
      if (!raw || !info) continue;
      const meta = JSON.parse(raw.toString('utf8')) as { mediaType: string; size: number; subject?: Digest; artifactType?: string; annotations?: Record<string, string> };
      const pulled = await statIfExists(path.join(dir, '_manifests', 'pulled', ...digest.split(':')));
      const revision: RevisionRecord = {
        repository: name,
        digest,
        mediaType: meta.mediaType,
        size: meta.size,
        createdAt: info.mtime.getTime(),
        ...(meta.subject ? { subject: meta.subject } : {}),
        ...(meta.artifactType ? { artifactType: meta.artifactType } : {}),
        ...(meta.annotations ? { annotations: meta.annotations } : {}),
        ...(pulled ? { pulledAt: pulled.mtime.getTime() } : {}),
      };
      const bytes = await blobBytes(digest);
      // Bytes that cannot be parsed are marked, not skipped: GC stops on such a manifest rather
      // than take its blobs for unreferenced (as it did when it read the bytes itself).
      let refs: ManifestRef[] = [];
      try {
        if (bytes) refs = manifestRefs(digest, bytes, meta.mediaType);
      } catch {
        refs = [{ manifest: digest, kind: 'unreadable', ref: digest }];
      }
      const referrer = meta.subject ? referrers.get(digest) : undefined;
      out.revisions.push({ revision, refs, ...(referrer ? { referrer } : {}) });
    }
    const tagsDir = layout.tags(name);
    for (const tag of await listDir(tagsDir)) {
      if (!isTag(tag)) continue;
      const file = path.join(tagsDir, tag);
      const raw = (await readIfExists(file))?.toString('utf8');
      const info = await statIfExists(file);
      if (raw && parseDigest(raw) && info) out.tags.push({ repository: name, tag, digest: raw as Digest, at: info.mtime.getTime() });
    }
    for (const digest of await digestsUnder(layout.layerLinks(name))) {
      const info = await statIfExists(layout.layerLink(name, digest));
      out.links.push({ repository: name, digest, at: Math.floor(info?.mtimeMs ?? created) });
    }
  }

  for (const source of await listDir(layout.sources)) {
    if (!isSourceId(source)) continue;
    for (const digest of await digestsUnder(path.join(layout.sources, source))) out.sources.push({ digest, source });
  }

  for (const id of await listDir(layout.uploads)) {
    if (!isUploadId(id)) continue;
    const raw = await readIfExists(path.join(layout.upload(id), 'info.json'));
    const data = await statIfExists(path.join(layout.upload(id), 'data'));
    if (!raw || !data) continue;
    const info = JSON.parse(raw.toString('utf8')) as { repository: string; startedAt: string };
    if (!isRepositoryName(info.repository)) continue;
    const startedAt = new Date(info.startedAt).getTime();
    out.uploads.push({ id, repository: info.repository, size: data.size, startedAt, updatedAt: Math.max(startedAt, data.mtime.getTime()) });
  }

  for (const algorithm of await listDir(layout.blobs)) {
    for (const prefix of await listDir(path.join(layout.blobs, algorithm))) {
      for (const hex of await listDir(path.join(layout.blobs, algorithm, prefix))) {
        const digest = `${algorithm}:${hex}`;
        if (!parseDigest(digest)) continue;
        const info = await statIfExists(path.join(layout.blobs, algorithm, prefix, hex));
        if (info?.isFile()) out.blobs.push({ digest: digest as Digest, size: info.size, createdAt: info.mtime.getTime() });
      }
    }
  }
  return out;
}

async function hasLegacyTrees(root: string): Promise<boolean> {
  for (const tree of TREES) if (await statIfExists(path.join(root, tree))) return true;
  return false;
}

/** Moves the imported trees out of the way (idempotent: what is already moved is skipped). */
async function moveTrees(root: string): Promise<void> {
  const target = path.join(root, LEGACY_DIR);
  await mkdir(target, { recursive: true });
  for (const tree of TREES) {
    try {
      await rename(path.join(root, tree), path.join(target, tree));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

export interface ImportResult {
  imported: boolean;
  repositories: number;
  manifests: number;
  tags: number;
  blobs: number;
}

/** Imports the old file metadata under `root` into `metadata`, once (see the file comment). */
export async function importLegacyMetadata(root: string, metadata: SqliteMetadata): Promise<ImportResult> {
  const none: ImportResult = { imported: false, repositories: 0, manifests: 0, tags: 0, blobs: 0 };
  const db = metadata.database;
  db.exec('CREATE TABLE IF NOT EXISTS legacy_import (finished_at BIGINT NOT NULL)');
  const done = db.prepare('SELECT 1 AS x FROM legacy_import').get() !== undefined;
  if (!(await hasLegacyTrees(root))) return none;
  if (done) {
    await moveTrees(root);
    return none;
  }
  const data = await readLegacy(root);
  metadata.transaction(() => {
    for (const r of data.repositories) db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(r.name, r.createdAt);
    for (const b of data.blobs) db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING').run(b.digest, b.size, b.createdAt);
    for (const m of data.revisions) metadata.putManifestNow(m.revision, m.refs, m.referrer);
    for (const t of data.tags) {
      db.prepare('INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (repository, tag) DO NOTHING').run(t.repository, t.tag, t.digest, t.at);
    }
    for (const l of data.links) db.prepare('INSERT INTO links (repository, digest, created_at) VALUES (?, ?, ?) ON CONFLICT (repository, digest) DO NOTHING').run(l.repository, l.digest, l.at);
    for (const s of data.sources) db.prepare('INSERT INTO blob_sources (digest, source) VALUES (?, ?) ON CONFLICT (digest, source) DO NOTHING').run(s.digest, s.source);
    for (const u of data.uploads) {
      db.prepare('INSERT INTO uploads (id, repository, size, started_at, updated_at, driver_state) VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO NOTHING').run(u.id, u.repository, u.size, u.startedAt, u.updatedAt);
    }
    db.prepare('INSERT INTO legacy_import (finished_at) VALUES (?)').run(Date.now());
  });
  await moveTrees(root);
  return { imported: true, repositories: data.repositories.length, manifests: data.revisions.length, tags: data.tags.length, blobs: data.blobs.length };
}
