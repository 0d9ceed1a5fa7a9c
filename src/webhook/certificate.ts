// The webhook's serving certificate, read from files and reloaded without a restart when they
// change. Secret volumes update by swapping a `..data` symlink inside the mounted directory, so
// the directory is watched, not the files; a slow poll covers filesystems that miss events.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from '../log.js';

export interface KeyPair { cert: string; key: string }

export interface CertificateWatch {
  current(): KeyPair;
  /** Re-reads the files now; resolves true when a new pair was loaded. */
  reload(): Promise<boolean>;
  close(): void;
}

/** Reads a certificate and key and checks that they form a usable pair. Throws otherwise. */
export async function readKeyPair(files: { cert: string; key: string }): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(files.cert, 'utf8'), readFile(files.key, 'utf8')]);
  // Throws on unparsable PEM or a key that does not match the certificate.
  createSecureContext({ cert, key });
  return { cert, key };
}

export async function watchCertificateFiles(
  files: { cert: string; key: string },
  onChange: (pair: KeyPair) => void,
  logger: Logger,
  options: { debounceMs?: number; pollMs?: number } = {},
): Promise<CertificateWatch> {
  let pair = await readKeyPair(files);
  const fingerprint = (p: KeyPair) => createHash('sha256').update(p.cert).update('\0').update(p.key).digest('hex');
  let loaded = fingerprint(pair);

  async function reload(): Promise<boolean> {
    let next: KeyPair;
    try {
      next = await readKeyPair(files);
    } catch (err) {
      // Mid-swap the files can briefly be missing or mismatched: keep serving the old pair.
      logger.debug({ err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'webhook certificate not reloadable yet');
      return false;
    }
    const print = fingerprint(next);
    if (print === loaded) return false;
    pair = next;
    loaded = print;
    onChange(next);
    logger.info({ cert: files.cert }, 'webhook certificate reloaded');
    return true;
  }

  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), options.debounceMs ?? 100);
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([path.dirname(files.cert), path.dirname(files.key)])) {
    const watcher = watch(dir, { persistent: false }, schedule);
    watcher.on('error', (err) => logger.warn({ dir, err: err.message }, 'cannot watch the certificate directory; relying on polling'));
    watchers.push(watcher);
  }
  const poll = setInterval(() => void reload(), options.pollMs ?? 60_000);
  poll.unref();

  return {
    current: () => pair,
    reload,
    close() {
      clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
