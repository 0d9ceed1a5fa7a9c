// What is stored, in the terms people ask about: repositories with their sizes, tags with digest,
// size, platforms and push/pull times, and bytes per namespace. Reads go around the GC guard
// (browsing is not a use that should delay collection) and count blobs actually stored, so a
// mirror's manifests whose layers were never pulled count only what was cached.
import type { Digest } from '../registry/digest.js';
import type { Descriptor } from '../registry/manifest.js';
import { artifactKind, type ArtifactKind } from './artifact-kind.js';
import { readBlobBytes } from '../registry/gc/manifests.js';
import { namespaceOf } from '../registry/names.js';
import { toStored } from '../registry/storage/composed-store.js';
import type { ManifestRef, MetadataStore, RepositorySummary, RevisionRecord } from '../registry/storage/metadata/types.js';
import type { Store, StoredManifest } from '../registry/storage/store.js';

/** Read per round when a page is asked for (filtering by visibility shrinks batches). */
const REPOSITORY_BATCH = 1_000;

export interface TagInfo {
  tag: string;
  digest: Digest;
  mediaType: string;
  /** The manifest's artifact type (its config's media type when it names none). */
  artifactType?: string;
  kind: ArtifactKind;
  /** Manifests of this repository whose subject is this one (signatures, SBOMs...). */
  referrers: number;
  /** Bytes on disk of the manifest, its config and layers (an index: with its children). */
  size: number;
  platforms: string[];
  pushedAt: string;
  pulledAt?: string;
}

export interface RepositoryInfo {
  name: string;
  namespace: string;
  mirror: boolean;
  tags: number;
  manifests: number;
  size: number;
  pushedAt?: string;
}

export interface NamespaceUsage {
  namespace: string;
  kind: 'mirror' | 'pushed';
  repositories: number;
  /** Unique bytes referenced by this namespace's manifests (a blob shared with another namespace counts in both). */
  bytes: number;
}

export interface StorageUsage {
  namespaces: NamespaceUsage[];
  mirrorBytes: number;
  pushedBytes: number;
  /** Every blob on disk, counted once. */
  storedBytes: number;
  blobs: number;
  /** Bytes of blobs only mirror namespaces hold: what the cache budget (cache.maxSize) counts. */
  cacheBytes: number;
  /** Bytes of blobs held by more than one repository: counted in each one's size, stored once. */
  sharedBytes: number;
}

export interface ReferrerInfo {
  digest: Digest;
  mediaType: string;
  artifactType?: string;
  kind: ArtifactKind;
  size: number;
  annotations?: Record<string, string>;
}

interface ManifestNode {
  meta: StoredManifest;
  blobs: Digest[];
  children: Digest[];
}

function platformString(p: unknown): string | undefined {
  if (typeof p !== 'object' || p === null) return undefined;
  const { os, architecture, variant } = p as Record<string, unknown>;
  if (typeof os !== 'string' || typeof architecture !== 'string') return undefined;
  return `${os}/${architecture}${typeof variant === 'string' && variant ? `/${variant}` : ''}`;
}

/**
 * Reads the metadata's indexes, never a manifest's bytes for sizes: one repository costs a few
 * statements whatever its tag count (repositoryWithTags); a page of repositories (ls) reads
 * maintained rows (repositorySummaries); du is one aggregate statement over maintained holdings (storageUsage).
 */
export class Inventory {
  constructor(
    private readonly store: Store,
    private readonly mirrorNamespaces: ReadonlySet<string>,
  ) {}

  isMirror(repository: string): boolean {
    return this.mirrorNamespaces.has(namespaceOf(repository));
  }

  /** The repository's revisions and what each references: two statements, whatever its tag count. */
  private async manifests(repository: string): Promise<{ revisions: RevisionRecord[]; nodes: Map<Digest, ManifestNode> }> {
    const revisions = await this.store.metadata.listManifests(repository);
    const refs = new Map<Digest, { blobs: Digest[]; children: Digest[] }>();
    for (const r of await this.store.metadata.manifestRefs(revisions.map((m) => m.digest))) addRef(refs, r);
    const nodes = new Map<Digest, ManifestNode>();
    for (const r of revisions) {
      const own = refs.get(r.digest);
      nodes.set(r.digest, { meta: toStored(r), blobs: own?.blobs ?? [], children: own?.children ?? [] });
    }
    return { revisions, nodes };
  }

  /** The digests a manifest keeps on disk: itself, and recursively its children, config and layers. */
  private closure(nodes: Map<Digest, ManifestNode>, digest: Digest, into: Set<Digest>): Set<Digest> {
    if (into.has(digest)) return into;
    into.add(digest);
    const node = nodes.get(digest);
    if (!node) return into;
    for (const blob of node.blobs) into.add(blob);
    for (const child of node.children) this.closure(nodes, child, into);
    return into;
  }

  /** Sizes of stored blobs, each looked up once per Inventory (a repository's digests are few). */
  private readonly sizes = new Map<Digest, number | undefined>();

  private async sizeOf(digest: Digest): Promise<number | undefined> {
    if (this.sizes.has(digest)) return this.sizes.get(digest);
    const size = (await this.store.metadata.getBlob(digest))?.size;
    this.sizes.set(digest, size);
    return size;
  }

  private async bytesOf(digests: Iterable<Digest>): Promise<number> {
    let total = 0;
    for (const d of digests) total += (await this.sizeOf(d)) ?? 0;
    return total;
  }

  private infoOf(summary: RepositorySummary): RepositoryInfo {
    return {
      name: summary.name,
      namespace: namespaceOf(summary.name),
      mirror: this.isMirror(summary.name),
      tags: summary.tags,
      manifests: summary.manifests,
      size: summary.size,
      ...(summary.pushedAt !== undefined ? { pushedAt: new Date(summary.pushedAt).toISOString() } : {}),
    };
  }

  async repository(name: string): Promise<RepositoryInfo | undefined> {
    return (await this.repositoryWithTags(name))?.info;
  }

  async tags(name: string): Promise<TagInfo[] | undefined> {
    return (await this.repositoryWithTags(name))?.tags;
  }

  /**
   * One repository's summary and its tags from one read of its tags, one of its revisions and one
   * of their references; what is the same for every tag on a digest (size, platforms, referrers)
   * is worked out once per digest, so 10,000 tags on one manifest cost 10,000 small objects.
   */
  async repositoryWithTags(name: string): Promise<{ info: RepositoryInfo; tags: TagInfo[] } | undefined> {
    const tags = await this.store.metadata.listTags(name);
    if (!tags) return undefined;
    const { revisions, nodes } = await this.manifests(name);
    const all = new Set<Digest>();
    for (const digest of nodes.keys()) this.closure(nodes, digest, all);
    let pushedAt: number | undefined;
    for (const t of tags) if (pushedAt === undefined || t.updatedAt > pushedAt) pushedAt = t.updatedAt;
    const info = this.infoOf({ name, tags: tags.length, manifests: nodes.size, size: await this.bytesOf(all), ...(pushedAt !== undefined ? { pushedAt } : {}) });

    const pulled = new Map(revisions.map((r) => [r.digest, r.pulledAt] as const));
    const referrers = new Map<Digest, number>();
    for (const r of revisions) if (r.subject) referrers.set(r.subject, (referrers.get(r.subject) ?? 0) + 1);
    // What every tag on one digest shares, worked out once per digest.
    const byDigest = new Map<Digest, { node: ManifestNode | undefined; kind: ArtifactKind; size: number; platforms: string[]; pulledAt?: string }>();
    const out: TagInfo[] = [];
    for (const t of tags) {
      let same = byDigest.get(t.digest);
      if (!same) {
        const node = nodes.get(t.digest);
        const at = pulled.get(t.digest);
        same = { node, kind: artifactKind(node?.meta.mediaType ?? '', node?.meta.artifactType), size: await this.bytesOf(this.closure(nodes, t.digest, new Set())), platforms: node ? await this.platforms(node) : [], ...(at !== undefined ? { pulledAt: new Date(at).toISOString() } : {}) };
        byDigest.set(t.digest, same);
      }
      const meta = same.node?.meta;
      const info: TagInfo = {
        tag: t.tag,
        digest: t.digest,
        mediaType: meta?.mediaType ?? 'unknown',
        ...(meta?.artifactType ? { artifactType: meta.artifactType } : {}),
        kind: same.kind,
        referrers: referrers.get(t.digest) ?? 0,
        size: same.size,
        platforms: same.platforms,
        pushedAt: new Date(t.updatedAt).toISOString(),
      };
      if (same.pulledAt !== undefined) info.pulledAt = same.pulledAt;
      out.push(info);
    }
    return { info, tags: out };
  }

  /**
   * The repositories `visible` admits (optionally in one namespace), after `after`: at most
   * `limit` of them (all when undefined), as the metadata's summary rows (counts and sizes),
   * read in batches of one statement each (repositorySummaries). `more` says whether others
   * follow. The rows go to text as they are (repository-listing.ts), not through RepositoryInfo.
   */
  async repositoryPage(visible: (name: string) => boolean, page: { namespace?: string; after?: string; limit?: number } = {}): Promise<{ rows: RepositorySummary[]; more: boolean }> {
    const out: RepositorySummary[] = [];
    const want = page.limit;
    const batch = want === undefined ? undefined : Math.max(want + 1, Math.min(REPOSITORY_BATCH, 2 * want + 1));
    for (let after = page.after; ; ) {
      const summaries = await this.store.metadata.repositorySummaries({ ...(page.namespace === undefined ? {} : { namespace: page.namespace }), after, limit: batch });
      for (const summary of summaries) {
        if (!visible(summary.name)) continue;
        if (want !== undefined && out.length === want) return { rows: out, more: true };
        out.push(summary);
      }
      if (batch === undefined || summaries.length < batch) return { rows: out, more: false };
      after = summaries[summaries.length - 1]?.name;
    }
  }

  /** The manifests of `repository` whose subject is `subject`, labelled by kind. */
  async referrers(repository: string, subject: Digest): Promise<ReferrerInfo[]> {
    const descriptors: Descriptor[] = await this.store.metadata.listReferrers(repository, subject);
    return descriptors.map((d) => ({
      digest: d.digest as Digest,
      mediaType: d.mediaType,
      ...(d.artifactType ? { artifactType: d.artifactType } : {}),
      kind: artifactKind(d.mediaType, d.artifactType),
      size: d.size,
      ...(d.annotations ? { annotations: d.annotations } : {}),
    }));
  }

  /** An image's platform from its config, an index's from its descriptors (small reads, once per digest). */
  private async platforms(node: ManifestNode): Promise<string[]> {
    if (node.children.length) {
      const bytes = await readBlobBytes(this.store, node.meta.digest);
      if (!bytes) return [];
      try {
        const doc = JSON.parse(bytes.toString('utf8')) as { manifests?: { digest?: string; platform?: unknown }[] };
        const byChild = new Map<string, string>();
        for (const d of doc.manifests ?? []) {
          const p = platformString(d.platform);
          if (p && typeof d.digest === 'string') byChild.set(d.digest, p);
        }
        return node.children.map((c) => byChild.get(c)).filter((p): p is string => p !== undefined && p !== 'unknown/unknown');
      } catch {
        return [];
      }
    }
    const config = node.blobs[0];
    if (!config) return [];
    if (((await this.sizeOf(config)) ?? Infinity) > 1024 * 1024) return [];
    const bytes = await readBlobBytes(this.store, config);
    if (!bytes) return [];
    try {
      const p = platformString(JSON.parse(bytes.toString('utf8')));
      return p ? [p] : [];
    } catch {
      return [];
    }
  }

  /** Bytes by namespace over `repositories` (every one when undefined): storageUsage. */
  storage(repositories?: string[]): Promise<StorageUsage> {
    return storageUsage(this.store.metadata, this.mirrorNamespaces, repositories);
  }
}

/**
 * Bytes by namespace over `repositories` (every one when undefined): one aggregate statement in
 * the metadata engine over its maintained per-repository holdings (MetadataStore.storageUsage),
 * after recomputing those of the repositories written since: O(holdings), not a join of every
 * manifest with its references.
 */
export async function storageUsage(metadata: MetadataStore, mirrorNamespaces: ReadonlySet<string>, repositories?: string[]): Promise<StorageUsage> {
  const usage = await metadata.storageUsage({ ...(repositories ? { repositories } : {}), mirrorNamespaces: [...mirrorNamespaces] });
  const namespaces: NamespaceUsage[] = usage.namespaces
    .sort((a, b) => a.namespace.localeCompare(b.namespace))
    .map((n) => ({ namespace: n.namespace, kind: mirrorNamespaces.has(n.namespace) ? 'mirror' : 'pushed', repositories: n.repositories, bytes: n.bytes }));
  return {
    cacheBytes: usage.cacheBytes,
    sharedBytes: usage.sharedBytes,
    namespaces,
    mirrorBytes: namespaces.filter((n) => n.kind === 'mirror').reduce((a, n) => a + n.bytes, 0),
    pushedBytes: namespaces.filter((n) => n.kind === 'pushed').reduce((a, n) => a + n.bytes, 0),
    storedBytes: usage.storedBytes,
    blobs: usage.blobs,
  };
}

function addRef(refs: Map<Digest, { blobs: Digest[]; children: Digest[] }>, r: ManifestRef): void {
  let entry = refs.get(r.manifest);
  if (!entry) refs.set(r.manifest, (entry = { blobs: [], children: [] }));
  if (r.kind === 'blob') entry.blobs.push(r.ref);
  else if (r.kind === 'child') entry.children.push(r.ref);
}
