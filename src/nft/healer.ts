/**
 * Self-healing: another program may delete or flush natd's table (`nft flush ruleset` from nftables.service, a
 * firewall reload). A periodic cheap check (`nft -j list table` compared with the input) notices within one
 * interval and re-applies the whole table, logging it. Checks never overlap; a failing check or re-apply is logged
 * and retried on the next tick, never thrown.
 */
import type { Logger } from '../log.js';

export interface HealerOptions {
  /** Resolves true when the table is intact. */
  check: () => Promise<boolean>;
  /** Full re-apply of the table. */
  reapply: () => Promise<void>;
  /** Time between the end of one check and the start of the next; default 2000 ms. */
  intervalMs?: number;
  logger: Logger;
}

export interface Healer {
  stop(): void;
  /** How many times the table was found broken and re-applied successfully. */
  heals(): number;
}

export function startHealer(options: HealerOptions): Healer {
  const intervalMs = options.intervalMs ?? 2000;
  const { logger } = options;
  let healed = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

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

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      void tick().finally(schedule);
    }, intervalMs);
    timer.unref(); // the daemon's sockets keep the process alive, not the healer
  };

  schedule();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
    heals: () => healed,
  };
}
