// Temporary directories that are removed when the test (or the process) is done with them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const pending = new Set<string>();

// A crashed or interrupted test run must not leave gigabytes of blobs behind.
process.once('exit', () => {
  for (const dir of pending) rmSync(dir, { recursive: true, force: true });
});

export interface TempDir {
  path: string;
  /** Removes the directory and everything in it; safe to call twice. */
  cleanup(): void;
}

export function makeTempDir(prefix = 'layover-test-'): TempDir {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  pending.add(dir);
  return {
    path: dir,
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
      pending.delete(dir);
    },
  };
}

/** Runs `fn` with a fresh directory and removes it afterwards, whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>, prefix?: string): Promise<T> {
  const tmp = makeTempDir(prefix);
  try {
    return await fn(tmp.path);
  } finally {
    tmp.cleanup();
  }
}
