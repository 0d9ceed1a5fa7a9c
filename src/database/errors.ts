// What a lost or refused database connection looks like, apart from the pool: the routes and
// the API recognise it (503 UNAVAILABLE) without loading `pg` into a registry that has no
// database.

export class DatabaseUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the database is unreachable (${describeFailure(cause)})`, { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

export function isDatabaseUnavailable(err: unknown): err is DatabaseUnavailableError {
  return err instanceof DatabaseUnavailableError;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);
// SQLSTATEs that mean "the server is not there for you right now", not "your statement is wrong":
// class 08 (connection exception), shutdown and start-up (57P01-57P03), too many connections.
const UNAVAILABLE_STATES = /^(08...|57P0[1-3]|53300)$/;
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|not queryable|Client was closed|connection error/i;

/** True when `err` says the server could not be reached or went away, as opposed to a query error. */
export function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_STATES.test(code))) return true;
  if (err instanceof AggregateError) return err.errors.some(isConnectionFailure);
  return UNAVAILABLE_MESSAGES.test(err.message);
}

export function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err.message.split('\n')[0]!.slice(0, 120);
}

