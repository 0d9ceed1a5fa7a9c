// PostgreSQL advisory lock keys: one number per cluster-wide critical section. Taken with
// pg_advisory_lock / pg_try_advisory_lock (session: held by one connection until released or
// until that connection dies) or pg_advisory_xact_lock (until the transaction ends).
export const LOCK = {
  /** Schema migrations at start-up: three replicas starting at once migrate once. */
  migrate: '7413001',
  /** One garbage collection run in the cluster at a time. */
  gc: '7413002',
  /** One mirror cache eviction round in the cluster at a time. */
  eviction: '7413005',
  /** Read-modify-write of users and teams. */
  accounts: '7413003',
  /** Read-modify-write of the signing keys (rotation). */
  signingKeys: '7413004',
  /** One refresh of du's maintained holdings at a time (metadata/postgres.ts refreshHoldings). */
  holdings: '7413006',
} as const;
