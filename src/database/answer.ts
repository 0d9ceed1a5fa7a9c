// How a request that needed the database answers while it is unreachable: 503 UNAVAILABLE in
// the Distribution error format, with Retry-After, and one log line per outage rather than one
// per request. Nothing was changed: a request either ran its transaction or did not.
import { RegistryError } from '../registry/errors.js';
import { isDatabaseUnavailable } from './errors.js';

const RETRY_AFTER_SECONDS = 5;
const LOG_EVERY_MS = 30_000;
let lastLogged = 0;

/** The client's answer when `err` says the database is unreachable; undefined otherwise. */
export function databaseAnswer(err: unknown, log?: { error(obj: object, msg: string): void }, now = Date.now()): RegistryError | undefined {
  if (!isDatabaseUnavailable(err)) return undefined;
  if (now - lastLogged >= LOG_EVERY_MS) {
    lastLogged = now;
    log?.error({ problem: err.message }, 'database unreachable: requests that need it answer 503 until it is back (logged every 30 s at most)');
  }
  return new RegistryError('UNAVAILABLE', 'the registry\'s database is unreachable; try again shortly', undefined, { headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } });
}
