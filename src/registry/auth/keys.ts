// The token signing keys: ES256 key pairs with ids, kept in one JSON file (mode 0600) so the
// CLI and the server share them, or in PostgreSQL (keys-postgres.ts) so that every replica signs
// and verifies with the same keys. Rotation makes a new key current and gives the old ones a
// retirement date; tokens signed by a retired key stop verifying, which is how long-lived
// namespace tokens are revoked.
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';

export const ALGORITHM = 'ES256';
const FILE_NAME = 'signing-keys.json';

export interface StoredKey {
  kid: string;
  createdAt: string;
  /** When set, the key verifies until then and never signs again. */
  retireAt?: string;
  privateJwk: JWK;
}

interface LoadedKey {
  kid: string;
  createdAt: Date;
  retireAt?: Date;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export interface KeyInfo { kid: string; createdAt: Date; retireAt?: Date; current: boolean }

export async function newKey(): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair(ALGORITHM, { extractable: true });
  const privateJwk = await exportJWK(privateKey);
  const kid = (await calculateJwkThumbprint({ kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x, y: privateJwk.y } as JWK)).slice(0, 16);
  return { kid, createdAt: new Date().toISOString(), privateJwk: { ...privateJwk, kid, alg: ALGORITHM } };
}

async function loadKey(stored: StoredKey): Promise<LoadedKey> {
  const privateKey = (await importJWK(stored.privateJwk, ALGORITHM)) as CryptoKey;
  const { d: _d, ...publicJwk } = stored.privateJwk;
  const publicKey = (await importJWK(publicJwk, ALGORITHM)) as CryptoKey;
  return {
    kid: stored.kid,
    createdAt: new Date(stored.createdAt),
    retireAt: stored.retireAt === undefined ? undefined : new Date(stored.retireAt),
    privateKey,
    publicKey,
  };
}

/** Where the keys are kept. */
export interface KeyStorage {
  /** For messages: the file, or the database URL without its password. */
  readonly location: string;
  read(): Promise<StoredKey[]>;
  /** Stores `key` unless keys exist already (two processes starting at once: the first wins). */
  createFirst(key: StoredKey): Promise<void>;
  /** Read-modify-write of the whole set (atomic against other writers where the storage can be). */
  update(change: (keys: StoredKey[]) => StoredKey[]): Promise<void>;
  /** Calls `onChange` once the stored keys may have changed. */
  watch(onChange: () => Promise<void>, onError: (err: Error) => void): void;
  close(): void;
}

export class FileKeyStorage implements KeyStorage {
  private listener: (() => void) | undefined;

  private constructor(readonly file: string) {}

  static async open(dir: string): Promise<FileKeyStorage> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new FileKeyStorage(path.join(dir, FILE_NAME));
  }

  get location(): string {
    return this.file;
  }

  async read(): Promise<StoredKey[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const doc = JSON.parse(text) as { keys?: StoredKey[] };
    if (!Array.isArray(doc.keys)) throw new Error(`${this.file}: no "keys" array`);
    return doc.keys;
  }

  async createFirst(key: StoredKey): Promise<void> {
    try {
      // wx: when two processes start at once, the first file wins and the other reads it.
      const handle = await open(this.file, 'wx', 0o600);
      await handle.writeFile(JSON.stringify({ keys: [key] }, null, 2));
      await handle.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }

  async update(change: (keys: StoredKey[]) => StoredKey[]): Promise<void> {
    const keys = change(await this.read());
    const tmp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
    await rename(tmp, this.file);
  }

  /** Follows changes made by `layover token rotate` while the server runs. */
  watch(onChange: () => Promise<void>, onError: (err: Error) => void): void {
    if (this.listener) return;
    this.listener = () => void onChange().catch(onError);
    watchFile(this.file, { interval: 1000, persistent: false }, this.listener);
  }

  close(): void {
    if (this.listener) unwatchFile(this.file, this.listener);
    this.listener = undefined;
  }
}

export class KeyRing {
  private keys: LoadedKey[] = [];
  private lastReload = 0;

  private constructor(readonly storage: KeyStorage, private readonly now: () => number) {}

  /** Opens (creating on first use) the key file in `dir`. */
  static async open(dir: string, options: { now?: () => number } = {}): Promise<KeyRing> {
    return KeyRing.openStorage(await FileKeyStorage.open(dir), options);
  }

  /** Opens the keys kept in `storage`, creating the first key when there is none. */
  static async openStorage(storage: KeyStorage, options: { now?: () => number } = {}): Promise<KeyRing> {
    const ring = new KeyRing(storage, options.now ?? Date.now);
    if (!(await storage.read()).length) await storage.createFirst(await newKey());
    await ring.reload();
    return ring;
  }

  async reload(): Promise<void> {
    this.lastReload = this.now();
    const stored = await this.storage.read();
    const loaded = await Promise.all(stored.map(loadKey));
    if (!loaded.some((k) => k.retireAt === undefined)) throw new Error(`${this.storage.location}: no current signing key`);
    this.keys = loaded;
  }

  /** Re-reads the keys at most once a second: an unknown kid may be a key another process made. */
  async reloadIfStale(): Promise<void> {
    if (this.now() - this.lastReload >= 1000) await this.reload();
  }

  /** Follows rotations made elsewhere (`layover token rotate`, another replica) while the server runs. */
  watch(onError: (err: Error) => void): void {
    this.storage.watch(() => this.reload(), onError);
  }

  close(): void {
    this.storage.close();
  }

  current(): { kid: string; privateKey: CryptoKey } {
    const candidates = this.keys.filter((k) => k.retireAt === undefined);
    const key = candidates.reduce((a, b) => (b.createdAt > a.createdAt ? b : a));
    return { kid: key.kid, privateKey: key.privateKey };
  }

  /** The verification key for `kid`, unless unknown or retired. */
  publicKey(kid: string): CryptoKey | undefined {
    const key = this.keys.find((k) => k.kid === kid);
    if (!key || (key.retireAt && key.retireAt.getTime() <= this.now())) return undefined;
    return key.publicKey;
  }

  list(): KeyInfo[] {
    const current = this.current().kid;
    return this.keys.map((k) => ({ kid: k.kid, createdAt: k.createdAt, retireAt: k.retireAt, current: k.kid === current }));
  }

  /**
   * Makes a new current key. Older keys keep verifying for `graceMs` (0: revoked at once);
   * keys already past retirement are dropped from the file.
   */
  async rotate(graceMs: number): Promise<string> {
    const now = this.now();
    const deadline = now + graceMs;
    const key = await newKey();
    await this.storage.update((stored) => [
      ...stored
        .map((k) => {
          const retire = k.retireAt === undefined ? deadline : Math.min(new Date(k.retireAt).getTime(), deadline);
          return { ...k, retireAt: new Date(retire).toISOString() };
        })
        .filter((k) => new Date(k.retireAt).getTime() > now),
      key,
    ]);
    await this.reload();
    return key.kid;
  }
}
