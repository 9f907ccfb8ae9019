/**
 * issue 14: IPv6 port forwards that name a guest follow its address. IPv4 forwards name reservations only
 * (re-resolved on reload); an IPv6 forward may name a DHCPv6 lease or a SLAAC guest, whose address comes and goes.
 * After each DHCPv6 lease change, and each change of the guests' IPv6 address table (the neighbour learner's SLAAC
 * addresses), the names the forwards use are resolved again (guest-ipv6.ts); when one answers differently the
 * firewall reloads with the current config. A reload that fails (a v6-only forward whose name lost its address) is
 * logged (rate-limited) and the table stays as it was.
 *
 * Rate limit: both triggers come from guests (a guest churning DHCPv6 leases, or answering neighbour solicitations
 * with ever new addresses), and each reload runs `nft`. So requests are coalesced: one reload at a time, at most one
 * start per `minIntervalMs` (default 1 s); requests meanwhile are folded into one check after the interval, which
 * reloads with the answers current then. Requests, reloads, failures and coalesced requests are counted (metrics).
 */
import type { Logger } from '../log.js';
import type { NameResolver6 } from '../nft/forward6.js';

export const FORWARDS6_MIN_INTERVAL_MS = 1000;

export interface Forwards6Deps {
  /** the guest names the forwards use (Firewall.guestNames) */
  names: () => Iterable<string>;
  /** the current name → IPv6 lookup */
  resolver: () => NameResolver6;
  /** re-applies the forwards with this lookup (Firewall.reload with the running config) */
  reload: (resolver: NameResolver6) => Promise<void>;
  logger: Logger;
  /** least time between two reload starts (default FORWARDS6_MIN_INTERVAL_MS) */
  minIntervalMs?: number;
  now?: () => number;
}

export interface Forwards6Stats {
  /** re-resolve requests (lease or address-table changes) */
  requests: number;
  /** requests folded into a check already pending or running */
  coalesced: number;
  /** checks whose answers changed: firewall reloads started */
  reloads: number;
  /** reloads that failed (the table stayed as it was) */
  failures: number;
}

export interface Forwards6Refresher {
  /** asks for a re-resolve (cheap; never runs nft more than once per interval) */
  refresh(): void;
  stats(): Forwards6Stats;
  /** no further checks (shutdown) */
  close(): void;
}

export function forwards6Refresher(deps: Forwards6Deps): Forwards6Refresher {
  return new CoalescingRefresher(deps);
}

/** One check at a time, at most one reload start per interval; the answers last applied decide whether to reload. */
class CoalescingRefresher implements Forwards6Refresher {
  private readonly now: () => number;
  private readonly interval: number;
  private readonly counts: Forwards6Stats = { requests: 0, coalesced: 0, reloads: 0, failures: 0 };
  private last: string;
  private lastStart = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private again = false;
  private closed = false;

  constructor(private readonly deps: Forwards6Deps) {
    this.now = deps.now ?? Date.now;
    this.interval = deps.minIntervalMs ?? FORWARDS6_MIN_INTERVAL_MS;
    this.last = this.answers(deps.resolver);
  }

  // arrow properties: callers hand these on as plain callbacks (lease and address-table listeners)
  readonly refresh = (): void => {
    this.counts.requests++;
    if (this.busy) {
      this.again = true;
      this.counts.coalesced++;
    } else if (this.timer !== undefined) this.counts.coalesced++;
    else this.schedule();
  };

  readonly stats = (): Forwards6Stats => ({ ...this.counts });

  readonly close = (): void => {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  };

  /** Every forward name with its answer; without forwards naming guests (the usual case) no lookup at all. */
  private answers(resolve: () => NameResolver6): string {
    const names = [...this.deps.names()];
    if (names.length === 0) return '[]';
    const lookup = resolve();
    return JSON.stringify(names.sort().map((n) => [n, lookup(n) ?? null]));
  }

  private schedule(): void {
    if (this.closed || this.timer !== undefined) return;
    const wait = Math.max(0, this.lastStart + this.interval - this.now());
    this.timer = setTimeout(() => void this.check(), wait);
    this.timer.unref?.();
  }

  private async check(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    this.busy = true;
    this.again = false;
    try {
      let resolver: NameResolver6 | undefined;
      const resolve = (): NameResolver6 => (resolver ??= this.deps.resolver());
      const current = this.answers(resolve);
      if (current === this.last) return;
      this.last = current;
      this.lastStart = this.now();
      await this.reload(resolve());
    } finally {
      this.busy = false;
      if (this.again) this.schedule();
    }
  }

  private async reload(resolver: NameResolver6): Promise<void> {
    this.counts.reloads++;
    try {
      await this.deps.reload(resolver);
    } catch (err) {
      this.counts.failures++;
      this.deps.logger.warnLimited('dhcp6:forwards', 'cannot re-resolve IPv6 port forwards after a guest address change', { error: (err as Error).message });
    }
  }
}
