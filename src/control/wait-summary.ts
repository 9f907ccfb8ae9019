/**
 * issue 18: the lease journal's figures as one line of `natd status` for people: how long ACKs wait for the disk
 * (median and p99 read from the cumulative histogram natd keeps for natd_lease_journal_commit_wait_seconds), the
 * disk's flush time, and the ACKs the writer thread sent itself. A quantile from buckets is only known up to the
 * bucket it falls in, so it is shown as "<= bound" (or "> last bound"), never as an invented exact figure.
 */
import { WAIT_BUCKETS } from '../dhcp/wait-buckets.js';

/** The journal part of the status (LeaseStoreStats); the issue 18 fields may be missing from an older daemon. */
export interface JournalFigures {
  readonly commits: number;
  readonly syncs: number;
  readonly syncSeconds: number;
  readonly waitSeconds?: number;
  readonly waitBuckets?: readonly number[];
  readonly repliesSent?: number;
}

/**
 * The smallest bucket bound that at least a `q` share of the `total` observations are at or under (bucket i holds
 * `cumulative[i]` observations ≤ `bounds[i]`), or Infinity when that many are only counted above the last bound;
 * undefined without observations.
 */
export function bucketQuantile(bounds: readonly number[], cumulative: readonly number[], total: number, q: number): number | undefined {
  if (!(total > 0)) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  const i = bounds.findIndex((_, k) => (cumulative[k] ?? 0) >= rank);
  return i < 0 ? Infinity : bounds[i]!;
}

/** Seconds as 0.5 ms, 25 ms, 1.2 s. */
export function formatWait(seconds: number): string {
  if (seconds >= 1) return `${Number(seconds.toPrecision(3))} s`;
  return `${Number((seconds * 1000).toPrecision(seconds < 0.001 ? 2 : 3))} ms`;
}

function bounded(bound: number | undefined): string {
  if (bound === undefined) return '-';
  return bound === Infinity ? `> ${formatWait(WAIT_BUCKETS[WAIT_BUCKETS.length - 1]!)}` : `<= ${formatWait(bound)}`;
}

/**
 * `21 commits in 8 syncs (1.6 ms each); ACK wait for the disk: median <= 5 ms, p99 <= 25 ms, mean 2.4 ms;
 * 17 ACKs sent by the writer`
 */
export function journalSummary(j: JournalFigures): string {
  if (j.commits === 0) return 'no commits yet';
  const syncs = `${j.commits} commits in ${j.syncs} syncs${j.syncs > 0 ? ` (${formatWait(j.syncSeconds / j.syncs)} each)` : ''}`;
  if (j.waitBuckets === undefined || j.waitSeconds === undefined) return syncs;
  const q = (p: number) => bounded(bucketQuantile(WAIT_BUCKETS, j.waitBuckets!, j.commits, p));
  const wait = `ACK wait for the disk: median ${q(0.5)}, p99 ${q(0.99)}, mean ${formatWait(j.waitSeconds / j.commits)}`;
  return `${syncs}; ${wait}${j.repliesSent !== undefined ? `; ${j.repliesSent} ACKs sent by the writer` : ''}`;
}
