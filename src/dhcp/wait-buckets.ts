/**
 * issue 18: upper bounds (seconds) of the lease journal's commit wait histogram (LeaseStoreStats.waitBuckets): what
 * an ACK waits for the disk. On its own so the metrics and the CLI's `natd status` read them without loading the
 * journal (lease-store.ts) and its native writer.
 */
export const WAIT_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);
