/**
 * Self-healing: another program may delete or flush natd's table (`nft flush ruleset` from nftables.service, a
 * firewall reload). A cheap check (`nft -j list table` compared with the input) notices and re-applies the whole
 * table, logging it. Checks never overlap; a failing check or re-apply is logged and retried on the next check,
 * never thrown.
 *
 * When to check: every intervalMs (2 s) by default. With a `watch` (the firewall's `nft monitor` child, see
 * ruleset-watch.ts) a check runs shortly after any ruleset change instead, and only every slowIntervalMs (30 s) as a
 * backstop; should the watch end, the healer goes back to intervalMs. Each periodic check is an `nft` child process
 * forked from the daemon: at 2 s that was about 5% of natd's CPU under name-router load (issue 17).
 */
import type { Logger } from '../log.js';

/** A source of "the ruleset changed" events; `lost` when it stops delivering them (then polling takes over). */
export type RulesetWatcher = (events: { changed(): void; lost(): void }) => { stop(): void };

export interface HealerOptions {
  /** Resolves true when the table is intact. */
  check: () => Promise<boolean>;
  /** Full re-apply of the table. */
  reapply: () => Promise<void>;
  /** Time between the end of one check and the start of the next; default 2000 ms. */
  intervalMs?: number;
  /** Change events; with them checks follow the events and the periodic check slows down to slowIntervalMs. */
  watch?: RulesetWatcher;
  /** The periodic check while the watch works; default 30,000 ms. */
  slowIntervalMs?: number;
  /** How long after a change event the check runs (changes usually come in bursts); default 100 ms. */
  settleMs?: number;
  logger: Logger;
}

export interface Healer {
  stop(): void;
  /** How many times the table was found broken and re-applied successfully. */
  heals(): number;
}

export function startHealer(options: HealerOptions): Healer {
  const healer = new TableHealer(options);
  healer.start();
  return healer;
}

/** The check loop: one timer, never two checks at once, a change during a check asks for one more. */
class TableHealer implements Healer {
  private readonly intervalMs: number;
  private readonly slowIntervalMs: number;
  private readonly settleMs: number;
  private healed = 0;
  private stopped = false;
  private running = false;
  /** a change event came while a check ran: check again after it */
  private again = false;
  private watching = false;
  private timer: NodeJS.Timeout | undefined;
  private dueAt = Infinity;
  private watch: { stop(): void } | undefined;

  constructor(private readonly options: HealerOptions) {
    this.intervalMs = options.intervalMs ?? 2000;
    this.slowIntervalMs = options.slowIntervalMs ?? 30_000;
    this.settleMs = options.settleMs ?? 100;
  }

  start(): void {
    if (this.options.watch) this.subscribe(this.options.watch);
    this.schedule(this.intervalMs); // also with a watch: covers a change made before the monitor subscribed
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.watch?.stop();
  }

  heals(): number {
    return this.healed;
  }

  private subscribe(watcher: RulesetWatcher): void {
    const { logger } = this.options;
    this.watching = true;
    try {
      this.watch = watcher({
        changed: () => {
          if (this.stopped || !this.watching) return;
          if (this.running) this.again = true;
          else this.schedule(this.settleMs);
        },
        lost: () => {
          if (this.stopped || !this.watching) return;
          this.watching = false;
          logger.warn('nft ruleset monitor ended; checking natd\'s table periodically', { intervalMs: this.intervalMs });
          this.schedule(this.intervalMs);
        },
      });
    } catch (err) {
      this.watching = false;
      logger.warn('cannot monitor the nft ruleset; checking natd\'s table periodically', { error: errorText(err) });
    }
  }

  /** the next check in `ms` (an earlier one already planned stays) */
  private schedule(ms: number): void {
    if (this.stopped || this.running) return;
    const at = Date.now() + ms;
    if (this.timer && at >= this.dueAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => this.run(), ms);
    this.timer.unref(); // the daemon's sockets keep the process alive, not the healer
  }

  private run(): void {
    this.timer = undefined;
    this.dueAt = Infinity;
    this.running = true;
    this.again = false;
    void this.checkAndHeal().finally(() => {
      this.running = false;
      this.schedule(this.again ? this.settleMs : this.watching ? this.slowIntervalMs : this.intervalMs);
    });
  }

  private async checkAndHeal(): Promise<void> {
    const { logger } = this.options;
    try {
      if (await this.options.check()) return;
      if (this.stopped) return;
      logger.warn('nft table missing or changed by another program, re-applying');
      await this.options.reapply();
      this.healed++;
      logger.info('nft table re-applied', { heals: this.healed });
    } catch (err) {
      logger.error('nft table check or re-apply failed, retrying', { error: errorText(err) });
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
