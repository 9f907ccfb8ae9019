/**
 * issue 14: asks the kernel to check, now, whether a guest still answers for an address: `ip -6 neigh change ADDR
 * dev BR lladdr MAC nud probe` puts the entry in PROBE, the kernel sends its unicast solicitations at once, and the
 * entry becomes REACHABLE (the guest answered, within milliseconds) or FAILED (about 3 s: ucast_solicit x
 * retrans_time). `change` never creates an entry (a gone one just fails the line).
 *
 * The learner (neighbours.ts) asks when a guest shows a new address while older ones are published for it, and when
 * a guest's first address goes STALE while another of its addresses is in use: a SLAAC guest that moved to a new
 * address, whose old entry could otherwise sit REACHABLE/STALE for a minute, is found gone in seconds, so its
 * names and IPv6 forwards follow quickly; an address still in use is confirmed and keeps its place.
 *
 * Guests trigger this (a guest can show ever new addresses), so it is bounded: one `ip -batch` run at a time, at
 * most one start per minIntervalMs, at most maxPerBatch lines per run, at most maxQueued addresses waiting (more
 * are dropped and counted); the learner also probes each (address, MAC) at most once per PROBE_EVERY_MS.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

export interface NeighbourProberStats {
  /** addresses queued for a probe */
  requested: number;
  /** not queued: the queue was full */
  dropped: number;
  /** `ip -batch` runs */
  runs: number;
  /** runs that reported an error (usually: an entry already gone) */
  failures: number;
}

export interface NeighbourProberOptions {
  bridge: string;
  logger: Logger;
  /** runs `ip -6 -force -batch -` with these lines (tests record them) */
  run?: (lines: string[]) => Promise<void>;
  minIntervalMs?: number;
  maxPerBatch?: number;
  maxQueued?: number;
}

export class NeighbourProber {
  private readonly queue = new Map<string, string>();
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private lastStart = -Infinity;
  private closed = false;
  private readonly counts: NeighbourProberStats = { requested: 0, dropped: 0, runs: 0, failures: 0 };

  constructor(private readonly opts: NeighbourProberOptions) {}

  /** Queues a probe of `address` (canonical IPv6 text) at `mac` (lower-case colon form). */
  request(address: string, mac: string): void {
    if (this.closed || this.queue.has(address)) return;
    if (this.queue.size >= (this.opts.maxQueued ?? 64)) {
      this.counts.dropped++;
      return;
    }
    this.counts.requested++;
    this.queue.set(address, mac);
    this.schedule();
  }

  stats(): NeighbourProberStats {
    return { ...this.counts };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.queue.clear();
  }

  private schedule(): void {
    if (this.running || this.timer || this.queue.size === 0 || this.closed) return;
    const wait = Math.max(0, this.lastStart + (this.opts.minIntervalMs ?? 1000) - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runOnce();
    }, wait);
    this.timer.unref();
  }

  private async runOnce(): Promise<void> {
    if (this.closed) return;
    const max = this.opts.maxPerBatch ?? 16;
    const lines: string[] = [];
    for (const [address, mac] of this.queue) {
      if (lines.length >= max) break;
      this.queue.delete(address);
      lines.push(`neigh change ${address} dev ${this.opts.bridge} lladdr ${mac} nud probe`);
    }
    this.running = true;
    this.lastStart = Date.now();
    this.counts.runs++;
    try {
      await (this.opts.run ?? runIpBatch)(lines);
    } catch (err) {
      this.counts.failures++;
      this.opts.logger.warnLimited('ipv6-neigh-probe', 'a neighbour probe failed (an entry already gone is usual)', { error: String(err).slice(0, 200) });
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}

/** `ip -6 -force -batch -`: one process for the lines, going on past a line that fails. */
function runIpBatch(lines: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-6', '-force', '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr = (stderr + c).slice(-500)));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`ip -batch exited ${code}: ${stderr.trim()}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(lines.join('\n') + '\n');
  });
}
