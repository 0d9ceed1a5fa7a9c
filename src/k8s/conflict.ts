// Optimistic concurrency as kube-apiserver expects it: read, change, write back with the
// resourceVersion that was read; a 409 means someone wrote in between, so read again and redo
// the change on top of theirs. A few tries with a short random pause settle any realistic race.
import { setTimeout as sleep } from 'node:timers/promises';

/** `isConflict` tells a 409 (passed in: this module knows no error type, so kube.ts can use it). */
export async function retryOnConflict<T>(attempt: () => Promise<T>, isConflict: (err: unknown) => boolean, options: { attempts?: number; pauseMs?: number } = {}): Promise<T> {
  const attempts = options.attempts ?? 5;
  const pauseMs = options.pauseMs ?? 100;
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isConflict(err) || i >= attempts) throw err;
      // Jitter: two writers that collided should not collide again on the next try.
      await sleep(pauseMs * i * (0.5 + Math.random()));
    }
  }
}
