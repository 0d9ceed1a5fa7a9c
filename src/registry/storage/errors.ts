// Failures of the registry's own storage, told apart from the upstream's and the client's: a full
// disk is neither an upstream that is down nor an unknown error. ENOSPC/EDQUOT answer 507 with a
// Distribution error body wherever they surface (plugin.ts maps them centrally), and are logged
// at most once a minute per storage root, not once per request.
import { RegistryError } from '../errors.js';

// SQLITE_FULL: the metadata database (metadata/sqlite.ts) could not grow on the same full disk.
const FULL = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);
const LOG_EVERY_MS = 60_000;

/** The errno (or SQLite) code of `err` or of an error it wraps (`cause`). */
function errnoCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && (code.startsWith('E') || code.startsWith('SQLITE_'))) return code;
  }
  return undefined;
}

/** A write to (or commit into) local storage failed: the storage's fault, not the content's source. */
export class StorageError extends Error {
  readonly code: string | undefined;
  constructor(cause: unknown) {
    const code = errnoCode(cause);
    super(`storage failed${code ? ` (${code})` : ''}`, { cause });
    this.name = 'StorageError';
    this.code = code;
  }
}

/**
 * Marks a failure of a storage step as the storage's. A RegistryError stays as it is: it is a
 * verdict on the content (DIGEST_INVALID, SIZE_INVALID), not a storage failure.
 */
export function asStorageError(err: unknown): Error {
  if (err instanceof RegistryError || err instanceof StorageError) return err;
  return new StorageError(err);
}

/**
 * The object store (storage.driver s3) could not be reached or answered 5xx: a transient
 * outage, answered 503 UNAVAILABLE like a database outage, never a 500. Raised by s3-objects.ts.
 */
export class ObjectStoreUnavailableError extends Error {
  constructor(what: string, cause: unknown) {
    super(`the object store is unreachable (${what})`, { cause });
    this.name = 'ObjectStoreUnavailableError';
  }
}

/** True when `err`, or an error it wraps, is an object store outage. */
export function isObjectStoreUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof ObjectStoreUnavailableError) return true;
  }
  return false;
}

const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

export function objectStoreUnavailableError(): RegistryError {
  return new RegistryError('UNAVAILABLE', 'the registry\'s object storage is unreachable; try again shortly', undefined, { headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) } });
}

export function isStorageFull(err: unknown): boolean {
  const code = errnoCode(err);
  return code !== undefined && FULL.has(code);
}

/** 507 Insufficient Storage, with the Distribution error format and an existing code. */
export function storageFullError(what = 'no space left on the registry\'s storage'): RegistryError {
  return new RegistryError('UNAVAILABLE', `storage is full: ${what}`, undefined, { status: 507 });
}

/** The client's answer for a storage failure; undefined when `err` is not one. */
export function storageAnswer(err: unknown): RegistryError | undefined {
  if (isStorageFull(err)) return storageFullError();
  if (isObjectStoreUnavailable(err)) return objectStoreUnavailableError();
  if (err instanceof StorageError) return new RegistryError('UNKNOWN', `the registry's storage failed${err.code ? ` (${err.code})` : ''}`);
  return undefined;
}

export interface ErrorLog { error(obj: object, msg: string): void }

const lastLogged = new Map<string, number>();

/** Logs an object store outage once a minute at most (per `where`), however many requests hit it. */
export function logObjectStoreUnavailable(log: ErrorLog | undefined, where: string, err: unknown, now = Date.now()): void {
  const key = `unavailable:${where}`;
  const last = lastLogged.get(key);
  if (last !== undefined && now - last < LOG_EVERY_MS) return;
  lastLogged.set(key, now);
  let e = err;
  while (e instanceof Error && !(e instanceof ObjectStoreUnavailableError) && e.cause) e = e.cause;
  log?.error({ where, problem: (e as Error).message }, 'object storage unreachable: requests that need it answer 503 until it is back (logged once a minute at most)');
}

/** Logs that the storage at `root` is full, once a minute at most, however many requests hit it. */
export function logStorageFull(log: ErrorLog | undefined, root: string, err: unknown, now = Date.now()): void {
  const last = lastLogged.get(root);
  if (last !== undefined && now - last < LOG_EVERY_MS) return;
  lastLogged.set(root, now);
  log?.error({ root, code: errnoCode(err) ?? 'ENOSPC' }, 'storage is full: pushes and cache fills fail with 507 until space is freed; reads keep working (logged once a minute at most)');
}
