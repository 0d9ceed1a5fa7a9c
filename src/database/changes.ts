// Change counters: a writer bumps a kind's counter in the transaction that changes it; every
// replica polls the counters and reloads a kind when its number moved. Polling (not LISTEN) keeps
// working across reconnects and failovers with nothing to re-subscribe, at one tiny query a second.
import type { Database, Queryable } from './database.js';

export type ChangeKind = 'accounts' | 'signing_keys';

/** Call inside the transaction that made the change. */
export async function bumpChange(tx: Queryable, kind: ChangeKind): Promise<void> {
  await tx.query(
    `INSERT INTO change_counters (name, version) VALUES ($1, 1)
     ON CONFLICT (name) DO UPDATE SET version = change_counters.version + 1`,
    [kind],
  );
}

export async function changeVersion(db: Queryable, kind: ChangeKind): Promise<number> {
  const rows = await db.query<{ version: number }>('SELECT version FROM change_counters WHERE name = $1', [kind]);
  return rows[0]?.version ?? 0;
}

/**
 * Calls `onChange` whenever `kind`'s counter differs from the last one seen. A failed poll (the
 * database is down) is reported through `onError` once per outage and retried at the next tick.
 */
export function watchChanges(db: Database, kind: ChangeKind, onChange: () => Promise<void>, options: { intervalMs?: number; onError?: (err: Error) => void; since?: number } = {}): () => void {
  // `since`: the counter read before the caller's own load, so a change in between is not missed.
  let seen: number | undefined = options.since;
  let failing = false;
  let busy = false;
  let stopped = false;
  const tick = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const version = await changeVersion(db, kind);
      failing = false;
      if (seen === undefined) seen = version;
      else if (version !== seen) {
        await onChange();
        // Only once the reload worked: a failed reload is tried again at the next tick.
        seen = version;
      }
    } catch (err) {
      if (!failing) options.onError?.(err as Error);
      failing = true;
    } finally {
      busy = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), options.intervalMs ?? 1_000);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
