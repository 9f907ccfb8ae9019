/**
 * issue 14: the kernel's neighbour-table changes on the bridge as they happen, from a long-running
 * `ip -6 monitor neigh dev <bridge>` child (one process for natd's life instead of one `ip -6 neigh show` every
 * 5 s). Each complete stdout line goes to onLine (parsed by neigh-monitor-line.ts); the learner keeps a slow full
 * read of the table (NeighbourLearner's poll) as the resync, so events lost while the child is down, or dropped by
 * the kernel when its netlink buffer overflows, are caught up.
 *
 * Why a child and not a netlink socket in the addon: iproute2 already decodes RTM_NEWNEIGH/RTM_DELNEIGH, flushes
 * each line as it prints it, and survives ENOBUFS (it says so on stderr and goes on); the addon would need its own
 * rtnetlink decoder for the same lines.
 *
 * The child is restarted when it exits, after a backoff doubling from minBackoffMs to maxBackoffMs (reset once a
 * child has run stableMs); every start after the first is counted as a restart, and onStart asks for a resync.
 * close() ends the child (its stdin closed, SIGTERM, SIGKILL after killAfterMs) and waits for its exit: no orphan
 * on stop or reload (natd's reload keeps the child: the bridge does not change), nor when natd is killed (the sh
 * wrapper below).
 * Lines longer than maxLine are not iproute2's: dropped and counted; stderr lines are logged (rate-limited).
 */
import type { ChildProcess } from 'node:child_process';
import { lineSplitter, spawnTiedToNatd } from '../tied-child.js';
import type { Logger } from '../log.js';
import { MAX_LINE } from './neigh-monitor-line.js';

export interface NeighbourMonitorStats {
  running: boolean;
  pid?: number | undefined;
  /** children started */
  starts: number;
  /** starts after a child exited */
  restarts: number;
  /** stdout lines handed on */
  lines: number;
  /** lines longer than maxLine, dropped */
  linesTooLong: number;
  /** stderr lines (ENOBUFS: events lost until the next resync) */
  errors: number;
}

export interface NeighbourMonitorOptions {
  bridge: string;
  onLine: (line: string) => void;
  /** a child started (again): events may have been missed meanwhile */
  onStart?: () => void;
  /** the child exited (it is restarted after the backoff): poll faster meanwhile */
  onStop?: () => void;
  /** the child reported an error (ENOBUFS: the kernel dropped events); called at most once per lossEveryMs */
  onLoss?: () => void;
  lossEveryMs?: number;
  logger: Logger;
  /** default `ip`, args `-6 monitor neigh dev <bridge>` (tests run a stand-in) */
  command?: string;
  args?: string[];
  minBackoffMs?: number;
  maxBackoffMs?: number;
  stableMs?: number;
  killAfterMs?: number;
  maxLine?: number;
}

export class NeighbourMonitor {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private backoff: number;
  private startedAt = 0;
  private lastLoss = -Infinity;
  private readonly counts = { starts: 0, restarts: 0, lines: 0, linesTooLong: 0, errors: 0 };

  constructor(private readonly opts: NeighbourMonitorOptions) {
    this.backoff = opts.minBackoffMs ?? 1000;
  }

  start(): void {
    if (this.closed || this.child) return;
    const command = this.opts.command ?? 'ip';
    const args = this.opts.args ?? ['-6', 'monitor', 'neigh', 'dev', this.opts.bridge];
    let child: ChildProcess;
    try {
      child = spawnTiedToNatd(command, args, { stdout: 'pipe', stderr: 'pipe' }); // ends with natd, even on kill -9
    } catch (err) {
      this.opts.logger.warnLimited('ipv6-neigh-monitor', 'cannot start the neighbour monitor; polling only', { error: String(err) });
      this.scheduleRestart();
      return;
    }
    if (this.counts.starts > 0) this.counts.restarts++;
    this.counts.starts++;
    this.child = child;
    this.startedAt = Date.now();
    const maxLine = this.opts.maxLine ?? MAX_LINE;
    this.exited = new Promise((resolve) => {
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', lineSplitter(maxLine, (line) => this.line(line), () => this.counts.linesTooLong++));
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (chunk: string) => {
        this.counts.errors++;
        const now = Date.now();
        if (now - this.lastLoss >= (this.opts.lossEveryMs ?? 5000)) {
          this.lastLoss = now;
          this.opts.onLoss?.();
        }
        this.opts.logger.warnLimited('ipv6-neigh-monitor', 'the neighbour monitor reports an error; the next resync catches up', { message: chunk.trim().slice(0, 200) });
      });
      child.on('error', (err) => {
        this.opts.logger.warnLimited('ipv6-neigh-monitor', 'cannot run the neighbour monitor; polling only until it runs', { error: String(err) });
      });
      child.on('close', (code, signal) => {
        if (this.child === child) this.child = undefined;
        resolve();
        if (this.closed) return;
        this.opts.onStop?.();
        this.opts.logger.warnLimited('ipv6-neigh-monitor', 'the neighbour monitor exited; restarting', { code, signal, inMs: this.backoff });
        this.scheduleRestart();
      });
    });
    this.opts.onStart?.();
  }

  private line(line: string): void {
    this.counts.lines++;
    try {
      this.opts.onLine(line);
    } catch (err) {
      this.opts.logger.warnLimited('ipv6-neigh-monitor', 'a neighbour event could not be applied', { error: String(err) });
    }
  }

  private scheduleRestart(): void {
    if (this.closed) return;
    if (this.startedAt && Date.now() - this.startedAt >= (this.opts.stableMs ?? 60_000)) this.backoff = this.opts.minBackoffMs ?? 1000;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 30_000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, wait);
    this.timer.unref();
  }

  stats(): NeighbourMonitorStats {
    return { running: this.child !== undefined, pid: this.child?.pid, ...this.counts };
  }

  /** Ends the child and waits for it to be gone; no restart after this. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child) return;
    child.stdin?.end(); // the subshell kills the command
    child.kill('SIGTERM');
    const after = this.opts.killAfterMs ?? 1000;
    let kill: NodeJS.Timeout | undefined;
    let giveUp: NodeJS.Timeout | undefined;
    await Promise.race([
      this.exited,
      new Promise<void>((resolve) => {
        kill = setTimeout(() => child.kill('SIGKILL'), after);
        giveUp = setTimeout(resolve, 3 * after); // never hold up natd's shutdown
      }),
    ]);
    clearTimeout(kill);
    clearTimeout(giveUp);
  }
}
