// The audit trail: pushes, deletes, logins (both outcomes), and changes of users, teams and signing
// keys, kept in the metadata database (table audit_events, both engines) so it survives restarts
// and is shared by replicas. Recording never makes a request wait or fail: the write runs in the
// background and a failure is logged; close() waits for the writes still running.
import type { Logger } from '../log.js';
import type { Principal } from '../registry/auth/access.js';
import type { AuditEvent, AuditQuery, AuditRecord, MetadataStore } from '../registry/storage/metadata/types.js';

export type AuditEntry = Omit<AuditEvent, 'at'> & { at?: number };

/** How often old entries are pruned (on the first record after this long). */
const PRUNE_EVERY_MS = 3_600_000;
/** Targets and actors come from requests: bounded, so one entry cannot be made huge. */
const MAX_FIELD = 512;

export type AuditSink = (entry: AuditEntry) => void;

/** How a principal is named in the trail. */
export function actorOf(principal: Principal | undefined): string {
  if (!principal || principal.kind === 'anonymous') return 'anonymous';
  return principal.kind === 'namespace' ? `namespace:${principal.name}` : principal.name;
}

export class AuditLog {
  private readonly writes = new Set<Promise<void>>();
  private lastPrune = 0;

  constructor(
    private readonly metadata: Pick<MetadataStore, 'appendAudit' | 'listAudit' | 'pruneAudit'>,
    private readonly retentionMs: number,
    private readonly log: Pick<Logger, 'warn'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records in the background (see the file's comment). */
  readonly record: AuditSink = (entry) => {
    const at = entry.at ?? this.now();
    const event: AuditEvent = { ...entry, at, actor: entry.actor.slice(0, MAX_FIELD), target: entry.target.slice(0, MAX_FIELD) };
    const write = this.metadata
      .appendAudit([event])
      .then(() => this.pruneNow(at))
      .catch((err: unknown) => this.log.warn({ err, action: event.action }, 'could not write an audit entry'))
      .finally(() => this.writes.delete(write));
    this.writes.add(write);
  };

  /** Newest first (after the writes still running). */
  async list(query: AuditQuery): Promise<AuditRecord[]> {
    await this.settled();
    return this.metadata.listAudit(query);
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.writes]);
  }

  close(): Promise<void> {
    return this.settled();
  }

  private async pruneNow(at: number): Promise<void> {
    if (at - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = at;
    await this.metadata.pruneAudit(at - this.retentionMs);
  }
}
