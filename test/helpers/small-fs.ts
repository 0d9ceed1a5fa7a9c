// A real, small file system for "the disk is full" tests: a tmpfs of a few MiB mounted on a
// temporary directory (needs root, as the test machines run). fill() takes every free byte, so
// the next write fails with ENOSPC exactly as on a full volume; unfill() gives them back.
import { spawnSync } from 'node:child_process';
import { open, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { runTool } from './run-tool.js';
import { makeTempDir } from './temp-dir.js';

export interface SmallFs {
  path: string;
  /** Bytes free for writing (statfs). */
  free(): Promise<number>;
  /** Writes a filler file until the file system refuses with ENOSPC. */
  fill(): Promise<void>;
  unfill(): Promise<void>;
  /** Unmounts (lazily if something still holds it) and removes the directory. */
  close(): Promise<void>;
}

const mounts = new Set<string>();
// A crashed or interrupted run must not leave mounts behind; before temp-dir.ts removes the directories.
process.prependOnceListener('exit', () => {
  for (const dir of mounts) spawnSync('umount', ['-l', dir]);
});

/** Mounts a tmpfs of `size` (mount's syntax: 8m); rejects with mount's message when it cannot. */
export async function mountSmallFs(size = '8m'): Promise<SmallFs> {
  const dir = makeTempDir('layover-small-fs-');
  try {
    await runTool('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir.path]);
  } catch (err) {
    dir.cleanup();
    throw err;
  }
  mounts.add(dir.path);
  const filler = path.join(dir.path, 'filler');
  return {
    path: dir.path,
    free: async () => {
      const s = await statfs(dir.path);
      return s.bavail * s.bsize;
    },
    fill: async () => {
      const handle = await open(filler, 'a');
      try {
        // Large writes first, then page-sized ones for the last gap.
        for (const size of [1024 * 1024, 64 * 1024, 4096, 512]) {
          const chunk = Buffer.alloc(size, 1);
          for (;;) {
            try {
              await handle.write(chunk);
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
              break;
            }
          }
        }
      } finally {
        await handle.close();
      }
    },
    unfill: async () => {
      await unlink(filler).catch(() => undefined);
    },
    close: async () => {
      if (!mounts.delete(dir.path)) return;
      await runTool('umount', [dir.path]).catch(() => runTool('umount', ['-l', dir.path]));
      dir.cleanup();
    },
  };
}
