// What makes a write survive a power loss, not only a crash of the process.
//
// A rename is atomic, but the kernel may write the rename to disk before the file's data: after a
// power cut the new name can point at an empty file. So every file is synced before it is
// renamed into place, and the directory that received the new name is synced afterwards, so that
// what was acknowledged (201 for a blob, a tag, a manifest) is still there. A directory that had
// to be created for it is made durable in its parent the same way.
//
// Cost: two journal commits per write. For a blob the data sync dominates (Distribution pays the
// same: it syncs a blob on commit). For the small metadata files (tags, layer links, manifest
// revisions, referrers) the file sync is cheap and the directory sync is what costs; a careful
// registry still pays it, because an acknowledged push whose link or tag vanishes leaves a
// manifest pointing at a blob its repository no longer serves. Two kinds of write skip both syncs
// (see FilesystemStore): upload-session state, whose chunks are not synced either until the
// upload completes (a session lost with the power is simply restarted by the client), and pull
// markers, which are only a hint for cache eviction.
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';

/** The two syncs, injectable so that a test can see what is synced and when. */
export interface Syncs {
  /** Makes a file's data (and its size) durable. */
  file(file: string): Promise<void>;
  /** Makes the names in a directory durable (after a rename or a create in it). */
  dir(dir: string): Promise<void>;
}

async function syncPath(target: string, dataOnly: boolean): Promise<void> {
  // A read-only descriptor is enough: fsync flushes the inode whichever descriptor asks.
  const handle = await open(target, 'r');
  try {
    await (dataOnly ? handle.datasync() : handle.sync());
  } finally {
    await handle.close();
  }
}

export const fsyncs: Syncs = {
  file: (file) => syncPath(file, true),
  dir: (dir) => syncPath(dir, false),
};

/** No syncs at all: for data that may be lost with the power (see the file comment). */
export const noSyncs: Syncs = {
  file: async () => undefined,
  dir: async () => undefined,
};

/**
 * mkdir -p whose new directories survive a power loss: each new directory's name lives in its
 * parent, so those parents are synced, top down. `dir` itself is the caller's to sync once it
 * has written into it.
 */
export async function makeDirs(dir: string, syncs: Syncs): Promise<void> {
  const created = await mkdir(dir, { recursive: true });
  if (created === undefined) return;
  const parents: string[] = [];
  for (let d = dir; d !== path.dirname(created) && d !== path.dirname(d); d = path.dirname(d)) parents.unshift(path.dirname(d));
  for (const parent of parents) await syncs.dir(parent);
}
