// The token signing keys: ES256 key pairs with ids, kept in one JSON file (mode 0600) so the
// CLI and the server share them. Rotation makes a new key current and gives the old ones a
// retirement date; tokens signed by a retired key stop verifying, which is how long-lived
// namespace tokens are revoked.
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';

export const ALGORITHM = 'ES256';
const FILE_NAME = 'signing-keys.json';

interface StoredKey {
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

async function newKey(): Promise<StoredKey> {
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

export class KeyRing {
  private keys: LoadedKey[] = [];
  private listener: (() => void) | undefined;
  private lastReload = 0;

  private constructor(readonly file: string, private readonly now: () => number) {}

  /** Opens (creating on first use) the key file in `dir`. */
  static async open(dir: string, options: { now?: () => number } = {}): Promise<KeyRing> {
    const ring = new KeyRing(path.join(dir, FILE_NAME), options.now ?? Date.now);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stored = await ring.readStored();
    if (!stored.length) await ring.createFirst();
    await ring.reload();
    return ring;
  }

  private async readStored(): Promise<StoredKey[]> {
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

  private async createFirst(): Promise<void> {
    const key = await newKey();
    try {
      // wx: when two processes start at once, the first file wins and the other reads it.
      const handle = await open(this.file, 'wx', 0o600);
      await handle.writeFile(JSON.stringify({ keys: [key] }, null, 2));
      await handle.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }

  private async writeStored(keys: StoredKey[]): Promise<void> {
    const tmp = `${this.file}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify({ keys }, null, 2), { mode: 0o600 });
    await rename(tmp, this.file);
  }

  async reload(): Promise<void> {
    this.lastReload = this.now();
    const stored = await this.readStored();
    const loaded = await Promise.all(stored.map(loadKey));
    if (!loaded.some((k) => k.retireAt === undefined)) throw new Error(`${this.file}: no current signing key`);
    this.keys = loaded;
  }

  /** Re-reads the file at most once a second: an unknown kid may be a key another process made. */
  async reloadIfStale(): Promise<void> {
    if (this.now() - this.lastReload >= 1000) await this.reload();
  }

  /** Follows changes made by `layover token rotate` while the server runs. */
  watch(onError: (err: Error) => void): void {
    if (this.listener) return;
    this.listener = () => void this.reload().catch(onError);
    watchFile(this.file, { interval: 1000, persistent: false }, this.listener);
  }

  close(): void {
    if (this.listener) unwatchFile(this.file, this.listener);
    this.listener = undefined;
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
    const kept = (await this.readStored())
      .map((k) => {
        const retire = k.retireAt === undefined ? deadline : Math.min(new Date(k.retireAt).getTime(), deadline);
        return { ...k, retireAt: new Date(retire).toISOString() };
      })
      .filter((k) => new Date(k.retireAt).getTime() > now);
    const key = await newKey();
    await this.writeStored([...kept, key]);
    await this.reload();
    return key.kid;
  }
}
