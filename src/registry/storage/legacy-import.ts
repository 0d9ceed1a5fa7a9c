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
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { parseDigest, type Digest } from '../digest.js';
import type { Descriptor } from '../manifest.js';
import { isRepositoryName, isTag } from '../names.js';
import { manifestRefs } from './composed-store.js';
import { isNotFound } from './content/filesystem.js';
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

// The reads are synchronous: the import runs once, before the registry serves, over hundreds of
// thousands of small files. Through the thread pool each of them waited for a worker thread (a
// profile at 5,000 repositories: 36 of 63 s idle), where a synchronous stat or read of a cached
// inode takes microseconds.
function unlessMissingSync<T, M>(op: () => T, missing: M): T | M {
  try {
    return op();
  } catch (err) {
    if (isNotFound(err)) return missing;
    throw err;
  }
}

const listDir = (dir: string): string[] => unlessMissingSync(() => readdirSync(dir), []);
const readIfExists = (file: string): Buffer | undefined => unlessMissingSync(() => readFileSync(file), undefined);
const statIfExists = (file: string): Stats | undefined => statSync(file, { throwIfNoEntry: false });

/** The digests named by a `<base>/<algorithm>/<hex>` tree; stray names are skipped. */
function digestsUnder(base: string): Digest[] {
  const out: Digest[] = [];
  for (const algorithm of listDir(base)) {
    for (const hex of listDir(path.join(base, algorithm))) {
      const digest = `${algorithm}:${hex}`;
      if (parseDigest(digest)) out.push(digest as Digest);
    }
  }
  return out;
}

/** Every repository directory, with the names in it (which of _manifests, _layers, _referrers exist). */
function legacyRepositories(layout: Layout): { name: string; entries: Set<string> }[] {
  const out: { name: string; entries: Set<string> }[] = [];
  const walk = (dir: string, prefix: string): void => {
    const entries = listDir(dir);
    if (prefix && (entries.includes('_manifests') || entries.includes('_layers'))) out.push({ name: prefix, entries: new Set(entries) });
    for (const entry of entries) {
      if (entry.startsWith('_')) continue;
      const name = prefix ? `${prefix}/${entry}` : entry;
      if (isRepositoryName(name)) walk(path.join(dir, entry), name);
    }
  };
  walk(layout.repositories, '');
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function readLegacy(root: string): Imported {
  const layout = new Layout(root);
  const out: Imported = { repositories: [], revisions: [], tags: [], links: [], sources: [], uploads: [], blobs: [] };
  // A manifest's references depend only on its bytes: parsed once however many repositories hold it.
  const refsByDigest = new Map<Digest, ManifestRef[]>();
  const refsOf = (digest: Digest, mediaType: string): ManifestRef[] => {
    let refs = refsByDigest.get(digest);
    if (refs) return refs;
    const bytes = readIfExists(layout.blob(digest));
    // Bytes that cannot be parsed are marked, not skipped: GC stops on such a manifest rather
    // than take its blobs for unreferenced (as it did when it read the bytes itself).
    try {
      refs = bytes ? manifestRefs(digest, bytes, mediaType) : [];
    } catch {
      refs = [{ manifest: digest, kind: 'unreadable', ref: digest }];
    }
    refsByDigest.set(digest, refs);
    return refs;
  };

  const readRepository = (name: string, entries: Set<string>): void => {
    const dir = layout.repository(name);
    const created = statIfExists(dir)?.mtimeMs ?? Date.now();
    out.repositories.push({ name, createdAt: Math.floor(created) });
    const referrers = new Map<Digest, Descriptor>();
    if (entries.has('_referrers')) {
      for (const subjectDigest of digestsUnder(path.join(dir, '_referrers'))) {
        const subjectDir = layout.referrers(name, subjectDigest);
        for (const entry of listDir(subjectDir)) {
          const raw = readIfExists(path.join(subjectDir, entry));
          if (!raw) continue;
          const descriptor = JSON.parse(raw.toString('utf8')) as Descriptor;
          referrers.set(descriptor.digest as Digest, descriptor);
        }
      }
    }
    const manifestDirs = entries.has('_manifests') ? new Set(listDir(path.join(dir, '_manifests'))) : new Set<string>();
    if (manifestDirs.has('revisions')) {
      for (const digest of digestsUnder(layout.revisions(name))) {
        const file = layout.revision(name, digest);
        const raw = readIfExists(file);
        const info = statIfExists(file);
        if (!raw || !info) continue;
        const meta = JSON.parse(raw.toString('utf8')) as { mediaType: string; size: number; subject?: Digest; artifactType?: string; annotations?: Record<string, string> };
        const pulled = manifestDirs.has('pulled') ? statIfExists(path.join(dir, '_manifests', 'pulled', ...digest.split(':'))) : undefined;
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
        const referrer = meta.subject ? referrers.get(digest) : undefined;
        out.revisions.push({ revision, refs: refsOf(digest, meta.mediaType), ...(referrer ? { referrer } : {}) });
      }
    }
    if (manifestDirs.has('tags')) {
      const tagsDir = layout.tags(name);
      for (const tag of listDir(tagsDir)) {
        if (!isTag(tag)) continue;
        const file = path.join(tagsDir, tag);
        const raw = readIfExists(file)?.toString('utf8');
        const info = statIfExists(file);
        if (raw && parseDigest(raw) && info) out.tags.push({ repository: name, tag, digest: raw as Digest, at: info.mtime.getTime() });
      }
    }
    if (entries.has('_layers')) {
      for (const digest of digestsUnder(layout.layerLinks(name))) {
        const info = statIfExists(layout.layerLink(name, digest));
        out.links.push({ repository: name, digest, at: Math.floor(info?.mtimeMs ?? created) });
      }
    }
  };
  for (const { name, entries } of legacyRepositories(layout)) readRepository(name, entries);

  for (const source of listDir(layout.sources)) {
    if (!isSourceId(source)) continue;
    for (const digest of digestsUnder(path.join(layout.sources, source))) out.sources.push({ digest, source });
  }

  for (const id of listDir(layout.uploads)) {
    if (!isUploadId(id)) continue;
    const raw = readIfExists(path.join(layout.upload(id), 'info.json'));
    const data = statIfExists(path.join(layout.upload(id), 'data'));
    if (!raw || !data) continue;
    const info = JSON.parse(raw.toString('utf8')) as { repository: string; startedAt: string };
    if (!isRepositoryName(info.repository)) continue;
    const startedAt = new Date(info.startedAt).getTime();
    out.uploads.push({ id, repository: info.repository, size: data.size, startedAt, updatedAt: Math.max(startedAt, data.mtime.getTime()) });
  }

  for (const algorithm of listDir(layout.blobs)) {
    for (const prefix of listDir(path.join(layout.blobs, algorithm))) {
      for (const hex of listDir(path.join(layout.blobs, algorithm, prefix))) {
        const digest = `${algorithm}:${hex}`;
        if (!parseDigest(digest)) continue;
        const info = statIfExists(path.join(layout.blobs, algorithm, prefix, hex));
        if (info?.isFile()) out.blobs.push({ digest: digest as Digest, size: info.size, createdAt: info.mtime.getTime() });
      }
    }
  }
  return out;
}

async function hasLegacyTrees(root: string): Promise<boolean> {
  for (const tree of TREES) if (statIfExists(path.join(root, tree))) return true;
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
  const data = readLegacy(root);
  // Each statement prepared once, not once per row (preparing was 2.5 s of a 5,000-repository import).
  const insert = {
    repository: db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
    blob: db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING'),
    tag: db.prepare('INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (repository, tag) DO NOTHING'),
    link: db.prepare('INSERT INTO links (repository, digest, created_at) VALUES (?, ?, ?) ON CONFLICT (repository, digest) DO NOTHING'),
    source: db.prepare('INSERT INTO blob_sources (digest, source) VALUES (?, ?) ON CONFLICT (digest, source) DO NOTHING'),
    upload: db.prepare('INSERT INTO uploads (id, repository, size, started_at, updated_at, driver_state) VALUES (?, ?, ?, ?, ?, NULL) ON CONFLICT (id) DO NOTHING'),
  };
  metadata.transaction(() => {
    for (const r of data.repositories) insert.repository.run(r.name, r.createdAt);
    for (const b of data.blobs) insert.blob.run(b.digest, b.size, b.createdAt);
    for (const m of data.revisions) metadata.putManifestNow(m.revision, m.refs, m.referrer);
    for (const t of data.tags) insert.tag.run(t.repository, t.tag, t.digest, t.at);
    for (const l of data.links) insert.link.run(l.repository, l.digest, l.at);
    for (const s of data.sources) insert.source.run(s.digest, s.source);
    for (const u of data.uploads) insert.upload.run(u.id, u.repository, u.size, u.startedAt, u.updatedAt);
    db.prepare('INSERT INTO legacy_import (finished_at) VALUES (?)').run(Date.now());
  });
  await moveTrees(root);
  return { imported: true, repositories: data.repositories.length, manifests: data.revisions.length, tags: data.tags.length, blobs: data.blobs.length };
}
