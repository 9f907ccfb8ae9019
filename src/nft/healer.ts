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
  const intervalMs = options.intervalMs ?? 2000;
  const slowIntervalMs = options.slowIntervalMs ?? 30_000;
  const settleMs = options.settleMs ?? 100;
  const { logger } = options;
  let healed = 0;
  let stopped = false;
  let running = false;
  /** a change event came while a check ran: check again after it */
  let again = false;
  let watching = false;
  let timer: NodeJS.Timeout | undefined;
  let dueAt = Infinity;

  const tick = async (): Promise<void> => {
    try {
      if (await options.check()) return;
      if (stopped) return;
      logger.warn('nft table missing or changed by another program, re-applying');
      await options.reapply();
      healed++;
      logger.info('nft table re-applied', { heals: healed });
    } catch (err) {
      logger.error('nft table check or re-apply failed, retrying', { error: err instanceof Error ? err.message : String(err) });
    }
  };

  /** the next check in `ms` (an earlier one already planned stays) */
  const schedule = (ms: number): void => {
    if (stopped || running) return;
    const at = Date.now() + ms;
    if (timer && at >= dueAt) return;
    if (timer) clearTimeout(timer);
    dueAt = at;
    timer = setTimeout(run, ms);
    timer.unref(); // the daemon's sockets keep the process alive, not the healer
  };

  const run = (): void => {
    timer = undefined;
    dueAt = Infinity;
    running = true;
    again = false;
    void tick().finally(() => {
      running = false;
      schedule(again ? settleMs : watching ? slowIntervalMs : intervalMs);
    });
  };

  let watch: { stop(): void } | undefined;
  if (options.watch) {
    watching = true;
    try {
      watch = options.watch({
        changed() {
          if (stopped || !watching) return;
          if (running) again = true;
          else schedule(settleMs);
        },
        lost() {
          if (stopped || !watching) return;
          watching = false;
          logger.warn('nft ruleset monitor ended; checking natd\'s table periodically', { intervalMs });
          schedule(intervalMs);
        },
      });
    } catch (err) {
      watching = false;
      logger.warn('cannot monitor the nft ruleset; checking natd\'s table periodically', { error: err instanceof Error ? err.message : String(err) });
    }
  }
  schedule(intervalMs); // also with a watch: covers a change made before the monitor subscribed
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      watch?.stop();
    },
    heals: () => healed,
  };
}
