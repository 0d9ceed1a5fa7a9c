// Polls until a condition holds, for peers that take a moment to come up.
import { Agent, request } from 'undici';

/** Thrown from a waitFor condition to give up at once (e.g. the process being waited on died). */
export class StopWaiting extends Error {
  override name = 'StopWaiting';
}

/**
 * Calls `fn` until it returns a value other than undefined/false (or stops throwing) and
 * returns that value; after `timeoutMs` rejects with the last error seen.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 50): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value as Exclude<T, false | undefined>;
      lastError = undefined;
    } catch (err) {
      if (err instanceof StopWaiting) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`waitFor: condition not met within ${timeoutMs} ms${reason}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves once an HTTP GET of `url` gets any answer (any status), for readiness checks. */
export async function waitForHttp(url: string, timeoutMs = 15_000, isAlive?: () => boolean): Promise<number> {
  return waitFor(async () => {
    if (isAlive && !isAlive()) throw new StopWaiting(`the process that should serve ${url} exited`);
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status;
  }, timeoutMs, 100);
}

/** waitForHttp for an HTTPS peer whose certificate the test made up: any answer, unverified. */
export async function waitForHttps(url: string, timeoutMs: number, isAlive: () => boolean): Promise<void> {
  const agent = new Agent({ connect: { rejectUnauthorized: false } });
  try {
    await waitFor(async () => {
      if (!isAlive()) throw new StopWaiting(`the process that should serve ${url} exited`);
      const res = await request(url, { dispatcher: agent, signal: AbortSignal.timeout(2_000) });
      await res.body.dump();
      return true;
    }, timeoutMs, 100);
  } finally {
    await agent.close();
  }
}
